"""Train one fresh model on one fold (the sequential path): data placement, batches, the
epochs with validation and early stopping, the final scores; each batch's step is
:class:`~nasdepth.train.step.TrainStep`'s, the same step the fold-parallel path takes.

Speed: the fold's tensors live on the device, batches are slices of a seeded ``randperm``,
the running loss stays a device tensor, and the host syncs once per epoch. Data that does not
fit on the device is streamed from the host instead (:mod:`nasdepth.train.stream`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from nasdepth.data import Dataset, Standardizer, augment_batch
from nasdepth.train.config import TrainConfig
from nasdepth.train.hooks import TrainHook, timed
from nasdepth.train.host_memory import keep_freed_memory
from nasdepth.train.loop import (
    OOM_ERRORS,
    EarlyStopper,
    NonFiniteLossError,
    autocast,
    batch_plan,
    fold_perm,
    frozen_norms_eval,
    resolve_precision,
)
from nasdepth.train.step import LRGroups, TrainStep
from nasdepth.train.stream import (
    ChunkSampler,
    HostRows,
    PlanSampler,
    fit_standardizer,
    host_loader,
    resolve_placement,
)
from nasdepth.train.targets import SINGLE, SingleTarget, eval_rows, predict_proba

__all__ = ["FitOptions", "FoldResult", "NonFiniteLossError", "eval_rows", "fit_fold",
           "predict_proba"]

log = logging.getLogger("nasdepth.train")


@dataclass
class FoldResult:
    row: dict[str, Any]  # one row of the CV table
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    traces: list[dict[str, Any]] = field(default_factory=list)  # what hooks returned


def use_channels_last(training: TrainConfig, input_shape: tuple[int, ...],
                      device: torch.device) -> bool:
    """Channels-last pays for 2-D CNNs on CPU (measured 1.1-1.3x) and CUDA."""
    if len(input_shape) != 3 or training.channels_last == "off":
        return False
    return training.channels_last == "on" or device.type in ("cpu", "cuda")


def epoch_record(fold: int, epoch: int, train: dict[str, float], val: dict[str, float],
                 lr: float, tasks: bool) -> dict[str, Any]:
    """One row of a fold's per-epoch history from its training and validation scores (both
    loops write it here; several ``tasks``: each task's columns too). A non-finite training
    loss stops the run."""
    if not all(math.isfinite(v) for k, v in train.items() if k.endswith("train_loss")):
        raise NonFiniteLossError(f"non-finite loss at fold {fold}, epoch {epoch}")
    record = {"fold": fold, "epoch": epoch, "train_loss": train["train_loss"],
              "train_accuracy": train["train_accuracy"], "val_loss": val["val_loss"],
              "val_accuracy": val["val_accuracy"], "lr": lr}
    if tasks:
        record.update({**train, **val, **record})
    return record


def fold_result(fold: int, scores: Sequence[tuple[str, np.ndarray, np.ndarray]], *,
                n_train: int, n_val: int, num_classes: int, epochs: int, seconds: float,
                model: nn.Module, hooks: Sequence[TrainHook], history: list[dict[str, Any]],
                targets: SingleTarget = SINGLE, precision: str = "fp32") -> FoldResult:
    """A fold's row of the CV table (metrics of each ``(split, labels, probabilities)``, gaps,
    the epochs ``history`` ran of ``epochs``, time) and what the hooks return at its end (both
    loops finish here). The hooks' end-of-fit passes run in the fold's resolved ``precision``,
    as its scoring passes do (a probe's forward pass over the rows in bf16 where the fold
    trained so; a numerical fit inside turns autocast off)."""
    row: dict[str, Any] = {"fold": fold, "n_train": n_train, "n_val": n_val}
    row.update(targets.metrics(scores, model, num_classes))
    row.update(epochs=len(history), stopped_early=len(history) < epochs, seconds=seconds)
    traces: list[dict[str, Any]] = []
    device = next(model.parameters(), torch.empty(0)).device
    for hook in hooks:
        with autocast(device, precision):
            got: Any = timed(hook, hook.on_fit_end, model, fold)
        traces.extend(got if isinstance(got, list) else [] if got is None else [got])
    return FoldResult(row=row, history=history, traces=traces)


@dataclass
class _OnDevice:
    """A fold's rows copied to the device once (the fast path)."""

    x_tr_raw: torch.Tensor
    x_tr: torch.Tensor  # the batches' source: standardized, or raw where batches are augmented
    y_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: torch.Tensor
    scaler: Standardizer


