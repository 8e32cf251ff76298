"""Data: every source loads a fixture made here, splits are seeded and stratified, labels are
mapped, augmentation is per sample, and bad input fails with a clear error."""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasdepth.data import (
    AugmentConfig,
    CVConfig,
    Standardizer,
    augment_batch,
    holdout_split,
    load_data,
    make_folds,
    make_splits,
)
from nasdepth.errors import ConfigError, UnknownNameError


# ---------------------------------------------------------------- splits
@pytest.mark.parametrize("kind", ["stratified", "kfold", "repeated_stratified"])
def test_folds_cover_every_sample_once_and_stratify(kind: str) -> None:
    y = load_data("sklearn:digits").y_numpy
    cv = CVConfig(folds=5, seed=3, kind=kind, repeats=2 if kind == "repeated_stratified" else 1)
    splits = make_splits(y, cv)
    assert len(splits) == cv.n_splits
    for r in range(len(splits) // 5):  # every repeat is a full partition
        part = splits[5 * r:5 * (r + 1)]
        val = np.concatenate([va for _, va in part])
        assert sorted(val.tolist()) == list(range(len(y)))
        sizes = [len(va) for _, va in part]
        assert max(sizes) - min(sizes) <= 1
        for tr, va in part:
            assert not set(tr) & set(va) and len(tr) + len(va) == len(y)
    if kind != "kfold":
        overall = np.bincount(y) / len(y)
        for _, va in splits:
            assert np.abs(np.bincount(y[va], minlength=10) / len(va) - overall).max() < 0.02


def test_same_seed_same_splits_other_seed_other_splits() -> None:
    y = load_data("sklearn:wine").y_numpy
    a, b = make_folds(y, 4, seed=7), make_folds(y, 4, seed=7)
    c = make_folds(y, 4, seed=8)
    assert all(np.array_equal(x[1], z[1]) for x, z in zip(a, b, strict=True))
    assert not all(np.array_equal(x[1], z[1]) for x, z in zip(a, c, strict=True))


def test_group_kfold_keeps_groups_together() -> None:
    y = np.tile([0, 1], 30)
    groups = np.repeat(np.arange(12), 5)
    splits = make_splits(y, CVConfig(folds=3, kind="group", group="g"), groups=groups)
    for tr, va in splits:
        assert not set(groups[tr]) & set(groups[va])
    with pytest.raises(ConfigError, match="cv.group"):
        make_splits(y, CVConfig(folds=3, kind="group", group="g"))


def test_holdout_is_stratified_and_disjoint() -> None:
    y = load_data("sklearn:iris").y_numpy
    rest, test = holdout_split(y, 0.2, seed=0)
    assert len(test) == 30 and not set(rest) & set(test)
    assert np.bincount(y[test]).tolist() == [10, 10, 10]


def test_class_smaller_than_folds_is_named() -> None:
    y = np.array([0] * 20 + [1] * 20 + [2] * 2)
    with pytest.raises(ConfigError, match="class '2' has only 2 samples"):
        make_folds(y, 3, seed=0)


def test_cv_config_from_dict_checks_keys_and_values() -> None:
    assert CVConfig.from_dict({"folds": 3, "test_size": 0.25}).test_size == 0.25
    with pytest.raises(UnknownNameError, match="Did you mean 'folds'"):
        CVConfig.from_dict({"fold": 3}, "studies/x.yaml")
    with pytest.raises(UnknownNameError, match="stratified"):
        CVConfig.from_dict({"kind": "stratifed"})
    with pytest.raises(ConfigError, match="The 'folds' value in studies/x.yaml must be an int"):
        CVConfig.from_dict({"folds": 1}, "studies/x.yaml")
    with pytest.raises(ConfigError, match="cv.group"):
        CVConfig.from_dict({"kind": "group"})


def test_standardizer_uses_only_what_it_was_fitted_on() -> None:
    x = torch.randn(50, 3, 4, 4)
    s = Standardizer.fit(x[:30])
    shifted = torch.cat([x[:30], x[30:] * 100 + 50])
    assert torch.equal(Standardizer.fit(shifted[:30]).mean, s.mean)
    z = s(x[:30])
    assert torch.allclose(z.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)


# ---------------------------------------------------------------- sources
@pytest.mark.parametrize("name,shape,classes", [
    ("digits", (1, 8, 8), 10), ("iris", (4,), 3), ("wine", (13,), 3),
    ("breast_cancer", (30,), 2),
])
def test_sklearn_sources(name: str, shape: tuple[int, ...], classes: int) -> None:
    data = load_data(f"sklearn:{name}")
    assert data.input_shape == shape and data.num_classes == classes
    assert data.x.dtype == torch.float32 and data.y.dtype == torch.int64


def test_synthetic_generator_options() -> None:
    spec = {"source": "synthetic:classification", "n_samples": 300, "n_informative": 4,
            "n_classes": 3, "image_shape": [1, 4, 5], "seed": 1}
    clean = load_data(spec)
    assert clean.input_shape == (1, 4, 5) and len(clean) == 300 and clean.num_classes == 3
    noisy = load_data({**spec, "label_noise": 0.5})
    changed = (clean.y != noisy.y).float().mean().item()
    assert 0.2 < changed < 0.5  # half replaced at random, a third of those by the same label
    assert torch.equal(clean.x, noisy.x)
    assert torch.equal(load_data(spec).x, clean.x)  # seeded
    small = load_data({**spec, "limit": 60})
    assert len(small) == 60 and np.bincount(small.y_numpy).min() >= 19


def test_npz_and_npy_sources(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 2, 6)).astype(np.float32), np.tile([0, 1], 20)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    data = load_data(str(tmp_path / "a.npz"))
    assert data.input_shape == (2, 6) and torch.equal(data.x, torch.from_numpy(x))
    np.savez(tmp_path / "b.npz", feats=x, lab=y)
    assert len(load_data({"source": str(tmp_path / "b.npz"), "x_key": "feats",
                          "y_key": "lab"})) == 40
    np.save(tmp_path / "x.npy", x.reshape(40, -1))
    np.save(tmp_path / "y.npy", y)
    data = load_data({"source": str(tmp_path / "x.npy"), "labels": "y.npy"})
    assert data.input_shape == (12,) and data.y.tolist() == y.tolist()
    with pytest.raises(ConfigError, match="labels"):
        load_data(str(tmp_path / "x.npy"))


