"""Plain (VGG), residual and bottleneck (ResNet) and grouped (ResNeXt) blocks.

These three families are the ones that also run on flat features (as MLP blocks) except
``grouped``, whose grouped convolution has no meaning without channels.
"""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, conv_norm_act, register_block, shortcut
from nasdepth.arch.blocks.squeeze import DropPath, squeeze_for
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops


@register_block("plain")
class PlainBlock(Block):
    """VGG style: conv -> norm -> activation (-> dropout). Has no shortcut to switch."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        self.body = conv_norm_act(ops, in_channels, out_channels, stage, stride=self.conv_stride)
        self.drop = ops.dropout(stage.dropout)

    def main(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.body(x))


@register_block("residual")
class ResidualBlock(Block):
    """ResNet basic block: two kxk convs; ``skip`` adds the identity/projection shortcut.
    ``se_ratio`` > 0 gates the branch's channels before the sum (SE-ResNet), ``drop_path``
    drops the branch per sample in training where the shortcut carries the input."""

    layers = 2

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        self.conv1 = conv_norm_act(ops, in_channels, out_channels, stage, stride=self.conv_stride)
        self.drop = ops.dropout(stage.dropout)
        self.conv2 = conv_norm_act(ops, out_channels, out_channels, stage, act=False)
        self.shortcut, self.se, self.drop_path = branch_extras(self, stage, ops, skip)
        self.act = ops.act(stage.activation)

    def main(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(join(self, self.conv2(self.drop(self.conv1(x))), x))


def branch_extras(block: Block, stage: StageConfig, ops: Ops, skip: bool
                  ) -> tuple[nn.Module | None, nn.Module | None, DropPath]:
    """(shortcut where ``skip``, the SE gate of the branch: ``se_ratio`` of the output width,
    SENet's 1/r; stochastic depth, only where a shortcut carries the input)."""
    width = block.out_channels
    short = shortcut(ops, block.in_channels, width, block.conv_stride, stage) if skip else None
    se = squeeze_for(block.name, stage, ops, width, width)
    return short, se, DropPath(stage.drop_path if short is not None else 0.0)


def join(block: ResidualBlock | BottleneckBlock, out: torch.Tensor,
         x: torch.Tensor) -> torch.Tensor:
    """The branch ``out`` gated (SE), dropped (stochastic depth) and added to the shortcut."""
    if block.se is not None:
        out = block.se(out)
    if block.shortcut is not None:
        out = block.drop_path(out) + block.shortcut(x)
    return out


@register_block("bottleneck")
class BottleneckBlock(Block):
    """ResNet bottleneck: 1x1 reduce to ``width * bottleneck_ratio``, kxk (stride here, as
    torchvision's v1.5), 1x1 expand to ``width``; ``skip`` adds the shortcut."""

    layers = 3

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        groups = self.groups(stage, out_channels)
        # the grouped conv needs a multiple of its groups: round down, keep at least one each
        inner = max(groups, int(out_channels * stage.bottleneck_ratio) // groups * groups)
        self.reduce = conv_norm_act(ops, in_channels, inner, stage, kernel_size=1)
        self.conv = conv_norm_act(ops, inner, inner, stage, stride=self.conv_stride,
                                  groups=groups)
        self.drop = ops.dropout(stage.dropout)
        self.expand = conv_norm_act(ops, inner, out_channels, stage, kernel_size=1, act=False)
        self.shortcut, self.se, self.drop_path = branch_extras(self, stage, ops, skip)
        self.act = ops.act(stage.activation)

    def groups(self, stage: StageConfig, width: int) -> int:
        return 1

    def main(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(join(self, self.expand(self.drop(self.conv(self.reduce(x)))), x))


@register_block("grouped")
class GroupedBlock(BottleneckBlock):
    """ResNeXt: a bottleneck whose kxk convolution has ``cardinality`` groups
    (resnext50_32x4d: cardinality 32, bottleneck_ratio 0.5). ``cardinality`` must divide the
    width; the inner width ``int(width * bottleneck_ratio)`` is rounded down to a multiple of
    it (at least ``cardinality``), as torchvision's ``width_per_group`` arithmetic always is."""

    def groups(self, stage: StageConfig, width: int) -> int:
        return stage.cardinality  # checked by the block's rules (nasdepth.arch.rules)
