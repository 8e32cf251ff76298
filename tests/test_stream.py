"""Data placement: streaming a fold's batches from the host through a ``DataLoader`` gives the
same scores as keeping the fold on the device; ``auto`` decides from the free memory."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
import torch

import nasdepth.train.fit as fit_module
import nasdepth.train.stream as stream_module
from nasdepth import ArchConfig, StageConfig, TrainConfig, cross_validate, load_data
from nasdepth.data import AugmentConfig, CVConfig, Standardizer, augment_batch, make_folds
from nasdepth.errors import UnknownNameError
from nasdepth.probes import ProbeHook
from nasdepth.train import (
    DEVICE_FRACTION,
    PLACEMENTS,
    DeviceOutOfMemoryError,
    fit_fold,
    fold_device_bytes,
    placement_decision,
    resolve_placement,
)
from nasdepth.train.loop import batch_plan, fold_perm
from nasdepth.train.stream import PlanSampler, fit_standardizer

# dropout in the head: a loader that drew from the global RNG would change the masks
MLP = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=16),), head_dropout=0.2)
CNN = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=8),))
GiB = 2**30


def _both(arch: ArchConfig, data: Any, training: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Sequential cross-validation with the data on the device, then streamed."""
    return {p: cross_validate(arch, data, parallel=False, **kw,
                              training=TrainConfig(data_placement=p, **training))
            for p in ("device", "stream")}


@pytest.mark.parametrize("arch,rows", [(MLP, 1797), (CNN, 600)])
def test_streamed_and_on_device_runs_give_identical_scores(arch: ArchConfig, rows: int) -> None:
    data = load_data("sklearn:digits").subset(np.arange(rows))
    runs = _both(arch, data, cv=CVConfig(folds=3, seed=1, test_size=0.2), seed=3,
                 training={"epochs": 2, "batch_size": 32, "lr": 0.01})
    dev, streamed = runs["device"], runs["stream"]
    assert "test_log_loss" in dev.folds
    # bit for bit: the same batches, statistics, chunks and RNG draws
    assert dev.folds.drop(columns="seconds").equals(streamed.folds.drop(columns="seconds"))
    assert dev.history.equals(streamed.history)
    assert dev.mean() > 0.15  # it learned something (ten classes: chance is 0.1)


def test_probe_traces_are_the_same_when_streamed() -> None:
    data = load_data("sklearn:wine")
    traces = []
    for placement in ("device", "stream"):
        hook = ProbeHook()
        res = cross_validate(MLP, data, folds=2, seed=1, hooks=[hook], parallel=False,
                             training=TrainConfig(epochs=2, batch_size=16,
                                                  data_placement=placement))
        traces.append(res.traces)
    assert len(traces[0]) == 2 and traces[0] == traces[1]


def test_auto_keeps_data_on_the_device_on_a_cpu(caplog: pytest.LogCaptureFixture) -> None:
    data = load_data("sklearn:iris")
    cpu = torch.device("cpu")
    # any size: on the CPU the data already is where training runs from
    assert placement_decision("auto", "cpu", 10**15, None)[0] == "device"
    assert placement_decision("auto", "mps", 10**15, None)[0] == "device"
    with caplog.at_level(logging.INFO, logger="nasdepth.train"):
        assert resolve_placement("auto", data, cpu, 100, 50) == "device"
    assert caplog.records[-1].getMessage() == (
        "data kept on cpu: on cpu the data is in the memory training runs from")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="nasdepth.train"):
        cross_validate(MLP, data, folds=3, training=TrainConfig(epochs=1), parallel=False)
    lines = [r.getMessage() for r in caplog.records if "data kept on cpu" in r.getMessage()]
    assert len(lines) == 1, lines  # said once per cross-validation, not once per fold
    assert TrainConfig().data_placement == "auto"


def test_cuda_placement_from_free_device_memory() -> None:
    """The CUDA rule as a pure function of (needed, free): no GPU needed."""
    assert DEVICE_FRACTION == 0.5
    assert placement_decision("auto", "cuda", 3 * GiB, 8 * GiB)[0] == "device"
    assert placement_decision("auto", "cuda", 4 * GiB, 8 * GiB)[0] == "device"  # the limit
    placement, why = placement_decision("auto", "cuda", 4 * GiB + 1, 8 * GiB)
    assert placement == "stream"
    assert why == "a fold needs 4,096 MiB, over 50% of the 8,192 MiB free on the device"
    assert placement_decision("auto", "cuda", 3 * GiB, 8 * GiB, fraction=0.25)[0] == "stream"
    assert placement_decision("auto", "cuda", 3 * GiB, None)[0] == "device"  # unknown free
    # a forced placement wins over the arithmetic, in both directions
    assert placement_decision("device", "cuda", 100 * GiB, GiB) == (
        "device", "data_placement: device was set")
    assert placement_decision("stream", "cuda", 1, 100 * GiB)[0] == "stream"
    assert placement_decision("stream", "cpu", 1, None)[0] == "stream"
    with pytest.raises(ValueError, match="auto, device, stream"):
        placement_decision("gpu", "cuda", 1, 1)


