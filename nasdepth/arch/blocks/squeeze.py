"""Parts that blocks add to their residual branch: squeeze-and-excitation and stochastic depth.

``SqueezeExcite`` (Hu et al. 2018) pools each channel over positions, passes the vector through
a narrow 1x1 bottleneck and a sigmoid, and rescales the channels with it: a per-channel gate
computed from the whole map, as torchvision's ``SqueezeExcitation`` (same parameter names
``fc1``/``fc2``, so its checkpoints map one to one). ``DropPath`` is stochastic depth (Huang et
al. 2016; torchvision's ``StochasticDepth(p, "row")``): in training, each sample's branch is
zeroed with probability ``p`` and the kept ones scaled by ``1 / (1 - p)``.
"""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import BLOCK_RULES, se_ratio, squeeze_width


class SqueezeExcite(nn.Module):
    """x * sigmoid(fc2(act(fc1(mean over positions of x)))), on 1-D or 2-D maps."""

    def __init__(self, ops: Ops, channels: int, squeeze: int, activation: str) -> None:
        super().__init__()
        if ops.flat:
            raise ValueError("squeeze-and-excitation needs 1-D or 2-D inputs")
        self.fc1 = ops.conv(channels, squeeze, 1, bias=True)
        self.act = ops.act(activation)
        self.fc2 = ops.conv(squeeze, channels, 1, bias=True)
        self.gate = nn.Sigmoid()
        self.dims = tuple(range(2, 2 + ops.rank))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = x.mean(self.dims, keepdim=True)
        return x * self.gate(self.fc2(self.act(self.fc1(scale))))


class DropPath(nn.Module):
    """Stochastic depth per sample; the identity in eval mode or at ``p == 0``. Under the
    fold-parallel engine (``vmap(randomness="different")``) every fold draws its own mask."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = 1.0 - self.p
        shape = (x.shape[0],) + (1,) * (x.dim() - 1)
        mask = (torch.rand(shape, dtype=x.dtype, device=x.device) < keep).to(x.dtype)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def squeeze_for(block: str, stage: StageConfig, ops: Ops, channels: int,
                reference: int) -> SqueezeExcite | None:
    """The gate a ``block`` of ``stage`` puts on its ``channels`` (squeezed to ``se_ratio`` x
    ``reference`` channels), or None where ``se_ratio`` is 0 (or the block has no SE)."""
    rules = BLOCK_RULES.get(block)
    ratio = 0.0 if rules is None else se_ratio(stage, rules)
    if ratio == 0:
        return None
    return SqueezeExcite(ops, channels, squeeze_width(reference, ratio), stage.activation)
