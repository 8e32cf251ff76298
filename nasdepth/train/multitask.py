"""Multitask results (one :class:`~nasdepth.train.candidate.MultitaskCandidate` cross-validated
by ``cross_validate``) in the forms reports and diagnoses read.

The fold table keeps one row per fold. Each task's metrics are columns prefixed with the task
name (``digit.val_accuracy``, ``parity.gap_log_loss``, ...); the plain columns
(``val_accuracy``, ...) hold the mean over the tasks. ``task_frame`` gives the long form (one
row per fold and task, a ``task`` column), what reports tabulate; ``task_view`` one task's side
as a single-task ``CVResult``.
"""

from __future__ import annotations

import pandas as pd

from nasdepth.errors import UnknownNameError
from nasdepth.train.cv import CVResult

__all__ = ["task_frame", "task_view"]

#: the per-fold columns that are not metrics (copied into each task's long-form row)
FOLD_COLUMNS = ("fold", "n_train", "n_val", "epochs", "stopped_early", "seconds", "params",
                "repeat")


def task_frame(folds: pd.DataFrame) -> pd.DataFrame:
    """The fold table in long form: one row per fold and task with a ``task`` column and the
    plain metric names (``val_accuracy``, ...), plus ``weight`` (the task's final loss
    weight). A single-task table comes back with no ``task`` rows (empty)."""
    tasks = list(dict.fromkeys(c.split(".", 1)[0] for c in folds.columns if "." in c))
    keep = [c for c in FOLD_COLUMNS if c in folds.columns]
    return pd.DataFrame([{"task": t, **{c: r[c] for c in keep},
                          **{c.split(".", 1)[1]: r[c] for c in folds.columns
                             if c.startswith(f"{t}.")}}
                         for _, r in folds.iterrows() for t in tasks])


def task_view(result: CVResult, task: str) -> CVResult:
    """One task's side of a multitask run as a single-task ``CVResult``: its metrics under the
    plain column names, its per-epoch losses, its probe traces (the path stem -> shared
    blocks -> its branch and head). What the per-task diagnosis reads."""
    prefix = f"{task}."
    if not any(c.startswith(prefix) for c in result.folds.columns):
        tasks = sorted({c.split(".", 1)[0] for c in result.folds.columns if "." in c})
        raise UnknownNameError("the multitask result", "task", task, tasks)

    def side(df: pd.DataFrame) -> pd.DataFrame:
        own = {c: c[len(prefix):] for c in df.columns if c.startswith(prefix)}
        keep = [c for c in df.columns if "." not in c and c not in own.values()]
        return pd.concat([df[keep], df[list(own)].rename(columns=own)], axis=1)

    return CVResult(
        folds=side(result.folds), history=side(result.history), arch=result.arch,
        data=result.data, settings={**result.settings, "task": task},
        traces=[t for t in result.traces if t.get("task") == task])
