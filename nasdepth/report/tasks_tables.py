"""The tables of a multitask study's report section, computed from the trial records and the
study's stored single-task baselines (drawn in :mod:`nasdepth.report.multitask`): per-task
scores, score against ``branch_at``, sharing against single-task, flagged tasks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from nasdepth.report.stats import corrected_resampled_ttest
from nasdepth.report.tables import StudyTables

SCORE_COLUMNS = ["trial", "branch_at", "head_depth", "task", "mean", "std", "verdict"]
DATA_LIMITED = "data_limited_plateau"


def is_multitask(st: StudyTables) -> bool:
    return any(isinstance(r.multitask, dict) for r in st.records.values())


def task_scores(st: StudyTables) -> pd.DataFrame:
    """One row per complete trial and task: its ``branch_at``, head depth, CV score mean and
    std, and that task's verdict."""
    rows = []
    done = set(st.complete["trial"].astype(int)) if not st.trials.empty else set()
    for number, rec in sorted(st.records.items()):
        mt = rec.multitask
        if number not in done or not isinstance(mt, dict):
            continue
        verdicts = {t: d.get("verdict") for t, d in
                    ((mt.get("diagnosis") or {}).get("tasks") or {}).items()}
        for task, s in (mt.get("scores") or {}).items():
            rows.append({"trial": number, "branch_at": mt.get("branch_at"),
                         "head_depth": mt.get("head_depth"), "task": task,
                         "mean": s.get("mean"), "std": s.get("std"),
                         "verdict": verdicts.get(task)})
    return pd.DataFrame(rows, columns=SCORE_COLUMNS)


def branch_table(scores: pd.DataFrame, maximize: bool = True) -> pd.DataFrame:
    """Per ``branch_at`` and task: the best trial's score, the mean over trials, the count."""
    if scores.empty:
        return pd.DataFrame(columns=["branch_at", "task", "best", "mean", "trials"])
    g = scores.dropna(subset=["mean"]).groupby(["branch_at", "task"])["mean"]
    out = pd.DataFrame({"best": g.max() if maximize else g.min(), "mean": g.mean(),
                        "trials": g.size()}).reset_index()
    return out.sort_values(["task", "branch_at"], kind="mergesort").reset_index(drop=True)


def sharing_table(baselines: dict[str, Any] | None, metric: str = "val_accuracy",
                  maximize: bool = True) -> pd.DataFrame:
    """Per task: multitask and single-task means over the shared folds, their paired
    difference (multitask − single), the Nadeau–Bengio corrected t-test and a reading."""
    cols = ["task", "multitask", "single", "difference", "p_value", "folds", "reading"]
    if not isinstance(baselines, dict) or not baselines.get("folds"):
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(baselines["folds"])
    if metric not in long:
        return pd.DataFrame(columns=cols)
    rows = []
    for task, part in long.groupby("task", sort=False):
        mt = part[part["mode"] == "multitask"].sort_values("fold")
        single = part[part["mode"] == "single"].sort_values("fold")
        shared = sorted(set(mt["fold"]) & set(single["fold"]))
        a = mt.set_index("fold").loc[shared, metric].astype(float).to_numpy()
        b = single.set_index("fold").loc[shared, metric].astype(float).to_numpy()
        p = math.nan
        if len(shared) >= 2 and "n_train" in part and "n_val" in part:
            test = corrected_resampled_ttest(a, b, n_train=float(part["n_train"].mean()),
                                             n_test=float(part["n_val"].mean()))
            p = test.p_value
        # rounded: equal scores must read as equal, not as a 1e-17 lead
        diff = round(float(np.mean(a - b)), 10) if len(shared) else math.nan
        better = diff > 0 if maximize else diff < 0
        if not math.isfinite(p) or p >= 0.05:
            reading = "no clear difference" + (" (sharing ahead)" if better and diff else
                                               " (alone ahead)" if diff else "")
        else:
            reading = "sharing helps" if better else "negative transfer"
        rows.append({"task": task, "multitask": float(np.mean(a)) if len(a) else math.nan,
                     "single": float(np.mean(b)) if len(b) else math.nan, "difference": diff,
                     "p_value": p, "folds": len(shared), "reading": reading})
    return pd.DataFrame(rows, columns=cols)


def sharing_folds(baselines: dict[str, Any] | None, metric: str = "val_accuracy"
                  ) -> pd.DataFrame:
    """The per-fold scores behind :func:`sharing_table` (task, mode, fold, score)."""
    if not isinstance(baselines, dict) or not baselines.get("folds"):
        return pd.DataFrame(columns=["task", "mode", "fold", "score"])
    long = pd.DataFrame(baselines["folds"])
    if metric not in long:
        return pd.DataFrame(columns=["task", "mode", "fold", "score"])
    return long[["task", "mode", "fold", metric]].rename(columns={metric: "score"})


def flagged_tasks(scores: pd.DataFrame, best_trial: int | None) -> pd.DataFrame:
    """Tasks the best trial's diagnosis calls data-limited (their labels carry no signal for
    this model and the shallow baseline)."""
    if scores.empty or best_trial is None:
        return pd.DataFrame(columns=["task", "mean", "verdict"])
    own = scores[(scores["trial"] == best_trial) & (scores["verdict"] == DATA_LIMITED)]
    return own[["task", "mean", "verdict"]].reset_index(drop=True)


def best_trial(st: StudyTables) -> int | None:
    scored = st.scored
    if scored.empty:
        return None
    order = scored.sort_values("cv_mean", ascending=not st.maximize, kind="mergesort")
    return int(order.iloc[0]["trial"])
