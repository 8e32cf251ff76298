"""Figures drawn from report tables (the numbers are computed in ``tables``; nothing here
computes a statistic the report states). Every function returns a matplotlib ``Figure`` sized
for the page width (about 800 px at the report's 100 dpi), or ``None`` when there is nothing to
draw."""

from __future__ import annotations

import math
from typing import Any

import matplotlib

matplotlib.use("Agg")  # headless: reports are written to files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

WIDE = (8.0, 4.2)
TALL = (8.0, 5.0)


def metric_label(metric: str) -> str:
    """``val_accuracy`` -> ``CV accuracy (fraction)``; log loss in nats."""
    name = metric.removeprefix("val_").replace("_", " ")
    unit = "nats" if "log_loss" in metric else "fraction"
    return f"CV {name} ({unit})"


def _group(df: pd.DataFrame) -> pd.Series:
    skip = df["skip"].map(lambda s: "skip ?" if pd.isna(s) else "skip on" if bool(s)
                          else "skip off")
    return df["block"].astype(str) + ", " + skip


def finish(fig: Figure, ax: Any, legend: dict[str, Any] | None = None, **labels: Any
           ) -> Figure:
    """The last steps of every figure: ``ax.set(**labels)`` (title, axis labels), the legend
    where ``legend`` gives its keyword arguments, and the layout fitted to the figure."""
    ax.set(**labels)
    if legend is not None:
        ax.legend(**legend)
    fig.tight_layout()
    return fig


