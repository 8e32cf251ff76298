"""The rows a refit scores after each epoch: the test part where there is one, else a seeded
sample of the training rows (the refit trains on everything else; these only fill the
per-epoch history, and no decision depends on them)."""

from __future__ import annotations

import numpy as np

#: training rows scored each epoch of a refit without a test part
MONITOR_ROWS = 512


def monitor_rows(cv_idx: np.ndarray, test_idx: np.ndarray, seed: int) -> np.ndarray:
    if len(test_idx):
        return test_idx
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(cv_idx, size=min(MONITOR_ROWS, len(cv_idx)), replace=False))
