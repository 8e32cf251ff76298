"""Preprocessing fitted on the training folds only (never on validation data)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Standardizer:
    """Per-feature (flat data) or per-channel (1-D/2-D data) standardization."""

    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, x: torch.Tensor) -> Standardizer:
        # flat: statistics per feature; images/sequences: per channel over samples and positions
        dims = (0,) if x.dim() == 2 else (0, *range(2, x.dim()))
        mean = x.mean(dim=dims, keepdim=True)
        std = x.std(dim=dims, keepdim=True).clamp_min(1e-6)
        return cls(mean[0], std[0])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std
