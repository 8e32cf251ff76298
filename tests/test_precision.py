"""``precision``: ``auto`` trains CNNs in bf16 autocast on a CPU where that is faster (AMX, or
measured once) and everything else in fp32; an explicit ``bf16`` is honoured on a CPU; the
resolved precision is recorded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nasdepth.train.loop as loop_module
from nasdepth import ArchConfig, StageConfig, TrainConfig, build_model, cross_validate, load_data
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import autocast, resolve_precision

CNN = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=8),))
MLP = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=16),))
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def digits():
    return load_data("sklearn:digits")


@pytest.mark.parametrize("amx", [True, False])
def test_auto_is_bf16_for_convolutions_where_the_cpu_runs_them_faster(monkeypatch, amx):
    monkeypatch.setattr(loop_module, "cpu_bf16_fast", lambda: amx)
    cnn, mlp = build_model(CNN, (1, 8, 8), 10), build_model(MLP, (64,), 10)
    assert resolve_precision("auto", CPU, cnn) == ("bf16" if amx else "fp32")
    assert resolve_precision("auto", CPU, mlp) == "fp32"  # linear layers gain nothing
    assert resolve_precision("auto", CPU, build_model(CNN, (1, 40), 10)) == "fp32"  # 1-D
    # explicit settings win; fp16 autocast is a CUDA setting
    assert resolve_precision("bf16", CPU, mlp) == "bf16"
    assert resolve_precision("fp32", CPU, cnn) == "fp32"
    assert resolve_precision("fp16", CPU, cnn) == "fp32"


def test_bf16_autocast_runs_on_the_cpu():
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.randn(2, 1, 8, 8)
    with autocast(CPU, "bf16"):
        assert conv(x).dtype == torch.bfloat16
    with autocast(CPU, "fp32"):
        assert conv(x).dtype == torch.float32


class _Dtypes(TrainHook):
    """Records the dtype of the first convolution's output in every training step."""

    def __init__(self) -> None:
        self.seen: set[torch.dtype] = set()

    def on_fit_start(self, model, fold, x, y) -> None:
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        conv.register_forward_hook(lambda m, i, o: self.seen.add(o.dtype))


def test_cross_validate_trains_in_the_resolved_precision(monkeypatch, digits):
    monkeypatch.setattr(loop_module, "cpu_bf16_fast", lambda: True)
    training = TrainConfig(epochs=2, batch_size=32)  # precision: auto (the default)
    assert training.precision == "auto"
    hook = _Dtypes()
    res = cross_validate(CNN, digits, folds=3, training=training, parallel=False, hooks=[hook])
    assert res.settings["precision"] == "bf16"
    assert hook.seen == {torch.bfloat16}
    fp32 = cross_validate(CNN, digits, folds=3, training=TrainConfig(epochs=2, batch_size=32,
                                                                     precision="fp32"),
                          parallel=False)
    assert fp32.settings["precision"] == "fp32"
    # bf16 rounds differently (so it did run) and learns as well: accuracy within 3 points
    assert not np.allclose(res.folds["val_log_loss"], fp32.folds["val_log_loss"])
    assert abs(res.mean() - fp32.mean()) < 0.03
    assert res.mean() > 0.3  # chance is 0.1
    # the MLP stays in fp32 under auto
    mlp = cross_validate(MLP, load_data("sklearn:wine"), folds=3,
                         training=TrainConfig(epochs=1, batch_size=32))
    assert mlp.settings["precision"] == "fp32"


WIDE_MLP = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=128),))


@pytest.mark.parametrize("fast", [True, False])
def test_auto_is_bf16_for_stacked_mlp_folds_where_their_width_runs_faster(monkeypatch, fast):
    asked: list[int] = []
    monkeypatch.setattr(loop_module, "stacked_bf16_fast", lambda w: asked.append(w) or fast)
    monkeypatch.setattr(loop_module, "cpu_bf16_fast", lambda: True)
    mlp = build_model(WIDE_MLP, (64,), 10)
    assert resolve_precision("auto", CPU, mlp, stacked=True) == ("bf16" if fast else "fp32")
    assert asked == [128]  # the median linear width (stem, blocks and head)
    # one fold at a time the MLP stays in fp32 (bf16 measured slower there)
    assert resolve_precision("auto", CPU, mlp) == "fp32"
    assert resolve_precision("fp32", CPU, mlp, stacked=True) == "fp32"
    # a CNN keeps the convolutions' answer
    assert resolve_precision("auto", CPU, build_model(CNN, (1, 8, 8), 10), stacked=True) == "bf16"


