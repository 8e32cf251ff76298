"""``Dataset``: the tensors and metadata every other part works on."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Dataset:
    """Samples ``x`` (float32, ``(N, *input_shape)``) with integer labels ``y`` in ``0..C-1``."""

    x: torch.Tensor
    y: torch.Tensor
    name: str
    num_classes: int
    class_names: list[str] = field(default_factory=list)
    groups: np.ndarray | None = None

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
        return Dataset(self.x[idx], self.y[idx], self.name, self.num_classes,
                       list(self.class_names), groups)

    def to_dict(self) -> dict[str, Any]:
        """Metadata (not the tensors) for storing with a study."""
        return {
            "name": self.name,
            "n_samples": len(self),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
        }
