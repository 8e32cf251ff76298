"""Cross-validation engine: seeded folds, no leakage, every metric, and fold-parallel training
that gives the same scores as sequential folds."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nasdepth.train.cv as cv_module
import nasdepth.train.fit as fit_module
import nasdepth.train.parallel as parallel_module
from nasdepth import ArchConfig, StageConfig, TrainConfig, build_model, cross_validate, load_data
from nasdepth.data import AugmentConfig, CVConfig, augment_batch, make_folds
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.train import (
    METRICS,
    DeviceOutOfMemoryError,
    FitOptions,
    NonFiniteLossError,
    TrainHook,
    fit_fold,
    fit_folds_parallel,
)

MLP = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=16),))
CNN = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=8),))


def test_cross_validate_is_reproducible_and_learns() -> None:
    data = load_data("sklearn:digits").subset(np.arange(900))
    training = TrainConfig(lr=0.01)
    a = cross_validate(CNN, data, folds=3, epochs=3, seed=0, training=training)
    b = cross_validate(CNN, data, folds=3, epochs=3, seed=0, training=training)
    assert list(a.folds["fold"]) == [0, 1, 2]
    assert a.folds.drop(columns="seconds").equals(b.folds.drop(columns="seconds"))
    assert a.mean() > 0.3  # ten classes: chance is 0.1
    assert set(a.history["epoch"]) == {0, 1, 2}
    assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"} <= set(a.history)


def test_every_metric_on_train_and_val_with_gaps() -> None:
    data = load_data("sklearn:wine")
    res = cross_validate(MLP, data, folds=3, epochs=3, seed=1,
                         training=TrainConfig(lr=0.01, batch_size=32))
    for m in METRICS:
        for split in ("train", "val", "gap"):
            assert f"{split}_{m}" in res.folds, f"{split}_{m}"
    row = res.folds.iloc[0]
    assert row["gap_accuracy"] == pytest.approx(row["train_accuracy"] - row["val_accuracy"])
    assert 0.5 < row["val_roc_auc"] <= 1.0 and row["params"] > 0
    assert len(res.history) == 9


@pytest.mark.parametrize("num_classes,missing", [(2, False), (4, False), (4, True)])
def test_metrics_equal_the_sklearn_scorers(num_classes: int, missing: bool) -> None:
    from sklearn import metrics as skm

    from nasdepth.train import classification_metrics

    rng = np.random.default_rng(num_classes)
    y = rng.integers(0, num_classes - int(missing), 200)  # missing: a class absent from y
    proba = rng.dirichlet(np.ones(num_classes), 200)
    proba[np.arange(200), y] += rng.random(200)  # better than chance, not perfect
    proba /= proba.sum(1, keepdims=True)
    got = classification_metrics(y, proba, num_classes)
    pred, labels = proba.argmax(1), np.arange(num_classes)
    kw: dict[str, Any] = {"labels": labels, "average": "macro", "zero_division": 0}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = {
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "precision_macro": skm.precision_score(y, pred, **kw),
            "recall_macro": skm.recall_score(y, pred, **kw),
            "f1_macro": skm.f1_score(y, pred, **kw),
            "log_loss": skm.log_loss(y, proba, labels=labels),
        }
    for name, value in want.items():
        assert got[name] == pytest.approx(value, rel=1e-6, abs=1e-9), name
    assert np.isnan(got["roc_auc"]) == missing


def test_validation_data_never_changes_training_normalization() -> None:
    """Wildly changing the validation rows must leave training exactly as it was; a scaler
    fitted on all rows would shift every training input and change every loss."""
    data = load_data("sklearn:wine")
    tr, va = make_folds(data.y_numpy, 3, seed=0)[0]
    training = TrainConfig(epochs=3, batch_size=32, lr=0.01, device="cpu")
    a = fit_fold(_fresh(data), data, tr, va, training=training, seed=5,
                 device=torch.device("cpu"))
    poisoned = data.subset(np.arange(len(data)))
    poisoned.x[torch.as_tensor(va)] = poisoned.x[torch.as_tensor(va)] * 1000 + 1e4
    b = fit_fold(_fresh(poisoned), poisoned, tr, va, training=training, seed=5,
                 device=torch.device("cpu"))
    assert [h["train_loss"] for h in a.history] == [h["train_loss"] for h in b.history]
    assert a.row["train_log_loss"] == b.row["train_log_loss"]
    assert a.row["val_log_loss"] != b.row["val_log_loss"]  # the poison did reach validation


def _fresh(data: Any, arch: ArchConfig = MLP) -> nn.Module:
    from nasdepth import build_model

    torch.manual_seed(0)
    return build_model(arch, data.input_shape, data.num_classes)


@pytest.mark.parametrize("arch,spec,extra", [
    (MLP, "sklearn:wine", {"optimizer": "sgd", "lr": 0.05, "grad_clip": 0.5}),
    (CNN, "sklearn:digits", {"schedule": "onecycle", "label_smoothing": 0.1}),
])
def test_fold_parallel_matches_sequential(arch: ArchConfig, spec: str,
                                          extra: dict[str, Any]) -> None:
    data = load_data(spec)
    if spec == "sklearn:digits":
        data = data.subset(np.arange(400))
    training = TrainConfig(epochs=2, batch_size=32, channels_last="off", **extra)
    seq = cross_validate(arch, data, folds=3, seed=2, training=training, parallel=False)
    par = cross_validate(arch, data, folds=3, seed=2, training=training, parallel=True)
    assert seq.settings["parallel"] is False and par.settings["parallel"] is True
    n_val = par.folds["n_val"].to_numpy()
    for split in ("train", "val"):
        np.testing.assert_allclose(par.folds[f"{split}_log_loss"], seq.folds[f"{split}_log_loss"],
                                   rtol=2e-3)
    # an argmax tie may flip for a sample or two after float reordering, never more
    diff = np.abs(par.folds["val_accuracy"] - seq.folds["val_accuracy"]).to_numpy() * n_val
    assert (diff <= 2.01).all()
    np.testing.assert_allclose(par.history["train_loss"], seq.history["train_loss"], rtol=2e-3)


@pytest.mark.parametrize("block,norm", [("plain", "batch"), ("residual", "layer"),
                                        ("bottleneck", "none"), ("residual", "batch")])
def test_stacked_mlp_folds_match_vmap_and_sequential(block: str, norm: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """MLP folds as stacked layers (grouped matmuls) train exactly as vmap and as one fold at a
    time: same losses per epoch, same scores, and each fold's weights come back to its model."""
    from nasdepth.train.stacked import StackedFolds, can_stack

    data = load_data("sklearn:breast_cancer")
    arch = ArchConfig(stages=(StageConfig(block=block, depth=2, width=24, norm=norm),))
    assert can_stack(_fresh(data, arch), data.input_shape)
    assert not can_stack(_fresh(load_data("sklearn:digits"), CNN), (1, 8, 8))
    training = TrainConfig(epochs=3, batch_size=32, lr=3e-3)
    used: list[str] = []
    real = parallel_module.make_ensemble

    def spy(models: Any, device: Any, shape: Any, stacking: str = "auto") -> Any:
        ens = real(models, device, shape, stacking)
        used.append(type(ens).__name__)
        return ens

    monkeypatch.setattr(parallel_module, "make_ensemble", spy)
    stacked = cross_validate(arch, data, folds=3, seed=4, training=training, parallel=True)
    monkeypatch.setattr(parallel_module, "make_ensemble",
                        lambda m, d, s, stacking="auto": spy(m, d, s, "vmap"))
    vmapped = cross_validate(arch, data, folds=3, seed=4, training=training, parallel=True)
    seq = cross_validate(arch, data, folds=3, seed=4, training=training, parallel=False)
    assert used == ["StackedFolds", "FoldEnsemble"]
    for other in (vmapped, seq):
        np.testing.assert_allclose(stacked.history["train_loss"], other.history["train_loss"],
                                   rtol=1e-4)
        np.testing.assert_allclose(stacked.folds["val_log_loss"], other.folds["val_log_loss"],
                                   rtol=1e-4)
    # state -> own model -> state round trip (linear weights are stored transposed)
    models = [_fresh(data, arch) for _ in range(2)]
    ens = StackedFolds(models, torch.device("cpu"))
    torch.manual_seed(0)
    with torch.no_grad():
        for p in ens.params.values():
            p.add_(0.1 * torch.randn_like(p))  # folds now differ
    x = torch.randn(2, 7, data.input_shape[0])
    out = ens(x, train=False)[0]
    for f in range(2):
        own = ens.materialize(f).eval()
        torch.testing.assert_close(own(x[f]), out[f], rtol=1e-4, atol=1e-4)
        assert all(torch.equal(v, ens.state(f)[n]) for n, v in own.state_dict().items())


