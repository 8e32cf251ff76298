"""Probes: the right numbers, in forward order, without changing the training result."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import make_classification
from torch import nn

from nasdepth.arch import ArchConfig
from nasdepth.data import from_arrays
from nasdepth.diagnosis import diagnose
from nasdepth.errors import ConfigError
from nasdepth.probes import Probe, ProbeHook, Trace, probe_units
from nasdepth.probes.steps import StepStats
from nasdepth.train import NonFiniteLossError, TrainConfig, cross_validate
from nasdepth.train.hooks import TrainHook, timed
from nasdepth.train.stacked import FoldStack


@pytest.fixture(scope="module")
def data():
    x, y = make_classification(n_samples=240, n_features=12, n_informative=6, n_classes=3,
                               class_sep=1.5, random_state=0)
    return from_arrays(x.astype(np.float32), y, name="synthetic:probes")


def bn_dropout_arch() -> ArchConfig:
    # BatchNorm (running statistics) and dropout (RNG draws): what a careless probe disturbs
    return ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 16,
                                             "norm": "batch", "dropout": 0.2}]})


def test_probes_do_not_change_training_results(data) -> None:
    training = TrainConfig(epochs=2, batch_size=32)
    # on both engine paths: folds one by one, and folds together (stacked MLP layers)
    for parallel in (False, True):
        plain = cross_validate(bn_dropout_arch(), data, folds=2, seed=3, training=training,
                               parallel=parallel)
        hook = ProbeHook()
        probed = cross_validate(bn_dropout_arch(), data, folds=2, seed=3, training=training,
                                hooks=[hook], parallel=parallel)
        assert probed.settings["parallel"] is parallel
        for col in ("val_accuracy", "val_log_loss", "train_log_loss"):
            assert plain.folds[col].tolist() == probed.folds[col].tolist()
        assert plain.history["val_loss"].tolist() == probed.history["val_loss"].tolist()
        assert len(probed.traces) == 2 and len(hook.traces) == 2


def test_probes_ride_along_fold_parallel_training(data, monkeypatch) -> None:
    """Folds trained together (stacked MLP layers) give each fold the same trace as folds
    trained one by one: the probes see each fold's own gradients, updates and activations,
    read from the stacked tensors for all folds at once (the fold models never need gradient
    views), also when folds stop early at different epochs."""
    arch = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 3, "width": 16}]})
    training = TrainConfig(epochs=12, batch_size=32, patience=2, lr=0.05)
    bound: list[int] = []
    monkeypatch.setattr(FoldStack, "bind_grads", lambda self: bound.append(1))
    traces, epochs = {}, {}
    for parallel in (True, False):
        result = cross_validate(arch, data, folds=3, seed=1, training=training,
                                hooks=[ProbeHook()], parallel=parallel)
        assert result.settings["parallel"] is parallel
        traces[parallel] = [Trace.from_dict(t) for t in result.traces]
        epochs[parallel] = result.folds["epochs"].tolist()
    assert not bound
    assert [t.fold for t in traces[True]] == [0, 1, 2]
    assert epochs[True] == epochs[False] and len(set(epochs[True])) > 1  # stopped apart
    for a, b, n in zip(traces[True], traces[False], epochs[True], strict=True):
        assert len(a.epochs) == len(b.epochs) == n
        assert a.grad_rms_init == pytest.approx(b.grad_rms_init, rel=1e-4)
        for key in ("grad_rms", "update_ratio", "act_rms", "dead_frac", "grad_snr"):
            np.testing.assert_allclose(np.array(a.series(key), dtype=float),
                                       np.array(b.series(key), dtype=float), rtol=1e-3,
                                       atol=1e-7, err_msg=key)
        np.testing.assert_allclose(a.scalar("train_loss_norm"), b.scalar("train_loss_norm"),
                                   rtol=1e-3)


def test_trace_profile_in_forward_order_and_json_round_trip(data) -> None:
    hook = ProbeHook()
    result = cross_validate(bn_dropout_arch(), data, folds=2, seed=0,
                            training=TrainConfig(epochs=2, batch_size=32), hooks=[hook])
    trace = Trace.from_dict(json.loads(json.dumps(result.traces[0])))
    assert trace.blocks[0] == "stem" and trace.blocks[-1] == "head"
    assert len(trace.epochs) == 2
    e = trace.epochs[-1]
    for series in ("grad_rms", "update_ratio", "act_rms", "grad_snr"):
        assert len(e[series]) == len(trace.blocks)
        assert all(v is not None and v > 0 for v in e[series]), series
    assert all(v is not None for v in e["dead_frac"][:-1])  # every block has a ReLU
    assert trace.label_entropy == pytest.approx(np.log(3), rel=0.05)
    assert e["train_loss_norm"] == pytest.approx(e["train_loss"] / trace.label_entropy)
    assert trace.to_dict() == Trace.from_dict(trace.to_dict()).to_dict()
    summary = hook.summary()
    json.dumps(summary)
    assert summary["folds"] == 2 and len(summary["grad_rms_last_epoch"]) == len(trace.blocks)


def test_probe_in_users_own_loop_sees_vanishing_profile() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(8, 16), nn.Sigmoid()]
    for _ in range(8):
        layers += [nn.Linear(16, 16), nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(16, 2))
    x = torch.randn(128, 8)
    y = (x[:, 0] > 0).long()
    probe = Probe(model, probe_batch=(x[:64], y[:64]))
    assert [n for n, _ in probe.units] == [str(i) for i in range(0, 20, 2)]  # leaf Linear layers
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(2):
        for i in range(0, 128, 32):
            loss = F.cross_entropy(model(x[i:i + 32]), y[i:i + 32])
            opt.zero_grad()
            loss.backward()
            probe.step(loss)
            opt.step()
        row = probe.epoch_end(val_loss=float(loss.detach()), val_accuracy=0.5)
    g = row["grad_rms"]
    assert g[0] < 1e-3 * g[-2]  # ten sigmoid layers: the first gets a tiny share
    upd = row["update_ratio"]
    assert upd[-1] > 0 and upd[0] < 1e-3 * upd[-1]  # tiny first-layer steps (may round to 0)
    assert max(row["saturated_frac"][:-1]) >= 0.0
    assert diagnose(probe).verdict == "vanishing_gradients"


def test_dead_relu_and_saturated_sigmoid_are_counted() -> None:
    torch.manual_seed(0)
    dead = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    with torch.no_grad():
        dead[0].bias.fill_(-100.0)  # no unit can fire
    sat = nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2))
    with torch.no_grad():
        sat[0].weight.mul_(200.0)
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    for model, key, index in ((dead, "dead_frac", 0), (sat, "saturated_frac", 0)):
        probe = Probe(model, probe_batch=(x, y))
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        probe.step(loss)
        row = probe.epoch_end()
        assert row[key][index] > 0.9, key


def test_probe_batch_leaves_batchnorm_buffers_and_grads_alone() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    probe = Probe(model, probe_batch=(x * 5 + 3, y))
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    probe.step(loss)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [p.grad.clone() for p in model.parameters()]
    rng = torch.get_rng_state()
    probe.epoch_end()
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    for p, g in zip(model.parameters(), grads, strict=True):
        assert torch.equal(p.grad, g)
    assert torch.equal(torch.get_rng_state(), rng)


def _full_batch_steps(model: nn.Module, probe: Probe, opt: torch.optim.Optimizer,
                     x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    """``steps`` full-batch training steps with the probe called as a user's loop calls it."""
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        probe.step(loss)
        opt.step()
        probe.after_step()