def test_csv_source_one_hot_string_labels_and_groups(tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    df = pd.DataFrame({
        "size": np.arange(12, dtype=float), "colour": ["red", "blue", "green"] * 4,
        "patient": np.repeat([1, 2, 3, 4], 3), "label": ["cat", "dog"] * 6,
    })
    df.to_csv(tmp_path / "t.csv", index=False)
    with caplog.at_level(logging.WARNING, logger="nasdepth.data"):
        data = load_data({"source": str(tmp_path / "t.csv"), "target": "label",
                          "categorical": ["colour"], "group": "patient"})
    assert data.input_shape == (4,)  # size + three colour columns
    assert data.class_names == ["cat", "dog"] and data.y.tolist() == [0, 1] * 6
    assert "mapped" in caplog.text and data.groups is not None
    with pytest.raises(UnknownNameError, match="Did you mean 'label'"):
        load_data({"source": str(tmp_path / "t.csv"), "target": "labels"})


def test_imagefolder_source(tmp_path: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("ants", "bees"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(3):
            pixels = rng.integers(0, 255, size=(10, 12, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(tmp_path / "imgs" / cls / f"{i}.png")
    data = load_data({"source": f"imagefolder:{tmp_path / 'imgs'}", "image_size": [8, 8]})
    assert data.input_shape == (3, 8, 8) and data.class_names == ["ants", "bees"]
    assert 0.0 <= float(data.x.min()) and float(data.x.max()) <= 1.0
    grey = load_data({"source": f"imagefolder:{tmp_path / 'imgs'}", "grayscale": True})
    assert grey.input_shape == (1, 10, 12)


def _idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the MNIST idx format torchvision reads."""
    header = struct.pack(">I", 0x0800 + array.ndim) + b"".join(
        struct.pack(">I", s) for s in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def test_torchvision_source_from_a_local_root(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for split, n in (("train", 20), ("t10k", 10)):
        _idx(raw / f"{split}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        _idx(raw / f"{split}-labels-idx1-ubyte", np.arange(n) % 10)
    data = load_data({"source": "torchvision:MNIST", "root": str(tmp_path)})
    assert len(data) == 20 and data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert float(data.x.max()) <= 1.0
    assert len(load_data({"source": "torchvision:MNIST", "root": str(tmp_path),
                          "split": "test"})) == 10
    with pytest.raises(ConfigError, match="cifar-10-batches-py"):
        load_data({"source": "torchvision:CIFAR10", "root": str(tmp_path)})


# ---------------------------------------------------------------- bad input
def test_bad_input_errors_name_source_and_value(tmp_path: Path) -> None:
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    np.savez(tmp_path / "nan.npz", x=x, y=np.tile([0, 1], 5))
    with pytest.raises(ConfigError, match=r"nan.npz.*1 NaN/inf values \(first in sample 4\)"):
        load_data(str(tmp_path / "nan.npz"))
    np.savez(tmp_path / "reg.npz", x=np.ones((4, 2)), y=np.array([0.5, 1.5, 0.5, 2.0]))
    with pytest.raises(ConfigError, match="not regression targets"):
        load_data(str(tmp_path / "reg.npz"))
    np.savez(tmp_path / "one.npz", x=np.ones((4, 2)), y=np.zeros(4))
    with pytest.raises(ConfigError, match="at least 2 classes"):
        load_data(str(tmp_path / "one.npz"))
    with pytest.raises(ConfigError, match="nothing at"):
        load_data(str(tmp_path / "missing.csv"))
    with pytest.raises(UnknownNameError, match="Did you mean 'label_noise'"):
        load_data({"source": "synthetic:classification", "label_nois": 0.1})
    with pytest.raises(ConfigError, match="data.n_samples"):
        load_data({"source": "synthetic:classification", "n_samples": -5})
    with pytest.raises(UnknownNameError, match="Did you mean 'digits'"):
        load_data("sklearn:digit")
    with pytest.raises(ConfigError, match="data.source"):
        load_data({"n_samples": 10})


def test_integer_labels_not_0_to_c_are_mapped(tmp_path: Path) -> None:
    np.savez(tmp_path / "l.npz", x=np.ones((6, 2)), y=np.array([3, 7, 9, 3, 7, 9]))
    data = load_data(str(tmp_path / "l.npz"))
    assert data.y.tolist() == [0, 1, 2, 0, 1, 2] and data.class_names == ["3", "7", "9"]


# ---------------------------------------------------------------- augmentation
def test_augment_batch_draws_per_sample_and_keeps_shape() -> None:
    x = torch.randn(64, 3, 8, 8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, AugmentConfig(flip=1.0), gen), x.flip(-1))
    half = augment_batch(x, AugmentConfig(flip=0.5), gen)
    flipped = (half == x.flip(-1)).flatten(1).all(1)
    assert 10 < int(flipped.sum()) < 54  # drawn per sample, not once per batch
    crop = augment_batch(x, AugmentConfig(crop_padding=2), gen)
    assert crop.shape == x.shape and not torch.equal(crop, x)
    full = AugmentConfig(flip=0.5, crop_padding=1, rotation=15, color_jitter=0.3)
    out = augment_batch(x, full, gen)
    assert out.shape == x.shape and torch.isfinite(out).all()
    seq = augment_batch(torch.randn(8, 2, 10), AugmentConfig(flip=0.5, crop_padding=2), gen)
    assert seq.shape == (8, 2, 10)


def test_augment_config_checks() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'rotation'"):
        AugmentConfig.from_dict({"rotate": 10})
    with pytest.raises(ConfigError, match="augment.flip"):
        AugmentConfig.from_dict({"flip": 2})
    with pytest.raises(ConfigError, match="flat features"):
        AugmentConfig(flip=0.5).check_input((13,), "the study")


def test_mnist1d_is_generated_locally_with_its_published_shape() -> None:
    from nasdepth import load_data

    d = load_data({"source": "mnist1d", "n_samples": 500, "seed": 3})
    assert d.input_shape == (1, 40) and d.num_classes == 10 and len(d.y) == 400
    again = load_data({"source": "mnist1d", "n_samples": 500, "seed": 3})
    assert (d.x == again.x).all()  # procedural: the seed fixes it
    assert len(load_data("mnist1d").y) == 4000  # the benchmark's 4,000 training samples


def test_mnist1d_is_generated_once_per_process_and_loads_alike(monkeypatch) -> None:
    """A second load of the same MNIST-1D (a sweep's report reloads its data) reuses the
    generated arrays: equal data, the global generators left as the generator leaves them,
    and a variant that edits its labels (label noise) does not touch the kept arrays."""
    import random as pyrandom

    import mnist1d.data

    from nasdepth.data.sources import _mnist1d_made

    made = mnist1d.data.make_dataset
    calls: list[int] = []

    def counted(args):
        calls.append(args.num_samples)
        return made(args)

    monkeypatch.setattr(mnist1d.data, "make_dataset", counted)
    _mnist1d_made.cache_clear()
    first = load_data({"source": "mnist1d", "n_samples": 600, "seed": 3})
    after = (np.random.get_state()[1].copy(), pyrandom.getstate())
    np.random.seed(123)  # moved on by something else in between
    noisy = load_data({"source": "mnist1d", "n_samples": 600, "seed": 3, "label_noise": 0.5})
    again = load_data({"source": "mnist1d", "n_samples": 600, "seed": 3})
    assert calls == [600]
    assert torch.equal(first.x, again.x) and torch.equal(first.y, again.y)
    assert not torch.equal(first.y, noisy.y)
    assert (np.random.get_state()[1] == after[0]).all() and pyrandom.getstate() == after[1]
    _mnist1d_made.cache_clear()
