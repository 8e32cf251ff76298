"""Fold-parallel CNNs as grouped convolutions (``nasdepth.train.grouped``)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch

import nasdepth.train.parallel as parallel_module
from nasdepth import ArchConfig, StageConfig, TrainConfig, build_model, cross_validate, load_data
from nasdepth.train.cv import choose_parallel
from nasdepth.train.grouped import (
    GroupedFolds,
    can_group,
    conv_macs,
    group_folds,
    grouping_pays,
    groups_cleanly,
)

SHAPE = (1, 8, 8)


def _models(arch: ArchConfig, k: int = 3, shape: tuple[int, ...] = SHAPE, classes: int = 10,
            seed: int = 0) -> list[torch.nn.Module]:
    out = []
    for f in range(k):
        torch.manual_seed(seed + f)  # each fold's own initialization
        out.append(build_model(arch, shape, classes))
    return out


def _grouped_outputs(models: list[torch.nn.Module], shape: tuple[int, ...], rows: int
                     ) -> tuple[GroupedFolds, torch.Tensor]:
    """The folds grouped, and their logits on a random batch: each fold's equal to its own
    model's (eval mode)."""
    x = torch.randn(len(models), rows, *shape)
    want = [m.eval()(x[f]).detach() for f, m in enumerate(models)]
    ens = group_folds(models, torch.device("cpu"), shape)
    assert isinstance(ens, GroupedFolds)
    with torch.no_grad():
        got = ens(x, train=False)[0]
    for f in range(len(models)):
        torch.testing.assert_close(got[f], want[f], rtol=1e-4, atol=1e-5)
    return ens, got


def _arch(block: str, **stage: Any) -> ArchConfig:
    head = stage.pop("head", {})
    stage = {"depth": 2, "width": 8, **stage}
    return ArchConfig(stages=(StageConfig(block=block, **stage),), **head)