def _on_device(data: Dataset, y: torch.Tensor, train_idx: np.ndarray, val_idx: np.ndarray,
               device: torch.device, augment: bool, memory: torch.memory_format,
               standardize: bool = True) -> _OnDevice:
    x_tr_raw = data.x[torch.as_tensor(train_idx)].to(device)
    y_tr = y[torch.as_tensor(train_idx)].to(device)
    # training part only: validation never leaks in
    scaler = Standardizer.fit(x_tr_raw) if standardize else identity_scaler(device)
    x_va = scaler(data.x[torch.as_tensor(val_idx)].to(device))
    y_va = y[torch.as_tensor(val_idx)].to(device)
    x_tr = x_tr_raw if augment else scaler(x_tr_raw)
    if memory != torch.contiguous_format:
        x_tr, x_va = x_tr.contiguous(memory_format=memory), x_va.contiguous(memory_format=memory)
    return _OnDevice(x_tr_raw, x_tr, y_tr, x_va, y_va, scaler)


def identity_scaler(device: torch.device) -> Standardizer:
    """A standardization that changes nothing (``fit_fold(..., standardize=False)``)."""
    return Standardizer(torch.zeros((), device=device), torch.ones((), device=device))


@dataclass(frozen=True)
class FitOptions:
    """The rest of what one fold's training takes (beyond ``fit_fold``'s own parameters).

    ``test_idx``: the held-out test rows, scored at the end. ``n_used``: samples per epoch (a
    seeded subset of the training part; the CV driver sets the smallest fold's size so that
    every fold takes the same steps). ``placement``: ``device`` or ``stream``, already
    decided (the CV driver decides once for all folds); None or ``auto``: decided here from
    ``training.data_placement`` and logged; with ``data_placement: auto``, a fold whose data
    runs out of device memory on the way in is streamed instead.

    What the candidate contributes (:meth:`nasdepth.train.candidate.Candidate.fold`):
    ``targets``: the labels and loss (None: ``data.y``, one task; see
    :mod:`nasdepth.train.targets`); ``aux_weight``: auxiliary heads' share of the loss;
    ``lr_groups``: (parameters, learning-rate factor) groups for the optimizer (transfer
    learning: a pre-trained body at a fraction of the head's rate; frozen parameters get no
    optimizer state, :mod:`nasdepth.train.transfer`). ``standardize`` False
    feeds the rows as they are (a frozen body's cached features, which its head was
    pre-trained on unstandardized). ``on_epoch(epoch)`` runs before each epoch (gradual
    unfreezing changes ``requires_grad`` there).
    """

    test_idx: np.ndarray | None = None
    n_used: int | None = None
    placement: str | None = None
    targets: SingleTarget | None = None
    aux_weight: float = 0.0
    lr_groups: LRGroups | None = None
    standardize: bool = True
    on_epoch: Callable[[int], None] | None = None


