"""Classification metrics from ``sklearn.metrics``, computed once per fold on the host."""

from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

#: every metric of the fold table, each as ``train_<m>``, ``val_<m>`` and ``gap_<m>``
METRICS = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
           "roc_auc", "log_loss")
#: metrics where lower is better (a study minimizes them)
LOWER_IS_BETTER = ("log_loss",)


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, num_classes: int
                           ) -> dict[str, float]:
    """Every metric of :data:`METRICS` from predicted class probabilities ``(N, C)``.

    ROC AUC is one-vs-rest, macro averaged (binary: the positive class); it is NaN where a
    split lacks a class, since AUC is undefined there.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    pred = proba.argmax(axis=1)
    clipped = np.clip(proba, 1e-7, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    labels = np.arange(num_classes)
    out = {
        "accuracy": float(skm.accuracy_score(y_true, pred)),
        "balanced_accuracy": _balanced_accuracy(y_true, pred),
        "precision_macro": float(skm.precision_score(y_true, pred, average="macro",
                                                     labels=labels, zero_division=0)),
        "recall_macro": float(skm.recall_score(y_true, pred, average="macro", labels=labels,
                                               zero_division=0)),
        "f1_macro": float(skm.f1_score(y_true, pred, average="macro", labels=labels,
                                       zero_division=0)),
        "roc_auc": _roc_auc(y_true, clipped, num_classes),
        "log_loss": float(skm.log_loss(y_true, clipped, labels=labels)),
    }
    return out


def _balanced_accuracy(y_true: np.ndarray, pred: np.ndarray) -> float:
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected
        warnings.simplefilter("ignore")
        return float(skm.balanced_accuracy_score(y_true, pred))


def _roc_auc(y_true: np.ndarray, proba: np.ndarray, num_classes: int) -> float:
    present = np.unique(y_true)
    if len(present) < num_classes:
        return float("nan")
    if num_classes == 2:
        return float(skm.roc_auc_score(y_true, proba[:, 1]))
    return float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro",
                                   labels=np.arange(num_classes)))


def metric_row(prefix: str, y_true: np.ndarray, proba: np.ndarray, num_classes: int
               ) -> dict[str, float]:
    """``{prefix_metric: value}`` for every metric."""
    return {f"{prefix}_{k}": v
            for k, v in classification_metrics(y_true, proba, num_classes).items()}


def add_gaps(row: dict[str, float]) -> None:
    """``gap_<m> = train_<m> - val_<m>``: the generalization gap, a first-class column."""
    for m in METRICS:
        if f"train_{m}" in row and f"val_{m}" in row:
            row[f"gap_{m}"] = row[f"train_{m}"] - row[f"val_{m}"]
