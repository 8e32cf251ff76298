"""Depth analysis tables: what each block adds (linear probes), degradation told apart from
overfitting, how sure the recommended depth is (a bootstrap over folds and trials), and
auxiliary heads on against off. Pure functions on DataFrames and records (no drawing): the
section in :mod:`nasdepth.report.depth_section` words and draws them.

- **Probes** (Alain & Bengio 2016): for the candidates the report features (the best per
  depth), the validation accuracy of a linear classifier on each unit's pooled output, and
  where that curve saturates.
- **Degradation** (He et al. 2016): training error that *rises* with depth at the same budget
  is an optimization limit; overfitting is training error falling while validation error
  rises. Both read the final training accuracy each fold recorded (``train_accuracy`` of the
  CV table: the trained model scored on its whole training part).
- **Bootstrap**: the share of resamples (folds and candidates) that recommend each depth says
  how stable the recommendation is (:func:`depth_bootstrap`).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from nasdepth.probes.linear import saturation
from nasdepth.report.stats import corrected_resampled_ttest

#: a rise in training error smaller than this (or than 2 standard errors) is noise
MIN_RISE = 0.01
BOOTSTRAP_RESAMPLES = 1000
PROBE_SHARE = 0.97  # "reaches 97% of the final probe accuracy"


# --- probes --------------------------------------------------------------------------------

def probe_curves(best: pd.DataFrame, probes: Mapping[int, Mapping[str, Any] | None]
                 ) -> pd.DataFrame:
    """One row per (featured trial, unit): ``depth``, ``trial``, ``unit`` (0-based, forward
    order), ``name``, validation and training probe accuracy. ``best``: the best-per-depth
    table (``trial`` and ``depth`` columns); ``probes``: ``TrialRecord.linear_probes`` by
    trial."""
    cols = ["depth", "trial", "unit", "name", "val_accuracy", "train_accuracy"]
    rows = []
    for _, cand in best.iterrows():
        lp = probes.get(int(cand["trial"]))
        if not lp or not lp.get("units"):
            continue
        for i, name in enumerate(lp["units"]):
            rows.append({"depth": cand["depth"], "trial": int(cand["trial"]), "unit": i,
                         "name": name, "val_accuracy": lp["val_accuracy"][i],
                         "train_accuracy": (lp.get("train_accuracy") or [None] * (i + 1))[i]})
    return pd.DataFrame(rows, columns=cols)


def saturation_table(curves: pd.DataFrame, share: float = PROBE_SHARE) -> pd.DataFrame:
    """Per featured trial: the first unit whose probe reaches ``share`` of the last unit's
    accuracy, the accuracy there and at the end, and the points the later units add."""
    cols = ["depth", "trial", "unit", "units", "name", "reached", "final", "added_points"]
    rows = []
    for (depth, trial), g in curves.groupby(["depth", "trial"], sort=True):
        g = g.sort_values("unit")
        sat = saturation([None if pd.isna(v) else float(v) for v in g["val_accuracy"]], share)
        if sat is None:
            continue
        rows.append({"depth": depth, "trial": trial, "unit": sat["unit"],
                     "units": sat["units"], "name": g["name"].iloc[sat["unit"]],
                     "reached": sat["reached"], "final": sat["final"],
                     "added_points": 100 * sat["added_after"]})
    return pd.DataFrame(rows, columns=cols)


def saturation_sentence(row: Mapping[str, Any], share: float = PROBE_SHARE) -> str:
    """"Depth 8 (trial 3): unit 3 of 9 (block2) reaches 97% of the final probe accuracy
    (0.951 of 0.972); units 4-9 add 2.1 points." Units count from 1, the stem included."""
    unit, units = int(row["unit"]) + 1, int(row["units"])
    name = str(row["name"]).split(".")[0]
    head = (f"Depth {fmt_depth(row['depth'])} (trial {int(row['trial'])}): unit {unit} of "
            f"{units} ({name}) reaches {share:.0%} of the final probe accuracy "
            f"({row['reached']:.3f} of {row['final']:.3f})")
    if unit == units:
        return head + "; the last unit is the first to get there: every block adds."
    later = f"unit {units}" if unit + 1 == units else f"units {unit + 1}-{units}"
    verb = "adds" if unit + 1 == units else "add"
    if row["added_points"] < 0:
        return (f"{head}; {later} lose {-row['added_points']:.1f} points of linear "
                "separability: past that unit the deeper blocks degrade the representation "
                "at this budget.")
    return head + f"; {later} {verb} {row['added_points']:.1f} points."