def fit_fold(
    model: nn.Module,
    data: Dataset,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    training: TrainConfig,
    seed: int,
    device: torch.device,
    fold: int = 0,
    hooks: Sequence[TrainHook] = (),
    options: FitOptions | None = None,
) -> FoldResult:
    """Train ``model`` on ``train_idx`` and score it on ``val_idx`` (and
    ``options.test_idx``), standardized with statistics of the training part only; the fold
    trains one model after another (the sequential engine). ``fold``: its number (hooks and
    the history see it). ``options``: see :class:`FitOptions`.
    """
    opts = options or FitOptions()
    keep_freed_memory(device)  # no page faults per step on a CPU
    training = replace(training, precision=resolve_precision(training.precision, device, model))
    test_idx, placement = opts.test_idx, opts.placement
    targets = opts.targets or SINGLE
    labels = targets.labels(data)  # (N,) or, for several tasks, (N, T)
    start = time.perf_counter()
    n_test = 0 if test_idx is None else len(test_idx)
    if placement in (None, "auto"):
        placement = resolve_placement(
            placement or training.data_placement, data, device, len(train_idx), len(val_idx),
            n_test, fold=fold, level=logging.INFO if fold == 0 else logging.DEBUG)
    augment = training.augment.enabled
    channels_last = use_channels_last(training, data.input_shape, device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    if placement not in ("device", "stream"):
        raise ValueError(f"placement must be auto, device or stream, not {placement!r}")
    placed: _OnDevice | None = None
    if placement == "device":
        try:
            placed = _on_device(data, labels, train_idx, val_idx, device, augment, memory,
                                opts.standardize)
        except OOM_ERRORS:
            if training.data_placement != "auto":
                raise
            log.warning("fold %d: the data ran out of memory on %s; streaming it from the host",
                        fold, device)
        if placed is None and device.type == "cuda":  # after the except: its frames are gone
            torch.cuda.empty_cache()
    # streamed: rows stay on the host (pinned for the GPU); only batches and chunks move
    rows = HostRows(data.x, labels, pin=device.type == "cuda" and not data.x.is_cuda)
    if placed is not None:
        scaler, y_va = placed.scaler, placed.y_va
    else:
        scaler = (fit_standardizer(data.x, train_idx, device) if opts.standardize  # training rows
                  else identity_scaler(device))
        y_va = labels[torch.as_tensor(val_idx)].to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.to(device)
    n = len(train_idx)
    plan = batch_plan(min(n, opts.n_used or n), training.batch_size)
    step = TrainStep(model, training, device, len(plan), hooks=hooks,
                     aux_weight=opts.aux_weight,
                     compiled=torch.compile(model) if training.compile else None,
                     lr_groups=opts.lr_groups)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed) if augment else None
    stopper = EarlyStopper(training.patience, training.min_delta)
    sampler = PlanSampler(train_idx, plan, gen)  # streamed: the same draws from ``gen``

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This epoch's batches: standardized unless augmentation comes first."""
        if placed is not None:
            perm = fold_perm(n, plan[-1][1], gen).to(device)
            for a, b in plan:
                idx = perm[a:b]
                yield placed.x_tr[idx], placed.y_tr[idx]
            return
        for xb, yb in host_loader(rows, sampler):  # the same rows in the same order
            xb = xb.to(device, non_blocking=True).contiguous(memory_format=memory)
            yb = yb.to(device, non_blocking=True)
            yield (xb if aug_gen is not None else scaler(xb)), yb

    def proba(index: np.ndarray, x: torch.Tensor | None) -> torch.Tensor:
        """Probabilities of rows on the device (``x``), else of host rows ``index`` a chunk
        at a time (streamed: only a chunk is on the device)."""
        if x is not None:
            return targets.proba(model, x, training.precision)
        return torch.cat([targets.proba(model, scaler(xb.to(device, non_blocking=True))
                                        .contiguous(memory_format=memory), training.precision)
                          for xb, _ in host_loader(rows, ChunkSampler(index, 1024))])

    if hooks and placed is not None:
        x_hook, y_hook = (scaler(placed.x_tr_raw) if augment else placed.x_tr), placed.y_tr
    elif hooks:  # streamed: the standardized training rows on the host (the device lacks room)
        host = Standardizer(scaler.mean.cpu(), scaler.std.cpu())
        x_hook = host(data.x[torch.as_tensor(train_idx)].cpu())
        y_hook = labels[torch.as_tensor(train_idx)].cpu()
    for hook in hooks:
        timed(hook, hook.on_fit_start, model, fold, x_hook, y_hook)
    history = []
    # the last epoch's validation probabilities: the weights do not change after it, so the
    # final scores reuse them instead of a second pass over the validation rows
    last_va: torch.Tensor | None = None
    for epoch in range(training.epochs):
        if opts.on_epoch is not None:
            opts.on_epoch(epoch)
        model.train()
        frozen_norms_eval(model)  # a frozen part keeps its running statistics
        targets.start_epoch(step)
        for xb, yb in batches():
            if aug_gen is not None:  # training batches only, before standardization
                xb = scaler(augment_batch(xb, training.augment, aug_gen))
                xb = xb.contiguous(memory_format=memory)
            targets.train(step, xb, yb)
        train = targets.train_scores(step, plan[-1][1])[0]  # one host sync per epoch
        last_va = proba(val_idx, None if placed is None else placed.x_va)
        record = epoch_record(fold, epoch, train, targets.val_scores(model, last_va, y_va),
                              step.lr, bool(targets.tasks))
        history.append(record)
        for hook in hooks:
            timed(hook, hook.on_epoch_end, model, fold, record)
        if stopper.step(record["val_loss"]):
            break

    parts: list[tuple[str, np.ndarray, torch.Tensor | None]] = [
        ("train", train_idx, None), ("val", val_idx, None)]
    if placed is not None:
        x_eval = (scaler(placed.x_tr_raw).contiguous(memory_format=memory) if augment
                  else placed.x_tr)
        parts = [("train", train_idx, x_eval), ("val", val_idx, placed.x_va)]
    if test_idx is not None and len(test_idx):
        x_te = None
        if placed is not None:
            x_te = scaler(data.x[torch.as_tensor(test_idx)].to(device))
            x_te = x_te.contiguous(memory_format=memory)
        parts.append(("test", test_idx, x_te))
    scores = [(split, labels[torch.as_tensor(index)].cpu().numpy(),
               (last_va if split == "val" and last_va is not None else proba(index, x))
               .cpu().numpy()) for split, index, x in parts]
    return fold_result(fold, scores, n_train=len(train_idx), n_val=len(val_idx),
                       num_classes=data.num_classes, epochs=training.epochs,
                       seconds=time.perf_counter() - start,
                       model=model, hooks=hooks, history=history, targets=targets,
                       precision=training.precision)
