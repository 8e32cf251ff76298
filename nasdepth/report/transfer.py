"""The report's "Transfer" section: CV score by transfer mode and by trainable blocks, and a
learning curve (fractions of each training fold) per mode, computed from the trials' records
(``TrialRecord.transfer``); the figures are drawn from these tables in
:mod:`nasdepth.report.transfer_figures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from nasdepth.report import tables as T
from nasdepth.report.document import Block, Para, Section, add_image
from nasdepth.report.document import Table as Tab
from nasdepth.train.config import TRANSFER_MODES

FEATURE_EXTRACTION_BLOCKS = "0 (feature extraction)"


@dataclass
class TransferTables:
    """``trials``: one row per scored transfer trial (mode, blocks, factor, score, fold
    time); ``by_mode`` and ``by_blocks``: the best trial of each mode and of each count of
    trainable blocks; ``learning_curve``: per mode (its best trial), the mean validation
    score at each fraction of the training folds (1.0: the trial's own CV)."""

    trials: pd.DataFrame
    by_mode: pd.DataFrame
    by_blocks: pd.DataFrame
    learning_curve: pd.DataFrame


def _blocks_label(transfer: dict[str, Any]) -> str | None:
    mode = transfer.get("mode")
    if mode == "feature_extraction":
        return FEATURE_EXTRACTION_BLOCKS
    if mode != "fine_tune":
        return None
    n = transfer.get("trainable_blocks")
    return "all" if n is None else str(int(n))


def _best(df: pd.DataFrame, by: str, maximize: bool, order: Callable[[Any], Any]
          ) -> pd.DataFrame:
    """The best trial of each group of ``by`` with the group's trial count, the groups sorted
    by ``order`` of their value."""
    rows = []
    for key, group in sorted(df.groupby(by, sort=False), key=lambda kg: order(kg[0])):
        best = group.loc[group["cv_mean"].idxmax() if maximize else group["cv_mean"].idxmin()]
        rows.append({by: key, "trials": len(group), "best_trial": int(best["trial"]),
                     "cv_mean": float(best["cv_mean"]), "cv_std": float(best["cv_std"]),
                     "seconds_per_fold": float(best["seconds_per_fold"]),
                     "trainable_params": best["params"]})
    return pd.DataFrame(rows, columns=[by, "trials", "best_trial", "cv_mean", "cv_std",
                                       "seconds_per_fold", "trainable_params"])


def transfer_tables(st: T.StudyTables) -> TransferTables:
    """The section's tables (empty frames in a study without transfer records)."""
    rows = []
    for _, t in st.scored.iterrows():
        rec = st.records.get(int(t["trial"]))
        transfer = getattr(rec, "transfer", None)
        if not isinstance(transfer, dict) or "mode" not in transfer:
            continue
        folds = st.folds[st.folds["trial"] == t["trial"]]
        rows.append({"trial": int(t["trial"]), "mode": transfer["mode"],
                     "trainable_blocks": _blocks_label(transfer),
                     "body_lr_factor": transfer.get("body_lr_factor"),
                     "cv_mean": float(t["cv_mean"]), "cv_std": float(t["cv_std"]),
                     # the fold rows count the parameters that train
                     "params": folds["params"].iloc[0] if "params" in folds and len(folds)
                     else t["params"],
                     "seconds_per_fold": float(folds["seconds"].astype(float).mean())
                     if "seconds" in folds else math.nan})
    trials = pd.DataFrame(rows, columns=["trial", "mode", "trainable_blocks",
                                         "body_lr_factor", "cv_mean", "cv_std", "params",
                                         "seconds_per_fold"])
    if trials.empty:
        empty = pd.DataFrame()
        return TransferTables(trials, empty, empty, empty)
    rank = {mode: i for i, mode in enumerate(TRANSFER_MODES)}
    by_mode = _best(trials, "mode", st.maximize, lambda m: rank.get(m, len(rank)))
    by_blocks = _best(trials.dropna(subset=["trainable_blocks"]), "trainable_blocks",
                      st.maximize, lambda v: (v != FEATURE_EXTRACTION_BLOCKS, v == "all",
                                              int(v) if v.isdigit() else 0))
    return TransferTables(trials, by_mode, by_blocks, learning_curve_table(st, by_mode))


def learning_curve_table(st: T.StudyTables, by_mode: pd.DataFrame) -> pd.DataFrame:
    """Per mode, its best trial's mean validation score (``st.metric``) and training-part
    size at each recorded fraction of the training folds, and at 1.0 (its CV)."""
    metric = st.metric
    rows = []
    for _, best in by_mode.iterrows():
        trial = int(best["best_trial"])
        rec = st.records[trial]
        curve = pd.DataFrame((rec.transfer or {}).get("learning_curve") or [])
        parts = [(float(f), g) for f, g in curve.groupby("fraction")] if not curve.empty \
            and metric in curve else []
        parts.append((1.0, pd.DataFrame(rec.cv_folds)))  # its own CV
        for fraction, g in parts:
            scores = g[metric].astype(float) if metric in g else pd.Series(dtype=float)
            rows.append({"mode": best["mode"], "trial": trial, "fraction": fraction,
                         "n_train": float(g["n_train"].astype(float).mean())
                         if "n_train" in g else math.nan,
                         "score": float(scores.mean()) if len(scores) else math.nan,
                         "std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan})
    return pd.DataFrame(rows, columns=["mode", "trial", "fraction", "n_train", "score", "std"])


def where_extraction_ends(curve: pd.DataFrame, maximize: bool = True) -> str | None:
    """One sentence: at which fraction fine-tuning first beats feature extraction (by more
    than their pooled standard deviation), or that it never does on these fractions."""
    if curve.empty or not {"feature_extraction", "fine_tune"} <= set(curve["mode"]):
        return None
    fe = curve[curve["mode"] == "feature_extraction"].set_index("fraction")
    ft = curve[curve["mode"] == "fine_tune"].set_index("fraction")
    sign = 1.0 if maximize else -1.0
    for f in sorted(set(fe.index) & set(ft.index)):  # the fractions both have
        gap = sign * (ft.loc[f, "score"] - fe.loc[f, "score"])
        noise = np.nanmean([fe.loc[f, "std"], ft.loc[f, "std"]])
        if gap > (noise if np.isfinite(noise) else 0.0):
            return (f"Fine-tuning beats feature extraction from {f:.0%} of each training fold "
                    f"(~{ft.loc[f, 'n_train']:.0f} samples) upward: {gap:+.3f} there.")
    return ("Feature extraction is as good as fine-tuning at every fraction of the training "
            "folds tried (within a fold standard deviation).")


def transfer_section(st: T.StudyTables) -> Section | None:
    """The "Transfer" section, or None in a study without transfer trials."""
    from nasdepth.report import transfer_figures as TF

    tabs = transfer_tables(st)
    if tabs.trials.empty:
        return None
    blocks: list[Block] = []
    add_image(blocks, TF.mode_figure(tabs.trials, st.metric), "transfer_modes.png",
              "CV score of every transfer trial by mode")
    blocks.append(Tab(tabs.by_mode, "Best trial per transfer mode (seconds per fold: training "
                      "and scoring; feature extraction includes computing the features)"))
    if not tabs.by_blocks.empty:
        add_image(blocks, TF.blocks_figure(tabs.by_blocks, st.metric), "transfer_blocks.png",
                  "Best CV score by number of trainable top blocks")
        blocks.append(Tab(tabs.by_blocks, "Best trial per number of trainable blocks"))
    curve = tabs.learning_curve
    if curve["fraction"].nunique() > 1:
        add_image(blocks, TF.curve_figure(curve, st.metric), "transfer_curve.png",
                  "Learning curve per mode (its best trial, fractions of each training fold)")
        blocks.append(Tab(curve, "Learning curve per mode"))
        sentence = where_extraction_ends(curve, st.maximize)
        if sentence:
            blocks.append(Para(sentence))
    else:
        blocks.append(Para("No learning curve: add 'learning_curve: [0.25, 0.5]' to the "
                           "study's transfer: section to train each trial on fractions of "
                           "its training folds too.", "note"))
    return Section("Transfer", blocks)
