"""The fold table's metrics agree with scikit-learn's scorers (ours skip their validation)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from nasdepth.train.metrics import classification_metrics


@pytest.mark.parametrize("classes", [2, 3, 10])
@pytest.mark.parametrize("ties", [False, True])
def test_roc_auc_and_log_loss_equal_sklearn(classes: int, ties: bool) -> None:
    rng = np.random.default_rng(classes)
    for n in (classes * 3, 57, 400):
        y = np.r_[np.arange(classes), rng.integers(0, classes, n - classes)]
        p = rng.random((n, classes))
        if ties:  # equal scores share their average rank, as sklearn's trapezoids count them
            p = np.round(p, 1) + 0.05
        p /= p.sum(1, keepdims=True)
        got = classification_metrics(y, p, classes)
        clipped = np.clip(p, 1e-7, 1)  # what the fold table scores (as before: sklearn on it)
        clipped /= clipped.sum(1, keepdims=True)
        if classes == 2:
            ref = skm.roc_auc_score(y, clipped[:, 1])
        else:
            ref = skm.roc_auc_score(y, clipped, multi_class="ovr", average="macro",
                                    labels=np.arange(classes))
        assert got["roc_auc"] == pytest.approx(ref, abs=1e-12)
        ref_ll = skm.log_loss(y, clipped, labels=np.arange(classes))
        assert got["log_loss"] == pytest.approx(ref_ll, abs=1e-9)
        pred = p.argmax(1)
        assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        assert got["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
        for name, fn in (("precision_macro", skm.precision_score),
                         ("recall_macro", skm.recall_score), ("f1_macro", skm.f1_score)):
            ref = fn(y, pred, average="macro", labels=np.arange(classes), zero_division=0)
            assert got[name] == pytest.approx(ref), name


def test_roc_auc_is_nan_where_a_class_is_missing() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.full((4, 3), 1 / 3)
    assert np.isnan(classification_metrics(y, p, 3)["roc_auc"])
