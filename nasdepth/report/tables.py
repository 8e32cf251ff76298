"""Report tables, computed from the storage alone (no drawing here)."""

from __future__ import annotations

import numpy as np
import optuna
import pandas as pd

TRIAL_COLUMNS = ["trial", "state", "depth", "width", "block", "skip", "norm", "activation",
                 "params", "cv_mean", "cv_std", "folds_done", "seconds", "fail_reason"]


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: architecture summary, CV score mean and std, state and reason."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        summary = t.user_attrs.get("summary", {})
        folds = pd.DataFrame(t.user_attrs.get("cv_folds", []))
        scores = folds["val_accuracy"] if "val_accuracy" in folds else pd.Series(dtype=float)
        rows.append({
            "trial": t.number,
            "state": t.state.name,
            **{k: summary.get(k) for k in ("depth", "width", "block", "skip", "norm",
                                            "activation", "params")},
            "cv_mean": float(scores.mean()) if len(scores) else np.nan,
            "cv_std": float(scores.std(ddof=1)) if len(scores) > 1 else np.nan,
            "folds_done": len(scores),
            "seconds": t.user_attrs.get("wall_time", np.nan),
            "fail_reason": t.user_attrs.get("fail_reason", ""),
        })
    return pd.DataFrame(rows, columns=TRIAL_COLUMNS)


def top_trials(trials: pd.DataFrame, n: int = 5) -> pd.DataFrame:
    done = trials[trials["state"] == "COMPLETE"]
    return done.sort_values(["cv_mean", "params"], ascending=[False, True]).head(n)
