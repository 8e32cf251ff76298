"""Transfer learning in training: frozen parts stay as loaded and get no optimizer state, their
BatchNorm statistics stay; feature extraction trains the head only; per-part learning rates;
input shapes adapt only when told; a wrong checkpoint is a clear error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from nasdepth.arch import ArchConfig, build_model
from nasdepth.arch.adapt import read_source
from nasdepth.data import CVConfig, Dataset, Standardizer, derive_tasks, load_data
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.export.model import save_model
from nasdepth.train import FitOptions, TrainConfig, cross_validate, fit_fold
from nasdepth.train.candidate import transfer_candidate, unfreezer
from nasdepth.train.step import TrainStep
from nasdepth.train.transfer import (
    AdaptConfig,
    TransferConfig,
    adapt_data,
    prepare_model,
    subsample,
    subsampled,
)

CPU = torch.device("cpu")
ARCH = ArchConfig.from_dict({"stages": [
    {"block": "residual", "depth": 2, "width": 8},
    {"block": "residual", "depth": 1, "width": 16, "stride": 2}]})


def classes(data: Dataset, labels: range, per_class: int | None = None, seed: int = 0
            ) -> Dataset:
    """The samples of ``labels`` (``per_class`` of each, seeded), relabelled 0..n-1."""
    rng = np.random.default_rng(seed)
    y = data.y_numpy
    idx = [np.where(y == c)[0] for c in labels]
    if per_class is not None:
        idx = [rng.choice(i, per_class, replace=False) for i in idx]
    sel = np.sort(np.concatenate(idx))
    sub = data.subset(sel)
    sub.y = sub.y - labels.start
    sub.num_classes, sub.class_names = len(labels), [str(c) for c in labels]
    return sub


def pretrain(data: Dataset, path: Path, arch: ArchConfig = ARCH, epochs: int = 3) -> Path:
    """A nasdepth model file of ``arch`` trained on all of ``data``."""
    torch.manual_seed(0)
    model = build_model(arch, data.input_shape, data.num_classes)
    idx = np.arange(len(data))
    # the recipe these tests' thresholds were set with (cosine was the default then)
    fit_fold(model, data, idx, idx[:50],
             training=TrainConfig(epochs=epochs, lr=0.01, schedule="cosine"), seed=0, device=CPU)
    sc = Standardizer.fit(data.x)
    return save_model(path, [model], [(sc.mean, sc.std)],
                      {"arch": arch.to_dict(), "input_shape": list(data.input_shape),
                       "class_names": list(data.class_names)})


@pytest.fixture(scope="module")
def digits() -> Dataset:
    return load_data("sklearn:digits")


@pytest.fixture(scope="module")
def source(digits: Dataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return pretrain(classes(digits, range(0, 5)), tmp_path_factory.mktemp("src") / "src.pt")


@pytest.fixture(scope="module")
def target(digits: Dataset) -> Dataset:
    return classes(digits, range(5, 10), per_class=30)


def _prepare(source: Path, target: Dataset, **kw: object):
    t = TransferConfig(weights=str(source), **kw)  # type: ignore[arg-type]
    torch.manual_seed(1)
    return prepare_model(ARCH, target.input_shape, target.num_classes, t, read_source(source))


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_transfer_config_round_trip_and_errors() -> None:
    t = TransferConfig("w.pt", "fine_tune", 2, 0.1, AdaptConfig("repeat", "resize"))
    assert TransferConfig.from_dict(t.to_dict()) == t
    with pytest.raises(ConfigError, match="Did you mean 'fine_tune'"):
        TransferConfig.from_dict({"weights": "w.pt", "mode": "finetune"})
    with pytest.raises(ConfigError, match="transfer.weights"):
        TransferConfig.from_dict({"mode": "feature_extraction"})
    with pytest.raises(ConfigError, match="body_lr_factor"):
        TransferConfig.from_dict({"weights": "w.pt", "body_lr_factor": 0})
    with pytest.raises(ConfigError, match="Did you mean 'trainable_blocks'"):
        TransferConfig.from_dict({"weights": "w.pt", "trainable_block": 1})
    with pytest.raises(ConfigError, match="adapt.channels"):
        TransferConfig.from_dict({"weights": "w.pt", "adapt": {"channels": "tile"}})


def test_fine_tune_freezes_lower_blocks_which_stay_as_loaded(source: Path,
                                                             target: Dataset) -> None:
    prep = _prepare(source, target, mode="fine_tune", trainable_blocks=1, body_lr_factor=0.1)
    model = prep.model
    assert prep.frozen == ["stem", "block0.ResidualBlock", "block1.ResidualBlock"]
    loaded = _snapshot(model)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(n.startswith(("stem.", "blocks.0.", "blocks.1.")) for n in frozen)
    idx = np.arange(len(target))
    fit_fold(model, target, idx[:120], idx[120:], training=TrainConfig(epochs=2, lr=0.01),
             seed=0, device=CPU, options=FitOptions(lr_groups=prep.lr_groups))
    after = model.state_dict()
    for key, value in loaded.items():
        lower = key.startswith(("stem.", "blocks.0.", "blocks.1."))
        if lower and "num_batches_tracked" not in key:
            # weights and BatchNorm running statistics of the frozen part: untouched
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["blocks.2.conv1.0.weight"], loaded["blocks.2.conv1.0.weight"])
    assert not torch.equal(after["head.1.weight"], loaded["head.1.weight"])


def test_frozen_parameters_get_no_optimizer_state(source: Path, target: Dataset) -> None:
    prep = _prepare(source, target, mode="fine_tune", trainable_blocks=1, body_lr_factor=0.1)
    model = prep.model
    step = TrainStep(model, TrainConfig(lr=0.01), CPU, 4, lr_groups=prep.lr_groups)
    model.train()
    step(Standardizer.fit(target.x)(target.x[:32]), target.y[:32])
    with_state = {id(p) for p in step.opt.state}
    frozen = [p for p in model.parameters() if not p.requires_grad]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert frozen and not any(id(p) in with_state for p in frozen)
    assert all(id(p) in with_state for p in trainable)
    # the head at the full rate, the pre-trained trainable block at body_lr_factor of it
    lrs = [g["initial_lr"] for g in step.opt.param_groups]  # before the cosine schedule
    assert lrs == pytest.approx([0.01, 0.001])
    head = {id(p) for p in model.head.parameters()}
    assert {id(p) for p in step.opt.param_groups[0]["params"]} == head


def test_feature_extraction_trains_only_the_head(source: Path, target: Dataset) -> None:
    prep = _prepare(source, target, mode="feature_extraction")
    model = prep.model
    body_before = {k: v for k, v in _snapshot(model).items() if not k.startswith("head.")}
    head_before = _snapshot(model.head)
    assert all(not p.requires_grad for n, p in model.named_parameters()
               if not n.startswith("head."))
    idx = np.arange(len(target))
    cand = transfer_candidate(TransferConfig(str(source), "feature_extraction"), ARCH)
    fm = cand.fold(cand.prepare(target), idx[:120], 0, CPU)
    model = fm.whole
    body_before = {k: v for k, v in _snapshot(model).items() if not k.startswith("head.")}
    head_before = _snapshot(model.head)
    result = fit_fold(fm.model, fm.data, idx[:120], idx[120:],
                      # the rate and schedule this head's threshold was set with
                      # (cosine was the default then; wsd holds 0.03 longer)
                      training=TrainConfig(epochs=20, lr=0.03, batch_size=32,
                                           schedule="cosine"),
                      seed=0, device=CPU, options=fm.options)
    result.row.update(fm.row)
    after = model.state_dict()
    for key, value in body_before.items():  # weights and BatchNorm statistics alike
        assert torch.equal(after[key], value), key
    assert not torch.equal(model.head.state_dict()["1.weight"], head_before["1.weight"])
    assert 0 < result.row["feature_seconds"]
    assert result.row["val_accuracy"] > 0.5  # chance: 0.2


def test_cross_validate_transfer_modes(source: Path, target: Dataset) -> None:
    fast = TrainConfig(epochs=15, lr=0.03, batch_size=32)
    got = {}
    for mode, blocks in (("scratch", None), ("feature_extraction", None), ("fine_tune", 1)):
        res = cross_validate(transfer_candidate(TransferConfig(str(source), mode, blocks,
                                                                   0.3), None), target, folds=3,
                                      training=fast)
        got[mode] = res
        assert res.settings["transfer"]["mode"] == mode
        assert set(res.folds["mode"]) == {mode}
    assert got["scratch"].settings["transfer"]["frozen"] == []
    assert len(got["feature_extraction"].settings["transfer"]["frozen"]) == 4
    # the head alone has fewer trainable parameters than the network
    assert got["feature_extraction"].folds["params"].iloc[0] < \
        got["scratch"].folds["params"].iloc[0]
    assert got["feature_extraction"].mean() > 0.5
    # feature extraction computes the body once per fold: far cheaper than a fine-tune
    assert got["feature_extraction"].folds["seconds"].mean() < \
        got["fine_tune"].folds["seconds"].mean()


def test_learning_curve_subsets_are_stratified_and_seeded(target: Dataset) -> None:
    y = target.y_numpy
    idx = np.arange(len(target))
    quarter = subsample(idx, y, 0.25, seed=3)
    assert len(quarter) == 5 * 8  # 30 per class -> round(7.5) = 8
    assert np.bincount(y[quarter]).tolist() == [8] * 5
    assert np.array_equal(quarter, subsample(idx, y, 0.25, seed=3))
    assert set(quarter) <= set(idx)
    half = subsampled(CVConfig(folds=3).resolve(target), y, 0.5, seed=0)
    res = cross_validate(transfer_candidate(TransferConfig(None, "scratch"), ARCH), target,
                         cv=half, training=TrainConfig(epochs=1))
    assert res.folds["n_train"].tolist() == [50, 50, 50]  # half of 100 per fold
    assert res.folds["n_val"].tolist() == [50, 50, 50]  # validation parts stay whole


def test_wrong_checkpoints_are_clear_errors(source: Path, target: Dataset,
                                            tmp_path: Path) -> None:
    other = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 2, "width": 8}]})
    with pytest.raises(NasdepthError, match="lacks the key|has the key|has shape"):
        cross_validate(transfer_candidate(TransferConfig(str(source), "fine_tune"), other), target,
                                folds=2, training=TrainConfig(epochs=1))
    with pytest.raises(NasdepthError, match="does not exist"):
        cross_validate(transfer_candidate(TransferConfig(str(tmp_path / "no.pt"),
                                                             "fine_tune"), None), target, folds=2)
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(NasdepthError, match="is not a checkpoint"):
        cross_validate(transfer_candidate(TransferConfig(str(bad), "fine_tune")), target,
                       folds=2)
    with pytest.raises(ConfigError, match="at most 3"):
        cross_validate(transfer_candidate(TransferConfig(str(source), "fine_tune", 7)), target,
                       folds=2, training=TrainConfig(epochs=1))


def test_input_shapes_adapt_only_when_told(digits: Dataset, tmp_path: Path) -> None:
    rgb = classes(digits, range(0, 5), per_class=20)
    rgb.x = rgb.x.repeat(1, 3, 1, 1)  # a 3-channel source task
    src = read_source(pretrain(rgb, tmp_path / "rgb.pt", epochs=1))
    gray = classes(digits, range(5, 10), per_class=20)
    with pytest.raises(ConfigError, match="adapt.channels.*1 channels.*takes 3"):
        adapt_data(gray, src, AdaptConfig())
    repeated, notes = adapt_data(gray, src, AdaptConfig(channels="repeat"))
    assert repeated.input_shape == (3, 8, 8) and "repeated 3x" in notes[0]
    assert torch.equal(repeated.x[:, 0], repeated.x[:, 2])
    two = derive_tasks(gray, {"digit": "label", "parity": "parity"}, 0, "test")
    adapted, _ = adapt_data(two, src, AdaptConfig(channels="repeat"))  # every task kept
    assert adapted.task_names == ["digit", "parity"] and adapted.input_shape == (3, 8, 8)
    same, notes = adapt_data(gray, src, AdaptConfig(channels="new_stem"))
    assert same.input_shape == (1, 8, 8) and "new stem" in notes[0]
    t = TransferConfig(src.path, "fine_tune", 1, adapt=AdaptConfig(channels="new_stem"))
    prep = prepare_model(ARCH, same.input_shape, 5, t, src)
    conv = prep.model.stem[0][0]
    assert conv.in_channels == 1 and conv.weight.requires_grad  # fresh and trained
    assert prep.fresh == ["stem.0.0"] and "stem" in prep.frozen  # the rest of the stem: frozen
    assert prep.lr_groups is not None and any(p is conv.weight for p in prep.lr_groups[0][0])
    fe = TransferConfig(src.path, "feature_extraction", adapt=AdaptConfig(channels="new_stem"))
    with pytest.raises(ConfigError, match="new stem convolution would never train"):
        cross_validate(transfer_candidate(fe, None), gray, folds=2, training=TrainConfig(epochs=1))
    # smaller images: refused, then resized as told
    small = Dataset(torch.nn.functional.avg_pool2d(repeated.x, 2), repeated.y, "small", 5)
    with pytest.raises(ConfigError, match="adapt.size.*\\[4, 4\\].*\\[8, 8\\]"):
        adapt_data(small, src, AdaptConfig(channels="repeat"))
    resized, notes = adapt_data(small, src, AdaptConfig(size="resize"))
    assert resized.input_shape == (3, 8, 8) and "resized [4, 4] -> [8, 8]" in notes[0]


def test_feature_extraction_matches_fine_tune_of_no_block(source: Path, target: Dataset) -> None:
    """Cached features train the head exactly as a fine-tune of 0 blocks that runs the frozen
    body every step: the same scores, for a fraction of the time."""
    # equal in fp32; bf16 (``auto`` on an AMX CPU) rounds the two paths differently
    fast = TrainConfig(epochs=10, lr=0.03, batch_size=32, precision="fp32")
    fe = cross_validate(transfer_candidate(TransferConfig(str(source), "feature_extraction")),
                        target, folds=3, training=fast)
    ft0 = cross_validate(transfer_candidate(TransferConfig(str(source), "fine_tune", 0)),
                         target, folds=3, training=fast)
    assert fe.settings["transfer"]["frozen"] == ft0.settings["transfer"]["frozen"]
    assert np.allclose(fe.folds["val_log_loss"], ft0.folds["val_log_loss"], atol=1e-4)
    assert fe.folds["seconds"].sum() < ft0.folds["seconds"].sum()


def test_torchvision_checkpoint_transfers_into_its_preset(tmp_path: Path) -> None:
    """A torchvision resnet18 state_dict (random weights) as the source of feature extraction
    on gray 64x64 images: refused until the channels are adapted, then only the head trains."""
    import torchvision

    from nasdepth.arch import preset

    path = tmp_path / "r18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18().state_dict(), path)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(24, 1, 64, 64, generator=gen)
    gray = Dataset(x, torch.arange(24) % 2, "gray", 2, ["a", "b"])
    arch = preset("resnet18", (3, 64, 64), 2)
    t = TransferConfig(str(path), "feature_extraction")
    with pytest.raises(ConfigError, match="adapt.channels.*1 channels.*takes 3"):
        cross_validate(transfer_candidate(t, arch), gray, folds=2, training=TrainConfig(epochs=1))
    t = TransferConfig(str(path), "feature_extraction", adapt=AdaptConfig(channels="repeat"))
    res = cross_validate(transfer_candidate(t, arch), gray, folds=2,
                                  training=TrainConfig(epochs=1, batch_size=12))
    assert res.settings["transfer"]["adapted"] == ["channels repeated 3x: 1 -> 3"]
    assert len(res.settings["transfer"]["frozen"]) == 1 + 8  # the stem and 8 basic blocks
    assert res.folds["params"].iloc[0] == 512 * 2 + 2  # the fresh classifier only


def test_gradual_unfreezing_unfreezes_one_block_per_period(source: Path,
                                                           target: Dataset) -> None:
    """trainable_blocks 1, unfreeze_every 2 over 4 epochs: block 2 trains from the start,
    block 1 from epoch 2, block 0 and the stem never; a block gets optimizer state only once
    it trains."""
    t = TransferConfig(str(source), "fine_tune", 1, 0.3, unfreeze_every=2)
    torch.manual_seed(1)
    prep = prepare_model(ARCH, target.input_shape, 5, t, read_source(source))
    assert [n for n, _ in prep.later] == ["block1.ResidualBlock", "block0.ResidualBlock"]
    loaded = _snapshot(prep.model)
    on_epoch, done = unfreezer(prep.later, 2)
    idx = np.arange(len(target))
    fit_fold(prep.model, target, idx[:120], idx[120:], training=TrainConfig(epochs=4, lr=0.01),
             seed=0, device=CPU, options=FitOptions(lr_groups=prep.lr_groups,
                                                    on_epoch=on_epoch))
    assert done == [{"epoch": 2, "block": "block1.ResidualBlock"}]
    after = prep.model.state_dict()
    for key in ("stem.0.0.weight", "blocks.0.conv1.0.weight", "blocks.0.conv1.1.running_mean"):
        assert torch.equal(after[key], loaded[key]), key  # never trained
    assert not torch.equal(after["blocks.1.conv1.0.weight"], loaded["blocks.1.conv1.0.weight"])

    # optimizer state: none for a listed block while it is frozen, from its first step on
    torch.manual_seed(1)
    prep = prepare_model(ARCH, target.input_shape, 5, t, read_source(source))
    on_epoch, _ = unfreezer(prep.later, 2)
    step = TrainStep(prep.model, TrainConfig(lr=0.01), CPU, 4, lr_groups=prep.lr_groups)
    xb, yb = Standardizer.fit(target.x)(target.x[:32]), target.y[:32]
    block1 = {id(p) for p in prep.model.blocks[1].parameters()}
    prep.model.train()
    step(xb, yb)
    assert not block1 & {id(p) for p in step.opt.state}
    on_epoch(2)
    step(xb, yb)
    assert block1 <= {id(p) for p in step.opt.state}
    with pytest.raises(ConfigError, match="unfreeze_every"):
        TransferConfig(str(source), "fine_tune", None, unfreeze_every=2).validate()
