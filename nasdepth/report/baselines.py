"""Baselines on the study's own folds: majority class and logistic regression.

A deep candidate is only worth its cost when it beats these on the same folds; the report
compares them fold by fold. Scores come from the metric functions the trainer uses, so the
columns (``val_accuracy``, ``val_log_loss``, ...) match the trials' fold tables.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.dummy import DummyClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from nasdepth.data import CVConfig, Dataset, Splits
from nasdepth.train.metrics import classification_metrics

#: above this many training values (samples x features) logistic regression fits on a
#: stratified subsample of the training fold, so a report never takes longer than the study
MAX_LOGREG_VALUES = 20_000_000


def _proba(model: object, x: np.ndarray, classes: np.ndarray, num_classes: int) -> np.ndarray:
    """Probabilities over all ``num_classes`` (a fold may lack a class in training)."""
    raw = model.predict_proba(x)  # type: ignore[attr-defined]
    out = np.zeros((len(x), num_classes))
    out[:, classes] = raw
    return out


def _subsample(train: np.ndarray, n_features: int, seed: int) -> np.ndarray:
    limit = max(1000, MAX_LOGREG_VALUES // max(1, n_features))
    if len(train) <= limit:
        return train
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(train, size=limit, replace=False))


def study_splits(data: Dataset, config: dict[str, Any]) -> Splits:
    """The splits the study's candidates were trained on: the CV description stored in its
    config (older studies: ``folds``, ``cv_seed`` and ``repeats``) resolved on ``data``, by
    the one resolution the study and the CV engine use (:meth:`CVConfig.resolve`)."""
    stored = config.get("cv")
    if isinstance(stored, dict):
        return CVConfig.from_dict(stored).resolve(data)
    repeats = int(config.get("repeats") or 1)
    return CVConfig(folds=int(config["folds"]), seed=int(config.get("cv_seed") or 0),
                    kind="repeated_stratified" if repeats > 1 else "stratified",
                    repeats=repeats).resolve(data)


def baseline_folds(data: Dataset, splits: Splits) -> pd.DataFrame:
    """One row per baseline x fold with ``train_*``/``val_*`` (and ``test_*`` where a test part
    was held out) metrics and ``gap_accuracy``, on ``splits``: the study's candidates' (see
    :func:`study_splits`). Features are flattened and standardized on the training fold
    only."""
    test_idx = splits.test
    x = data.x.reshape(len(data), -1).cpu().numpy().astype(np.float64)
    y = data.y_numpy
    rows = []
    for k, (tr, va) in enumerate(splits):
        models: dict[str, object] = {
            # "prior": predicts the majority class, with the class frequencies as
            # probabilities, so its log loss is the label entropy (not a clipped infinity)
            "majority class": DummyClassifier(strategy="prior"),
            "logistic regression": make_pipeline(
                StandardScaler(), LogisticRegression(max_iter=300)),
        }
        for name, model in models.items():
            fit_idx = tr if name == "majority class" else _subsample(tr, x.shape[1], k)
            with warnings.catch_warnings():
                # a capped solver is still a fair, cheap baseline; the warning is noise here
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.fit(x[fit_idx], y[fit_idx])  # type: ignore[attr-defined]
            classes = np.unique(y[fit_idx])
            scores: dict[str, float] = {}
            parts = [("train", tr), ("val", va)] + ([("test", test_idx)] if len(test_idx)
                                                    else [])
            for split, idx in parts:
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
    test = "test_" + metric.removeprefix("val_")
    if test in folds_df:  # held-out test score, mean over the fold models
        out["held-out test"] = folds_df.groupby("model", sort=False)[test].mean()
    return out.reset_index()
