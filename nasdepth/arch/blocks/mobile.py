"""Depthwise-separable blocks (MobileNet): depthwise kxk + pointwise 1x1, optionally behind a
1x1 expansion (MobileNetV2's inverted residual)."""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, conv_norm_act, register_block
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import mobile_expansion


@register_block("dwsep")
class DepthwiseSeparableBlock(Block):
    """[1x1 expand to ``round(in * expansion)``] -> depthwise kxk -> linear pointwise 1x1.

    As in MobileNetV2, the shortcut is an identity and exists only where input and output
    shapes match (stride 1, same width); ``skip=False`` removes it.
    """

    layers = 2

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        e = mobile_expansion(stage)
        hidden = in_channels if e == 1 else max(1, round(in_channels * e))
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(conv_norm_act(ops, in_channels, hidden, stage, kernel_size=1))
        layers.append(conv_norm_act(ops, hidden, hidden, stage, stride=self.conv_stride,
                                    groups=hidden))
        layers.append(conv_norm_act(ops, hidden, out_channels, stage, kernel_size=1, act=False))
        self.body = nn.Sequential(*layers)
        self.drop = ops.dropout(stage.dropout)
        if skip and self.conv_stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()

    @classmethod
    def count_layers(cls, stage: StageConfig) -> int:
        return 2 if mobile_expansion(stage) == 1 else 3

    def main(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.body(x))
        return out + x if self.shortcut is not None else out
