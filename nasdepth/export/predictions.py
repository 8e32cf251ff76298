"""Predictions of an exported model on new data: any data spec ``load_data`` reads, and
``.npy``/``.npz``/``.csv`` files without labels. Labels, where the data has them, are mapped to
the model's classes by name and the predictions scored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from nasdepth.data import Dataset, load_data
from nasdepth.data.arrays import as_features
from nasdepth.data.files import load_numpy, read_table, table_features
from nasdepth.data.load import describe, spec_parts
from nasdepth.data.sources import X_KEYS, Y_KEYS
from nasdepth.errors import NasdepthError
from nasdepth.export.model import ExportedModel
from nasdepth.train.metrics import classification_metrics

DataSpec = str | PathLike | Mapping[str, Any]


@dataclass
class Features:
    """Inputs to predict, with labels as the model's class indices where the data has them.

    ``unknown``: label names in the data that are not classes of the model (their rows are
    predicted but not scored).
    """

    x: torch.Tensor
    y: np.ndarray | None
    name: str
    unknown: list[str]


def _unlabeled(spec: DataSpec, source: str) -> torch.Tensor | None:
    """Features of a file that has no labels (``None``: it has them, or is not a file kind
    that can lack them; ``load_data`` reads it)."""
    src, opts = spec_parts(spec)
    path = Path(str(src))
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz", ".csv") or not path.is_file():
        return None
    if suffix == ".npy" and opts.get("labels") is None:
        return as_features(load_numpy(path, source), source)
    if suffix == ".npz":  # one reader with load_data (nasdepth.data.files)
        with load_numpy(path, source) as arrays:
            if any(k in arrays for k in ([opts["y_key"]] if opts.get("y_key") else Y_KEYS)):
                return None
            for k in ([opts["x_key"]] if opts.get("x_key") else X_KEYS):
                if k in arrays:
                    return as_features(arrays[k], source)
        return None
    if suffix == ".csv":
        df = read_table(path, source, opts.get("sep") or ",")
        if str(opts.get("target", "target")) in df.columns:
            return None
        drop = [c for c in (opts.get("drop") or []) if c in df.columns]
        return as_features(table_features(df.drop(columns=drop),
                                          list(opts.get("categorical") or []), source), source)
    return None


def _labels_for(data: Dataset, model: ExportedModel) -> tuple[np.ndarray, list[str]]:
    """The data's labels as the model's class indices (by class name; -1 where unknown)."""
    index = {name: i for i, name in enumerate(model.class_names)}
    names = data.class_names or [str(i) for i in range(data.num_classes)]
    mapping = np.array([index.get(str(n), -1) for n in names], dtype=np.int64)
    unknown = [str(n) for n, m in zip(names, mapping, strict=True) if m < 0]
    return mapping[data.y_numpy], unknown


def read_features(spec: DataSpec, model: ExportedModel) -> Features:
    """The inputs (and labels, if any) of ``spec``, checked against the model's input shape."""
    source = describe(spec)
    x = _unlabeled(spec, source)
    name = str(spec_parts(spec)[0])
    if x is not None:
        feats = Features(x=x, y=None, name=name, unknown=[])
    else:
        data = load_data(spec, source=source)
        y, unknown = _labels_for(data, model)
        feats = Features(x=data.x, y=y, name=data.name, unknown=unknown)
    model.check_input(feats.x[:1], f"The data {name!r}")
    return feats


@dataclass
class Prediction:
    """Per-row predictions (``frame``) and, where the data had labels, their scores."""

    frame: pd.DataFrame
    scores: dict[str, float] | None
    n_scored: int
    unknown: list[str]


def predict(model: ExportedModel, spec: DataSpec | torch.Tensor | np.ndarray) -> Prediction:
    """Predict every row of ``spec`` (a data spec, or an array of raw inputs): per-class
    probabilities (``proba_<class>``), the predicted class (``predicted``), the true class
    (``label``) where known; scored when the data has labels."""
    if isinstance(spec, (torch.Tensor, np.ndarray)):
        feats = Features(x=torch.as_tensor(spec), y=None, name="array", unknown=[])
    else:
        feats = read_features(spec, model)
    proba = model.predict_proba(feats.x).cpu().numpy()
    names = model.class_names
    frame = pd.DataFrame({"row": np.arange(len(proba))})
    if feats.y is not None:
        frame["label"] = [names[i] if i >= 0 else None for i in feats.y]
    frame["predicted"] = [names[i] for i in proba.argmax(1)]
    for c, name in enumerate(names):
        frame[f"proba_{name}"] = proba[:, c]
    scores, n_scored = None, 0
    if feats.y is not None:
        known = feats.y >= 0
        n_scored = int(known.sum())
        if n_scored:
            scores = classification_metrics(feats.y[known], proba[known], len(names))
    return Prediction(frame=frame, scores=scores, n_scored=n_scored, unknown=feats.unknown)


def write_predictions(pred: Prediction, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        pred.frame.to_csv(out, index=False)
    except OSError as exc:
        raise NasdepthError(f"Cannot write predictions to {out}: {exc}") from None
    return out