def fmt_depth(depth: Any) -> str:
    try:
        return str(int(depth))
    except (TypeError, ValueError):
        return str(depth)


# --- degradation -----------------------------------------------------------------------------

def _complete_rows(folds: pd.DataFrame, need: set[str], by: str) -> pd.DataFrame:
    """The fold rows of complete trials that have ``by`` (empty where a column in ``need``
    is missing): what every table here reads."""
    if folds.empty or not need <= set(folds.columns):
        return folds.iloc[0:0]
    done = folds[folds[by].notna()]
    return done[done["state"] == "COMPLETE"] if "state" in done else done


def training_error_table(folds: pd.DataFrame, *, maximize: bool = True) -> pd.DataFrame:
    """Per family (``block``, ``skip``) and depth, the best candidate (by mean validation
    score) with its final training and validation error (1 - accuracy, mean over folds) and
    their standard errors: what the degradation statement reads."""
    cols = ["block", "skip", "depth", "trial", "train_error", "train_se", "val_error",
            "val_se", "folds"]
    need = {"trial", "depth", "train_accuracy", "val_accuracy", "score"}
    done = _complete_rows(folds, need, "depth")
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = done.assign(block=done.get("block", "any"), skip=done.get("skip", "any"))
    per = done.groupby(["block", "skip", "depth", "trial"], dropna=False).agg(
        score=("score", "mean"), train=("train_accuracy", "mean"),
        train_sd=("train_accuracy", "std"), val=("val_accuracy", "mean"),
        val_sd=("val_accuracy", "std"), folds=("score", "size")).reset_index()
    per = per.sort_values("score", ascending=not maximize, kind="mergesort")
    best = per.groupby(["block", "skip", "depth"], dropna=False).head(1)
    root = np.sqrt(best["folds"].clip(lower=1))
    out = best.assign(train_error=1 - best["train"], val_error=1 - best["val"],
                      train_se=(best["train_sd"] / root).fillna(0.0),
                      val_se=(best["val_sd"] / root).fillna(0.0))
    return out.sort_values(["block", "skip", "depth"])[cols].reset_index(drop=True)


