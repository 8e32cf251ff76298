"""k-fold CV of a multitask network (:mod:`nasdepth.arch.multitask`): one joint loss, scores
per task, on the same splits as every single-task candidate.

The engine is the sequential one with the fold's data on the device: fold-parallel training
(stacked folds) and the streamed data path do not take multitask networks; a study or call
that asks for them is told so in the log and trained sequentially on the device.

The fold table keeps one row per fold. Each task's metrics are columns prefixed with the task
name (``digit.val_accuracy``, ``parity.gap_log_loss``, ...); the plain columns
(``val_accuracy``, ...) hold the mean over the tasks, so everything that reads a single-task
table (pruning, ``CVResult.mean``, report tables) reads the multitask mean. ``task_frame``
gives the long form (one row per fold and task, a ``task`` column), what reports tabulate.

Hooks see the :class:`~nasdepth.arch.MultitaskNetwork`; ``on_fit_start`` gets the ``(N, T)``
labels of every task (columns in task order), ``after_backward`` the ``(T,)`` task losses and
``on_epoch_end`` a record with the mean and each task's ``<task>.train_loss``,
``<task>.val_loss``, ``<task>.val_accuracy``. The probes' multitask hook
(:class:`nasdepth.probes.MultitaskProbeHook`) records one trace per task and fold.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from nasdepth.arch import count_parameters
from nasdepth.arch.multitask import MultitaskConfig, MultitaskNetwork, build_multitask
from nasdepth.data import CVConfig, Dataset, Splits, Standardizer, augment_batch, resolve_cv
from nasdepth.data.tasks import check_task, label_matrix
from nasdepth.errors import ConfigError
from nasdepth.train.config import TrainConfig
from nasdepth.train.cv import CVResult, FoldCallback
from nasdepth.train.device import configure_threads, resolve_device
from nasdepth.train.fit import FoldResult, eval_rows
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import EarlyStopper, NonFiniteLossError, autocast, batch_plan, fold_perm
from nasdepth.train.metrics import METRICS, add_gaps, metric_row
from nasdepth.train.step import TrainStep

__all__ = ["check_tasks", "cross_validate_multitask", "fit_fold_multitask", "task_frame",
           "task_view"]

log = logging.getLogger("nasdepth.train")

#: the per-fold columns that are not metrics (copied into each task's long-form row)
FOLD_COLUMNS = ("fold", "n_train", "n_val", "epochs", "stopped_early", "seconds", "params",
                "repeat")


def check_tasks(cfg: MultitaskConfig, data: Dataset, source: str = "the study") -> None:
    """Every task of ``cfg`` is one of ``data``'s (else the closest name)."""
    for t in cfg.tasks:
        check_task(data, t, source, "tasks")


@torch.no_grad()
def predict_tasks(model: MultitaskNetwork, x: torch.Tensor, precision: str = "fp32"
                  ) -> dict[str, torch.Tensor]:
    """Class probabilities of every task, in evaluation chunks."""
    model.eval()
    rows = eval_rows(x.device)
    parts: dict[str, list[torch.Tensor]] = {t: [] for t in model.tasks}
    with autocast(x.device, precision):
        for i in range(0, len(x), rows):
            out = model(x[i:i + rows])
            for t in model.tasks:
                parts[t].append(torch.softmax(out[t].float(), dim=1))
    return {t: torch.cat(p) for t, p in parts.items()}


