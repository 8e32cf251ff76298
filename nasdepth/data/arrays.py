"""Arrays -> :class:`Dataset`, with the checks every source shares (finite features, shapes,
labels mapped to ``0..C-1``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from nasdepth.data.dataset import Dataset
from nasdepth.data.tasks import Task, check_task_name, with_stratify
from nasdepth.errors import ConfigError, UnknownNameError

log = logging.getLogger("nasdepth.data")


def encode_labels(y: np.ndarray | Sequence, source: str,
                  class_names: Sequence[str] | None = None) -> tuple[np.ndarray, list[str]]:
    """Labels as int64 codes ``0..C-1`` and the class names.

    Integer labels already ``0..C-1`` are kept; anything else (strings, ``{1, 2, 5}``,
    integral floats) is mapped in sorted order, and a log line says so, because a silent
    renumbering would make confusion matrices and class names lie.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ConfigError(source, "labels", f"an array of shape {y.shape}",
                          "one label per sample (a 1-D array)")
    if len(y) == 0:
        raise ConfigError(source, "labels", "no samples", "at least one sample per class")
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            bad = int((~np.isfinite(y)).sum())
            raise ConfigError(source, "labels", f"{bad} NaN/inf labels", "finite class labels")
        frac = y[y != np.round(y)]
        if len(frac):
            raise ConfigError(source, "labels", f"non-integer values such as {frac[0]}",
                              "class labels (integers or strings), not regression targets")
        y = y.astype(np.int64)
    if y.dtype.kind in "iub":
        y = y.astype(np.int64)
        uniques = np.unique(y)
        if np.array_equal(uniques, np.arange(len(uniques))):
            names = list(class_names) if class_names else [str(i) for i in uniques]
            _check_classes(names, source)
            return y, [str(n) for n in names]
    codes, uniques_idx = pd.factorize(pd.Series(y).astype(str) if y.dtype.kind not in "iub"
                                      else pd.Series(y), sort=True)
    names = [str(u) for u in uniques_idx]
    _check_classes(names, source)
    shown = ", ".join(repr(n) for n in names[:6]) + (", ..." if len(names) > 6 else "")
    log.warning("%s: labels %s are not integers 0..%d; mapped to 0..%d in sorted order "
                "(class_names keeps the originals)", source, shown, len(names) - 1,
                len(names) - 1)
    return codes.astype(np.int64), names


def _check_classes(names: Sequence[str], source: str) -> None:
    if len(names) < 2:
        raise ConfigError(source, "labels", f"a single class {names[0]!r}" if names else "none",
                          "at least 2 classes")


def as_features(x: np.ndarray | torch.Tensor, source: str) -> torch.Tensor:
    """Samples as a float32 tensor: ``(N, F)``, ``(N, C, L)`` or ``(N, C, H, W)`` finite
    numbers (what ``load_data`` and ``predict`` both take)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        xa = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ConfigError(source, "features", f"non-numeric values ({exc})",
                          "numbers (one-hot encode categorical columns)") from None
    if xa.ndim not in (2, 3, 4):
        raise ConfigError(source, "features", f"an array of shape {xa.shape}",
                          "shaped (N, F), (N, C, L) or (N, C, H, W)")
    finite = np.isfinite(xa)
    if not finite.all():
        bad = int((~finite).sum())
        first = int(np.argwhere(~finite)[0][0])
        raise ConfigError(source, "features", f"{bad} NaN/inf values (first in sample {first})",
                          "finite numbers")
    return torch.from_numpy(np.ascontiguousarray(xa))


def from_arrays(
    x: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor | Sequence | Mapping[str, Any],
    *,
    name: str,
    class_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    groups: np.ndarray | None = None,
    source: str | None = None,
    stratify: str | None = None,
) -> Dataset:
    """Check arrays and wrap them as a :class:`Dataset`.

    ``x``: ``(N, F)``, ``(N, C, L)`` or ``(N, C, H, W)`` numbers, all finite. ``y``: one label
    per sample (ints, strings, ...; mapped to ``0..C-1`` when needed), or a mapping of task
    name -> labels for several tasks (``class_names`` then maps task -> names, ``stratify``
    names the task the CV stratifies on; see :mod:`nasdepth.data.tasks`).
    """
    source = source or name
    if isinstance(y, Mapping):
        if class_names is not None and not isinstance(class_names, Mapping):
            raise ConfigError(source, "class_names", class_names,
                              "a mapping of task name -> class names for several tasks")
        return multitask_from_arrays(x, y, name=name, class_names=class_names,
                                     stratify=stratify, groups=groups, source=source)
    if stratify is not None:
        raise ConfigError(source, "stratify", stratify,
                          "unset for one label column (it names a task of several)")
    if isinstance(class_names, Mapping):
        raise ConfigError(source, "class_names", class_names, "a list for one label column")
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    xt = as_features(x, source)
    codes, names = encode_labels(y, source, class_names)
    if len(codes) != len(xt):
        raise ConfigError(source, "labels", f"{len(codes)} labels for {len(xt)} samples",
                          "one label per sample")
    if groups is not None and len(groups) != len(xt):
        raise ConfigError(source, "groups", f"{len(groups)} groups for {len(xt)} samples",
                          "one group per sample")
    return Dataset(
        x=xt,
        y=torch.from_numpy(codes),
        name=name,
        num_classes=len(names),
        class_names=names,
        groups=None if groups is None else np.asarray(groups),
    )


def multitask_from_arrays(
    x: np.ndarray | torch.Tensor,
    labels: Mapping[str, Any],
    *,
    name: str,
    class_names: Mapping[str, Sequence[str]] | None = None,
    stratify: str | None = None,
    groups: np.ndarray | None = None,
    source: str | None = None,
) -> Dataset:
    """Check arrays and wrap them as a multitask :class:`Dataset`: ``labels`` maps each task
    name to one label per sample (ints, strings, ...; each task encoded on its own).

    ``stratify``: the task the CV stratifies on (default: the first). At least one task;
    every task needs as many labels as there are samples and at least two classes.
    """
    source = source or name
    if not isinstance(labels, Mapping) or not labels:
        raise ConfigError(source, "labels", labels, "a mapping of task name -> labels")
    names = [check_task_name(n, source) for n in labels]
    class_names = dict(class_names or {})
    for key in class_names:
        if key not in labels:
            raise UnknownNameError(source, "class_names task", key, names)
    n = len(x)
    tasks: dict[str, Task] = {}
    for task in names:
        y = labels[task]
        if isinstance(y, torch.Tensor):
            y = y.detach().cpu().numpy()
        where = f"{source} (task {task!r})"
        codes, cls = encode_labels(y, where, class_names.get(task))
        if len(codes) != n:
            raise ConfigError(where, "labels", f"{len(codes)} labels for {n} samples",
                              "one label per sample")
        tasks[task] = Task(task, torch.from_numpy(codes), len(cls), cls)
    first = stratify if stratify is not None else names[0]
    if first not in tasks:
        raise UnknownNameError(source, "stratify", first, names)
    base = from_arrays(x, tasks[first].y_numpy, name=name, class_names=tasks[first].class_names,
                       groups=groups, source=source)
    return with_stratify(replace(base, tasks=tasks), first, source)  # ``y``: the task's tensor