def _ensembles_used(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The class names of the fold ensembles the engine builds from now on."""
    used: list[str] = []
    real = parallel_module.make_ensemble

    def spy(*args: Any, **kwargs: Any) -> Any:
        ens = real(*args, **kwargs)
        used.append(type(ens).__name__)
        return ens

    monkeypatch.setattr(parallel_module, "make_ensemble", spy)
    return used


@pytest.mark.parametrize("arch", [
    _arch("plain"), _arch("residual"), _arch("bottleneck"), _arch("grouped"), _arch("dwsep"),
    _arch("mbconv"), _arch("residual", stride=2, norm="group", se_ratio=0.25),
    _arch("plain", norm="layer", head={"head_hidden": (12,), "head_pool_size": 2}),
], ids=["plain", "residual", "bottleneck", "grouped", "dwsep", "mbconv", "strided-se-groupnorm",
        "layernorm-hidden-head"])
def test_grouped_folds_give_each_fold_its_own_outputs(arch: ArchConfig) -> None:
    models = _models(arch)
    ens, got = _grouped_outputs(models, SHAPE, 5)
    assert got.shape == (3, 5, 10)
    # the fold models hold views of the stack: a step on the stack moves each fold's weights
    name, stacked = next(iter(ens.params.items()))
    with torch.no_grad():
        stacked[1].add_(1.0)
    own = dict(models[1].named_parameters())[name]
    assert own.data_ptr() == stacked[1].data_ptr() or torch.equal(own, stacked[1])


@pytest.mark.parametrize("block", ["dense", "inception"])
def test_layers_that_move_channels_are_not_grouped(block: str) -> None:
    """Concatenating channels would mix the folds: refused, and the fold models keep tensors
    of their own with their outputs unchanged."""
    width = 16 if block == "inception" else 8
    arch = ArchConfig(stages=(StageConfig(block=block, depth=2, width=width),))
    models = _models(arch, 2)
    x = torch.randn(4, *SHAPE)
    before = [m.eval()(x).detach() for m in models]
    assert group_folds(models, torch.device("cpu"), SHAPE) is None
    assert not groups_cleanly(models[0], SHAPE)
    for m, b in zip(models, before, strict=True):
        torch.testing.assert_close(m.eval()(x), b)
    p0, p1 = (next(m.parameters()) for m in models)
    assert p0.data_ptr() != p1.data_ptr() and p0.shape == p1.shape


def test_which_cnns_auto_groups() -> None:
    """Small convolutions (16 channels on 8x8 maps: 9.4 million multiply-adds a call at batch
    64) are grouped; wide ones on larger maps, flat inputs and auxiliary heads are not."""
    small = build_model(_arch("residual", width=16), SHAPE, 10)
    assert conv_macs(small, SHAPE, 64)[-1] == 64 * 64 * 16 * 16 * 9
    assert grouping_pays(small, SHAPE, 64) and groups_cleanly(small, SHAPE)
    assert not grouping_pays(small, (1, 28, 28), 64)  # 115 million a call
    wide = build_model(_arch("plain", width=64), SHAPE, 10)
    assert not grouping_pays(wide, SHAPE, 64)
    assert not grouping_pays(build_model(_arch("plain", width=32), SHAPE, 10), SHAPE, 64)
    aux = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=8),) * 2, aux_heads=(0,))
    assert not can_group(build_model(aux, SHAPE, 10), SHAPE)
    # stochastic depth: a dropped sample's row holds every fold, so grouped folds would drop it
    # together
    assert not can_group(build_model(_arch("residual", drop_path=0.1), SHAPE, 10), SHAPE)
    assert can_group(build_model(_arch("residual", drop_path=0.0), SHAPE, 10), SHAPE)
    flat = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=8),))
    assert not can_group(build_model(flat, (20,), 3), (20,))


def test_auto_trains_small_cnn_folds_grouped_as_in_sequence(monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    data = load_data("sklearn:digits").subset(np.arange(450))
    arch = _arch("residual", width=16)
    training = TrainConfig(epochs=2, batch_size=32, lr=3e-3, precision="fp32")
    used = _ensembles_used(monkeypatch)
    auto = cross_validate(arch, data, folds=3, seed=1, training=training)
    seq = cross_validate(arch, data, folds=3, seed=1, training=training, parallel=False)
    assert auto.settings["parallel"] is True and used == ["GroupedFolds"]
    assert seq.settings["parallel"] is False
    np.testing.assert_allclose(auto.history["train_loss"], seq.history["train_loss"],
                               rtol=2e-3)
    np.testing.assert_allclose(auto.folds["val_log_loss"], seq.folds["val_log_loss"],
                               rtol=2e-3)
    # a wide CNN stays sequential under auto
    wide = TrainConfig(epochs=1, batch_size=64, precision="fp32")
    splits = [(np.arange(300), np.arange(300, 400))] * 2
    model = build_model(_arch("plain", width=64), SHAPE, 10)
    assert not choose_parallel("auto", data, torch.device("cpu"), (), splits, wide,
                               model=model)
    assert choose_parallel("auto", data, torch.device("cpu"), (), splits, wide,
                           model=build_model(arch, SHAPE, 10))


def test_grouped_state_round_trip() -> None:
    models = _models(_arch("residual"), 2)
    ens = GroupedFolds([copy.deepcopy(m) for m in models], torch.device("cpu"))
    state = ens.state(1)
    assert set(state) == set(dict(models[1].state_dict()))
    for name, t in models[1].state_dict().items():
        torch.testing.assert_close(state[name], t)
    ens.load(0, state)
    torch.testing.assert_close(ens.state(0)["head.1.weight"], state["head.1.weight"])


def test_probes_ride_along_grouped_cnn_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouped folds give each fold's probe the trace of folds trained one by one (fp32, early
    stopping on): the grouped convolutions sum in another order, so traces agree to float
    drift, which grows with the rate (train losses within 2e-4 at 3e-3, 3e-2 at 2e-2)."""
    from nasdepth.probes import ProbeHook, Trace

    data = load_data("sklearn:digits").subset(np.arange(360))
    arch = _arch("residual", width=8)
    training = TrainConfig(epochs=8, batch_size=32, patience=2, lr=3e-3, precision="fp32")
    used = _ensembles_used(monkeypatch)
    traces, epochs = {}, {}
    for parallel in (True, False):
        result = cross_validate(arch, data, folds=3, seed=1, training=training,
                                hooks=[ProbeHook()], parallel=parallel)
        traces[parallel] = [Trace.from_dict(t) for t in result.traces]
        epochs[parallel] = result.folds["epochs"].tolist()
    assert used == ["GroupedFolds"]
    assert epochs[True] == epochs[False]
    for a, b in zip(traces[True], traces[False], strict=True):
        assert len(a.epochs) == len(b.epochs)
        for key in ("grad_rms", "update_ratio", "act_rms", "dead_frac"):
            got, want = (np.array(t.series(key), dtype=float) for t in (a, b))
            # the first epochs before drift builds up, then all of them loosely
            np.testing.assert_allclose(got[:2], want[:2], rtol=2e-3, atol=1e-6, err_msg=key)
            np.testing.assert_allclose(got, want, rtol=0.1, atol=1e-4, err_msg=key)


@pytest.mark.parametrize("block", ["plain", "residual", "dwsep"])
def test_one_dimensional_cnn_folds_group_too(block: str) -> None:
    """1-D maps (``(C, L)``: MNIST-1D's shape): grouped ``conv1d`` and batch norm give each
    fold its own outputs, and auto groups small 1-D convolutions."""
    shape = (1, 40)
    arch = ArchConfig(stages=(StageConfig(block=block, depth=2, width=16),))
    models = _models(arch, shape=shape)
    assert grouping_pays(models[0], shape, 64) and groups_cleanly(models[0], shape)
    _grouped_outputs(models, shape, 4)


def test_colour_non_square_inputs_group_fold_by_fold() -> None:
    """Three input channels per fold (fold f's are channels 3f..3f+2 of the grouped input),
    non-square maps, a strided stage and a pooled-and-flattened head."""
    shape = (3, 10, 12)
    arch = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=8),
                              StageConfig(block="plain", depth=1, width=12, stride=2)),
                      head_pool_size=2)
    _, got = _grouped_outputs(_models(arch, 4, shape, 5, seed=10), shape, 6)
    assert got.shape == (4, 6, 5)


