"""The k folds of one candidate trained at once, as one vectorized ensemble (how and when:
``docs/data_and_training.md``, "Fold-parallel training").

MLPs run as stacked layers (:mod:`nasdepth.train.stacked`), CNNs on a CPU as grouped
convolutions (:mod:`nasdepth.train.grouped`); any other model through
``vmap(functional_call)`` over the parameters and buffers ``torch.func.stack_module_state``
stacks, each fold on its own batch, with its own BatchNorm running statistics (buffers batched
with ``in_dims=0``: leaving them unbatched fails under vmap). The step is the sequential path's
(:class:`~nasdepth.train.step.TrainStep` with the fold stack); early stopping keeps per-fold
snapshots. Hooks see each fold's own ``nn.Module``, whose tensors are views of its slices
(:class:`~nasdepth.train.stacked.FoldStack`); per-step hooks that cannot take the folds
interleaved make the engine go sequential (:func:`needs_sequential`).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from nasdepth.data import Dataset, Standardizer, augment_batch
from nasdepth.train.config import TrainConfig
from nasdepth.train.fit import FoldResult, epoch_record, eval_rows, fold_result
from nasdepth.train.grouped import group_folds
from nasdepth.train.hooks import TrainHook, steps_each_fold, timed
from nasdepth.train.host_memory import keep_freed_memory
from nasdepth.train.loop import (
    EarlyStopper,
    autocast,
    batch_plan,
    fold_perm,
    resolve_precision,
)
from nasdepth.train.stacked import FoldStack, StackedFolds, can_stack
from nasdepth.train.step import TrainStep
from nasdepth.train.targets import SINGLE, SingleTarget

Tensors = dict[str, torch.Tensor]


def needs_sequential(hooks: Sequence[TrainHook]) -> bool:
    """A hook that declares it needs folds one after another, or that has per-step calls but
    cannot take the folds' models interleaved (``steps_in_parallel`` False), goes sequential."""
    return any(h.needs_per_fold_model or (steps_each_fold(h) and not h.steps_in_parallel)
               for h in hooks)