def _bars(table: pd.DataFrame, y: str, x: str, color: str, int_x: bool = False,
          **labels: Any) -> Figure | None:
    """Horizontal bars, one per row of ``table``: the figure grows with the rows (None
    without rows)."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(8.0, max(2.2, 0.4 * len(table) + 1.2)))
    sns.barplot(data=table, y=y, x=x, color=color, ax=ax)
    if int_x:
        _int_x(ax)
    return finish(fig, ax, **labels)


def _int_x(ax: Any) -> None:
    """Depth is a count: integer ticks only."""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _baseline_lines(ax: Any, baselines: pd.DataFrame | None, data: pd.Series) -> None:
    """Baselines as horizontal lines. A baseline far outside the candidates' range (the
    majority class under good candidates) would squash their differences into one line: it
    stays in the legend, marked off the scale, and the axis keeps to the data."""
    if baselines is None or baselines.empty:
        return
    lo, hi = float(data.min()), float(data.max())
    span = max(hi - lo, 1e-3)
    shown = [lo, hi]
    for (_, row), style in zip(baselines.iterrows(), (":", "--", "-."), strict=False):
        value = float(row["cv_mean"])
        far = value < lo - 2 * span or value > hi + 2 * span
        keep = not far or row["model"] == "logistic regression"  # the bar to beat stays
        label = f"{row['model']} ({value:.3f}{'' if keep else ', off the scale'})"
        if keep:
            shown.append(value)
            ax.axhline(value, color="black", ls=style, lw=1, label=label)
        else:
            ax.plot([], [], color="black", ls=style, lw=1, label=label)
    pad = 0.08 * (max(shown) - min(shown) or 1e-3)
    ax.set_ylim(min(shown) - pad, max(shown) + pad)


def depth_figure(folds: pd.DataFrame, depth_tab: pd.DataFrame, metric: str,
                 baselines: pd.DataFrame | None = None) -> Figure | None:
    """Per-fold scores (dots) and the depth table's mean ± std (bars) against depth, one colour
    per block x skip group (side by side), with the baselines as horizontal lines."""
    done = folds[(folds["state"] == "COMPLETE") & folds["depth"].notna()]
    if done.empty or depth_tab.empty:
        return None
    done = done.assign(group=_group(done), score=done["score"].astype(float))
    tab = depth_tab.assign(group=_group(depth_tab))
    groups = sorted(tab["group"].unique())
    depths = sorted(float(d) for d in tab["depth"].unique())
    width = 0.6 * (min(np.diff(depths)) if len(depths) > 1 else 1.0)  # of the closest depths
    colors = sns.color_palette("tab10", len(groups))
    rng = np.random.default_rng(0)  # fixed jitter: the same study draws the same picture
    fig, ax = plt.subplots(figsize=TALL)
    for i, (group, color) in enumerate(zip(groups, colors, strict=True)):
        off = (i - (len(groups) - 1) / 2) * width / max(1, len(groups))
        g = tab[tab["group"] == group].sort_values("depth")
        pts = done[done["group"] == group]
        jitter = rng.uniform(-0.08, 0.08, len(pts)) * width / max(1, len(groups))
        ax.scatter(pts["depth"].astype(float) + off + jitter, pts["score"], s=12, alpha=0.4,
                   color=color)
        ax.errorbar(g["depth"].astype(float) + off, g["mean"], yerr=g["std"].fillna(0),
                    fmt="o-", capsize=3, color=color, label=group)
    _baseline_lines(ax, baselines, done["score"])
    ax.set_xticks(depths, [fmt_int(d) for d in depths])
    return finish(fig, ax, {"fontsize": 8, "loc": "best"},
                  title="CV score against depth (dots: folds; bars: mean ± std over folds)",
                  xlabel="depth (blocks)", ylabel=metric_label(metric))


def fmt_int(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def gap_figure(depth_tab: pd.DataFrame) -> Figure | None:
    """Mean train-minus-validation accuracy gap against depth, per block x skip group."""
    tab = depth_tab[depth_tab["gap_mean"].notna()]
    if tab.empty:
        return None
    tab = tab.assign(group=_group(tab))
    fig, ax = plt.subplots(figsize=WIDE)
    sns.lineplot(data=tab, x="depth", y="gap_mean", hue="group", marker="o", ax=ax)
    ax.axhline(0, color="grey", lw=0.8)
    _int_x(ax)
    return finish(fig, ax, {"fontsize": 8},
                  title="Generalization gap against depth (overfitting begins where it rises)",
                  xlabel="depth (blocks)", ylabel="train − validation accuracy (fraction)")


def one_se_figure(best: pd.DataFrame, threshold: float, recommended_depth: Any,
                  metric: str) -> Figure | None:
    """Best candidate per depth with ± one standard error, the one-SE threshold and the
    recommended depth."""
    if best.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    se = best["cv_se"].astype(float).fillna(0)
    ax.errorbar(best["depth"].astype(float), best["cv_mean"].astype(float), yerr=se, fmt="o-",
                capsize=4, label="best candidate at each depth (± 1 SE)")
    ax.axhline(threshold, color="tab:red", ls="--", lw=1, label=f"one-SE threshold "
               f"({threshold:.3f})")
    ax.axvline(float(recommended_depth), color="tab:green", ls=":", lw=1.5,
               label=f"recommended depth {recommended_depth}")
    _int_x(ax)
    return finish(fig, ax, {"fontsize": 8}, title="Recommended depth by the one-standard-error "
                  "rule", xlabel="depth (blocks)", ylabel=metric_label(metric))


def width_heatmap(table: pd.DataFrame, metric: str) -> Figure | None:
    """Mean CV score of the candidates in each width x depth cell."""
    if table.empty:
        return None
    grid = table.pivot(index="width", columns="depth", values="mean").sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(8.0, max(2.5, 0.55 * len(grid) + 1.5)))
    sns.heatmap(grid, annot=True, fmt=".3f", cmap="viridis", ax=ax,
                cbar_kws={"label": metric_label(metric)}, annot_kws={"fontsize": 8})
    return finish(fig, ax, title="Mean CV score by width and depth (blank: not tried)",
                  xlabel="depth (blocks)", ylabel="width (channels or units)")


def matched_figure(table: pd.DataFrame, metric: str) -> Figure | None:
    """Best score against depth within each parameter budget (labels: the width used)."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    sns.lineplot(data=table, x="depth", y="cv_mean", hue="budget", marker="o", ax=ax)
    for _, row in table.iterrows():
        ax.annotate(f"w={row['width']}", (row["depth"], row["cv_mean"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    _int_x(ax)
    return finish(fig, ax, {"title": "parameters", "fontsize": 8},
                  title="Depth against width at matched parameter counts (labels: width)",
                  xlabel="depth (blocks)", ylabel=metric_label(metric))


def block_figure(table: pd.DataFrame, metric: str) -> Figure | None:
    """Best score of each block type within each parameter budget."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    # points with the fold spread, not bars: bars start at zero and hide differences of a
    # fraction of a percent, and a difference means little without its spread
    budgets = list(dict.fromkeys(table["budget"]))
    kinds = sorted(table["block"].unique())
    colors = sns.color_palette("tab10", len(kinds))
    for i, (kind, color) in enumerate(zip(kinds, colors, strict=True)):
        rows = table[table["block"] == kind]
        x = np.array([budgets.index(b) for b in rows["budget"]], dtype=float)
        x += (i - (len(kinds) - 1) / 2) * 0.5 / max(1, len(kinds))
        ax.errorbar(x, rows["best"], yerr=rows["best_std"].astype(float).fillna(0), fmt="o",
                    capsize=4, color=color, label=kind)
    ax.set_xticks(range(len(budgets)), budgets)
    ax.set_xlim(-0.6, len(budgets) - 0.4)
    return finish(fig, ax, {"fontsize": 8}, title="Block types at matched parameter budgets "
                  "(best candidate ± std over folds)", xlabel="parameters (budget bin)",
                  ylabel=metric_label(metric))


def skip_figure(table: pd.DataFrame, metric: str) -> Figure | None:
    """Mean fold score with skip connections on and off at each depth."""
    if table.empty:
        return None
    long = table.melt(id_vars="depth", value_vars=["skip_on", "skip_off"], var_name="skip",
                      value_name="score").dropna()
    if long.empty:
        return None
    long["skip"] = long["skip"].str.replace("_", " ")
    fig, ax = plt.subplots(figsize=WIDE)
    sns.lineplot(data=long, x="depth", y="score", hue="skip", marker="o", ax=ax)
    _int_x(ax)
    return finish(fig, ax, title="Skip connections on against off at each depth",
                  xlabel="depth (blocks)", ylabel=metric_label(metric))


def pareto_figure(scored: pd.DataFrame, fronts: dict[str, pd.DataFrame],
                  metric: str) -> Figure | None:
    """CV score against parameters and FLOPs (log scale), front highlighted."""
    costs = [c for c in ("params", "flops") if c in fronts and not fronts[c].empty]
    if not costs:
        return None
    fig, axes = plt.subplots(1, len(costs), figsize=(8.0, 4.0), squeeze=False, sharey=True)
    units = {"params": "parameters (count, log scale)",
             "flops": "FLOPs per sample, forward (log scale)"}
    for ax, cost in zip(axes[0], costs, strict=True):
        ok = scored[np.isfinite(scored[cost].astype(float))]
        ax.scatter(ok[cost], ok["cv_mean"], s=18, alpha=0.5, color="grey", label="candidates")
        front = fronts[cost]
        ax.step(front[cost], front["cv_mean"], where="post", color="tab:red")
        ax.scatter(front[cost], front["cv_mean"], s=30, color="tab:red", label="Pareto front")
        ax.set_xscale("log")
        ax.set(xlabel=units[cost], title=f"Score against {cost}")
    return finish(fig, axes[0][0], {"fontsize": 8}, ylabel=metric_label(metric))


def importance_figure(table: pd.DataFrame) -> Figure | None:
    return _bars(table, "parameter", "importance", "tab:blue", title="Parameter importances",
                 xlabel="importance (fraction of total)", ylabel="parameter")


def history_figure(table: pd.DataFrame, metric: str) -> Figure | None:
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    ax.scatter(table["trial"], table["value"], s=18, label="trial")
    ax.step(table["trial"], table["best_so_far"], where="post", color="tab:red",
            label="best so far")
    _int_x(ax)
    return finish(fig, ax, {"fontsize": 8}, title="Optimization history", xlabel="trial number",
                  ylabel=f"objective: {metric_label(metric)}")


def verdict_figure(counts: pd.DataFrame) -> Figure | None:
    return _bars(counts, "verdict", "trials", "tab:purple", int_x=True,
                 title="Diagnoses: trials per verdict", xlabel="trials (count)", ylabel="verdict")


# --- evidence from a trial's probe summary -------------------------------------------------

def _block_matrix(epochs: list[dict[str, Any]], name: str) -> np.ndarray | None:
    rows: list[list[Any]] = [r for r in (e.get(name) for e in epochs) if isinstance(r, list)]
    if not rows or len(rows) != len(epochs) or not all(rows):
        return None
    width = max(len(r) for r in rows)
    mat = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        mat[i, :len(r)] = [math.nan if v is None else float(v) for v in r]
    return mat


def evidence_figure(trace: dict[str, Any], title: str) -> Figure | None:
    """Gradient RMS by block over epochs (heatmap, log10), update-to-weight ratio per block and
    the normalized losses with their baseline (1 = predicting the class frequencies), from a
    trace-shaped probe summary (``blocks`` + per-epoch ``grad_rms``/``update_ratio`` lists;
    a row's ``epoch`` numbers it where long runs were thinned, 1-based)."""
    epochs = trace.get("epochs") or []
    numbers = [int(e.get("epoch", i + 1)) for i, e in enumerate(epochs)]
    blocks = [str(b) for b in trace.get("blocks") or []]
    grad = _block_matrix(epochs, "grad_rms")
    upd = _block_matrix(epochs, "update_ratio")
    losses = {k: [math.nan if e.get(k) is None else float(e[k]) for e in epochs]
              for k in ("train_loss_norm", "val_loss_norm") if any(k in e for e in epochs)}
    panels = [p for p, ok in (("grad", grad is not None), ("upd", upd is not None),
                              ("loss", bool(losses))) if ok]
    if not panels:
        return None
    # the heatmap gets the full width (block names are long); the curves share the row below
    fig = plt.figure(figsize=(8.0, 7.0 if len(panels) > 1 else 4.0))
    grid = fig.add_gridspec(2 if len(panels) > 1 else 1, 2, height_ratios=(
        [1.1, 1.0] if len(panels) > 1 else [1.0]))
    if len(panels) == 1:
        slots = [grid[0, :]]
    elif panels[0] == "grad":
        slots = [grid[0, :], grid[1, 0], grid[1, 1]]
    else:
        slots = [grid[0, 0], grid[0, 1], grid[1, :]]
    axes = [fig.add_subplot(slot) for slot in slots[:len(panels)]]
    for ax, panel in zip(axes, panels, strict=True):
        if panel == "grad" and grad is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                logged = np.log10(np.where(grad > 0, grad, np.nan))
            labels = blocks if len(blocks) == grad.shape[1] else list(range(grad.shape[1]))
            # matplotlib's own image, not sns.heatmap: that one draws the whole figure once
            # more to see whether tick labels overlap (45% of this figure's time)
            im = ax.imshow(logged.T, aspect="auto", cmap="magma", interpolation="nearest")
            fig.colorbar(im, ax=ax, label="log10 gradient RMS")
            xs = range(0, len(numbers), math.ceil(len(numbers) / 25))
            ys = range(0, len(labels), math.ceil(len(labels) / 30))
            ax.set_xticks(list(xs), [str(numbers[i]) for i in xs])
            ax.set_yticks(list(ys), [str(labels[i]) for i in ys])
            ax.set(title="Gradient RMS by block", xlabel="epoch", ylabel="block (input → head)")
            ax.tick_params(labelsize=7)
        elif panel == "upd" and upd is not None:
            x = np.array(numbers)
            for j in range(upd.shape[1]):
                name = blocks[j] if j < len(blocks) else str(j)
                ax.plot(x, upd[:, j], marker=".", lw=1, label=name)
            ax.set_yscale("log")
            ax.set(title="Update / weight ratio", xlabel="epoch", ylabel="ratio (log scale)")
            if upd.shape[1] <= 8:
                ax.legend(fontsize=6)
        else:
            for name, series in losses.items():
                ax.plot(numbers, series, marker=".",
                        label=name.replace("_norm", "").replace("_", " "))
            ax.axhline(1.0, color="black", ls="--", lw=1, label="baseline (class frequencies)")
            ax.set(title="Normalized loss", xlabel="epoch",
                   ylabel="loss / label entropy (ratio)")
            ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gradient_profile_figure(profile: list[float | None], title: str) -> Figure | None:
    """Gradient RMS of each block (input -> head) at the last epoch, log scale: a profile that
    falls by orders of magnitude toward the input is the signature of vanishing gradients."""
    vals = np.array([math.nan if v is None else float(v) for v in profile])
    if not np.isfinite(vals).any():
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    ax.plot(np.arange(len(vals)), np.where(vals > 0, vals, np.nan), marker="o")
    ax.set_yscale("log")
    _int_x(ax)
    return finish(fig, ax, title=title, xlabel="block index (0 = first block, last = head)",
                  ylabel="gradient RMS (log scale)")


def gradient_time_figure(table: pd.DataFrame, title: str) -> Figure | None:
    """Per recurrent unit, the gradient reaching the hidden state at each sampled step (log
    scale), first epoch dashed, last solid: a line that falls by orders of magnitude toward
    step 0 is a gradient vanishing through time (the early steps cannot be learned)."""
    if table.empty or not (table["grad"] > 0).any():
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    blocks = list(dict.fromkeys(table["block"]))
    colors = dict(zip(blocks, sns.color_palette("viridis", len(blocks)), strict=True))
    last = table["epoch"].max()
    for (block, epoch), part in table.groupby(["block", "epoch"], sort=False):
        part = part.sort_values("step")
        ax.plot(part["step"], part["grad"].where(part["grad"] > 0), marker="o", ms=3,
                color=colors[block], ls="-" if epoch == last else "--",
                label=f"{block}, epoch {epoch}")
    ax.set_yscale("log")
    _int_x(ax)
    return finish(fig, ax, {"fontsize": 7}, title=title,
                  xlabel="time step (0 = first step of the sequence)",
                  ylabel="gradient at the hidden state (RMS, log scale)")


def controls_figure(frame: pd.DataFrame, title: str) -> Figure | None:
    """Validation accuracy of the model beside its control runs (shuffled labels, the
    counterfactual, logistic regression, a depth-2 model, fractions of the training data)."""
    return _bars(frame.dropna(subset=["val_accuracy"]), "run", "val_accuracy", "tab:gray",
                 title=title, xlabel="validation accuracy (fraction)", ylabel="run")


def lr_find_figure(curves: dict[str, dict[str, Any]]) -> Figure | None:
    """Learning-rate range tests: the loss the choice rule reads (averaged over 0.75 decade)
    against the learning rate (log scale), one line per sweep, each chosen rate marked."""
    curves = {k: v for k, v in curves.items() if len(v.get("lrs") or []) >= 2}
    if not curves:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    colors = sns.color_palette("viridis", len(curves))
    top = []
    for (label, found), color in zip(curves.items(), colors, strict=True):
        lrs = np.asarray(found["lrs"], dtype=float)
        loss = np.asarray(found.get("curve") or found["losses"], dtype=float)
        ax.plot(lrs, loss, color=color, lw=1.5, label=f"{label}: lr {found['lr']:.2g}")
        chosen = float(found["lr"])
        ax.plot([chosen], [float(np.interp(np.log10(chosen), np.log10(lrs), loss))], "o",
                color=color, ms=7, mec="black")
        top.append(float(loss[0]) * 1.3)  # clip the divergence: the descent is the point
    ax.set_xscale("log")
    ax.set_ylim(bottom=0, top=max(top))
    rule = next(iter(curves.values())).get("rule", "")
    return finish(fig, ax, {"fontsize": 7, "ncol": 2},
                  title=f"Learning-rate range tests (dots: the rate chosen, rule {rule})",
                  xlabel="learning rate", ylabel="training loss (averaged over 0.75 decade)")