def depth_statements(table: pd.DataFrame, min_rise: float = MIN_RISE) -> list[dict[str, Any]]:
    """Per family with at least two depths: ``kind`` ``degradation`` (training error rises
    with depth past the depth where it is lowest), ``overfitting`` (training error does not
    rise, validation error does) or ``none``, with the numbers and a sentence."""
    out = []
    for (block, skip), g in table.groupby(["block", "skip"], sort=True, dropna=False):
        g = g.sort_values("depth")
        if len(g) < 2:
            continue
        family = _family(block, skip)
        lo = g.loc[g["train_error"].idxmin()]
        deeper = g[g["depth"] > lo["depth"]]
        margin = [max(min_rise, 2 * math.hypot(float(r.train_se), float(lo["train_se"])))
                  for r in deeper.itertuples()]
        rising = deeper[(deeper["train_error"] - lo["train_error"]).to_numpy() > margin] \
            if len(deeper) else deeper
        item: dict[str, Any] = {"block": block, "skip": skip, "family": family}
        if len(rising):
            worst = rising.loc[rising["train_error"].idxmax()]
            item.update(kind="degradation", depth=lo["depth"], at=worst["depth"],
                        train_from=float(lo["train_error"]), train_to=float(worst["train_error"]),
                        text=(f"{family}: training error rises with depth past depth "
                              f"{fmt_depth(lo['depth'])} ({lo['train_error']:.1%} there, "
                              f"{worst['train_error']:.1%} at depth {fmt_depth(worst['depth'])}) "
                              "at the same budget. That is an optimization limit "
                              "(degradation, He et al. 2016), not overfitting: the deeper "
                              "networks fit their own training data worse. "
                              + _lift(skip) + " More data or regularization would not."))
            out.append(item)
            continue
        vlo = g.loc[g["val_error"].idxmin()]
        vdeep = g[g["depth"] > vlo["depth"]]
        if len(vdeep):
            vworst = vdeep.loc[vdeep["val_error"].idxmax()]
            vmargin = max(min_rise, 2 * math.hypot(float(vworst["val_se"]),
                                                   float(vlo["val_se"])))
            if vworst["val_error"] - vlo["val_error"] > vmargin:
                at = g[g["depth"] == vworst["depth"]].iloc[0]
                item.update(kind="overfitting", depth=vlo["depth"], at=vworst["depth"],
                            val_from=float(vlo["val_error"]), val_to=float(vworst["val_error"]),
                            text=(f"{family}: validation error rises from "
                                  f"{vlo['val_error']:.1%} at depth {fmt_depth(vlo['depth'])} "
                                  f"to {vworst['val_error']:.1%} at depth "
                                  f"{fmt_depth(vworst['depth'])} while training error does "
                                  f"not rise ({at['train_error']:.1%} there): overfitting, "
                                  "not an optimization limit. Regularization, more data or "
                                  "the shallower depth help; residual connections would "
                                  "not."))
                out.append(item)
                continue
        item.update(kind="none", text=(f"{family}: training error does not rise with depth "
                                       f"(lowest {lo['train_error']:.1%} at depth "
                                       f"{fmt_depth(lo['depth'])}); no sign of degradation."))
        out.append(item)
    return out


def _lift(skip: Any) -> str:
    if skip in (True, "True") or skip is np.True_:  # already residual
        return ("These networks already have skip connections: a longer budget, warm-up or a "
                "lower learning rate for the deepest, or normalization where it is off, lift "
                "it.")
    return "Residual connections or normalization lift it."


def _family(block: Any, skip: Any) -> str:
    if isinstance(skip, bool | np.bool_) or skip in ("True", "False"):
        on = skip in (True, "True") or skip is np.True_
        return f"{block} blocks, skip {'on' if on else 'off'}"
    return f"{block} blocks"


# --- bootstrap -------------------------------------------------------------------------------

