"""k-fold cross-validation: a fresh model per fold on the same seeded folds for every candidate."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd
import torch

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.data import Dataset, make_folds
from nasdepth.train.config import TrainConfig
from nasdepth.train.device import resolve_device
from nasdepth.train.fit import fit_fold
from nasdepth.train.hooks import TrainHook

FoldCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class CVResult:
    """Per-fold table (one row per fold), per-epoch history, and per-fold probe traces."""

    folds: pd.DataFrame
    history: pd.DataFrame
    arch: ArchConfig | None = None
    data: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)

    def mean(self, metric: str = "val_accuracy") -> float:
        return float(self.folds[metric].mean())

    def std(self, metric: str = "val_accuracy") -> float:
        return float(self.folds[metric].std(ddof=1)) if len(self.folds) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": records(self.folds),
            "history": records(self.history),
            "arch": None if self.arch is None else self.arch.to_dict(),
            "data": self.data,
            "settings": self.settings,
            "traces": self.traces,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CVResult:
        return cls(
            folds=pd.DataFrame(d["folds"]),
            history=pd.DataFrame(d.get("history", [])),
            arch=None if d.get("arch") is None else ArchConfig.from_dict(d["arch"]),
            data=d.get("data", {}),
            settings=d.get("settings", {}),
            traces=d.get("traces", []),
        )


def records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as JSON-ready dicts of plain Python values (floats kept exact)."""
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in df.to_dict(orient="records")]


def cross_validate(
    arch: ArchConfig,
    data: Dataset,
    *,
    folds: int = 5,
    epochs: int | None = None,
    seed: int = 0,
    training: TrainConfig | None = None,
    on_fold: FoldCallback | None = None,
    hooks: Sequence[TrainHook] = (),
) -> CVResult:
    """Train and score ``arch`` on each of ``folds`` stratified folds fixed by ``seed``.

    ``epochs`` overrides ``training.epochs``. ``on_fold(fold, row)`` runs after every fold
    (the study reports to Optuna there and may stop the trial by raising ``TrialPruned``).
    ``hooks`` see every step and epoch of every fold (probes, per-epoch pruning).
    """
    training = (training or TrainConfig()).validate()
    if epochs is not None:
        training = replace(training, epochs=epochs).validate()
    device = resolve_device(training.device)
    splits = make_folds(data.y_numpy, folds, seed)
    rows, history, traces = [], [], []
    for k, (tr, va) in enumerate(splits):
        torch.manual_seed(seed * 1000 + k)  # fresh, reproducible initialization per fold
        model = build_model(arch, data.input_shape, data.num_classes)
        result = fit_fold(model, data, tr, va, training=training, seed=seed * 1000 + k,
                          device=device, fold=k, hooks=hooks)
        result.row["params"] = count_parameters(model)
        rows.append(result.row)
        history += result.history
        traces += result.traces
        if on_fold is not None:
            on_fold(k, result.row)
    return CVResult(
        folds=pd.DataFrame(rows),
        history=pd.DataFrame(history),
        arch=arch,
        data=data.to_dict(),
        settings={"folds": folds, "seed": seed, "training": training.to_dict(),
                  "device": str(device)},
        traces=traces,
    )
