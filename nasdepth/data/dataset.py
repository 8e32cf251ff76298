"""``Dataset``: the tensors and metadata every other part works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Task:
    """One task of a multitask :class:`Dataset` (:mod:`nasdepth.data.tasks`): its labels
    ``y`` (int64 codes ``0..C-1``) and its classes."""

    name: str
    y: torch.Tensor
    num_classes: int
    class_names: list[str] = field(default_factory=list)

    @property
    def y_numpy(self) -> np.ndarray:
        return self.y.cpu().numpy()

    def subset(self, idx: torch.Tensor) -> Task:
        return Task(self.name, self.y[idx], self.num_classes, list(self.class_names))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "num_classes": self.num_classes,
                "class_names": list(self.class_names)}


@dataclass
class Dataset:
    """Samples ``x`` (float32, ``(N, *input_shape)``) with integer labels ``y`` in ``0..C-1``.

    Multitask data (:mod:`nasdepth.data.tasks`) also hold ``tasks``: one :class:`Task` per
    label column, by name; ``y``, ``num_classes`` and ``class_names`` are then those of the
    task the CV stratifies on (``stratify``). Single-task data leave ``tasks`` None.
    """

    x: torch.Tensor
    y: torch.Tensor
    name: str
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None
    tasks: dict[str, Task] | None = None
    stratify: str | None = None  # multitask: the task whose labels ``y`` are

    @property
    def is_multitask(self) -> bool:
        return bool(self.tasks)

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks or {})

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def y_numpy(self) -> np.ndarray:
        return self.y.cpu().numpy()

    def subset(self, index: np.ndarray | torch.Tensor) -> Dataset:
        idx = torch.as_tensor(index, dtype=torch.long)
        groups = None if self.groups is None else self.groups[idx.numpy()]
        tasks = None if self.tasks is None else {
            n: t.subset(idx) for n, t in self.tasks.items()}
        return Dataset(self.x[idx], self.y[idx], self.name, self.num_classes,
                       list(self.class_names), groups, tasks, self.stratify)

    def to_dict(self) -> dict[str, Any]:
        """Metadata (not the tensors) for storing with a study."""
        d: dict[str, Any] = {
            "name": self.name,
            "n_samples": len(self),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }
        if self.tasks:  # multitask only: single-task metadata stay as they were
            d["tasks"] = [t.to_dict() for t in self.tasks.values()]
            d["stratify"] = self.stratify
        return d
