"""Train one fresh model on one fold.

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

from nasdepth.data import Dataset, Standardizer
from nasdepth.train.config import TrainConfig
from nasdepth.train.hooks import TrainHook
from nasdepth.train.metrics import classification_metrics


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class FoldResult:
    row: dict[str, Any]  # one row of the CV table
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per epoch
    traces: list[dict[str, Any]] = field(default_factory=list)  # what hooks returned


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device
                   ) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                               weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    # the fused kernel does one pass over all tensors: much less per-step overhead
    fused = device.type in ("cpu", "cuda")
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    model.eval()
    out = [torch.softmax(model(x[i:i + batch_size]).float(), dim=1)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out)


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
) -> FoldResult:
    """Train ``model`` on ``train_idx`` and score it on ``val_idx`` (standardized with
    statistics of the training part only)."""
    start = time.perf_counter()
    x_tr, y_tr = data.x[train_idx].to(device), data.y[train_idx].to(device)
    x_va, y_va = data.x[val_idx].to(device), data.y[val_idx].to(device)
    scaler = Standardizer.fit(x_tr)
    x_tr, x_va = scaler(x_tr), scaler(x_va)

    model.to(device)
    opt = make_optimizer(model, training, device)
    n, bs = len(x_tr), training.batch_size
    # a last batch of one sample breaks BatchNorm in training mode: drop it
    steps = n // bs + (1 if n % bs > 1 else 0)
    sched = None
    if training.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=training.epochs * steps)
    gen = torch.Generator().manual_seed(seed)
    for hook in hooks:
        hook.on_fit_start(model, fold, x_tr, y_tr)
    history = []
    for epoch in range(training.epochs):
        model.train()
        perm = torch.randperm(n, generator=gen).to(device)
        total = torch.zeros((), device=device)
        for s in range(steps):
            idx = perm[s * bs:(s + 1) * bs]
            loss = F.cross_entropy(model(x_tr[idx]), y_tr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            for hook in hooks:
                hook.after_backward(model, loss)
            opt.step()
            for hook in hooks:
                hook.after_step(model)
            if sched is not None:
                sched.step()
            total += loss.detach() * len(idx)
        train_loss = float(total) / (steps and min(n, steps * bs))  # one host sync per epoch
        if not math.isfinite(train_loss):
            raise NonFiniteLossError(f"non-finite loss at fold {fold}, epoch {epoch}")
        proba_va = predict_proba(model, x_va)
        val_loss = float(F.nll_loss(torch.log(proba_va.clamp_min(1e-7)), y_va))
        val_acc = float((proba_va.argmax(1) == y_va).float().mean())
        record = {"fold": fold, "epoch": epoch, "train_loss": train_loss,
                  "val_loss": val_loss, "val_accuracy": val_acc}
        history.append(record)
        for hook in hooks:
            hook.on_epoch_end(model, fold, record)

    row: dict[str, Any] = {"fold": fold, "n_train": len(train_idx), "n_val": len(val_idx)}
    for split, x, y in (("train", x_tr, y_tr), ("val", x_va, y_va)):
        proba = predict_proba(model, x).cpu().numpy().astype(np.float64)
        for name, value in classification_metrics(y.cpu().numpy(), proba,
                                                  data.num_classes).items():
            row[f"{split}_{name}"] = value
    row["gap_accuracy"] = row["train_accuracy"] - row["val_accuracy"]
    row["epochs"] = training.epochs
    row["seconds"] = time.perf_counter() - start
    traces = [t for t in (hook.on_fit_end(model, fold) for hook in hooks) if t is not None]
    return FoldResult(row=row, history=history, traces=traces)
