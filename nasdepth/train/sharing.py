"""Does sharing help? A multitask network against the same architecture trained on each task
alone (:func:`single_task_baselines`), on the same folds, and the score of every task against
``branch_at`` (:func:`branch_sweep`); both as tidy tables (one row per fold and task) for the
report to compare and draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from nasdepth.arch.multitask import MultitaskConfig
from nasdepth.data import CVConfig, Dataset, Splits, resolve_cv
from nasdepth.train.config import TrainConfig
from nasdepth.train.cv import cross_validate
from nasdepth.train.multitask import task_frame

#: the columns each row keeps besides every metric column (those present)
KEEP = ("task", "fold", "n_train", "n_val", "epochs", "seconds", "params")
METRIC_PREFIXES = ("train_", "val_", "gap_", "test_")


def _keep(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in KEEP if c in df.columns]
    cols += [c for c in df.columns if c.startswith(METRIC_PREFIXES)]
    return df[cols].reset_index(drop=True)


def single_task_baselines(cfg: MultitaskConfig, data: Dataset, *,
                          cv: CVConfig | Splits | None = None, folds: int = 5, seed: int = 0,
                          training: TrainConfig | None = None,
                          multitask_folds: Sequence[dict[str, Any]] | pd.DataFrame | None = None,
                          ) -> pd.DataFrame:
    """Each task of ``cfg`` trained alone (``cfg.single(task)``: the same stem, blocks and
    head, a fresh network per fold with the same seeds, on the same folds) next to its
    multitask scores: one row per ``mode`` (``multitask`` or ``single``), ``task`` and
    ``fold``. ``multitask_folds``:
    the multitask run's fold table where it exists already (else it is trained here)."""
    splits = resolve_cv(cv, data, folds=folds, seed=seed)
    if multitask_folds is None:
        mt = cross_validate(cfg, data, cv=splits, seed=seed, training=training).folds
    else:
        mt = pd.DataFrame(list(multitask_folds)) if not isinstance(
            multitask_folds, pd.DataFrame) else multitask_folds
    parts = [_keep(task_frame(mt)).assign(mode="multitask")]
    for task in cfg.tasks:
        alone = cross_validate(cfg.single(task), data, cv=splits, seed=seed,
                                         training=training)
        parts.append(_keep(task_frame(alone.folds)).assign(mode="single"))
    return pd.concat(parts, ignore_index=True)


def branch_sweep(cfg: MultitaskConfig, data: Dataset, branch_at: Sequence[int], *,
                 cv: CVConfig | Splits | None = None, folds: int = 5, seed: int = 0,
                 training: TrainConfig | None = None) -> pd.DataFrame:
    """``cfg`` cross-validated at every ``branch_at`` (0 .. depth) on the same folds: one row
    per ``branch_at``, ``task`` and ``fold``."""
    splits = resolve_cv(cv, data, folds=folds, seed=seed)
    parts = []
    for b in branch_at:
        res = cross_validate(replace(cfg, branch_at=int(b)), data, cv=splits,
                                       seed=seed, training=training)
        parts.append(_keep(task_frame(res.folds)).assign(branch_at=int(b)))
    return pd.concat(parts, ignore_index=True)