def test_channels_last_weights_same_statistics_and_initial_gradients() -> None:
    # the probe flattens parameters in memory order (views, not copies): a channels-last
    # model must give the same numbers as the contiguous one
    x, y = torch.randn(32, 2, 8, 8), torch.randint(0, 2, (32,))
    rows, probes = [], []
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(144, 2))
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
            assert not model[0].weight.is_contiguous()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        probe = Probe(model, probe_batch=(x, y), update_every=2, grad_every=1)
        _full_batch_steps(model, probe, opt, x, y, 4)
        rows.append(probe.epoch_end())
        probes.append(probe)
    for key in ("grad_rms", "update_ratio", "grad_snr", "act_rms"):
        assert rows[1][key] == pytest.approx(rows[0][key], rel=1e-4), key
    assert rows[1]["dead_frac"] == rows[0]["dead_frac"]
    assert probes[1].step_stats._param_views is not None  # cached views, no copies
    init = probes[0].trace.grad_rms_init
    assert init is not None and len(init) == 2 and all(v > 0 for v in init)
    assert Trace.from_dict(probes[0].trace.to_dict()).grad_rms_init == init


def test_gradient_records_on_sampled_steps_unless_grad_every_asks_for_more() -> None:
    # lr=0 on a fixed batch: every step has the same gradient, so the per-epoch gradient RMS
    # must not depend on which steps are recorded; only how many are recorded changes
    torch.manual_seed(0)
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    rows = {}
    for grad_every in (None, 3, 1):
        torch.manual_seed(1)
        model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
        opt = torch.optim.SGD(model.parameters(), lr=0.0)
        probe = Probe(model, update_every=10, grad_every=grad_every, num_classes=3)
        _full_batch_steps(model, probe, opt, x, y, 40)
        # sampled steps 0, 10, 20, 30; grad_every=3 adds 3, 6, 9, ... 39 except 30
        assert probe.step_stats.grad_steps == {None: 4, 3: 4 + 13 - 1, 1: 40}[grad_every]
        assert probe.step_stats.sampled == 4
        rows[grad_every] = probe.epoch_end()
    for grad_every in (3, 1):
        assert rows[grad_every]["grad_rms"] == pytest.approx(rows[None]["grad_rms"], rel=1e-5)
    assert all(v > 0 for v in rows[None]["grad_rms"])