def test_early_stopping_and_heldout_test_in_both_paths() -> None:
    data = load_data("sklearn:iris")
    training = TrainConfig(epochs=6, batch_size=16, lr=0.01, patience=1, min_delta=10.0)
    cv = CVConfig(folds=3, seed=0, test_size=0.2)
    for parallel in (False, True):
        res = cross_validate(MLP, data, cv=cv, training=training, parallel=parallel)
        # the first epoch sets the best loss; no later epoch improves it by 10: stop at 2
        assert res.folds["epochs"].tolist() == [2, 2, 2]
        assert res.folds["stopped_early"].all() and len(res.history) == 6
        assert res.settings["n_test"] == 30 and "test_accuracy" in res.folds
        assert (res.folds["n_train"] + res.folds["n_val"] == 120).all()


def test_group_and_repeated_kinds_through_cross_validate() -> None:
    data = load_data("sklearn:iris")
    data.groups = np.arange(len(data)) // 5  # 30 groups of 5 consecutive samples
    res = cross_validate(MLP, data, cv=CVConfig(folds=3, kind="group", group="g"),
                         training=TrainConfig(epochs=1, batch_size=32))
    assert len(res.folds) == 3 and res.folds["n_val"].sum() == 150
    rep = cross_validate(MLP, data, cv=CVConfig(folds=2, kind="repeated_stratified", repeats=2),
                         training=TrainConfig(epochs=1, batch_size=32))
    assert rep.folds["repeat"].tolist() == [0, 0, 1, 1] and rep.folds["n_val"].sum() == 300


