"""Several tasks on the same samples: one label column per task, each with its own classes
(for users: ``docs/multitask.md``).

A multitask :class:`~nasdepth.data.Dataset` keeps its single-task fields for the task the CV
stratifies on (``y``, ``num_classes``, ``class_names`` are that task's; ``stratify`` names it),
so every fold split, baseline and control that reads ``y`` works unchanged and every
candidate sees the same folds. ``tasks`` holds every task's labels by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from nasdepth.data.dataset import Dataset, Task
from nasdepth.errors import ConfigError, UnknownNameError

#: a task name: letters, digits and underscores (it prefixes column names: ``digit.val_accuracy``)
TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


#: words a multitask study's ``tasks.objective`` takes (``mean``, ``all``): a task of that
#: name would be ambiguous there, so it is refused wherever tasks are named
RESERVED_TASK_NAMES = ("mean", "all")


def check_task_name(name: Any, source: str) -> str:
    if not isinstance(name, str) or not TASK_NAME.match(name):
        raise ConfigError(source, "task name", name,
                          "a name of letters, digits and underscores (such as 'digit')")
    if name.lower() in RESERVED_TASK_NAMES:
        raise ConfigError(source, "task name", name,
                          "a name other than 'mean' and 'all' (the keywords of "
                          "tasks.objective: 'objective: mean' would not say which is meant)")
    return name


def check_task(data: Dataset, name: str, source: str = "the data", key: str = "task") -> str:
    """``name`` when ``data`` has that task; else the error lists its tasks and the closest."""
    if not data.is_multitask:
        raise ConfigError(source, key, name,
                          f"unset: {data.name} has one label column (no tasks); load several "
                          "(CSV target: [a, b], an .npz with (N, T) labels, the data option "
                          "derive: {name: label, ...}, or from_arrays(x, {name: labels}))")
    if name not in (data.tasks or {}):
        raise UnknownNameError(source, key, name, data.task_names)
    return name


def with_stratify(data: Dataset, task: str, source: str = "the data") -> Dataset:
    """The same samples and tasks, with ``y`` (and so the CV's stratification) from ``task``."""
    check_task(data, task, source, "stratify")
    t = (data.tasks or {})[task]
    return replace(data, y=t.y, num_classes=t.num_classes, class_names=list(t.class_names),
                   stratify=task)


def task_data(data: Dataset, task: str, source: str = "the data") -> Dataset:
    """A single-task :class:`Dataset` of ``task``'s labels (the same ``x`` tensor): what a
    single-task baseline or the shallow baseline of one task trains on."""
    check_task(data, task, source)
    t = (data.tasks or {})[task]
    return Dataset(data.x, t.y, f"{data.name}[{task}]", t.num_classes, list(t.class_names),
                   data.groups)


def label_matrix(data: Dataset, tasks: Sequence[str]) -> torch.Tensor:
    """``(N, T)`` int64 labels of ``tasks`` (columns in that order)."""
    return torch.stack([(data.tasks or {})[t].y for t in tasks], dim=1)


def task_columns(task_names: Sequence[str] | None, array: np.ndarray, source: str
                 ) -> dict[str, np.ndarray]:
    """An ``(N, T)`` label array as ``{name: column}``; names default to ``task0..``."""
    if array.ndim != 2:
        raise ConfigError(source, "labels", f"an array of shape {array.shape}",
                          "(N, T): one column per task")
    names = list(task_names) if task_names else [f"task{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise ConfigError(source, "data.tasks", names,
                          f"{array.shape[1]} names, one per label column")
    if len(set(names)) != len(names):
        raise ConfigError(source, "data.tasks", names, "names without repeats")
    return {n: array[:, i] for i, n in enumerate(names)}


#: tasks derived from a single-task data set's labels (codes ``0..C-1``), by name: the data
#: option ``derive: {digit: label, parity: parity, noise: noise}`` (task name -> derivation)
DERIVATIONS = {
    "label": "the labels themselves",
    "parity": "the label code modulo 2 (even/odd: the parity of a digit)",
    "half": "whether the label code is in the upper half (a digit >= 5)",
    "noise": "two classes drawn at random, independent of the sample (no signal at all)",
}


def derive_tasks(data: Dataset, spec: Any, seed: int, source: str) -> Dataset:
    """A multitask data set from ``data``'s labels: ``spec`` maps each task name to one of
    :data:`DERIVATIONS` (a list of derivations names the tasks after them). The first task
    is the one the CV stratifies on. ``noise`` labels are seeded with ``seed``."""
    if data.is_multitask:
        raise ConfigError(source, "data.derive", spec,
                          "unset for data that already have several tasks")
    if isinstance(spec, list):
        spec = {str(s): str(s) for s in spec}
    if not isinstance(spec, dict) or not spec:
        raise ConfigError(source, "data.derive", spec,
                          "a mapping of task name -> derivation (" + ", ".join(DERIVATIONS)
                          + ")")
    y = data.y.cpu().numpy()
    c = data.num_classes
    rng = np.random.default_rng(seed)
    tasks: dict[str, Task] = {}
    for name, how in spec.items():
        check_task_name(name, source)
        if how not in DERIVATIONS:
            raise UnknownNameError(source, f"data.derive.{name}", how, DERIVATIONS)
        if how == "label":
            codes, names = y, list(data.class_names)
        elif how == "parity":
            codes, names = y % 2, ["even", "odd"]
        elif how == "half":
            codes, names = (y >= (c + 1) // 2).astype(np.int64), ["low", "high"]
        else:
            codes, names = rng.integers(0, 2, size=len(y)), ["a", "b"]
        codes = np.asarray(codes, dtype=np.int64)
        if len(np.unique(codes)) < 2:
            raise ConfigError(source, f"data.derive.{name}", how,
                              "a derivation that leaves at least 2 classes")
        tasks[name] = Task(name, torch.from_numpy(codes), len(names), names)
    return with_stratify(replace(data, tasks=tasks), next(iter(tasks)), source)
