"""The block registry: every block shares one constructor signature (as torchvision's
``BasicBlock`` and ``Bottleneck`` do) and declares what the builder needs to know.

    Block(in_channels, out_channels, *, stride, stage, skip, ops)

``stage`` is the :class:`StageConfig` (kernel size, norm, activation, dropout, ...), ``skip``
switches every shortcut on or off and ``ops`` makes layers of the input's rank.
Class attributes: ``conv_only`` (cannot run on flat features), ``layers`` (weight layers on the
main path, for counting depth in layers).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.errors import UnknownNameError

BLOCKS: dict[str, type[Block]] = {}


def register_block(name: str) -> Callable[[type[Block]], type[Block]]:
    """Class decorator adding a block to :data:`BLOCKS`; a duplicate name is a bug."""

    def add(cls: type[Block]) -> type[Block]:
        if name in BLOCKS:
            raise ValueError(f"block {name!r} is registered twice")
        BLOCKS[name] = cls
        cls.name = name
        return cls

    return add


def get_block(name: str, source: str = "the architecture") -> type[Block]:
    if name not in BLOCKS:
        raise UnknownNameError(source, "block", name, BLOCKS)
    return BLOCKS[name]


class Block(nn.Module):
    name = ""
    conv_only = False
    layers = 1

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
        skip: bool, ops: Ops,
    ) -> None:
        super().__init__()
        if self.conv_only and ops.flat:
            raise ValueError(
                f"The '{self.name}' block needs 1-D or 2-D inputs; flat features take "
                f"{', '.join(n for n, b in BLOCKS.items() if not b.conv_only)}."
            )
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride


def conv_norm_act(
    ops: Ops, cin: int, cout: int, stage: StageConfig, *, kernel_size: int | None = None,
    stride: int = 1, act: bool = True,
) -> nn.Sequential:
    k = stage.kernel_size if kernel_size is None else kernel_size
    layers = [ops.conv(cin, cout, k, stride, bias=stage.norm == "none"),
              ops.norm(stage.norm, cout)]
    if act:
        layers.append(ops.act(stage.activation))
    return nn.Sequential(*layers)


def shortcut(ops: Ops, cin: int, cout: int, stride: int, stage: StageConfig) -> nn.Module:
    """Identity where shapes match, else a strided 1x1 projection with norm (ResNet 'B')."""
    if cin == cout and stride == 1:
        return nn.Identity()
    return nn.Sequential(ops.conv(cin, cout, 1, stride), ops.norm(stage.norm, cout))


@register_block("plain")
class PlainBlock(Block):
    """VGG style: conv -> norm -> activation (-> dropout). Has no shortcut to switch."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        self.body = conv_norm_act(ops, in_channels, out_channels, stage, stride=stride)
        self.drop = ops.dropout(stage.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


@register_block("residual")
class ResidualBlock(Block):
    """ResNet basic block: two kxk convs; ``skip`` adds the identity/projection shortcut."""

    layers = 2

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        self.conv1 = conv_norm_act(ops, in_channels, out_channels, stage, stride=stride)
        self.drop = ops.dropout(stage.dropout)
        self.conv2 = conv_norm_act(ops, out_channels, out_channels, stage, act=False)
        self.shortcut = shortcut(ops, in_channels, out_channels, stride, stage) if skip else None
        self.act = ops.act(stage.activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.drop(self.conv1(x)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)