def fit_fold_multitask(
    model: MultitaskNetwork,
    data: Dataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    training: TrainConfig,
    seed: int,
    device: torch.device,
    fold: int = 0,
    hooks: Sequence[TrainHook] = (),
    test_idx: np.ndarray | None = None,
    n_used: int | None = None,
) -> FoldResult:
    """Train ``model`` on ``train_idx`` with the joint loss, score every task on ``val_idx``
    (and ``test_idx``); standardized with statistics of the training part only. The batches
    are the single-task engine's (the same seeded permutation of the same plan)."""
    start = time.perf_counter()
    tasks = model.tasks
    y_all = label_matrix(data, tasks)
    tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
    x_tr_raw = data.x[tr].to(device)
    scaler = Standardizer.fit(x_tr_raw)  # training part only
    augment = training.augment.enabled
    x_tr = x_tr_raw if augment else scaler(x_tr_raw)
    y_tr, y_va = y_all[tr].to(device), y_all[va].to(device)
    x_va = scaler(data.x[va].to(device))
    model.to(device)
    n = len(train_idx)
    plan = batch_plan(min(n, n_used or n), training.batch_size)
    # the optimizer step, clipping, schedule and the hooks' per-step calls: the single-task
    # engine's own (TrainStep.update); the joint loss is this loop's
    step = TrainStep(model, training, device, len(plan), hooks=hooks)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed) if augment else None
    stopper = EarlyStopper(training.patience, training.min_delta)
    for hook in hooks:
        hook.on_fit_start(model, fold, scaler(x_tr_raw) if augment else x_tr, y_tr)
    T = len(tasks)
    history: list[dict[str, Any]] = []
    epochs_run = 0
    for epoch in range(training.epochs):
        model.train()
        total = torch.zeros(T, device=device)
        correct = torch.zeros(T, device=device, dtype=torch.long)
        perm = fold_perm(n, plan[-1][1], gen).to(device)
        for a, b in plan:
            idx = perm[a:b]
            xb, yb = x_tr[idx], y_tr[idx]
            if aug_gen is not None:
                xb = scaler(augment_batch(xb, training.augment, aug_gen))
            with autocast(device, training.precision):
                out = model(xb)
                losses = torch.stack([
                    F.cross_entropy(out[t].float(), yb[:, i],
                                    label_smoothing=training.label_smoothing)
                    for i, t in enumerate(tasks)])
                joint = model.joint_loss(losses)
            step.update(joint, losses.detach())
            total.add_(losses.detach(), alpha=b - a)
            correct.add_(torch.stack([(out[t].detach().argmax(-1) == yb[:, i]).sum()
                                      for i, t in enumerate(tasks)]))
        seen = plan[-1][1]
        train_loss = (total / seen).tolist()  # one host sync per epoch
        if not all(math.isfinite(v) for v in train_loss):
            raise NonFiniteLossError(f"non-finite loss at fold {fold}, epoch {epoch}")
        train_acc = (correct.float() / seen).tolist()
        proba = predict_tasks(model, x_va, training.precision)
        record: dict[str, Any] = {"fold": fold, "epoch": epoch}
        val_loss, val_acc = [], []
        for i, t in enumerate(tasks):
            p = proba[t]
            vl = float(F.nll_loss(torch.log(p.clamp_min(1e-7)), y_va[:, i]))
            vacc = float((p.argmax(1) == y_va[:, i]).float().mean())
            val_loss.append(vl)
            val_acc.append(vacc)
            record.update({f"{t}.train_loss": train_loss[i], f"{t}.train_accuracy": train_acc[i],
                           f"{t}.val_loss": vl, f"{t}.val_accuracy": vacc})
        weights = model.task_weights().tolist()
        for i, t in enumerate(tasks):
            record[f"{t}.weight"] = float(weights[i])
        record.update({"train_loss": float(np.mean(train_loss)),
                       "train_accuracy": float(np.mean(train_acc)),
                       "val_loss": float(np.mean(val_loss)),
                       "val_accuracy": float(np.mean(val_acc)),
                       "lr": step.lr})
        history.append(record)
        epochs_run = epoch + 1
        for hook in hooks:
            hook.on_epoch_end(model, fold, record)
        # the mean of the tasks' validation losses: no task's weight (learned or fixed)
        # decides when every task stops
        if stopper.step(record["val_loss"]):
            break

    parts: list[tuple[str, np.ndarray, torch.Tensor]] = [
        ("train", train_idx, scaler(x_tr_raw)), ("val", val_idx, x_va)]
    if test_idx is not None and len(test_idx):
        parts.append(("test", test_idx, scaler(data.x[torch.as_tensor(test_idx)].to(device))))
    row: dict[str, Any] = {"fold": fold, "n_train": len(train_idx), "n_val": len(val_idx)}
    per_task: dict[str, dict[str, float]] = {t: {} for t in tasks}
    for split, index, x in parts:
        proba = predict_tasks(model, x, training.precision)
        for i, t in enumerate(tasks):
            y = y_all[torch.as_tensor(index), i].numpy()
            per_task[t].update(metric_row(split, y, proba[t].cpu().numpy(),
                                          model.num_classes[t]))
    for t in tasks:
        add_gaps(per_task[t])
    for key in per_task[tasks[0]]:  # the plain columns: the mean over tasks
        row[key] = float(np.mean([per_task[t][key] for t in tasks]))
    weights = model.task_weights().tolist()
    for i, t in enumerate(tasks):
        row.update({f"{t}.{k}": v for k, v in per_task[t].items()})
        row[f"{t}.weight"] = float(weights[i])
    row["epochs"] = epochs_run
    row["stopped_early"] = epochs_run < training.epochs
    row["seconds"] = time.perf_counter() - start
    traces: list[dict[str, Any]] = []
    for hook in hooks:
        got: Any = hook.on_fit_end(model, fold)
        if isinstance(got, dict):
            traces.append(got)
        elif isinstance(got, list):  # a multitask probe hook: one trace per task
            traces.extend(got)
    return FoldResult(row=row, history=history, traces=traces)


def _engine_notes(training: TrainConfig, parallel: str | bool | None) -> TrainConfig:
    """Multitask training runs sequentially with the data on the device: say so where the
    settings ask for something else, and fall back."""
    mode = training.parallel if parallel is None else parallel
    if mode in ("on", True):
        log.info("multitask networks train folds sequentially (fold-parallel training takes "
                 "single-task networks only)")
    if training.data_placement == "stream":
        log.warning("multitask networks keep the fold's data on the device (the streamed data "
                    "path takes single-task networks only)")
    if training.compile:
        log.info("multitask networks are not compiled (compile: on ignored)")
    if training.lr_auto:
        log.warning("lr: auto (the range test) takes single-task networks only; multitask "
                    "training uses lr %g", training.lr)
    return training