def test_stacked_mlp_folds_train_in_bf16_where_measured_faster(monkeypatch):
    import nasdepth.train.cpu_bf16 as mod

    wine = load_data("sklearn:wine")
    monkeypatch.setenv(mod.STACKED_ENV, "1")
    training = TrainConfig(epochs=4, batch_size=32, lr=3e-3)
    bf16 = cross_validate(WIDE_MLP, wine, folds=3, training=training, parallel=True)
    assert bf16.settings["parallel"] and bf16.settings["precision"] == "bf16"
    fp32 = cross_validate(WIDE_MLP, wine, folds=3, parallel=True,
                          training=TrainConfig(epochs=4, batch_size=32, lr=3e-3,
                                               precision="fp32"))
    # it ran in bf16 (other rounding) and learns as well: within 5 points on 3 classes
    assert not np.allclose(bf16.folds["val_log_loss"], fp32.folds["val_log_loss"])
    assert abs(bf16.mean() - fp32.mean()) < 0.05 and bf16.mean() > 0.8
    # folds trained one by one stay in fp32 under the same answer
    seq = cross_validate(WIDE_MLP, wine, folds=3, training=training, parallel=False)
    assert seq.settings["precision"] == "fp32"
    monkeypatch.setenv(mod.STACKED_ENV, "0")
    off = cross_validate(WIDE_MLP, wine, folds=3, training=training, parallel=True)
    assert off.settings["precision"] == "fp32"
    assert np.allclose(off.folds["val_log_loss"], fp32.folds["val_log_loss"])


class _EndOfFit(TrainHook):
    def __init__(self) -> None:
        self.autocast: list[bool] = []

    def on_fit_end(self, model, fold):
        self.autocast.append(torch.is_autocast_enabled("cpu"))


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_end_of_fit_hooks_run_in_the_folds_precision(digits, precision):
    hook = _EndOfFit()
    cross_validate(CNN, digits, folds=2, hooks=[hook],
                   training=TrainConfig(epochs=1, batch_size=64, precision=precision))
    assert hook.autocast == [precision == "bf16"] * 2


def test_linear_probe_fits_stay_fp32_under_autocast():
    from nasdepth.probes.linear import fit_linear_probes

    gen = torch.Generator().manual_seed(0)
    feats = [torch.randn(120, 6, generator=gen), torch.randn(120, 4, generator=gen)]
    y = torch.randint(0, 3, (120,), generator=gen)
    plain = fit_linear_probes(feats, y[:80], y[80:], 80, 3)
    with torch.autocast("cpu", torch.bfloat16):
        assert fit_linear_probes(feats, y[:80], y[80:], 80, 3) == plain


# -- where the CPU's features do not decide: one measurement, cached ---------------------

@pytest.fixture()
def fresh_cpu_bf16(monkeypatch, tmp_path):
    """A CPU with ``avx512_bf16`` and no AMX, an empty cache folder, nothing known yet."""
    import nasdepth.train.cpu_bf16 as mod

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(mod.ENV, raising=False)
    monkeypatch.setattr(mod, "_known", {})
    monkeypatch.setattr(mod, "_flag", lambda name: name == "_is_avx512_bf16_supported")
    return mod


@pytest.mark.parametrize("speedup", [1.5, 0.1])
def test_a_cpu_without_amx_measures_once_and_caches_the_answer(fresh_cpu_bf16, monkeypatch,
                                                               speedup):
    mod = fresh_cpu_bf16
    calls = []
    monkeypatch.setattr(mod, "measure_speedup", lambda: calls.append(1) or speedup)
    assert mod.cpu_bf16_fast() is (speedup >= mod.MIN_SPEEDUP)
    assert mod.cpu_bf16_fast() is (speedup >= mod.MIN_SPEEDUP) and len(calls) == 1
    # a later process reads the file instead of measuring again
    import json
    table = json.loads(mod.cache_file().read_text())
    (entry,) = table.values()
    assert entry == {"speedup": speedup, "faster": speedup >= mod.MIN_SPEEDUP}
    monkeypatch.setattr(mod, "_known", {})
    monkeypatch.setattr(mod, "measure_speedup", lambda: pytest.fail("measured twice"))
    assert mod.cpu_bf16_fast() is (speedup >= mod.MIN_SPEEDUP)


