"""The shallow baseline: the cheap control that every diagnosis reads by default.

Logistic regression and one non-linear scikit-learn model (extremely randomized trees) on
exactly the run's splits, on flattened features standardized on each training fold. It
answers the question a flat validation loss raises: does this data carry signal a simple model
finds? If both stay at chance the data is the suspect (``data_limited_plateau``); if either
learns, the network failed to fit learnable data (``undertrained`` or
``optimization_problem``). Seconds on the data sets of this project (measured in
``docs/diagnose.md``); large data are subsampled per training fold so the cost stays bounded.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np

from nasdepth.data import Dataset, Splits

#: the models of the baseline, in the order the report lists them
SHALLOW_MODELS = ("logistic", "trees")
SHALLOW_NAMES = {"logistic": "logistic regression", "trees": "extra trees"}
#: at most this many training rows per fold (a stratified subsample beyond it)
MAX_ROWS = 4000
#: at most this many features (a fixed random subset beyond it; images of many pixels)
MAX_FEATURES = 1024


def _subsample(idx: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if len(idx) <= limit:
        return idx
    return np.sort(np.random.default_rng(seed).choice(idx, size=limit, replace=False))


def _z(acc: float, chance: float, n: int) -> float | None:
    """Accuracy above chance in binomial standard deviations of a chance-level classifier."""
    if not 0 < chance < 1 or n <= 0:
        return None
    return (acc - chance) / math.sqrt(chance * (1 - chance) / n)


def shallow_baseline(data: Dataset, splits: Splits, *, seed: int = 0) -> dict[str, Any]:
    """Validation accuracy, skill above chance and its z-score of each shallow model, pooled
    over the splits of ``splits`` (the held-out test part is never touched).

    ``chance`` is the accuracy of predicting each training fold's majority class on its
    validation fold; skill is ``(accuracy - chance) / (1 - chance)``.
    """
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    start = time.perf_counter()
    x = data.x.reshape(len(data), -1).cpu().numpy()
    if x.shape[1] > MAX_FEATURES:
        keep = np.sort(np.random.default_rng(seed).choice(x.shape[1], MAX_FEATURES,
                                                          replace=False))
        x = x[:, keep]
    x = x.astype(np.float32)
    y = data.y_numpy
    correct = dict.fromkeys(SHALLOW_MODELS, 0)
    per_fold: dict[str, list[float]] = {m: [] for m in SHALLOW_MODELS}
    hits_chance, n_val = 0, 0
    for k, (tr, va) in enumerate(splits):
        fit = _subsample(tr, MAX_ROWS, seed * 1000 + k)
        majority = int(np.bincount(y[fit]).argmax())
        hits_chance += int((y[va] == majority).sum())
        n_val += len(va)
        models = {
            "logistic": make_pipeline(StandardScaler(), LogisticRegression(max_iter=200)),
            # shallow trees, few of them: a non-linear reference in about a second, not a
            # contender (a model that beats the network here shows signal, nothing more)
            "trees": ExtraTreesClassifier(n_estimators=60, min_samples_leaf=2, n_jobs=1,
                                          random_state=seed * 1000 + k),
        }
        for name, model in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[fit], y[fit])
            hits = int((model.predict(x[va]) == y[va]).sum())
            correct[name] += hits
            per_fold[name].append(hits / max(1, len(va)))
    chance = hits_chance / max(1, n_val)
    out: dict[str, Any] = {"chance_accuracy": chance, "n_val": n_val,
                           "splits": splits.digest, "models": list(SHALLOW_MODELS)}
    scale = (1 - chance) if chance < 1 else 1.0
    for name in SHALLOW_MODELS:
        acc = correct[name] / max(1, n_val)
        out[f"{name}_accuracy"] = acc
        out[f"{name}_skill"] = (acc - chance) / scale
        out[f"{name}_z"] = _z(acc, chance, n_val)
        out[f"{name}_fold_accuracy"] = per_fold[name]
    out["seconds"] = round(time.perf_counter() - start, 3)
    return out


def best_shallow(shallow: dict[str, Any] | None) -> tuple[str | None, float | None,
                                                           float | None]:
    """(model, skill, z) of the better shallow model; older records named a depth-2 network
    ``depth2`` instead of the trees."""
    if not shallow:
        return None, None, None
    best: tuple[str | None, float | None, float | None] = (None, None, None)
    for name in (*SHALLOW_MODELS, "depth2"):
        skill = shallow.get(f"{name}_skill")
        if skill is not None and (best[1] is None or skill > best[1]):
            best = (name, float(skill), shallow.get(f"{name}_z"))
    return best