class EpochRecorder(TrainHook):
    def __init__(self) -> None:
        self.seen: list[tuple[int, int]] = []

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        assert isinstance(model, nn.Module)
        self.seen.append((fold, record["epoch"]))

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        size = sum(float(p.detach().abs().sum()) for p in model.parameters())
        return {"fold": fold, "weights": size}


class StepCounter(TrainHook):
    def __init__(self) -> None:
        self.steps = 0

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        self.steps += 1


class GradientRecorder(TrainHook):
    """Per fold: every step's gradient norm, loss and, after the step, weight norm."""

    steps_in_parallel = True

    def __init__(self) -> None:
        self.fold_of: dict[int, int] = {}
        self.rows: dict[int, list[tuple[float, float, float]]] = {}
        self.pending: dict[int, tuple[float, float]] = {}

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        self.fold_of[id(model)] = fold
        self.rows[fold] = []

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        grads = [p.grad for p in model.parameters()]
        norm = float(torch.stack([g.norm() for g in grads if g is not None]).norm())
        self.pending[id(model)] = (norm, float(loss.detach()))

    def after_step(self, model: nn.Module) -> None:
        weights = float(torch.stack([p.detach().norm() for p in model.parameters()]).norm())
        self.rows[self.fold_of[id(model)]].append((*self.pending.pop(id(model)), weights))


