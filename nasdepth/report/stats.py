"""Statistics for model selection: the one-standard-error rule and the Nadeau–Bengio corrected
resampled t-test. Pure functions on numbers and DataFrames (no storage, no drawing)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps


def one_se_rule(table: pd.DataFrame, *, score: str = "cv_mean", se: str = "cv_se",
                complexity: str = "depth", maximize: bool = True) -> Any:
    """The index (row label) of the simplest row whose score is within one standard error of
    the best row's score (Breiman et al.; Hastie, Tibshirani & Friedman, sec. 7.10).

    The threshold is ``best - se(best)`` when maximizing and ``best + se(best)`` when
    minimizing. Among the rows that reach it, the one with the smallest ``complexity`` wins
    (ties: the better score). A missing standard error counts as zero, so the rule then picks
    the best row itself. Raises ``ValueError`` on a table without a finite score."""
    rows = table[np.isfinite(table[score].astype(float))]
    if rows.empty:
        raise ValueError("one_se_rule needs at least one row with a finite score")
    best = rows[score].idxmax() if maximize else rows[score].idxmin()
    best_se = float(rows.loc[best, se]) if se in rows else 0.0
    best_se = 0.0 if not math.isfinite(best_se) else best_se
    best_score = float(rows.loc[best, score])
    within = rows[rows[score] >= best_score - best_se] if maximize \
        else rows[rows[score] <= best_score + best_se]
    ordered = within.sort_values([complexity, score], ascending=[True, not maximize],
                                 kind="mergesort")
    return ordered.index[0]


@dataclass(frozen=True)
class TTest:
    """Result of a paired comparison on shared folds: ``mean_diff`` is ``a - b``."""

    mean_diff: float
    std_diff: float
    t: float
    p_value: float
    dof: int
    k: int
    test_train_ratio: float


def corrected_resampled_ttest(a: Sequence[float], b: Sequence[float], *, n_train: float,
                              n_test: float) -> TTest:
    """Nadeau & Bengio (2003) corrected resampled t-test of paired per-fold scores.

    With per-fold differences ``d_j = a_j - b_j`` (j = 1..k), mean ``d`` and sample variance
    ``s^2`` (ddof=1), ``t = d / sqrt((1/k + n_test/n_train) * s^2)`` with ``k - 1`` degrees of
    freedom; the ``n_test/n_train`` term corrects the variance for the overlap of training sets
    between folds, which the plain paired t-test ignores (it is then far too confident).
    Two-sided p-value. Identical differences (``s = 0``) give ``t = ±inf, p = 0`` unless the
    mean difference is zero too (``t = 0, p = 1``)."""
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"paired scores must be two 1-D sequences of equal length, got "
                         f"{a_arr.shape} and {b_arr.shape}")
    k = len(a_arr)
    if k < 2:
        raise ValueError(f"the corrected t-test needs at least 2 shared folds, got {k}")
    if n_train <= 0 or n_test <= 0:
        raise ValueError("n_train and n_test must be positive")
    d = a_arr - b_arr
    mean, var = float(d.mean()), float(d.var(ddof=1))
    ratio = float(n_test) / float(n_train)
    denom = math.sqrt((1.0 / k + ratio) * var)
    if denom == 0.0:
        t = 0.0 if mean == 0.0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0.0 else 0.0
    else:
        t = mean / denom
        p = float(2.0 * sps.t.sf(abs(t), df=k - 1))
    return TTest(mean_diff=mean, std_diff=math.sqrt(var), t=t, p_value=p, dof=k - 1, k=k,
                 test_train_ratio=ratio)


def pareto_mask(score: Sequence[float], cost: Sequence[float], *,
                maximize: bool = True) -> np.ndarray:
    """Boolean mask of the points no other point dominates (better or equal score at lower or
    equal cost, strictly better in one). NaN points are never on the front."""
    s = np.asarray(score, dtype=float) * (1.0 if maximize else -1.0)
    c = np.asarray(cost, dtype=float)
    ok = np.isfinite(s) & np.isfinite(c)
    mask = np.zeros(len(s), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        dominated = (s[others] >= s[i]) & (c[others] <= c[i]) & (
            (s[others] > s[i]) | (c[others] < c[i]))
        mask[i] = not dominated.any()
    return mask
