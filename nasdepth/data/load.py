"""``load_data(spec)``: turn a data spec such as ``sklearn:digits`` into a :class:`Dataset`."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from nasdepth.data.dataset import Dataset
from nasdepth.errors import ConfigError, UnknownNameError


def _sklearn(name: str) -> Dataset:
    from sklearn import datasets

    loaders: dict[str, Callable] = {
        "digits": datasets.load_digits,
        "iris": datasets.load_iris,
        "wine": datasets.load_wine,
        "breast_cancer": datasets.load_breast_cancer,
    }
    if name not in loaders:
        raise UnknownNameError("the data spec", "sklearn", name, loaders)
    bunch = loaders[name]()
    x = np.asarray(bunch.data, dtype=np.float32)
    if name == "digits":  # 8x8 grey images: keep them as images for CNNs
        x = x.reshape(-1, 1, 8, 8)
    y = np.asarray(bunch.target, dtype=np.int64)
    names = [str(n) for n in getattr(bunch, "target_names", range(int(y.max()) + 1))]
    return from_arrays(x, y, name=f"sklearn:{name}", class_names=names)


def from_arrays(x: np.ndarray, y: np.ndarray, *, name: str,
                class_names: list[str] | None = None) -> Dataset:
    """Check arrays and wrap them as a Dataset (labels must already be 0..C-1)."""
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise ConfigError(name, "features", f"{bad} NaN/inf values", "finite numbers")
    num_classes = int(y.max()) + 1
    return Dataset(
        x=torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
        y=torch.as_tensor(y, dtype=torch.long),
        name=name,
        num_classes=num_classes,
        class_names=class_names or [str(i) for i in range(num_classes)],
    )


SOURCES: dict[str, Callable[[str], Dataset]] = {"sklearn": _sklearn}


def load_data(spec: str) -> Dataset:
    """Load ``KIND:NAME`` (e.g. ``sklearn:digits``) into memory as tensors."""
    kind, sep, rest = str(spec).partition(":")
    if not sep or kind not in SOURCES:
        raise UnknownNameError("the data spec", "data", spec, [f"{k}:..." for k in SOURCES])
    return SOURCES[kind](rest)
