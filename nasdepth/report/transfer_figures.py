"""Figures of the report's "Transfer" section, drawn from the tables of
:mod:`nasdepth.report.transfer` (nothing is computed here)."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from nasdepth.report.figures import WIDE, finish, metric_label, plt, sns
from nasdepth.train.config import TRANSFER_MODES  # in the order the report lists them


def mode_figure(trials: pd.DataFrame, metric: str) -> Figure | None:
    if trials.empty:
        return None
    order = [m for m in TRANSFER_MODES if m in set(trials["mode"])]
    fig, ax = plt.subplots(figsize=WIDE)
    sns.stripplot(data=trials, x="mode", y="cv_mean", order=order, ax=ax, size=6, jitter=0.15)
    return finish(fig, ax, title="CV score by transfer mode", xlabel="mode",
                  ylabel=metric_label(metric))


def blocks_figure(by_blocks: pd.DataFrame, metric: str) -> Figure | None:
    if by_blocks.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    x = list(range(len(by_blocks)))
    ax.errorbar(x, by_blocks["cv_mean"], yerr=by_blocks["cv_std"].fillna(0), marker="o",
                capsize=3)
    ax.set_xticks(x, [str(v) for v in by_blocks["trainable_blocks"]])
    return finish(fig, ax, title="Best CV score by trainable top blocks",
                  xlabel="trainable blocks", ylabel=metric_label(metric))


def curve_figure(curve: pd.DataFrame, metric: str) -> Figure | None:
    if curve.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    for mode in [m for m in TRANSFER_MODES if m in set(curve["mode"])]:
        part = curve[curve["mode"] == mode].sort_values("n_train")
        ax.errorbar(part["n_train"], part["score"], yerr=part["std"].fillna(0), marker="o",
                    capsize=3, label=mode)
    return finish(fig, ax, {"fontsize": 8}, title="Learning curve per transfer mode",
                  xlabel="training samples per fold", ylabel=metric_label(metric))
