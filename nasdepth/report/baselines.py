"""Baselines on the study's own folds: majority class and logistic regression.

A deep candidate is only worth its cost when it beats these on the same folds; the report
compares them fold by fold. Scores come from the metric functions the trainer uses, so the
columns (``val_accuracy``, ``val_log_loss``, ...) match the trials' fold tables.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nasdepth.data import Dataset, make_folds
from nasdepth.train.metrics import classification_metrics

BASELINES = ("majority class", "logistic regression")
#: above this many training values (samples x features) logistic regression fits on a
#: stratified subsample of the training fold, so a report never takes longer than the study
MAX_LOGREG_VALUES = 20_000_000


def _proba(model: object, x: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities over all ``num_classes`` (a fold may lack a class in training)."""
    raw = model.predict_proba(x)  # type: ignore[attr-defined]
    out = np.zeros((len(x), num_classes))
    out[:, classes] = raw
    return out


def _subsample(train: np.ndarray, y: np.ndarray, n_features: int, seed: int) -> np.ndarray:
    limit = max(1000, MAX_LOGREG_VALUES // max(1, n_features))
    if len(train) <= limit:
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=limit, replace=False))


def study_splits(y: np.ndarray, *, folds: int, seed: int, repeats: int = 1
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
    """The splits the study's candidates were trained on: stratified k-fold, or repeated
    stratified k-fold numbered 0..folds*repeats-1 as the CV engine numbers them."""
    if repeats > 1:
        from nasdepth.data.folds import CVConfig, make_splits  # type: ignore[attr-defined]

        cv = CVConfig(folds=folds, seed=seed, kind="repeated_stratified", repeats=repeats)
        return list(make_splits(y, cv))
    return list(make_folds(y, folds, seed))


def baseline_folds(data: Dataset, *, folds: int, seed: int, repeats: int = 1) -> pd.DataFrame:
    """One row per baseline x fold with ``train_*``/``val_*`` metrics and ``gap_accuracy``,
    on the same splits as the study's candidates (:func:`study_splits`). Features are
    flattened and standardized on the training fold only."""
    x = data.x.reshape(len(data), -1).cpu().numpy().astype(np.float64)
    y = data.y_numpy
    rows = []
    for k, (tr, va) in enumerate(study_splits(y, folds=folds, seed=seed, repeats=repeats)):
        models: dict[str, object] = {
            # "prior": predicts the majority class, with the class frequencies as
            # probabilities, so its log loss is the label entropy (not a clipped infinity)
            "majority class": DummyClassifier(strategy="prior"),
            "logistic regression": make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=300)),
        }
        for name, model in models.items():
            fit_idx = tr if name == "majority class" else _subsample(tr, y, x.shape[1], k)
            with warnings.catch_warnings():
                # a capped solver is still a fair, cheap baseline; the warning is noise here
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[fit_idx], y[fit_idx])  # type: ignore[attr-defined]
            classes = np.unique(y[fit_idx])
            scores: dict[str, float] = {}
            for split, idx in (("train", tr), ("val", va)):
                metrics = classification_metrics(
                    y[idx], _proba(model, x[idx], classes, data.num_classes), data.num_classes)
                scores.update({f"{split}_{m}": v for m, v in metrics.items()})
            scores["gap_accuracy"] = scores["train_accuracy"] - scores["val_accuracy"]
            rows.append({"model": name, "fold": k, "n_train": len(tr), "n_val": len(va),
                         **scores})
    return pd.DataFrame(rows)


def baseline_summary(folds_df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Mean and std over folds of ``metric`` per baseline."""
    if folds_df.empty or metric not in folds_df:
        return pd.DataFrame(columns=["model", "cv_mean", "cv_std", "folds"])
    g = folds_df.groupby("model", sort=False)[metric]
    out = pd.DataFrame({"cv_mean": g.mean(), "cv_std": g.std(ddof=1), "folds": g.size()})
    return out.reset_index()
