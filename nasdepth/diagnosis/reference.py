"""The reference network: a small, known-good learner for the input's rank, as a control.

A shallow model at chance shows only that *shallow* models see nothing. Deep networks exist for
the data whose signal they cannot see (a texture anywhere in an image, a motif at any offset,
an interaction of features), so before a plateau is blamed on the data, a network that could
see such signal must fail too. The reference is that network:

- images (C x H x W): a residual + BatchNorm CNN (4 residual blocks of 3x3 kernels, width 16,
  then 32 at stride 2) with global average pooling;
- sequences (C x L): its 1-D twin;
- flat features: a residual + BatchNorm MLP (2 residual blocks of width 128).

It is trained through ``nasdepth.train.cross_validate`` on exactly the diagnosed run's splits
with a sound recipe (:func:`reference_training`; epochs from :func:`reference_epochs`, so a
small data set still settles and a large one is not trained longer than it needs). A reference
stopped by its ``budget`` says so (``ran: False``) and cannot back a "data-limited" verdict
(:mod:`nasdepth.diagnosis.capable` says ``undecided`` instead).

It runs only when a verdict would otherwise be data-limited (``diagnose`` asks for it then),
and a study runs it at most once for its splits (every trial's diagnosis reads the result).
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from torch import nn

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset, Splits
from nasdepth.diagnosis.baseline import _z
from nasdepth.train import TrainConfig, TrainHook, cross_validate

#: seconds the reference may take per diagnosis (``diagnose(..., reference_budget=...)``,
#: a study's ``diagnosis: {reference_budget: ...}``); 0 turns the reference off
REFERENCE_BUDGET = 300.0
#: optimizer steps per fold the epochs aim at
TARGET_STEPS = 240
MIN_EPOCHS, MAX_EPOCHS = 6, 40
#: early stopping: epochs without a better validation loss
PATIENCE = 4
BATCH_SIZE = 64


def reference_arch(input_shape: tuple[int, ...] | list[int]) -> tuple[ArchConfig, str]:
    """The reference network for inputs of ``input_shape`` (without the batch dimension), and
    its name in words."""
    rank = len(input_shape)
    if rank in (2, 3):
        stages = [{"block": "residual", "depth": 2, "width": 16, "norm": "batch",
                   "activation": "relu", "kernel_size": 3},
                  {"block": "residual", "depth": 2, "width": 32, "norm": "batch",
                   "activation": "relu", "kernel_size": 3, "stride": 2}]
        arch = ArchConfig.from_dict({"stages": stages, "skip": True, "init": "kaiming",
                                     "head_pool": "avg"})
        kind = "2-D" if rank == 3 else "1-D"
        return arch, f"residual+BatchNorm {kind} CNN (4 blocks, width 16-32, global pooling)"
    arch = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 128,
                                             "norm": "batch", "activation": "relu"}],
                                 "skip": True, "init": "kaiming"})
    return arch, "residual+BatchNorm MLP (2 blocks, width 128)"


def reference_epochs(n_train: int, batch_size: int = BATCH_SIZE) -> int:
    """Epochs for about :data:`TARGET_STEPS` steps per fold, within the bounds."""
    steps = max(1, math.ceil(n_train / batch_size))
    return max(MIN_EPOCHS, min(MAX_EPOCHS, math.ceil(TARGET_STEPS / steps)))


def reference_training(n_train: int, rank: int, device: str = "auto") -> TrainConfig:
    """AdamW, a cosine schedule and early stopping on the validation loss. The CNNs train at
    the rate a range test picks (``lr: auto``); the MLP at 1e-2 without weight decay (the
    range test's picks for it scattered from 5e-5 to 0.1 on the flat ground truth and left it
    at chance where lr 1e-2 learned)."""
    auto = rank in (2, 3)
    return TrainConfig(optimizer="adamw", lr=1e-3 if auto else 1e-2, lr_auto=auto,
                       weight_decay=1e-4 if auto else 0.0, batch_size=BATCH_SIZE,
                       schedule="cosine", patience=PATIENCE, epochs=reference_epochs(n_train),
                       device=device).validate("reference")


class _OverBudget(Exception):
    pass


class _Clock(TrainHook):
    """Stops training once ``budget`` seconds have passed since ``start``."""

    def __init__(self, start: float, budget: float) -> None:
        self.start, self.budget = start, budget

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        if time.perf_counter() - self.start > self.budget:
            raise _OverBudget


def run_reference(data: Dataset, splits: Splits, *, seed: int = 0,
                  budget: float = REFERENCE_BUDGET, device: str = "auto",
                  model_seconds: float | None = None) -> dict[str, Any]:
    """Train the reference network on ``splits``; its pooled validation accuracy, skill above
    chance (the training folds' majority class), z-score, size and cost in ``seconds``
    (and, with ``model_seconds``, as a multiple of the diagnosed run's). ``ran`` is False
    where the budget was 0 or ran out (``reason`` says which)."""
    arch, name = reference_arch(tuple(data.input_shape))
    n_train = min(len(tr) for tr, _ in splits)
    training = reference_training(n_train, len(tuple(data.input_shape)), device)
    out: dict[str, Any] = {"name": name, "arch": arch.to_dict(), "splits": splits.digest,
                           "budget": budget, "epochs_max": training.epochs,
                           "depth": sum(s.depth for s in arch.stages)}
    if budget <= 0:
        return {**out, "ran": False, "reason": "turned off (reference budget 0)",
                "seconds": 0.0}
    start = time.perf_counter()
    try:
        result = cross_validate(arch, data, cv=splits, seed=seed, training=training,
                                hooks=[_Clock(start, budget)], source="the reference network")
    except _OverBudget:
        seconds = round(time.perf_counter() - start, 3)
        return {**out, "ran": False, "seconds": seconds,
                "reason": f"over budget: stopped after {seconds:.0f} s (budget {budget:g} s)"}
    seconds = round(time.perf_counter() - start, 3)
    folds = result.folds
    y = data.y_numpy
    hits_chance = n_val = 0
    for tr, va in splits:
        majority = int(np.bincount(y[tr]).argmax())
        hits_chance += int((y[va] == majority).sum())
        n_val += len(va)
    chance = hits_chance / max(1, n_val)
    acc = float((folds["val_accuracy"] * folds["n_val"]).sum() / folds["n_val"].sum())
    skill = (acc - chance) / (1 - chance) if chance < 1 else 0.0
    out.update({"ran": True, "seconds": seconds, "val_accuracy": acc,
                "chance_accuracy": chance, "n_val": n_val, "skill": skill,
                "z": _z(acc, chance, n_val), "lr": float(result.settings.get("training", {})
                                                            .get("lr", training.lr)),
                "params": int(folds["params"].iloc[0]) if "params" in folds else None,
                "epochs": [int(e) for e in folds.get("epochs", [])]
                if "epochs" in folds else None})
    if model_seconds:
        out["model_seconds"] = round(float(model_seconds), 3)
        out["cost_ratio"] = round(seconds / float(model_seconds), 2)
    return out
