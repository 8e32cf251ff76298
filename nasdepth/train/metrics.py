"""Classification metrics from ``sklearn.metrics``, computed once per fold on the host."""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm

METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "log_loss")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, num_classes: int
                           ) -> dict[str, float]:
    """Accuracy, balanced accuracy, macro F1 and log loss from predicted probabilities."""
    pred = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    labels = np.arange(num_classes)
    return {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "balanced_accuracy": float(skm.balanced_accuracy_score(y_true, pred)),
        "f1_macro": float(skm.f1_score(y_true, pred, average="macro", labels=labels,
                                       zero_division=0)),
        "log_loss": float(skm.log_loss(y_true, clipped, labels=labels)),
    }
