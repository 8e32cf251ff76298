"""The report's "Screening" section: how the screen's order (:mod:`nasdepth.study.screen`)
compares with the cross-validated scores the trials then measured. The data
(:func:`screen_frame`, :func:`screen_summary`) apart from its words (:func:`screening_section`).
"""

from __future__ import annotations

from typing import Any

import optuna
import pandas as pd
from optuna.trial import TrialState

from nasdepth.report.document import Para, Section
from nasdepth.report.document import Table as Tab
from nasdepth.study.screen import SCREEN_ATTR


def screen_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per screened candidate: its parameters, screen score and rank, and the first
    complete trial of those parameters (its number, CV score and CV rank); empty where the
    study was not screened."""
    screen = study.user_attrs.get(SCREEN_ATTR) or {}
    rows = screen.get("rows") or []
    if not rows:
        return pd.DataFrame()
    done = sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                  key=lambda t: t.number)
    maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
    out = []
    for row in rows:
        trial = next((t for t in done if t.params == row["params"]), None)
        out.append({"candidate": ", ".join(f"{k}={v}" for k, v in row["params"].items()),
                    "screen rank": int(row["rank"]) + 1, "screen score": row["score"],
                    "trial": None if trial is None else trial.number,
                    "cv score": None if trial is None else float(trial.values[0])})
    frame = pd.DataFrame(out).sort_values("screen rank").reset_index(drop=True)
    frame["cv rank"] = frame["cv score"].rank(ascending=not maximize, method="min")
    return frame


def screen_summary(frame: pd.DataFrame, screen: dict[str, Any]) -> dict[str, Any]:
    """Spearman's rank correlation of screen and CV scores, the CV rank of the screen's first
    candidate, and the screen rank of the CV's best (over the candidates with both)."""
    both = frame.dropna(subset=["screen score", "cv score"])
    out: dict[str, Any] = {"candidates": len(frame), "compared": len(both),
                           "epochs": screen.get("epochs"), "seconds": screen.get("seconds")}
    if len(both) >= 2:
        out["spearman"] = float(both["screen rank"].corr(both["cv rank"], method="spearman"))
    if not both.empty:
        out["first_cv_rank"] = int(both.iloc[0]["cv rank"])
        out["best_screen_rank"] = int(both.loc[both["cv rank"].idxmin(), "screen rank"])
    return out


def screening_section(study: optuna.Study) -> Section | None:
    frame = screen_frame(study)
    if frame.empty:
        return None
    screen = study.user_attrs[SCREEN_ATTR]
    s = screen_summary(frame, screen)
    text = (f"Before the first trial, {s['candidates']} candidates trained on split 0 for "
            f"{s['epochs']} epochs ({s['seconds']:.1f} s) and were queued in the order of "
            f"that screen (docs/studies.md, \"Screening\"). The trials' results do not depend "
            f"on the order; the order decides how soon a good one is in.")
    if "first_cv_rank" in s:
        text += (f" The screen's first candidate ranks {s['first_cv_rank']} of "
                 f"{s['compared']} by CV; the CV's best was the screen's number "
                 f"{s['best_screen_rank']}")
        text += (f"; Spearman's rank correlation of the two orders is {s['spearman']:.2f}."
                 if "spearman" in s else ".")
    shown = frame.copy()
    for col in ("screen score", "cv score"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    for col in ("trial", "cv rank"):
        shown[col] = shown[col].map(lambda v: "" if pd.isna(v) else str(int(v)))
    return Section("Screening", [Para(text), Tab(shown, "Candidates in the screen's order")])
