"""Scalar signals from traces: the numbers the diagnosis rules compare with thresholds and the
compact ``probe_summary`` stored with every trial.

Every signal is computed per fold and then combined with the median over folds, so that one odd
fold does not decide a verdict.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from nasdepth.probes.time import time_signals
from nasdepth.probes.trace import Trace

EPS = 1e-30


def finite(values: Sequence[float | None]) -> list[float]:
    """The values that are numbers and finite, as floats."""
    return [float(v) for v in values if v is not None and math.isfinite(float(v))]


def median_of(values: Sequence[float | None]) -> float | None:
    """The median of the finite values; None where there are none."""
    vals = finite(values)
    return statistics.median(vals) if vals else None


def _last(values: Sequence[float | None]) -> float | None:
    vals = finite(values)
    return vals[-1] if vals else None


def depth_pair(n_blocks: int) -> tuple[int, int]:
    """(first, last) block compared for the depth profile: the head is left out where there
    are at least three units, since a classifier's gradient scale differs from a hidden block's."""
    return 0, (n_blocks - 2 if n_blocks >= 3 else n_blocks - 1)


def fold_signals(trace: Trace) -> dict[str, float | None]:
    """The signals of one fold (None where the trace cannot tell)."""
    first, last = depth_pair(len(trace.blocks))
    grads = trace.series("grad_rms")
    ratios = []
    for g in grads:
        a, b = g[first], g[last]
        if a is not None and b is not None and b > 0:
            ratios.append(math.log10(max(a, EPS) / b))
    finite_epochs = [g for g in grads if all(v is not None for v in g)]
    growth = None
    if len(finite_epochs) >= 2:
        top_last, top_first = max(finite(finite_epochs[-1])), max(finite(finite_epochs[0]))
        growth = math.log10(max(top_last, EPS) / max(top_first, EPS))
    # the largest block gradient of any epoch against the largest at the first step: a blow-up
    # within the first epoch (a learning rate far too large) shows here, not in ``growth``
    peak = None
    init_top = max(finite(trace.grad_rms_init or []), default=None)
    epoch_top = max((v for g in grads for v in finite(g)), default=None)
    if init_top is not None and init_top > 0 and epoch_top is not None:
        peak = math.log10(max(epoch_top, EPS) / init_top)
    updates = [v for row in trace.series("update_ratio") for v in row]
    upd_last = trace.series("update_ratio")[-1] if trace.epochs else []
    dead = trace.series("dead_frac")[-1] if trace.epochs else []
    sat = trace.series("saturated_frac")[-1] if trace.epochs else []
    snr = [median_of(row) for row in trace.series("grad_snr")]
    tl, vl = trace.scalar("train_loss_norm"), trace.scalar("val_loss_norm")
    va = trace.scalar("val_accuracy")
    chance = trace.chance_accuracy
    val_last = _last(va)
    skill = None
    if val_last is not None and chance < 1:
        skill = (val_last - chance) / (1 - chance)
    best = max(finite(va), default=None)
    vmin = min(finite(vl), default=None)
    probe_acc = _last(trace.scalar("probe_accuracy"))
    vlast, tlast = _last(vl), _last(tl)
    return time_signals(trace) | {
        "grad_depth_log10": median_of(ratios),
        "grad_depth_log10_first_epoch": ratios[0] if ratios else None,
        "grad_growth_log10": growth,
        "grad_peak_log10": peak,
        "update_ratio_median": median_of(updates),
        "update_ratio_max": max(finite(updates), default=None),
        "update_ratio_last_max": max(finite(upd_last), default=None),
        "train_loss_norm_first": finite(tl)[0] if finite(tl) else None,
        "train_loss_norm_last": tlast,
        "train_loss_norm_max": max(finite(tl), default=None),
        "val_loss_norm_min": vmin,
        "val_loss_norm_last": vlast,
        "val_loss_rise": None if vmin is None or vlast is None else vlast - vmin,
        "loss_gap": None if vlast is None or tlast is None else vlast - tlast,
        "val_accuracy_last": val_last,
        "val_accuracy_best": best,
        "skill_last": skill,
        "skill_best": None if best is None or chance >= 1 else (best - chance) / (1 - chance),
        "probe_accuracy_last": probe_acc,
        "gap_accuracy": None if probe_acc is None or val_last is None else probe_acc - val_last,
        "dead_frac_max": max(finite(dead), default=None),
        "saturated_frac_mean": median_of(sat),
        "grad_snr_first": snr[0] if snr else None,
        "grad_snr_last": _last(snr),
        "chance_accuracy": chance,
        "nonfinite": 1.0 if trace.nonfinite else 0.0,
        "epochs": float(len(trace.epochs)),
    }


def combine(per_fold: Sequence[dict[str, float | None]]) -> dict[str, float | None]:
    """Median over folds of every signal; ``nonfinite`` is the fraction of folds that blew up."""
    if not per_fold:
        return {}
    out: dict[str, float | None] = {}
    for key in per_fold[0]:
        vals = [f.get(key) for f in per_fold]
        out[key] = (sum(finite(vals)) / len(vals)) if key == "nonfinite" else median_of(vals)
    return out


def signals(traces: Sequence[Trace]) -> dict[str, float | None]:
    return combine([fold_signals(t) for t in traces])


def summarize(traces: Sequence[Trace]) -> dict[str, Any]:
    """Compact JSON summary (a few hundred bytes per trial): the combined signals plus the
    last epoch's gradient profile, averaged over folds in log space."""
    if not traces:
        return {}
    sig = signals(traces)
    blocks = traces[0].blocks
    profile: list[float | None] = []
    for i in range(len(blocks)):
        vals = [t.epochs[-1]["grad_rms"][i] for t in traces
                if t.epochs and len(t.blocks) == len(blocks)]
        logs = [math.log10(max(v, EPS)) for v in finite(vals)]
        profile.append(10 ** (sum(logs) / len(logs)) if logs else None)
    return {
        "folds": len(traces),
        "blocks": len(blocks),
        "signals": {k: (None if v is None else round(v, 6)) for k, v in sig.items()},
        "grad_rms_last_epoch": [None if v is None else float(f"{v:.4g}") for v in profile],
    }
