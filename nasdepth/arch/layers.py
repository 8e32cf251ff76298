"""Layer factories for one input rank, so that a block is written once for flat, 1-D and 2-D data.

``Ops(rank)`` hands out convolutions (or linear layers for flat data), normalizations,
activations and pooling of the right dimensionality.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.arch.config import ACTIVATION_NAMES, NORMS
from nasdepth.errors import UnknownNameError

# in the order of ACTIVATION_NAMES (relu6: MobileNetV2); zip(strict) keeps the two in step
ACTIVATIONS: dict[str, type[nn.Module]] = dict(zip(
    ACTIVATION_NAMES, (nn.ReLU, nn.GELU, nn.SiLU, nn.Tanh, nn.Sigmoid, nn.ReLU6), strict=True))
__all__ = ["ACTIVATIONS", "NORMS", "Ops"]


class Ops:
    """Layers for inputs of ``rank`` spatial dimensions: 0 (flat features), 1 or 2."""

    def __init__(self, rank: int) -> None:
        if rank not in (0, 1, 2):
            raise ValueError(f"rank must be 0, 1 or 2, got {rank}")
        self.rank = rank

    @property
    def flat(self) -> bool:
        return self.rank == 0

    def conv(
        self, cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1,
        bias: bool = False,
    ) -> nn.Module:
        """A kxk convolution with 'same' padding; a linear layer on flat data."""
        if self.flat:
            return nn.Linear(cin, cout, bias=bias)
        conv = nn.Conv1d if self.rank == 1 else nn.Conv2d
        return conv(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2,
                    groups=groups, bias=bias)

    def norm(self, kind: str, channels: int) -> nn.Module:
        if kind == "none":
            return nn.Identity()
        if kind == "batch":
            return nn.BatchNorm2d(channels) if self.rank == 2 else nn.BatchNorm1d(channels)
        if kind == "group":
            return nn.GroupNorm(_num_groups(channels), channels)
        if kind == "layer":
            # GroupNorm with one group normalizes over channels and positions: LayerNorm for
            # feature maps, and plain LayerNorm over features on flat data.
            return nn.LayerNorm(channels) if self.flat else nn.GroupNorm(1, channels)
        raise UnknownNameError("the architecture", "norm", kind, NORMS)

    @staticmethod
    def act(name: str) -> nn.Module:
        if name not in ACTIVATIONS:
            raise UnknownNameError("the architecture", "activation", name, ACTIVATIONS)
        return ACTIVATIONS[name]()

    def dropout(self, p: float) -> nn.Module:
        if p <= 0:
            return nn.Identity()
        return {0: nn.Dropout, 1: nn.Dropout1d, 2: nn.Dropout2d}[self.rank](p)

    def pool(self, stride: int, kind: str = "avg", kernel_size: int | None = None) -> nn.Module:
        """``avg`` or ``max`` pooling by ``stride``; identity on flat data.

        Without ``kernel_size`` the windows tile the input (kernel = stride, ceil mode, so an
        odd size keeps its last row); with it, windows overlap with 'same' padding (the 3x3/2
        max pool of ResNet stems).
        """
        if self.flat or (stride == 1 and kernel_size in (None, 1)):
            return nn.Identity()
        k = stride if kernel_size is None else kernel_size
        pad = 0 if kernel_size is None else k // 2
        if kind == "max":
            mp = nn.MaxPool1d if self.rank == 1 else nn.MaxPool2d
            return mp(k, stride, padding=pad, ceil_mode=kernel_size is None)
        ap = nn.AvgPool1d if self.rank == 1 else nn.AvgPool2d
        return ap(k, stride, padding=pad, ceil_mode=kernel_size is None, count_include_pad=False)

    def global_pool(self, kind: str = "avg", size: int = 1) -> nn.Module:
        """Pool every map to ``size`` (per spatial axis) and flatten; identity on flat data."""
        if self.flat:
            return nn.Identity()
        if kind == "max":
            pool: nn.Module = (nn.AdaptiveMaxPool1d(size) if self.rank == 1
                               else nn.AdaptiveMaxPool2d(size))
        elif self.rank == 2 and size == 1:
            pool = GlobalAvgPool2d()
        else:
            pool = nn.AdaptiveAvgPool1d(size) if self.rank == 1 else nn.AdaptiveAvgPool2d(size)
        return nn.Sequential(pool, nn.Flatten(1))

    def pooled_features(self, channels: int, size: int) -> int:
        """Features after :meth:`global_pool` of ``channels`` maps to ``size``."""
        return channels if self.flat else channels * size**self.rank


class GlobalAvgPool2d(nn.Module):
    """Every map averaged to one value (what ``nn.AdaptiveAvgPool2d(1)`` gives), as an
    ``avg_pool2d`` over the whole map: its backward keeps a channels-last input's layout, where
    adaptive pooling's hands an NCHW gradient to the layer below, and a ReLU's backward over
    mixed layouts takes a path about 30x slower (0.3 ms a step on the CPU, 15% of a 2x16
    CNN's training step: ``docs/data_and_training.md``, "Speed")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, x.shape[-2:])


def _num_groups(channels: int) -> int:
    """Largest of 32, 16, 8, 4, 2, 1 groups that divides ``channels``."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1
