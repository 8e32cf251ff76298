"""The depth analysis's figures, drawn from the tables of :mod:`nasdepth.report.depth`."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from nasdepth.report.figures import TALL, WIDE, finish, fmt_int, plt, sns


def probe_figure(curves: pd.DataFrame, saturated: pd.DataFrame) -> Figure | None:
    """Linear-probe validation accuracy against unit index (stem = 1), one line per featured
    candidate (the best per depth), the saturation point of each marked."""
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=TALL)
    groups = list(curves.groupby(["depth", "trial"], sort=True))
    colors = sns.color_palette("viridis", len(groups))
    for ((depth, trial), g), color in zip(groups, colors, strict=True):
        g = g.sort_values("unit")
        ax.plot(g["unit"] + 1, g["val_accuracy"], "o-", color=color, ms=3,
                label=f"depth {fmt_int(float(depth))} (trial {int(trial)})")
        sat = saturated[(saturated["trial"] == trial)]
        if not sat.empty:
            ax.plot(int(sat["unit"].iloc[0]) + 1, float(sat["reached"].iloc[0]), "s",
                    mfc="none", mec="black", ms=9)
    return finish(fig, ax, {"fontsize": 8, "loc": "lower right"},
                  title="Linear probe accuracy per block (squares: 97% of the final probe "
                  "reached)", xlabel="unit (1 = stem, then blocks in forward order)",
                  ylabel="probe validation accuracy")


def training_error_figure(table: pd.DataFrame) -> Figure | None:
    """Final training and validation error against depth, per family (block x skip)."""
    if table.empty or table.groupby(["block", "skip"]).size().max() < 2:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    groups = list(table.groupby(["block", "skip"], sort=True, dropna=False))
    colors = sns.color_palette("tab10", len(groups))
    for ((block, skip), g), color in zip(groups, colors, strict=True):
        g = g.sort_values("depth")
        label = f"{block}, skip {skip}"
        ax.errorbar(g["depth"].astype(float), g["train_error"], yerr=g["train_se"], fmt="o-",
                    color=color, capsize=3, label=f"{label}: training")
        ax.plot(g["depth"].astype(float), g["val_error"], "x--", color=color,
                label=f"{label}: validation")
    ax.set_xscale("log", base=2)
    return finish(fig, ax, {"fontsize": 7, "loc": "best"}, title="Final training error (solid) "
                  "and validation error (dashed) against depth", xlabel="depth (blocks)",
                  ylabel="error (1 - accuracy)")


def width_error_figure(table: pd.DataFrame, dd: dict[str, Any] | None) -> Figure | None:
    """Final training and validation error against width (log scale), the interpolation
    threshold (the first width that fits its training labels) as a vertical line and the
    validation error's peak, where :func:`~nasdepth.report.depth.double_descent` finds one,
    circled."""
    if len(table) < 3:
        return None
    t = table.sort_values("width")
    w = t["width"].astype(float)
    fig, ax = plt.subplots(figsize=WIDE)
    ax.plot(w, t["train_error"], "o-", label="training error (the labels it fitted)")
    ax.plot(w, t["val_error"], "s-", label="validation error")
    if dd and dd.get("threshold") is not None:
        ax.axvline(float(dd["threshold"]), color="gray", ls="--",
                   label=f"interpolation threshold (width {fmt_int(float(dd['threshold']))})")
    if dd and dd.get("double_descent"):
        ax.plot(float(dd["peak"]), float(dd["peak_error"]), "o", mfc="none", mec="red", ms=14,
                label=f"validation error peak (width {fmt_int(float(dd['peak']))})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(w), [fmt_int(x) for x in w])
    ax.minorticks_off()
    return finish(fig, ax, {"fontsize": 8, "loc": "best"},
                  title="Final training and validation error against width", xlabel="width",
                  ylabel="error (1 - accuracy)")