@pytest.mark.parametrize("arch,spec", [(MLP, "sklearn:wine"), (CNN, "sklearn:digits")])
def test_per_step_hooks_see_each_fold_in_parallel(arch: ArchConfig, spec: str) -> None:
    """A hook that takes folds interleaved sees, every step, each fold's own gradients and
    updated weights while the folds train together (stacked MLP and vmapped CNN alike): the
    same series as with folds one after another."""
    data = load_data(spec)
    if spec == "sklearn:digits":
        data = data.subset(np.arange(300))
    # engine parity is an fp32 property: bf16 (``auto`` on an AMX CPU) rounds each differently
    training = TrainConfig(epochs=2, batch_size=32, channels_last="off", precision="fp32")
    par, seq = GradientRecorder(), GradientRecorder()
    a = cross_validate(arch, data, folds=3, seed=1, training=training, hooks=[par],
                       parallel="auto" if arch is MLP else True)
    b = cross_validate(arch, data, folds=3, seed=1, training=training, hooks=[seq],
                       parallel=False)
    assert a.settings["parallel"] is True and b.settings["parallel"] is False
    assert sorted(par.rows) == sorted(seq.rows) == [0, 1, 2]
    for f in range(3):
        assert len(par.rows[f]) == len(seq.rows[f]) > 0
        np.testing.assert_allclose(par.rows[f], seq.rows[f], rtol=1e-3)


class EveryOtherStep(TrainHook):
    """Reads the gradients on every other step of each fold, and says so beforehand."""

    steps_in_parallel = True

    def __init__(self) -> None:
        self.steps: dict[int, int] = {}
        self.seen: list[tuple[int, bool]] = []  # (step, gradient present)

    def reads_grads(self, model: nn.Module) -> bool:
        return self.steps.get(id(model), 0) % 2 == 0

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        step = self.steps.get(id(model), 0)
        self.steps[id(model)] = step + 1
        self.seen.append((step, all(p.grad is not None for p in model.parameters())))


def test_fold_models_get_gradients_only_on_steps_a_hook_reads_them() -> None:
    """The fold-parallel engine binds the fold models' gradient views only when a hook asks
    (binding and keeping them valid every step costs the training time); otherwise .grad is
    None rather than a stale gradient."""
    hook = EveryOtherStep()
    res = cross_validate(MLP, load_data("sklearn:iris"), folds=3, seed=0, hooks=[hook],
                         training=TrainConfig(epochs=2, batch_size=16), parallel=True)
    assert res.settings["parallel"] is True
    assert len(hook.seen) == 3 * 2 * 7
    assert all(present == (step % 2 == 0) for step, present in hook.seen)


def test_hooks_in_parallel_and_per_step_hooks_force_sequential() -> None:
    data = load_data("sklearn:iris")
    training = TrainConfig(epochs=2, batch_size=16)
    rec = EpochRecorder()
    res = cross_validate(MLP, data, folds=3, training=training, hooks=[rec], parallel=True)
    assert res.settings["parallel"] is True
    assert sorted(rec.seen) == [(f, e) for f in range(3) for e in range(2)]
    assert [t["fold"] for t in res.traces] == [0, 1, 2]
    counter = StepCounter()
    res = cross_validate(MLP, data, folds=3, training=training, hooks=[counter], parallel=True)
    assert res.settings["parallel"] is False and counter.steps == 3 * 2 * 7  # 100 // 16 + 1
    counter.steps_in_parallel = True  # takes the folds interleaved: no need to go sequential
    res = cross_validate(MLP, data, folds=3, training=training, hooks=[counter], parallel=True)
    assert res.settings["parallel"] is True and counter.steps == 2 * 3 * 2 * 7


