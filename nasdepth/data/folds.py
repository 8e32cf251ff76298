"""Cross-validation splits, fixed by a seed so that every candidate sees the same folds."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import StratifiedKFold

from nasdepth.errors import ConfigError


def make_folds(y: np.ndarray, folds: int, seed: int, source: str = "the study"
               ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold (train index, validation index) pairs, shuffled with ``seed``."""
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(source, "folds", folds, "an int >= 2")
    counts = np.bincount(y)
    smallest = int(counts[counts > 0].min())
    if smallest < folds:
        raise ConfigError(source, "folds", folds,
                          f"at most {smallest} (the smallest class has {smallest} samples)")
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return [(tr, va) for tr, va in splitter.split(np.zeros(len(y)), y)]