def test_fold_footprint_and_resolution_with_a_fake_free_figure(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    data = load_data("sklearn:digits")  # 64 float32 features, int64 labels
    # raw + standardized training rows, validation and test rows, and their labels
    assert fold_device_bytes(data, 1000, 300, 200) == (2 * 1000 + 300 + 200) * 256 + 1500 * 8
    need = fold_device_bytes(data, 1000, 300)
    cuda = torch.device("cuda")  # only its type is read: no GPU is touched
    monkeypatch.setattr(stream_module, "free_device_memory", lambda device: 2 * need)
    assert resolve_placement("auto", data, cuda, 1000, 300) == "device"
    monkeypatch.setattr(stream_module, "free_device_memory", lambda device: 2 * need - 2)
    with caplog.at_level(logging.INFO, logger="nasdepth.train"):
        assert resolve_placement("auto", data, cuda, 1000, 300, fold=2) == "stream"
    assert caplog.records[-1].getMessage().startswith(
        "fold 2: data streamed from the host to cuda: a fold needs 1 MiB, over 50%")


def test_plan_sampler_yields_the_on_device_batches() -> None:
    index = np.arange(100, 150)  # dataset rows of a fold's training part
    plan = batch_plan(49, 16)  # 49 used samples: batches of 16, 16, 16 (a lone 1 is dropped)
    assert plan == [(0, 16), (16, 32), (32, 48)]
    sampler = PlanSampler(index, plan, torch.Generator().manual_seed(7))
    ref = torch.Generator().manual_seed(7)
    for _ in range(3):  # one permutation per epoch, in the same sequence of draws
        perm = fold_perm(len(index), plan[-1][1], ref)
        got = list(sampler)
        assert len(got) == len(sampler) == 3
        for (a, b), rows in zip(plan, got, strict=True):
            assert rows.tolist() == (index[perm[a:b].numpy()]).tolist()


@pytest.mark.parametrize("shape", [(64,), (3, 5, 4), (2, 30)])
def test_chunked_standardizer_agrees_and_never_sees_validation(shape: tuple[int, ...]) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(500, *shape, generator=gen) * 3 + 5
    tr, va = np.arange(0, 400), np.arange(400, 500)
    cpu = torch.device("cpu")
    whole = Standardizer.fit(x[torch.as_tensor(tr)])
    one = fit_standardizer(x, tr, cpu)  # fits in one chunk: exactly Standardizer.fit
    assert torch.equal(one.mean, whole.mean) and torch.equal(one.std, whole.std)
    row = 4 * int(np.prod(shape))
    chunked = fit_standardizer(x, tr, cpu, chunk_bytes=37 * row)  # chunks of 9 rows
    assert chunked.mean.shape == whole.mean.shape and chunked.std.shape == whole.std.shape
    torch.testing.assert_close(chunked.mean, whole.mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(chunked.std, whole.std, rtol=1e-5, atol=1e-5)
    poisoned = x.clone()
    poisoned[torch.as_tensor(va)] = poisoned[torch.as_tensor(va)] * 1000 + 1e4
    again = fit_standardizer(poisoned, tr, cpu, chunk_bytes=37 * row)
    assert torch.equal(again.mean, chunked.mean) and torch.equal(again.std, chunked.std)


def test_streamed_training_never_sees_validation_statistics() -> None:
    data = load_data("sklearn:wine")
    tr, va = make_folds(data.y_numpy, 3, seed=0)[0]
    training = TrainConfig(epochs=3, batch_size=32, lr=0.01, data_placement="stream")
    cpu = torch.device("cpu")

    def run(d: Any) -> Any:
        torch.manual_seed(0)
        from nasdepth import build_model
        return fit_fold(build_model(MLP, d.input_shape, d.num_classes), d, tr, va,
                        training=training, seed=5, device=cpu)

    a = run(data)
    poisoned = data.subset(np.arange(len(data)))
    poisoned.x[torch.as_tensor(va)] = poisoned.x[torch.as_tensor(va)] * 1000 + 1e4
    b = run(poisoned)
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.row["train_log_loss"] == b.row["train_log_loss"]
    assert a.row["val_log_loss"] != b.row["val_log_loss"]  # the poison did reach validation


def test_streaming_with_augmentation_leaves_validation_untouched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_data({"source": "synthetic:classification", "n_samples": 90,
                      "image_shape": [1, 4, 4], "seed": 3})
    before = data.x.clone()
    seen: list[torch.Tensor] = []

    def spy(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
        seen.append(x.clone())
        return augment_batch(x, cfg, gen)

    monkeypatch.setattr(fit_module, "augment_batch", spy)
    aug = AugmentConfig(flip=1.0, crop_padding=1)
    ends: list[int] = []
    runs = _both(CNN, data, folds=3, seed=0, on_fold=lambda k, row: ends.append(len(seen)),
                 training={"epochs": 2, "batch_size": 16, "augment": aug})
    streamed_batches = seen[ends[2]:]  # the device run came first: 3 folds
    assert len(streamed_batches) == 3 * 2 * 4  # 60 training rows: 4 batches per epoch
    ends = [e - ends[2] for e in ends[3:]]
    rows_of = {tuple(r.tolist()): i for i, r in enumerate(before.flatten(1))}
    for k, (tr, va) in enumerate(make_folds(data.y_numpy, 3, seed=0)):
        mine = torch.cat(streamed_batches[(ends[k - 1] if k else 0):ends[k]])
        got = {rows_of[tuple(r.tolist())] for r in mine.flatten(1)}  # raw rows, unaugmented
        assert got <= set(tr.tolist()) and not got & set(va.tolist()), k
    assert torch.equal(data.x, before)  # the host rows are never changed in place
    a, b = runs["device"].folds, runs["stream"].folds
    assert a.drop(columns="seconds").equals(b.drop(columns="seconds"))


def test_auto_streams_a_fold_that_runs_out_of_memory_on_the_way_in(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    data = load_data("sklearn:iris")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise MemoryError("simulated")

    ref = cross_validate(MLP, data, folds=2, parallel=False,
                         training=TrainConfig(epochs=2, data_placement="stream"))
    monkeypatch.setattr(fit_module, "_on_device", boom)
    with caplog.at_level(logging.WARNING, logger="nasdepth.train"):
        res = cross_validate(MLP, data, folds=2, parallel=False,
                             training=TrainConfig(epochs=2, data_placement="auto"))
    assert "streaming it from the host" in caplog.text
    assert res.folds.drop(columns="seconds").equals(ref.folds.drop(columns="seconds"))
    with pytest.raises(DeviceOutOfMemoryError, match="data_placement: stream"):
        cross_validate(MLP, data, folds=2, parallel=False,
                       training=TrainConfig(epochs=2, data_placement="device"))


def test_data_placement_option_is_validated_and_yaml_able() -> None:
    assert PLACEMENTS == ("auto", "device", "stream")
    cfg = TrainConfig.from_dict({"data_placement": "stream"}, "studies/x.yaml")
    assert cfg.data_placement == "stream"
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # YAML round trip
    with pytest.raises(UnknownNameError) as err:
        TrainConfig.from_dict({"data_placement": "gpu"}, "studies/x.yaml")
    assert str(err.value) == ("The 'data_placement' value in studies/x.yaml must be one of "
                              "auto, device, stream. Got 'gpu'.")
    with pytest.raises(UnknownNameError, match="Did you mean 'stream'"):
        TrainConfig(data_placement="streem").validate("studies/x.yaml")
    with pytest.raises(UnknownNameError, match="data_placement"):
        cross_validate(MLP, load_data("sklearn:iris"), folds=2,
                       training=TrainConfig(data_placement="host"))


def test_streamed_data_never_trains_folds_in_parallel(caplog: pytest.LogCaptureFixture) -> None:
    import inspect

    from nasdepth.train.cv import choose_parallel
    if "placement" not in inspect.signature(choose_parallel).parameters:
        pytest.skip("cross_validate does not decide the placement yet (nasdepth/train/cv.py)")
    data = load_data("sklearn:iris")
    with caplog.at_level(logging.INFO, logger="nasdepth.train"):
        res = cross_validate(MLP, data, folds=3, parallel=True,
                             training=TrainConfig(epochs=1, data_placement="stream"))
    assert res.settings["parallel"] is False and res.settings["data_placement"] == "stream"
    assert "training folds sequentially: the data is streamed from the host" in caplog.text
    res = cross_validate(MLP, data, folds=3, parallel=True, training=TrainConfig(epochs=1))
    assert res.settings["parallel"] is True and res.settings["data_placement"] == "device"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_streamed_from_pinned_memory_matches_on_device_on_cuda() -> None:
    data = load_data("sklearn:digits")
    runs = _both(CNN, data, cv=CVConfig(folds=3, seed=0, test_size=0.2), seed=0,
                 training={"epochs": 2, "batch_size": 64, "device": "cuda"})
    dev, streamed = runs["device"].folds, runs["stream"].folds
    for split in ("train", "val", "test"):  # cuDNN may pick other kernels: float tolerance
        np.testing.assert_allclose(streamed[f"{split}_log_loss"], dev[f"{split}_log_loss"],
                                   rtol=1e-3)
    assert (np.abs(streamed["val_accuracy"] - dev["val_accuracy"]) * dev["n_val"] <= 2.01).all()