def test_augmentation_never_touches_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_data({"source": "synthetic:classification", "n_samples": 90,
                      "image_shape": [1, 4, 4], "seed": 3})
    seen: list[torch.Tensor] = []

    def spy(x: torch.Tensor, cfg: AugmentConfig, gen: torch.Generator) -> torch.Tensor:
        seen.append(x.clone())
        return augment_batch(x, cfg, gen)

    monkeypatch.setattr(fit_module, "augment_batch", spy)
    monkeypatch.setattr(parallel_module, "augment_batch", spy)
    training = TrainConfig(epochs=2, batch_size=16, augment=AugmentConfig(flip=1.0))
    splits = make_folds(data.y_numpy, 3, seed=0)
    rows = {tuple(r.tolist()) for r in data.x.flatten(1)}
    assert len(rows) == len(data)  # continuous features: every sample is unique
    for parallel in (False, True):
        seen.clear()
        ends: list[int] = []

        def mark(k: int, row: dict[str, Any], ends: list[int] = ends) -> None:
            ends.append(len(seen))

        cross_validate(CNN, data, folds=3, seed=0, training=training, parallel=parallel,
                       on_fold=mark)
        # 60 training samples per fold in batches of 16: 4 batches per epoch and fold
        assert len(seen) == (2 * 4 if parallel else 3 * 2 * 4)
        for k, (tr, va) in enumerate(splits):
            if parallel:  # each batch holds the 3 folds' batches one after the other
                mine = [b.view(3, -1, *b.shape[1:])[k] for b in seen]
            else:  # fold k's batches came between the end of fold k-1 and the end of fold k
                mine = seen[(ends[k - 1] if k else 0):ends[k]]
            rows = {tuple(r.tolist()) for r in torch.cat(mine).flatten(1)}
            assert rows <= {tuple(r.tolist()) for r in data.x[tr].flatten(1)}, (parallel, k)
            assert not rows & {tuple(r.tolist()) for r in data.x[va].flatten(1)}, (parallel, k)


class AuxNet(nn.Module):
    """A tiny network with an auxiliary head, following the ``aux_logits`` contract."""

    def __init__(self) -> None:
        super().__init__()
        self.body, self.head, self.aux = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(8, 3)
        self.aux_logits: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.body(x))
        self.aux_logits = [self.aux(h)] if self.training else []
        return self.head(h)


def test_aux_head_loss_trains_the_aux_head_in_both_paths() -> None:
    data = load_data("sklearn:iris")
    splits = make_folds(data.y_numpy, 2, seed=0)
    training = TrainConfig(epochs=2, batch_size=16, device="cpu")
    cpu = torch.device("cpu")

    def nets() -> list[AuxNet]:
        torch.manual_seed(0)
        return [AuxNet(), AuxNet()]

    for weight in (0.0, 0.5):
        models = nets()
        before = models[0].aux.weight.clone()
        fit_fold(models[0], data, *splits[0], training=training, seed=0, device=cpu,
                 options=FitOptions(aux_weight=weight))
        assert torch.equal(models[0].aux.weight, before) == (weight == 0.0)
    models = nets()
    before = models[1].aux.weight.clone()
    fit_folds_parallel(models, data, splits, training=training, seeds=[0, 1], device=cpu,
                       n_used=75, aux_weight=0.5)
    assert not torch.equal(models[1].aux.weight, before)  # materialized after training


def test_non_finite_loss_and_memory_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    data = load_data("sklearn:iris")
    wild = TrainConfig(epochs=3, optimizer="sgd", lr=1e30, momentum=0.9, batch_size=16)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at fold 0, epoch \d"):
        cross_validate(MLP, data, folds=2, training=wild, parallel=False)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise MemoryError("simulated")

    monkeypatch.setattr(cv_module, "fit_fold", boom)
    with pytest.raises(DeviceOutOfMemoryError, match="reduce batch_size"):
        cross_validate(MLP, data, folds=2, training=TrainConfig(epochs=1), parallel=False)


