"""Cross-validation engine: fresh models on seeded folds, tidy per-fold table."""

from __future__ import annotations

import numpy as np

from nasdepth import ArchConfig, StageConfig, TrainConfig, cross_validate, load_data
from nasdepth.data import make_folds


def test_folds_cover_every_sample_once_and_stratify() -> None:
    data = load_data("sklearn:digits")
    y = data.y_numpy
    splits = make_folds(y, 5, seed=3)
    val = np.concatenate([va for _, va in splits])
    assert sorted(val.tolist()) == list(range(len(y)))
    sizes = [len(va) for _, va in splits]
    assert max(sizes) - min(sizes) <= 1
    overall = np.bincount(y) / len(y)
    for _, va in splits:
        assert np.abs(np.bincount(y[va], minlength=10) / len(va) - overall).max() < 0.02


def test_cross_validate_is_reproducible_and_learns() -> None:
    data = load_data("sklearn:digits")
    arch = ArchConfig(stages=(StageConfig(block="residual", depth=1, width=16),))
    training = TrainConfig(lr=0.01)
    a = cross_validate(arch, data, folds=3, epochs=3, seed=0, training=training)
    b = cross_validate(arch, data, folds=3, epochs=3, seed=0, training=training)
    assert list(a.folds["fold"]) == [0, 1, 2]
    assert a.folds["val_accuracy"].tolist() == b.folds["val_accuracy"].tolist()
    assert a.mean() > 0.5  # ten classes: chance is 0.1
    assert {"train_accuracy", "val_log_loss", "gap_accuracy", "params"} <= set(a.folds)
    assert set(a.history["epoch"]) == {0, 1, 2}