def test_features_decide_without_measuring(fresh_cpu_bf16, monkeypatch):
    mod = fresh_cpu_bf16
    monkeypatch.setattr(mod, "measure_speedup", lambda: pytest.fail("measured"))
    monkeypatch.setattr(mod, "_flag", lambda name: name == "_is_amx_tile_supported")
    assert mod.cpu_bf16_fast() is True
    monkeypatch.setattr(mod, "_known", {})
    monkeypatch.setattr(mod, "_flag", lambda name: False)  # no native bf16 dot product
    assert mod.cpu_bf16_fast() is False
    assert not mod.cache_file().exists()


def test_the_environment_variable_decides_and_a_bad_value_is_named(fresh_cpu_bf16,
                                                                  monkeypatch):
    from nasdepth.errors import ConfigError

    mod = fresh_cpu_bf16
    monkeypatch.setattr(mod, "measure_speedup", lambda: pytest.fail("measured"))
    monkeypatch.setenv(mod.ENV, "1")
    assert mod.cpu_bf16_fast() is True
    monkeypatch.setenv(mod.ENV, "0")
    assert mod.cpu_bf16_fast() is False
    monkeypatch.setenv(mod.ENV, "yes")
    with pytest.raises(ConfigError, match="NASDEPTH_CPU_BF16.*yes"):
        mod.cpu_bf16_fast()


def test_the_reference_measurement_is_a_real_ratio():
    from nasdepth.train.cpu_bf16 import measure_speedup

    speedup = measure_speedup(channels=8, depth=2, steps=1, rounds=1)
    assert 0.001 < speedup < 1000 and np.isfinite(speedup)


def test_stacked_widths_are_measured_once_each_and_cached(fresh_cpu_bf16, monkeypatch):
    mod = fresh_cpu_bf16
    monkeypatch.delenv(mod.STACKED_ENV, raising=False)
    measured: list[int] = []
    speedups = {64: 0.85, 128: 1.25}
    def measure(w):  # draws from the global stream, as building the reference models does
        measured.append(w)
        torch.randn(3)
        return speedups[w]

    monkeypatch.setattr(mod, "measure_stacked_speedup", measure)
    before = torch.random.get_rng_state()
    assert mod.stacked_bf16_fast(128) is True
    # measuring mid-CV (after the folds' models are built) leaves the global stream alone
    assert torch.equal(torch.random.get_rng_state(), before)
    assert mod.stacked_bf16_fast(100) is True  # the same power of two: not measured again
    assert mod.stacked_bf16_fast(64) is False
    assert measured == [128, 64]
    monkeypatch.setattr(mod, "_known", {})  # a later process reads the file
    monkeypatch.setattr(mod, "measure_stacked_speedup", lambda w: pytest.fail("measured"))
    assert mod.stacked_bf16_fast(128) is True and mod.stacked_bf16_fast(64) is False
    monkeypatch.setattr(mod, "_known", {})  # no native bf16 dot product: never measured
    monkeypatch.setattr(mod, "_flag", lambda name: False)
    assert mod.stacked_bf16_fast(256) is False
    assert [mod.stacked_bucket(w) for w in (3, 48, 100, 5000)] == [16, 64, 128, 1024]


def test_the_stacked_environment_variable_decides_and_a_bad_value_is_named(fresh_cpu_bf16,
                                                                          monkeypatch):
    from nasdepth.errors import ConfigError

    mod = fresh_cpu_bf16
    monkeypatch.setattr(mod, "measure_stacked_speedup", lambda w: pytest.fail("measured"))
    monkeypatch.setenv(mod.STACKED_ENV, "1")
    assert mod.stacked_bf16_fast(64) is True
    monkeypatch.setenv(mod.STACKED_ENV, "on")
    with pytest.raises(ConfigError, match="NASDEPTH_CPU_BF16_STACKED.*on"):
        mod.stacked_bf16_fast(64)


def test_the_stacked_reference_measurement_is_a_real_ratio():
    from nasdepth.train.cpu_bf16 import measure_stacked_speedup

    speedup = measure_stacked_speedup(32, depth=2, steps=1, rounds=1)
    assert 0.001 < speedup < 1000 and np.isfinite(speedup)
