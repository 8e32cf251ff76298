"""Train one fresh model on one fold (the sequential path; every hook call happens here).

Speed: the fold's tensors live on the device, batches are slices of a seeded ``randperm``,
the running loss stays a device tensor, and the host syncs once per epoch.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.data import Dataset, Standardizer, augment_batch
from nasdepth.train.config import TrainConfig
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import (
    EarlyStopper,
    NonFiniteLossError,
    autocast,
    batch_plan,
    fold_perm,
    grad_scaler,
    make_optimizer,
    make_schedule,
)
from nasdepth.train.metrics import add_gaps, metric_row

__all__ = ["FoldResult", "NonFiniteLossError", "fit_fold", "predict_proba"]


@dataclass
class FoldResult:
    row: dict[str, Any]  # one row of the CV table
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    traces: list[dict[str, Any]] = field(default_factory=list)  # what hooks returned


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 1024,
                  precision: str = "fp32") -> torch.Tensor:
    model.eval()
    with autocast(x.device, precision):
        out = [torch.softmax(model(x[i:i + batch_size]).float(), dim=1)
               for i in range(0, len(x), batch_size)]
    return torch.cat(out)


def use_channels_last(training: TrainConfig, input_shape: tuple[int, ...],
                      device: torch.device) -> bool:
    """Channels-last pays for 2-D CNNs on CPU (measured 1.1-1.3x) and CUDA."""
    if len(input_shape) != 3 or training.channels_last == "off":
        return False
    return training.channels_last == "on" or device.type in ("cpu", "cuda")


def aux_loss(model: nn.Module, y: torch.Tensor, weight: float, smoothing: float
             ) -> torch.Tensor | None:
    """``weight * cross_entropy`` of every auxiliary head's logits (``model.aux_logits``)."""
    aux = getattr(model, "aux_logits", None)
    if not weight or not aux:
        return None
    losses = [F.cross_entropy(a.float(), y, label_smoothing=smoothing) for a in aux]
    return weight * torch.stack(losses).sum()


def epoch_record(fold: int, epoch: int, train_loss: float, train_acc: float,
                 proba_va: torch.Tensor, y_va: torch.Tensor, lr: float) -> dict[str, Any]:
    val_loss = float(F.nll_loss(torch.log(proba_va.clamp_min(1e-7)), y_va))
    val_acc = float((proba_va.argmax(1) == y_va).float().mean())
    return {"fold": fold, "epoch": epoch, "train_loss": train_loss,
            "train_accuracy": train_acc, "val_loss": val_loss, "val_accuracy": val_acc,
            "lr": lr}


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
    test_idx: np.ndarray | None = None,
    n_used: int | None = None,
    aux_weight: float = 0.0,
) -> FoldResult:
    """Train ``model`` on ``train_idx`` and score it on ``val_idx`` (and ``test_idx``),
    standardized with statistics of the training part only.

    ``n_used``: samples per epoch (a seeded subset of the training part; cross_validate sets
    the smallest fold's size so that every fold takes the same steps).
    """
    start = time.perf_counter()
    x_tr_raw = data.x[torch.as_tensor(train_idx)].to(device)
    y_tr = data.y[torch.as_tensor(train_idx)].to(device)
    scaler = Standardizer.fit(x_tr_raw)  # training part only: validation never leaks in
    x_va = scaler(data.x[torch.as_tensor(val_idx)].to(device))
    y_va = data.y[torch.as_tensor(val_idx)].to(device)
    augment = training.augment.enabled
    x_tr = x_tr_raw if augment else scaler(x_tr_raw)
    channels_last = use_channels_last(training, data.input_shape, device)
    memory = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x_tr, x_va = x_tr.contiguous(memory_format=memory), x_va.contiguous(memory_format=memory)
    model.to(device)
    net = torch.compile(model) if training.compile else model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, training, device)
    n = len(x_tr)
    plan = batch_plan(min(n, n_used or n), training.batch_size)
    sched = make_schedule(opt, training, len(plan))
    amp = grad_scaler(device, training.precision)
    gen = torch.Generator().manual_seed(seed)
    aug_gen = torch.Generator(device=device).manual_seed(seed) if augment else None
    stopper = EarlyStopper(training.patience, training.min_delta)
    for hook in hooks:
        hook.on_fit_start(model, fold, scaler(x_tr_raw) if augment else x_tr, y_tr)
    history = []
    epochs_run = 0
    for epoch in range(training.epochs):
        model.train()
        perm = fold_perm(n, plan[-1][1], gen).to(device)
        total = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        for a, b in plan:
            idx = perm[a:b]
            xb, yb = x_tr[idx], y_tr[idx]
            if aug_gen is not None:  # training batches only, before standardization
                xb = scaler(augment_batch(xb, training.augment, aug_gen))
                xb = xb.contiguous(memory_format=memory)
            with autocast(device, training.precision):
                out = net(xb)
                loss = F.cross_entropy(out.float(), yb, label_smoothing=training.label_smoothing)
                extra = aux_loss(model, yb, aux_weight, training.label_smoothing)
            full = loss if extra is None else loss + extra
            opt.zero_grad(set_to_none=True)
            (full if amp is None else amp.scale(full)).backward()
            for hook in hooks:
                hook.after_backward(model, loss)
            if training.grad_clip:
                if amp is not None:
                    amp.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, training.grad_clip)
            if amp is None:
                opt.step()
            else:
                amp.step(opt)
                amp.update()
            for hook in hooks:
                hook.after_step(model)
            if sched is not None:
                sched.step()
            total.add_(loss.detach(), alpha=b - a)
            correct.add_((out.detach().argmax(1) == yb).sum())
        seen = plan[-1][1]
        train_loss = float(total) / seen  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(f"non-finite loss at fold {fold}, epoch {epoch}")
        proba_va = predict_proba(model, x_va, precision=training.precision)
        record = epoch_record(fold, epoch, train_loss, float(correct) / seen, proba_va, y_va,
                              float(opt.param_groups[0]["lr"]))
        history.append(record)
        epochs_run = epoch + 1
        for hook in hooks:
            hook.on_epoch_end(model, fold, record)
        if stopper.step(record["val_loss"]):
            break

    row: dict[str, Any] = {"fold": fold, "n_train": len(train_idx), "n_val": len(val_idx)}
    x_eval = scaler(x_tr_raw).contiguous(memory_format=memory) if augment else x_tr
    parts = [("train", x_eval, y_tr), ("val", x_va, y_va)]
    if test_idx is not None and len(test_idx):
        x_te = scaler(data.x[torch.as_tensor(test_idx)].to(device))
        y_te = data.y[torch.as_tensor(test_idx)]
        parts.append(("test", x_te.contiguous(memory_format=memory), y_te))
    for split, x, y in parts:
        proba = predict_proba(model, x, precision=training.precision).cpu().numpy()
        row.update(metric_row(split, y.cpu().numpy(), proba, data.num_classes))
    add_gaps(row)
    row["epochs"] = epochs_run
    row["stopped_early"] = epochs_run < training.epochs
    row["seconds"] = time.perf_counter() - start
    traces = [t for t in (hook.on_fit_end(model, fold) for hook in hooks) if t is not None]
    return FoldResult(row=row, history=history, traces=traces)