class FoldEnsemble(FoldStack):
    """k models with identical structure as stacked tensors plus one stateless template."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        self.models = [m.to(device) for m in models]
        self.params, self.buffers = stack_module_state(list(self.models))
        self._bind()
        # a weightless copy: functional_call swaps the stacked slices in for every call
        self.template: Any = copy.deepcopy(self.models[0]).to("meta")

        def call(p: Tensors, b: Tensors, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
            out = functional_call(self.template, (p, b), (x,))
            # auxiliary heads: the model stores their logits during the forward pass; return
            # them from inside vmap, where they are still per-fold batched tensors
            aux = getattr(self.template, "aux_logits", None) or []
            return (out, *aux)

        self.forward = vmap(call, in_dims=(0, 0, 0), randomness="different")
        self._mode: bool | None = None  # the mode ``template`` was last put in (None: not yet)

    def __call__(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        if self._mode is not train:  # ``train()`` walks every module: only when it changes
            self.template.train(train)
            self._mode = train
        out = self.forward(self.params, self.buffers, x)
        if hasattr(self.template, "aux_logits"):
            self.template.aux_logits = []  # drop references to vmap-internal tensors
        return out


def make_ensemble(models: Sequence[nn.Module], device: torch.device,
                  input_shape: Sequence[int], stacking: str = "auto"
                  ) -> FoldStack:
    """Stacked layers where every stateful layer has a stacked twin (MLPs), grouped
    convolutions for a CNN on a CPU where its layers keep each fold's channels together
    (:mod:`nasdepth.train.grouped`), else vmap."""
    if stacking == "auto" and can_stack(models[0], input_shape):
        return StackedFolds(models, device)
    if stacking == "auto" and device.type == "cpu":
        grouped = group_folds(models, device, input_shape)
        if grouped is not None:
            return grouped
    return FoldEnsemble(models, device)


def _padded(indices: Sequence[np.ndarray], device: torch.device) -> torch.Tensor:
    """(k, M) index matrix, short rows padded with their first index (each fold's own rows
    are its first ``len(indices[f])``)."""
    m = max(len(i) for i in indices)
    idx = np.stack([np.concatenate([i, np.full(m - len(i), i[0])]) for i in indices])
    return torch.as_tensor(idx, device=device)


def fit_folds_parallel(
    models: Sequence[nn.Module],
    data: Dataset,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    training: TrainConfig,
    seeds: Sequence[int],
    device: torch.device,
    hooks: Sequence[TrainHook] = (),
    test_idx: np.ndarray | None = None,
    n_used: int,
    aux_weight: float = 0.0,
    stacking: str = "auto",
    targets: SingleTarget | None = None,
) -> list[FoldResult]:
    """Train fold k's fresh ``models[k]`` on ``splits[k]`` for every k at once; the same
    batches, initialization and updates as :func:`fit_fold` per fold.

    ``stacking``: ``auto`` runs MLPs as stacked layers (:mod:`nasdepth.train.stacked`, grouped
    matmuls) and everything else through ``vmap``; ``vmap`` forces the latter. ``targets``:
    the labels and loss, as in :class:`~nasdepth.train.fit.FitOptions` (several tasks: a
    multitask network's ``{task: logits}`` comes out of ``vmap`` with a fold dimension)."""
    start = time.perf_counter()
    k = len(models)
    keep_freed_memory(device)  # no page faults per step on a CPU
    targets = targets or SINGLE
    labels = targets.labels(data)
    x_all, y_all = data.x.to(device), labels.to(device)
    scalers = [Standardizer.fit(x_all[torch.as_tensor(tr, device=device)]) for tr, _ in splits]
    mean = torch.stack([s.mean for s in scalers])[:, None]  # (k, 1, *feature dims)
    std = torch.stack([s.std for s in scalers])[:, None]
    ens = make_ensemble(models, device, data.input_shape, stacking)
    training = replace(training, precision=resolve_precision(
        training.precision, device, models[0], stacked=k > 1 and isinstance(ens, StackedFolds)))
    plan = batch_plan(n_used, training.batch_size)
    # hooks with per-step calls all take the folds interleaved here (cv.py checks)
    step = TrainStep(ens, training, device, len(plan), hooks=hooks, aux_weight=aux_weight)
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    aug_gen = (torch.Generator(device=device).manual_seed(seeds[0])
               if training.augment.enabled else None)
    stoppers = [EarlyStopper(training.patience, training.min_delta) for _ in range(k)]
    active = [True] * k
    snapshots: dict[int, Tensors] = {}
    tr_t = [torch.as_tensor(tr, device=device) for tr, _ in splits]
    va_idx = _padded([va for _, va in splits], device)
    y_va = y_all[va_idx]
    history: list[list[dict[str, Any]]] = [[] for _ in range(k)]
    # each fold's validation probabilities from its last active epoch: its final weights
    # (stopped folds are restored to that epoch's snapshot), so the final scores reuse them
    va_kept: torch.Tensor | None = None
    for f in range(k):
        for hook in hooks:
            timed(hook, hook.on_fit_start, ens.materialize(f), f, scalers[f](x_all[tr_t[f]]),
                  y_all[tr_t[f]])

    def standardize(x: torch.Tensor) -> torch.Tensor:
        return (x - mean) / std

    for epoch in range(training.epochs):
        perms = torch.stack([tr_t[f][fold_perm(len(tr_t[f]), n_used, gens[f]).to(device)]
                             for f in range(k)])  # (k, n_used) sample indices
        targets.start_epoch(step)
        for a, b in plan:
            idx = perms[:, a:b]
            xb, yb = x_all[idx], y_all[idx]  # (k, B, ...), (k, B) or (k, B, T)
            if aug_gen is not None:
                xb = augment_batch(xb.flatten(0, 1), training.augment, aug_gen).view_as(xb)
            targets.train(step, standardize(xb), yb)
        train = targets.train_scores(step, plan[-1][1])  # one host sync per epoch
        proba = _predict(ens, x_all, va_idx, standardize, training, targets)
        lr = step.lr
        if va_kept is None:
            va_kept = proba.clone()
        for f in range(k):
            if not active[f]:
                continue
            va_kept[f] = proba[f]
            n_va = len(splits[f][1])
            val = targets.val_scores(ens.materialize(f), proba[f, :n_va], y_va[f, :n_va])
            record = epoch_record(f, epoch, train[f], val, lr, bool(targets.tasks))
            history[f].append(record)
            for hook in hooks:
                timed(hook, hook.on_epoch_end, ens.materialize(f), f, record)
            if stoppers[f].step(record["val_loss"]):
                # the fold keeps riding along in the batch; its stopped weights are kept
                active[f] = False
                snapshots[f] = ens.state(f)
        if not any(active):
            break
    for f, state in snapshots.items():
        ens.load(f, state)

    per_fold = (time.perf_counter() - start) / k
    results = []
    tr_idx = _padded([tr for tr, _ in splits], device)
    parts = {"train": tr_idx} if va_kept is not None else {"train": tr_idx, "val": va_idx}
    if test_idx is not None and len(test_idx):
        parts["test"] = _padded([test_idx] * k, device)
    probas = {split: _predict(ens, x_all, index, standardize, training, targets).cpu().numpy()
              for split, index in parts.items()}
    if va_kept is not None:
        probas["val"] = va_kept.cpu().numpy()
    y_np = labels.cpu().numpy()
    for f, (tr, va) in enumerate(splits):
        scores = [(split, y_np[index], probas[split][f, :len(index)])
                  for split, index in (("train", tr), ("val", va), ("test", test_idx))
                  if split in probas and index is not None]
        results.append(fold_result(
            f, scores, n_train=len(tr), n_val=len(va), num_classes=data.num_classes,
            epochs=training.epochs, seconds=per_fold,
            model=ens.materialize(f), hooks=hooks, history=history[f], targets=targets,
            precision=training.precision))
    return results


@torch.no_grad()
def _predict(ens: FoldStack, x_all: torch.Tensor, index: torch.Tensor,
             standardize: Any, training: TrainConfig, targets: SingleTarget,
             chunk: int | None = None) -> torch.Tensor:
    """Class probabilities ``(k, M, C)`` of each fold's model on its own rows of ``index``
    (``chunk`` rows per fold at a time: :data:`nasdepth.train.fit.EVAL_ROWS`)."""
    chunk = chunk or eval_rows(x_all.device)
    out = []
    for i in range(0, index.shape[1], chunk):
        x = standardize(x_all[index[:, i:i + chunk]])
        with autocast(x.device, training.precision):
            logits = ens(x, train=False)[0]
        out.append(targets.softmax(logits))
    return torch.cat(out, dim=1)