# -- mid-sized convolutions: measured once per machine (nasdepth.train.cpu_grouped) ---------

@pytest.fixture()
def fresh_cpu_grouped(monkeypatch, tmp_path):
    """An empty cache folder, nothing known yet, no answer set by the environment."""
    import nasdepth.train.cpu_grouped as mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(mod.ENV, raising=False)
    monkeypatch.setattr(mod, "_known", {})
    return mod


def test_small_and_large_convolutions_are_decided_without_measuring(fresh_cpu_grouped,
                                                                    monkeypatch):
    def never(*a: Any) -> float:
        pytest.fail("measured")

    small = build_model(_arch("residual", width=16), SHAPE, 10)
    assert grouping_pays(small, SHAPE, 64, 5, "bf16", never)  # 9.4 million a call
    wide = build_model(_arch("plain", width=64), (1, 32, 32), 10)
    assert not grouping_pays(wide, (1, 32, 32), 64, 5, "bf16", never)  # 604 million a call
    from nasdepth.train.cpu_bf16 import cache_file
    assert not cache_file().exists()


@pytest.mark.parametrize("speedup", [1.25, 0.9])
def test_a_mid_sized_cnn_is_measured_once_per_shape_and_precision(fresh_cpu_grouped,
                                                                   monkeypatch, speedup):
    import json

    from nasdepth.train.cpu_bf16 import MIN_SPEEDUP, cache_file
    mod = fresh_cpu_grouped
    calls: list[tuple[Any, ...]] = []

    def measure(*a: Any) -> float:
        calls.append(a)
        return speedup

    model = build_model(_arch("plain", width=32), SHAPE, 10)  # 37.7 million a call
    assert not grouping_pays(model, SHAPE, 64, 5, "bf16")  # nothing to measure with
    for _ in range(2):
        assert grouping_pays(model, SHAPE, 64, 5, "bf16", measure) is (speedup >= MIN_SPEEDUP)
    assert calls == [(32, 8, 2, 64, 5, True)]  # channels, side, axes, batch, folds, bf16
    assert grouping_pays(model, SHAPE, 64, 5, "fp32", measure) is (speedup >= MIN_SPEEDUP)
    assert len(calls) == 2 and calls[1][-1] is False  # another precision: its own answer
    table = json.loads(cache_file().read_text())
    assert sorted(e["speedup"] for e in table.values()) == [speedup, speedup]
    # a later process reads the file, with or without a measurement at hand
    monkeypatch.setattr(mod, "_known", {})
    assert grouping_pays(model, SHAPE, 64, 5, "bf16") is (speedup >= MIN_SPEEDUP)
    # the environment sets the measured answer, and a bad value is named
    monkeypatch.setattr(mod, "_known", {})
    monkeypatch.setenv(mod.ENV, "1")
    assert grouping_pays(model, SHAPE, 64, 5, "bf16", measure) and len(calls) == 2
    monkeypatch.setenv(mod.ENV, "yes")
    from nasdepth.errors import ConfigError
    with pytest.raises(ConfigError, match="NASDEPTH_CPU_GROUPED"):
        grouping_pays(model, SHAPE, 64, 5, "bf16", measure)


def test_the_reference_measurement_times_the_engine_both_ways(monkeypatch):
    """A real (small) reference CV each way, through the engine's own cross_validate."""
    import nasdepth.train.cv as cv_module

    seen: list[str] = []
    original = cv_module.cross_validate

    def spy(*a: Any, training: TrainConfig, **k: Any) -> Any:
        seen.append(training.parallel)
        return original(*a, training=training, **k)

    monkeypatch.setattr(cv_module, "cross_validate", spy)
    speedup = cv_module.reference_grouped_speedup(8, 4, 2, 16, 3, False, rounds=1)
    assert np.isfinite(speedup) and speedup > 0
    assert seen == ["off", "on", "off", "on"]


def test_one_fold_is_never_grouped_nor_measured(fresh_cpu_grouped, monkeypatch):
    """A screen's or a refit's single split trains as is: nothing to share."""
    def never(*a: Any) -> float:
        pytest.fail("measured")

    model = build_model(_arch("plain", width=32), SHAPE, 10)
    assert not grouping_pays(model, SHAPE, 64, 1, "bf16", never)
    data = load_data("sklearn:digits")
    splits = [(np.arange(100), np.arange(100, 150))]
    assert not choose_parallel("auto", data, torch.device("cpu"), (), splits,
                               TrainConfig(epochs=1), model=model)


def test_a_failed_measurement_falls_back_to_one_fold_at_a_time(fresh_cpu_grouped,
                                                                monkeypatch):
    def broken(*a: Any) -> float:
        raise RuntimeError("no memory for the reference")

    model = build_model(_arch("plain", width=32), SHAPE, 10)
    assert not grouping_pays(model, SHAPE, 64, 5, "bf16", broken)