def cross_validate_multitask(
    cfg: MultitaskConfig,
    data: Dataset,
    *,
    folds: int = 5,
    epochs: int | None = None,
    seed: int = 0,
    training: TrainConfig | None = None,
    on_fold: FoldCallback | None = None,
    hooks: Sequence[TrainHook] = (),
    cv: CVConfig | Splits | None = None,
    parallel: str | bool | None = None,
    source: str = "the study",
) -> CVResult:
    """``cross_validate`` for a multitask network: a fresh network per fold (seeded
    ``seed * 1000 + k`` as single-task folds are), the same splits as every candidate (the
    CV stratifies on ``data.stratify``), one row per fold with each task's metrics and their
    mean. ``cfg.tasks`` must be tasks of ``data``; with one task this is the single-task
    baseline of that architecture on that task."""
    cfg.validate(source)
    check_tasks(cfg, data, source)
    training = _engine_notes((training or TrainConfig()).validate().with_epochs(epochs),
                             parallel)
    resolved = resolve_cv(cv, data, folds=folds, seed=seed, source=source)
    if training.threads:
        configure_threads(threads=training.threads)
    device = resolve_device(training.device)
    training.augment.check_input(data.input_shape, source)
    num_classes = {t: (data.tasks or {})[t].num_classes for t in cfg.tasks}
    params = count_parameters(build_multitask(cfg, data.input_shape, num_classes))
    splits, test_idx = list(resolved.folds), resolved.test
    sizes = [len(tr) for tr, _ in splits]
    n_used = min(sizes) if max(sizes) - min(sizes) <= 1 else None
    seeds = [seed * 1000 + k for k in range(len(splits))]
    results: list[FoldResult] = []
    for k, (tr, va) in enumerate(splits):
        torch.manual_seed(seeds[k])
        model = build_multitask(cfg, data.input_shape, num_classes)
        result = fit_fold_multitask(model, data, tr, va, training=training, seed=seeds[k],
                                    device=device, fold=k, hooks=hooks, test_idx=test_idx,
                                    n_used=n_used)
        result.row["params"] = params
        if resolved.kind == "repeated_stratified":
            result.row["repeat"] = resolved.repeat_of(k)
        results.append(result)
        if on_fold is not None:
            on_fold(k, result.row)
    if not results:
        raise ConfigError(source, "folds", resolved.cv.folds, "a split that leaves training data")
    return CVResult(
        folds=pd.DataFrame([r.row for r in results]),
        history=pd.DataFrame([h for r in results for h in r.history]),
        arch=cfg.arch,
        data=data.to_dict(),
        settings={"folds": resolved.n_splits, "seed": seed, "cv": resolved.cv.to_dict(),
                  # with the indices: per-task diagnoses re-read these exact splits on data
                  # stratified on another task
                  "splits": resolved.to_dict(indices=True),
                  "training": training.to_dict(), "device": str(device), "parallel": False,
                  "data_placement": "device", "n_test": int(len(test_idx)), "lr_find": None,
                  "multitask": cfg.to_dict()},
        traces=[t for r in results for t in r.traces],
    )


def task_frame(folds: pd.DataFrame) -> pd.DataFrame:
    """The fold table in long form: one row per fold and task with a ``task`` column and the
    plain metric names (``val_accuracy``, ...), plus ``weight`` (the task's final loss
    weight). A single-task table comes back with no ``task`` rows (empty)."""
    tasks = list(dict.fromkeys(c.split(".", 1)[0] for c in folds.columns if "." in c))
    rows = []
    for _, r in folds.iterrows():
        for t in tasks:
            row = {"task": t, **{c: r[c] for c in FOLD_COLUMNS if c in folds.columns}}
            row.update({c.split(".", 1)[1]: r[c] for c in folds.columns
                        if c.startswith(f"{t}.")})
            rows.append(row)
    return pd.DataFrame(rows)


def task_view(result: CVResult, task: str) -> CVResult:
    """One task's side of a multitask run as a single-task ``CVResult``: its metrics under the
    plain column names, its per-epoch losses, its probe traces (the path stem -> shared
    blocks -> its branch and head). What the per-task diagnosis reads."""
    prefix = f"{task}."
    if not any(c.startswith(prefix) for c in result.folds.columns):
        tasks = sorted({c.split(".", 1)[0] for c in result.folds.columns if "." in c})
        from nasdepth.errors import UnknownNameError

        raise UnknownNameError("the multitask result", "task", task, tasks)

    def side(df: pd.DataFrame) -> pd.DataFrame:
        own = {c: c[len(prefix):] for c in df.columns if c.startswith(prefix)}
        keep = [c for c in df.columns if "." not in c and c not in own.values()]
        return pd.concat([df[keep], df[list(own)].rename(columns=own)], axis=1)

    return CVResult(
        folds=side(result.folds), history=side(result.history), arch=result.arch,
        data=result.data, settings={**result.settings, "task": task},
        traces=[t for t in result.traces if t.get("task") == task])


# every metric column a task carries (for readers that check a table's columns)
TASK_METRICS = tuple(f"{s}_{m}" for s in ("train", "val", "gap") for m in METRICS)