def test_train_config_from_dict_and_bad_input() -> None:
    cfg = TrainConfig.from_dict({"parallel": True, "augment": {"flip": 0.5},
                                 "schedule": "onecycle", "patience": 3})
    assert cfg.parallel == "on" and cfg.augment.flip == 0.5
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg  # YAML round trip
    with pytest.raises(UnknownNameError, match="Did you mean 'label_smoothing'"):
        TrainConfig.from_dict({"label_smooth": 0.1}, "studies/x.yaml")
    with pytest.raises(UnknownNameError, match="onecycle"):
        TrainConfig.from_dict({"schedule": "one_cycle"})
    data = load_data("sklearn:iris")
    with pytest.raises(ConfigError, match="flat features"):
        cross_validate(MLP, data, folds=2, training=TrainConfig(augment=AugmentConfig(flip=1)))
    with pytest.raises(ConfigError, match="folds"):
        cross_validate(MLP, data.subset(np.arange(0, 150, 10)), folds=6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("arch,spec", [(CNN, "sklearn:digits"), (MLP, "sklearn:breast_cancer")])
def test_fold_parallel_matches_sequential_on_cuda(arch: ArchConfig, spec: str) -> None:
    """vmap (CNN) and stacked layers (MLP) on the GPU train as sequential folds do."""
    data = load_data(spec)
    training = TrainConfig(epochs=2, batch_size=64, device="cuda")
    seq = cross_validate(arch, data, folds=5, training=training, parallel=False)
    par = cross_validate(arch, data, folds=5, training=training, parallel=True)
    np.testing.assert_allclose(par.folds["val_log_loss"], seq.folds["val_log_loss"], rtol=1e-2)


@pytest.mark.parametrize("arch,spec,parallel", [(CNN, "sklearn:digits", False),
                                                (MLP, "sklearn:wine", True)])
def test_final_scores_reuse_the_last_epochs_validation_pass(
        arch: ArchConfig, spec: str, parallel: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """The weights do not change after the last epoch: its validation probabilities are the
    final ones, so the rows are scored once per epoch plus once for the training part."""
    data = load_data(spec)
    if spec == "sklearn:digits":
        data = data.subset(np.arange(300))
    rows: list[int] = []
    module = parallel_module if parallel else fit_module

    if parallel:
        real = parallel_module._predict

        def counting(ens: Any, x_all: torch.Tensor, index: torch.Tensor, *a: Any,
                     **kw: Any) -> torch.Tensor:
            rows.append(int(index.shape[1]))
            return real(ens, x_all, index, *a, **kw)
        monkeypatch.setattr(module, "_predict", counting)
    else:
        from nasdepth.train.targets import SingleTarget
        real_p = SingleTarget.proba

        def counting_p(self: SingleTarget, model: nn.Module, x: torch.Tensor, *a: Any,
                       **kw: Any) -> torch.Tensor:
            rows.append(len(x))
            return real_p(self, model, x, *a, **kw)
        monkeypatch.setattr(SingleTarget, "proba", counting_p)
    epochs = 3
    res = cross_validate(arch, data, folds=3, epochs=epochs, seed=0, parallel=parallel,
                         training=TrainConfig(lr=0.01, batch_size=32))
    assert res.settings["parallel"] is parallel
    folds = 1 if parallel else 3  # all folds in each call, or one fold after another
    assert len(rows) == folds * (epochs + 1)  # each epoch's validation rows, then training's
    last = res.history.groupby("fold").tail(1).set_index("fold")
    np.testing.assert_allclose(res.folds.set_index("fold")["val_accuracy"],
                               last["val_accuracy"])


def test_fold_stacks_switch_modes_only_when_the_mode_changes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``Module.train()`` walks every submodule; once per step it was 6% of a stacked MLP's
    CV (``cProfile``). The stack now switches between training and evaluation per epoch."""
    data = load_data("sklearn:wine")
    calls = [0]
    real = nn.Module.train

    def counting(self: nn.Module, mode: bool = True) -> nn.Module:
        calls[0] += 1
        return real(self, mode)
    monkeypatch.setattr(nn.Module, "train", counting)
    epochs, bs = 3, 8
    res = cross_validate(MLP, data, folds=3, epochs=epochs, seed=0, parallel=True,
                         training=TrainConfig(lr=0.01, batch_size=bs))
    steps = epochs * (int(res.folds["n_train"].min()) // bs)
    modules = sum(1 for _ in build_model(MLP, data.input_shape, data.num_classes).modules())
    # per epoch: into training, into evaluation (recursing through every module); plus the
    # fold models' own set-up, far fewer than one walk per step
    assert calls[0] < steps * modules / 2


@pytest.mark.parametrize("parallel", [False, True])
def test_the_progress_bar_shows_every_epoch_and_changes_nothing(
        parallel: bool, capsys: pytest.CaptureFixture) -> None:
    """The bar the commands that train outside a study show (diagnose, export): one tick per
    fold and epoch, the fold and accuracy beside it; the scores and the engine as without."""
    from nasdepth.train.progress import EpochProgress

    data = load_data("sklearn:iris")
    arch = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=16),))
    training = TrainConfig(epochs=3, batch_size=16)
    plain = cross_validate(arch, data, folds=2, seed=0, training=training, parallel=parallel)
    bar = EpochProgress(2, 3, "demo", disable=False)
    shown = cross_validate(arch, data, folds=2, seed=0, training=training, parallel=parallel,
                           hooks=[bar])
    line = str(bar.bar)  # what the terminal shows at the end
    bar.close()
    assert "demo" in capsys.readouterr().err
    assert "6/6" in line and "fold=2/2" in line and "acc=" in line, line
    assert shown.settings["parallel"] is parallel
    assert shown.folds["val_accuracy"].tolist() == plain.folds["val_accuracy"].tolist()


@pytest.mark.parametrize("optimizer", ["adamw", "sgd", "sgd-plain"])
def test_direct_steps_equal_the_optimizer_bit_for_bit(optimizer: str) -> None:
    """DirectStep calls the fused AdamW or SGD kernel without Optimizer.step's Python: the
    weights match opt.step() exactly, through a changing rate (a schedule), a step where a
    frozen part has no gradient (it falls back to opt.step() on the same state) and
    per-group rates."""
    from nasdepth.train.step import DirectStep

    torch.manual_seed(0)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))

    def run(direct: bool) -> tuple[list[torch.Tensor], DirectStep]:
        torch.manual_seed(1)
        net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        body, head = list(net[:2].parameters()), list(net[3].parameters())
        groups = [{"params": body, "lr": 1e-3}, {"params": head, "lr": 1e-2}]
        opt: torch.optim.Optimizer
        if optimizer == "adamw":
            opt = torch.optim.AdamW(groups, weight_decay=1e-2, fused=True)
        else:
            momentum = 0.9 if optimizer == "sgd" else 0.0
            opt = torch.optim.SGD(groups, momentum=momentum, nesterov=momentum > 0,
                                  weight_decay=1e-2, fused=True)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=12)
        step = DirectStep(opt)
        for i in range(12):
            for p in body:  # a frozen body on steps 4 and 5 (gradual unfreezing)
                p.requires_grad_(i not in (4, 5))
            step.zero_grad()
            nn.functional.cross_entropy(net(x), y).backward()
            step.step() if direct else opt.step()
            sched.step()
        return [p.detach().clone() for p in net.parameters()], step

    want, _ = run(direct=False)
    got, step = run(direct=True)
    assert step.lists is not None  # the kernel was called directly after the first step
    assert all(torch.equal(a, b) for a, b in zip(want, got, strict=True))
