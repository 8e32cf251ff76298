"""Multitask: several label columns in data, a shared trunk with one head per task, the CV
engine's per-task fold table, single-task baselines on the same folds, per-task diagnosis.

Real data with known structure: sklearn's digits with the digit and its parity (derived), and
a task of pure noise labels."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nasdepth.arch import ArchConfig, build_model
from nasdepth.arch.multitask import MultitaskConfig, block_ends, build_multitask
from nasdepth.data import (
    CVConfig,
    from_arrays,
    load_data,
    task_data,
    with_stratify,
)
from nasdepth.diagnosis import diagnose
from nasdepth.diagnosis.multitask import diagnose_tasks
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError
from nasdepth.probes import MultitaskProbeHook
from nasdepth.train import TrainConfig, cross_validate
from nasdepth.train.multitask import task_frame, task_view
from nasdepth.train.sharing import branch_sweep, single_task_baselines

RESNET = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 8}]})
MLP = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 2, "width": 64}]})


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    d = load_data("sklearn:digits")
    return d.x.numpy(), d.y.numpy()


def _flat(x: np.ndarray, y: np.ndarray, n: int, **labels: np.ndarray):  # type: ignore[no-untyped-def]
    sub = load_data({"source": "sklearn:digits", "limit": n})
    ys = sub.y.numpy()
    tasks = {"digit": ys, "parity": ys % 2}
    tasks.update({k: v[: len(ys)] for k, v in labels.items()})
    return from_arrays(sub.x.numpy().reshape(len(ys), -1), tasks, name=f"digits[{n}]")


# ---- data ---------------------------------------------------------------------------------

def test_from_arrays_with_tasks_keeps_each_tasks_classes(digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    parity = np.where(y % 2, "odd", "even")
    d = from_arrays(x, {"digit": y, "parity": parity}, name="d2")
    assert d.task_names == ["digit", "parity"] and d.stratify == "digit"
    assert d.tasks is not None
    assert d.tasks["digit"].num_classes == 10 and d.tasks["parity"].class_names == ["even", "odd"]
    assert torch.equal(d.y, d.tasks["digit"].y) and d.num_classes == 10
    sub = d.subset(np.arange(0, 100, 3))
    assert sub.tasks is not None and torch.equal(sub.tasks["parity"].y,
                                                 d.tasks["parity"].y[::3][:34])
    meta = d.to_dict()
    assert [t["name"] for t in meta["tasks"]] == ["digit", "parity"]
    alone = task_data(d, "parity")
    assert not alone.is_multitask and alone.num_classes == 2 and alone.x is d.x


def test_single_task_data_are_unchanged(digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    d = from_arrays(x, y, name="one")
    assert not d.is_multitask and "tasks" not in d.to_dict() and d.task_names == []


def test_csv_target_list_and_npz_tasks(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    flat = x.reshape(len(y), -1)[:, :12]
    df = pd.DataFrame(flat, columns=[f"f{i}" for i in range(12)])
    df["digit"], df["parity"] = y, np.where(y % 2, "odd", "even")
    df.to_csv(tmp_path / "t.csv", index=False)
    c = load_data({"source": str(tmp_path / "t.csv"), "target": ["digit", "parity"],
                   "stratify": "parity"})
    assert c.task_names == ["digit", "parity"] and c.input_shape == (12,)
    assert c.stratify == "parity" and c.num_classes == 2
    np.savez(tmp_path / "a.npz", x=flat, y=np.stack([y, y % 2], 1))
    a = load_data({"source": str(tmp_path / "a.npz"), "tasks": ["digit", "parity"]})
    assert a.task_names == ["digit", "parity"] and a.tasks is not None
    assert a.tasks["parity"].num_classes == 2
    np.savez(tmp_path / "b.npz", x=flat, digit=y, parity=y % 2)
    b = load_data({"source": str(tmp_path / "b.npz"), "y_key": ["digit", "parity"]})
    assert b.task_names == ["digit", "parity"]
    assert load_data(str(tmp_path / "a.npz")).task_names == ["task0", "task1"]


def test_bad_task_input_is_a_clear_error(tmp_path: Path, digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    with pytest.raises(ConfigError, match=r"task 'parity'.*1794 labels for 1797 samples"):
        from_arrays(x, {"digit": y, "parity": (y % 2)[:-3]}, name="d")
    d = from_arrays(x, {"digit": y, "parity": y % 2}, name="d")
    with pytest.raises(UnknownNameError, match="Did you mean 'parity'"):
        with_stratify(d, "parrity")
    with pytest.raises(UnknownNameError, match="Did you mean 'parity'"):
        cross_validate(MultitaskConfig(RESNET, ("digit", "parety")), d, folds=2,
                                 epochs=1)
    with pytest.raises(NasdepthError, match="one label column"):
        with_stratify(from_arrays(x, y, name="one"), "digit")
    with pytest.raises(UnknownNameError, match="Did you mean 'parity'"):
        load_data({"source": "sklearn:digits", "derive": {"digit": "label", "p": "parrity"}})


def test_cv_stratifies_on_the_chosen_task(digits) -> None:  # type: ignore[no-untyped-def]
    x, y = digits
    rng = np.random.default_rng(0)
    rare = (rng.random(len(y)) < 0.1).astype(int)  # 10% positives, independent of the digit
    d = from_arrays(x, {"digit": y, "rare": rare}, name="d")
    on_rare = CVConfig(folds=5).resolve(with_stratify(d, "rare"))
    shares = [rare[va].mean() for _, va in on_rare]
    assert max(shares) - min(shares) < 0.01  # stratified: the same share in every fold
    on_digit = CVConfig(folds=5).resolve(d)
    assert on_digit.digest != on_rare.digest
    counts = np.array([np.bincount(y[va], minlength=10) for _, va in on_digit])
    assert (counts.max(0) - counts.min(0)).max() <= 1


# ---- architecture -------------------------------------------------------------------------

def test_branch_at_moves_blocks_from_the_trunk_to_every_task() -> None:
    classes = {"digit": 10, "parity": 2}
    params = []
    for b in range(RESNET.depth + 1):
        torch.manual_seed(0)
        net = build_multitask(MultitaskConfig(RESNET, ("digit", "parity"), branch_at=b),
                              (1, 8, 8), classes)
        out = net(torch.randn(3, 1, 8, 8))
        assert out["digit"].shape == (3, 10) and out["parity"].shape == (3, 2)
        assert len(net.shared) == b and all(len(net.branches[t]) == 2 - b for t in classes)
        params.append(sum(p.numel() for p in net.parameters()))
    assert params == sorted(params, reverse=True) and len(set(params)) == len(params)
    names = [n for n, _ in build_multitask(MultitaskConfig(RESNET, ("a", "b"), branch_at=1),
                                           (1, 8, 8), {"a": 3, "b": 2}).named_blocks()]
    assert names[:2] == ["stem", "block0.ResidualBlock"] and "b/block1.ResidualBlock" in names
    with pytest.raises(ConfigError, match="branch_at"):
        MultitaskConfig(RESNET, ("a",), branch_at=3).validate()


def test_one_task_is_the_single_task_network() -> None:
    torch.manual_seed(0)
    single = build_model(RESNET, (1, 8, 8), 10).eval()
    torch.manual_seed(0)
    multi = build_multitask(MultitaskConfig(RESNET, ("digit",)), (1, 8, 8), {"digit": 10})
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(single(x), multi.eval()(x)["digit"])
    assert torch.equal(single(x), multi.path("digit")(x))


def test_heads_and_uncertainty_weights() -> None:
    cfg = MultitaskConfig(MLP, ("a", "b"), branch_at=1, head_depth=2, head_width=16,
                          weighting="uncertainty")
    net = build_multitask(cfg, (64,), {"a": 10, "b": 2})
    hidden = [m for m in net.heads["b"] if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in hidden] == [16, 16, 2]
    losses = torch.tensor([1.0, 2.0], requires_grad=True)
    assert net.log_vars is not None
    loss = net.joint_loss(losses)
    loss.backward()
    assert net.log_vars.grad is not None  # learned: the weights train with the network
    # d/ds (exp(-s) L + s/2) at s = 0 is 1/2 - L
    assert torch.allclose(net.log_vars.grad, torch.tensor([-0.5, -1.5]))
    rt = MultitaskConfig.from_dict(cfg.to_dict())
    assert rt == cfg
    assert block_ends(MLP, 0) == [0, 1, 2]


# ---- training, baselines, diagnosis --------------------------------------------------------

def test_fold_table_has_each_tasks_metrics_and_their_mean(digits) -> None:  # type: ignore[no-untyped-def]
    d = _flat(*digits, 300)
    tr = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
    res = cross_validate(MultitaskConfig(MLP, ("digit", "parity"), branch_at=1), d,
                                   folds=3, training=tr, parallel="on")
    f = res.folds
    for col in ("digit.val_accuracy", "parity.val_log_loss", "parity.gap_accuracy",
                "digit.weight", "val_accuracy", "params"):
        assert col in f.columns
    assert np.allclose(f["val_accuracy"], (f["digit.val_accuracy"] + f["parity.val_accuracy"]) / 2)
    long = task_frame(f)
    assert sorted(long["task"].unique()) == ["digit", "parity"] and len(long) == 6
    view = task_view(res, "parity")
    assert np.allclose(view.folds["val_accuracy"], f["parity.val_accuracy"])
    # the same folds as any single-task candidate on these data
    single = cross_validate(MLP, task_data(d, "digit"), folds=3, training=tr)
    assert single.settings["splits"]["digest"] == res.settings["splits"]["digest"]
    assert "digit.val_loss" in res.history.columns and len(res.history) == 9


def test_sharing_matches_or_beats_single_task_on_parity(digits) -> None:  # type: ignore[no-untyped-def]
    """Digits: the parity of the digit, learned by a network that also learns the digit,
    against the same MLP trained on parity alone, on the same folds with the same seeds
    (measured: 0.970 shared against 0.963 alone; seeds 1 and 2 also shared >= alone)."""
    d = _flat(*digits, 600)
    tab = single_task_baselines(MultitaskConfig(MLP, ("digit", "parity")), d, folds=3, seed=0,
                                training=TrainConfig(epochs=20, batch_size=32, lr=3e-3))
    means = tab.groupby(["task", "mode"])["val_accuracy"].mean()
    assert set(tab["mode"]) == {"multitask", "single"} and len(tab) == 12
    # "matches": within 3 of the 600 rows (thread counts and test order move a row or two:
    # 0.968 against 0.970 after test_linear_probes with two threads)
    assert means["parity", "multitask"] >= means["parity", "single"] - 0.005
    assert means["parity", "multitask"] > 0.9 and means["digit", "multitask"] > 0.9


def test_noise_task_is_data_limited_for_that_task_only(digits) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    d = _flat(*digits, 600, noise=rng.integers(0, 2, 1797))
    hook = MultitaskProbeHook()
    res = cross_validate(MultitaskConfig(MLP, ("digit", "noise"), branch_at=1), d,
                                   folds=3, training=TrainConfig(epochs=8, batch_size=32,
                                                                 lr=3e-3), hooks=[hook])
    assert {t.get("task") for t in res.traces} == {"digit", "noise"} and len(res.traces) == 6
    verdict = diagnose_tasks(res, d)
    with pytest.raises(ConfigError, match="diagnose_tasks"):
        diagnose(res, d)  # the single-task entry point would mix the tasks' traces
    assert verdict.verdicts["noise"] == "data_limited_plateau"
    assert verdict.verdicts["digit"] == "healthy"
    assert res.folds["digit.val_accuracy"].mean() > 0.85
    assert abs(res.folds["noise.val_accuracy"].mean() - 0.5) < 0.1
    assert verdict.trunk["blocks"][:2] == ["stem", "block0.PlainBlock"]
    assert set(hook.summary()) == {"digit", "noise"}


def test_branch_sweep_scores_every_branch_point(digits) -> None:  # type: ignore[no-untyped-def]
    d = _flat(*digits, 200)
    tab = branch_sweep(MultitaskConfig(MLP, ("digit", "parity")), d, [0, 2], folds=2,
                       training=TrainConfig(epochs=2, batch_size=32))
    assert sorted(tab["branch_at"].unique()) == [0, 2] and len(tab) == 2 * 2 * 2
    assert tab["params"].iloc[0] > tab["params"].iloc[-1]  # branching early: more weights


def test_uncertainty_weighting_weighs_the_noise_task_down(digits) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(1)
    d = _flat(*digits, 600, noise=rng.integers(0, 2, 1797))
    res = cross_validate(
        MultitaskConfig(MLP, ("digit", "noise"), weighting="uncertainty"), d, folds=2,
        training=TrainConfig(epochs=20, batch_size=32, lr=1e-2))
    # the digit's loss falls fast, the noise task's only by memorizing: its learned weight
    # ends lower (measured: 1.41 and 1.49 for the digit, 1.02 and 1.09 for the noise)
    assert (res.folds["noise.weight"] < res.folds["digit.weight"]).all()


def test_multitask_cv_is_reproducible(digits) -> None:  # type: ignore[no-untyped-def]
    d = _flat(*digits, 200)
    cfg = MultitaskConfig(MLP, ("digit", "parity"), branch_at=1)
    tr = TrainConfig(epochs=2, batch_size=32)
    a = cross_validate(cfg, d, folds=2, training=tr).folds.drop(columns="seconds")
    b = cross_validate(cfg, d, folds=2, training=tr).folds.drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)


def test_multitask_takes_the_engines_its_network_supports(digits) -> None:  # type: ignore[no-untyped-def]
    """Fold-parallel (the folds' multitask networks vmapped, each fold's joint loss from its
    own task weights) and streamed from the host: the same scores and per-epoch history as
    sequential on the device (the same batches in the same order); ``lr: auto``: the range
    test runs on the joint loss and every fold trains at the rate it chose."""
    d = _flat(*digits, 120)
    cfg = MultitaskConfig(MLP, ("digit", "parity"), weighting="uncertainty")
    tr = TrainConfig(epochs=3, batch_size=32, parallel="off")
    on_device = cross_validate(cfg, d, folds=2, training=tr)
    parallel = cross_validate(cfg, d, folds=2, training=replace(tr, parallel="on"))
    assert parallel.settings["parallel"] is True and on_device.settings["parallel"] is False
    streamed = cross_validate(cfg, d, folds=2, training=replace(tr, data_placement="stream"))
    assert streamed.settings["data_placement"] == "stream"
    # float reordering (vmap vs one fold at a time) moves losses in the 4th digit at most,
    # and may flip an argmax tie for a sample or two (the single-task parity test's bounds)
    for other in (parallel, streamed):
        for key in ("digit.val_log_loss", "train_log_loss", "digit.weight"):
            np.testing.assert_allclose(other.folds[key], on_device.folds[key], rtol=2e-3,
                                       err_msg=key)
        for key in ("val_loss", "digit.train_loss", "parity.weight"):
            np.testing.assert_allclose(other.history[key], on_device.history[key], rtol=2e-3,
                                       err_msg=key)
        flips = np.abs(other.folds["parity.val_accuracy"] - on_device.folds[
            "parity.val_accuracy"]).to_numpy() * on_device.folds["n_val"].to_numpy()
        assert (flips <= 2.01).all()
    auto = cross_validate(cfg, d, folds=2, training=replace(tr, lr_auto=True))
    found = auto.settings["lr_find"]
    assert found is not None and found["lr"] == auto.settings["training"]["lr"]
    assert auto.history["lr"].iloc[0] <= found["lr"] and auto.history["lr"].iloc[0] > 0


def test_multitask_cnn_folds_train_in_parallel_as_in_sequence() -> None:
    """A multitask CNN with BatchNorm through vmap: the fold-parallel engine's scores are the
    sequential engine's."""
    data = load_data({"source": "sklearn:digits", "limit": 160})
    y = data.y.numpy()
    two = from_arrays(data.x.numpy(), {"digit": y, "parity": y % 2}, name="digits[160]")
    cfg = MultitaskConfig(RESNET, ("digit", "parity"), branch_at=1)
    # engine parity is an fp32 property: bf16 (``auto`` on an AMX CPU) rounds each differently
    tr = TrainConfig(epochs=2, batch_size=32, lr=0.01, channels_last="off", precision="fp32")
    seq = cross_validate(cfg, two, folds=2, training=tr, parallel=False)
    par = cross_validate(cfg, two, folds=2, training=tr, parallel=True)
    assert par.settings["parallel"] is True
    for key in ("digit.val_log_loss", "parity.val_log_loss", "train_log_loss"):
        np.testing.assert_allclose(par.folds[key], seq.folds[key], rtol=2e-3, err_msg=key)
    flips = np.abs(par.folds["digit.val_accuracy"] - seq.folds["digit.val_accuracy"]
                   ).to_numpy() * seq.folds["n_val"].to_numpy()
    assert (flips <= 2.01).all()  # an argmax tie may flip after float reordering


def test_one_task_trains_exactly_as_the_single_task_engine() -> None:
    """One task and its network: the multitask fold loop (its own joint loss, the shared
    ``TrainStep.update``) gives the single-task engine's fold scores, the same splits,
    initialization and batches."""
    data = load_data({"source": "sklearn:digits", "limit": 240})
    one = from_arrays(data.x.numpy(), {"digit": data.y.numpy()}, name="digits[240]")
    tr = TrainConfig(epochs=3, batch_size=32, lr=0.01, grad_clip=1.0)
    single = cross_validate(RESNET, data, folds=2, seed=3, training=tr, parallel=False)
    multi = cross_validate(MultitaskConfig(RESNET, ("digit",)), one, folds=2,
                                     seed=3, training=tr)
    for key in ("val_log_loss", "val_accuracy", "train_log_loss"):
        np.testing.assert_allclose(multi.folds[key], single.folds[key], rtol=1e-5, err_msg=key)
