"""Layer factories for one input rank, so that a block is written once for flat, 1-D and 2-D data.

``Ops(rank)`` hands out convolutions (or linear layers for flat data), normalizations,
activations and pooling of the right dimensionality.
"""

from __future__ import annotations

from torch import nn

from nasdepth.errors import UnknownNameError

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}
NORMS = ("batch", "group", "layer", "none")


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

    def pool(self, stride: int) -> nn.Module:
        """Average pooling by ``stride`` (shortcut downsampling); identity on flat data."""
        if self.flat or stride == 1:
            return nn.Identity()
        pool = nn.AvgPool1d if self.rank == 1 else nn.AvgPool2d
        return pool(stride, stride, ceil_mode=True, count_include_pad=False)

    def global_pool(self) -> nn.Module:
        if self.flat:
            return nn.Identity()
        pool = nn.AdaptiveAvgPool1d(1) if self.rank == 1 else nn.AdaptiveAvgPool2d(1)
        return nn.Sequential(pool, nn.Flatten(1))


def _num_groups(channels: int) -> int:
    """Largest of 32, 16, 8, 4, 2, 1 groups that divides ``channels``."""
    for g in (32, 16, 8, 4, 2):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1