def depth_bootstrap(folds: pd.DataFrame, *, maximize: bool = True,
                    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Share of bootstrap resamples that recommend each depth under the one-standard-error
    rule. Each resample draws the folds with replacement (the same draw for every candidate:
    they share their splits) and, at each depth, the candidates with replacement; the best
    candidate per depth by its resampled mean, then the smallest depth within one standard
    error of the best. Reproducible under ``seed``. Columns: ``depth``, ``resamples``,
    ``share``."""
    cols = ["depth", "resamples", "share"]
    done = _complete_rows(folds, {"depth"}, "depth")
    if done.empty:
        return pd.DataFrame(columns=cols)
    key = "fold" if "repeat" not in done or done["fold"].is_unique else ["repeat", "fold"]
    done = done.assign(_fold=done[key].astype(str).agg("/".join, axis=1)
                       if isinstance(key, list) else done[key])
    grid = done.pivot_table(index="trial", columns="_fold", values="score", aggfunc="mean")
    depth_of = done.groupby("trial")["depth"].first().loc[grid.index]
    scores = grid.to_numpy(dtype=float)  # trials x folds (NaN: a fold the trial lacks)
    depths = np.sort(depth_of.unique())
    members = [np.flatnonzero(depth_of.to_numpy() == d) for d in depths]
    rng = np.random.default_rng(seed)
    k = scores.shape[1]
    sign = 1.0 if maximize else -1.0
    counts = dict.fromkeys(depths.tolist(), 0)
    for _ in range(resamples):
        cols_ = rng.integers(0, k, size=k)
        s = scores[:, cols_]
        n = np.sum(np.isfinite(s), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a trial without these folds
            mean = np.nanmean(s, axis=1)
            sd = np.nanstd(s, axis=1, ddof=1)
        se = np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), 0.0)
        best_mean, best_se = [], []
        for idx in members:
            pick = rng.choice(idx, size=len(idx), replace=True)
            m = sign * mean[pick]
            if not np.isfinite(m).any():
                best_mean.append(np.nan)
                best_se.append(0.0)
                continue
            j = pick[int(np.nanargmax(m))]
            best_mean.append(mean[j])
            best_se.append(se[j] if np.isfinite(se[j]) else 0.0)
        bm = sign * np.asarray(best_mean)
        if not np.isfinite(bm).any():
            continue
        top = int(np.nanargmax(bm))
        within = np.flatnonzero(bm >= bm[top] - best_se[top] - 1e-12)
        counts[depths[within.min()].item()] += 1  # depths ascending: the smallest wins
    total = sum(counts.values())
    return pd.DataFrame([{"depth": d, "resamples": c, "share": c / total if total else math.nan}
                         for d, c in counts.items()], columns=cols)


# --- auxiliary heads -------------------------------------------------------------------------

def aux_pairs(records: Mapping[int, Any]) -> list[tuple[int, int]]:
    """(with heads, without) trial pairs whose architecture and recipe differ only in
    ``aux_heads``/``aux_weight`` (complete trials with a CV table)."""
    groups: dict[str, dict[str, list[int]]] = {}
    for number, rec in sorted(records.items()):
        arch = dict(getattr(rec, "arch", None) or {})
        if getattr(rec, "state", None) != "complete" or not arch or not rec.cv_folds:
            continue
        on = bool(arch.pop("aux_heads", None))
        arch.pop("aux_weight", None)
        key = json.dumps([arch, rec.training], sort_keys=True, default=str)
        groups.setdefault(key, {"on": [], "off": []})["on" if on else "off"].append(number)
    return [(a, b) for g in groups.values() for a in g["on"] for b in g["off"]]


def aux_table(folds: pd.DataFrame, pairs: list[tuple[int, int]],
              aux_accuracy: Mapping[int, Mapping[str, float]] | None = None,
              alpha: float = 0.05) -> pd.DataFrame:
    """Heads on against off, paired on shared folds (corrected resampled t-test; ``diff`` =
    on minus off), with each head's own validation accuracy where the probes recorded it."""
    cols = ["trial_on", "trial_off", "depth", "on", "off", "diff", "t", "p_value", "folds",
            "significant", "heads"]
    rows = []
    for on, off in pairs:
        a = folds[folds["trial"] == on].set_index("fold")
        b = folds[folds["trial"] == off].set_index("fold")
        shared = a.index.intersection(b.index)
        if len(shared) < 2:
            continue
        n_train = float(a["n_train"].mean()) if "n_train" in a else float(len(shared) - 1)
        n_val = float(a["n_val"].mean()) if "n_val" in a else 1.0
        sa = a.loc[shared, "score"].astype(float).to_numpy()
        sb = b.loc[shared, "score"].astype(float).to_numpy()
        test = corrected_resampled_ttest(sa, sb, n_train=n_train, n_test=n_val)
        heads = (aux_accuracy or {}).get(on) or {}
        rows.append({"trial_on": on, "trial_off": off,
                     "depth": a["depth"].iloc[0] if "depth" in a else None,
                     "on": float(sa.mean()), "off": float(sb.mean()), "diff": test.mean_diff,
                     "t": test.t, "p_value": test.p_value, "folds": test.k,
                     "significant": bool(test.p_value < alpha),
                     "heads": ", ".join(f"{n.split('.')[0]} {v:.3f}" for n, v in heads.items())})
    return pd.DataFrame(rows, columns=cols)


# --- width: double descent -------------------------------------------------------------------

#: training error at or below this is "interpolating" (fits its noisy training labels)
INTERPOLATION = 0.01


def width_error_table(folds: pd.DataFrame, *, maximize: bool = True) -> pd.DataFrame:
    """Per width (at the most common depth), the best candidate's final training and
    validation error (mean over folds) and its validation rows over all folds (``n_val``,
    where the folds record it): what the double-descent reading takes."""
    cols = ["width", "trial", "train_error", "val_error"]
    need = {"trial", "width", "depth", "train_accuracy", "val_accuracy", "score"}
    done = _complete_rows(folds, need, "width")
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = done[done["depth"] == done["depth"].mode().iloc[0]]
    rows = "n_val" in done and bool(done["n_val"].notna().all())
    per = done.groupby(["width", "trial"]).agg(
        score=("score", "mean"), train=("train_accuracy", "mean"),
        val=("val_accuracy", "mean"),
        **({"n_val": ("n_val", "sum")} if rows else {})).reset_index()
    per = per.sort_values("score", ascending=not maximize, kind="mergesort")
    best = per.groupby("width").head(1).sort_values("width")
    out = pd.DataFrame({"width": best["width"], "trial": best["trial"],
                        "train_error": 1 - best["train"], "val_error": 1 - best["val"]})
    if rows:
        out["n_val"] = best["n_val"].astype(int)
    return out.reset_index(drop=True)


def double_descent(table: pd.DataFrame, *, interpolation: float = INTERPOLATION,
                   min_rise: float = MIN_RISE) -> dict[str, Any] | None:
    """Read a width curve (``width``, ``train_error``, ``val_error``): the interpolation
    threshold (the first width whose training error is at most ``interpolation``), the peak of
    validation error, and whether it descends again past the peak (double descent, Nakkiran
    et al. 2019). The peak must stand above the lowest error on both sides by more than
    ``min_rise`` and, where the table has ``n_val`` (the validation rows the error is
    measured on), by more than two binomial standard errors of the peak's error: a bump
    within the validation set's sampling noise is not read as a peak (``rise_needed``).
    None with fewer than three widths."""
    t = table.sort_values("width").reset_index(drop=True)
    if len(t) < 3:
        return None
    fits = t[t["train_error"] <= interpolation]
    threshold = None if fits.empty else t.loc[fits.index[0], "width"]
    v = t["val_error"].astype(float).to_numpy()
    # the second hump: the interior width whose error stands highest above the lowest error
    # before it and the lowest after it (the underfitting narrow end is no peak)
    bumps = [min(v[i] - v[:i].min(), v[i] - v[i + 1:].min()) for i in range(1, len(v) - 1)]
    peak = 1 + int(np.argmax(bumps))
    top = float(v[peak])
    before, after = float(v[:peak].min()), float(v[peak + 1:].min())
    needed = min_rise
    if "n_val" in t and float(t.loc[peak, "n_val"]) > 0:
        needed = max(min_rise, 2 * math.sqrt(top * (1 - top) / float(t.loc[peak, "n_val"])))
    double = bool(bumps[peak - 1] > needed)
    out = {"threshold": threshold, "peak": t.loc[peak, "width"] if double else None,
           "candidate_peak": t.loc[peak, "width"], "rise": float(bumps[peak - 1]),
           "rise_needed": needed,
           "peak_error": top if double else None, "double_descent": double,
           "before_error": before, "after_error": after,
           "widest": t["width"].iloc[-1], "widest_error": float(v[-1]), "text": None}
    if double:
        low = t.loc[t["val_error"].iloc[peak + 1:].idxmin(), "width"]
        where = ("" if threshold is None else
                 f", {'at' if threshold == out['peak'] else 'near'} the interpolation "
                 f"threshold (width {fmt_depth(threshold)}: the first whose training error "
                 f"is at most {interpolation:.0%})")
        out["text"] = (f"Validation error peaks at width {fmt_depth(out['peak'])} "
                       f"({top:.1%}){where}, then falls again to {after:.1%} "
                       f"(width {fmt_depth(low)})"
                       ": double descent (Nakkiran et al. 2019). The peak is not a sign that "
                       "the model is too big: wider networks past it do better; do not stop "
                       "the width search there.")
    return out