def test_stacked_step_stats_give_each_model_its_own_row() -> None:
    """One StepStats over stacked (k, ...) parameters gives each model the row that a
    StepStats of its own gives (the fold-parallel probes), with every model's steps recorded
    by one set of ops."""
    torch.manual_seed(0)
    k, x = 3, torch.randn(16, 5)
    stacked = [torch.randn(k, 4, 5, requires_grad=True), torch.randn(k, 4, requires_grad=True),
               torch.randn(k, 2, 4, requires_grad=True)]
    single = [[p[i].detach().clone().requires_grad_() for p in stacked] for i in range(k)]
    sizes = [24, 8]  # block 0: the first layer's weight and bias; block 1: the second layer

    def loss(w1: torch.Tensor, b1: torch.Tensor, w2: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ w1.T + b1) @ w2.T).square().mean()

    shared = StepStats(stacked, sizes, k=k, stacked=True, update_every=3)
    own = [StepStats(ps, sizes, update_every=3) for ps in single]
    opts = [torch.optim.SGD(stacked, lr=0.5)] + [torch.optim.SGD(ps, lr=0.5) for ps in single]
    for _ in range(7):
        for opt in opts:
            opt.zero_grad()
        losses = torch.stack([loss(*(p[i] for p in stacked)) for i in range(k)])
        losses.sum().backward()
        shared.after_backward(losses)
        for stats, ps in zip(own, single, strict=True):
            one = loss(*ps)
            one.backward()
            stats.after_backward(one)
        for opt in opts:
            opt.step()
        shared.after_step()
        for stats in own:
            stats.after_step()
    assert shared.sampled == 3 and shared.steps == 7
    for i, stats in enumerate(own):
        mine, theirs = stats.row(), shared.row(i)
        assert theirs["steps"] == mine["steps"] == 7
        for key in ("grad_rms", "update_ratio", "grad_snr", "grad_rms_init", "mean_loss"):
            assert theirs[key] == pytest.approx(mine[key], rel=1e-5), key
        assert all(v > 0 for v in mine["update_ratio"] + mine["grad_snr"])
    assert shared.row(0)["steps"] == 0  # read by every model: the next epoch starts empty


def test_model_without_parameters_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="trainable parameters"):
        probe_units(nn.Sequential(nn.ReLU(), nn.Flatten()))
    with pytest.raises(ConfigError, match="torch.nn.Module"):
        Probe("not a model")  # type: ignore[arg-type]


def test_partial_trace_kept_when_loss_overflows(data) -> None:
    arch = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 4, "width": 32,
                                             "norm": "none"}], "init": "kaiming"})
    hook = ProbeHook()
    with pytest.raises(NonFiniteLossError):
        cross_validate(arch, data, folds=2, seed=0, hooks=[hook],
                       training=TrainConfig(epochs=3, optimizer="sgd", lr=50.0))
    trace = hook.close("non-finite loss")
    assert trace is not None and trace.nonfinite and trace.epochs
    json.dumps(hook.trace_dicts())


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_probes_on_cuda_match_and_record(data) -> None:
    training = TrainConfig(epochs=2, batch_size=32, device="cuda")
    hook = ProbeHook()
    result = cross_validate(bn_dropout_arch(), data, folds=2, seed=0, training=training,
                            hooks=[hook], parallel=False)
    trace = hook.traces[0]
    assert len(result.traces) == 2 and all(v > 0 for v in trace.epochs[-1]["grad_rms"])


class _Slow(TrainHook):
    """A hook whose every call sleeps: what the engine adds to its ``seconds``."""

    steps_in_parallel = True

    def __init__(self, pause: float) -> None:
        self.pause, self.calls = pause, 0

    def _sleep(self) -> None:
        self.calls += 1
        time.sleep(self.pause)

    def on_fit_start(self, model, fold, x_train, y_train) -> None:
        self._sleep()

    def after_step(self, model) -> None:
        self._sleep()

    def on_epoch_end(self, model, fold, record) -> None:
        self._sleep()

    def on_fit_end(self, model, fold) -> None:
        self._sleep()


@pytest.mark.parametrize("parallel", [False, True])
def test_engine_times_each_hooks_calls(data, parallel: bool) -> None:
    """The engine adds the wall time of every call of a hook to the hook's ``seconds`` (what
    a study records as the probes' cost), on both engines: a hook without per-step calls is
    never called per step, so its no-op calls add next to nothing."""
    slow, idle = _Slow(0.002), TrainHook()
    start = time.perf_counter()
    result = cross_validate(bn_dropout_arch(), data, folds=2, seed=0, hooks=[slow, idle],
                            training=TrainConfig(epochs=2, batch_size=64), parallel=parallel)
    total = time.perf_counter() - start
    assert result.settings["parallel"] is parallel
    assert slow.calls > 2 * 2 * 2  # per step, per epoch and per fold
    assert slow.calls * 0.002 <= slow.seconds < total
    assert 0 <= idle.seconds < 0.01


def test_timed_counts_a_call_that_raises() -> None:
    hook = TrainHook()

    def fail() -> None:
        time.sleep(0.01)
        raise RuntimeError("pruned")

    with pytest.raises(RuntimeError):
        timed(hook, fail)
    assert hook.seconds >= 0.01
