"""Depthwise-separable blocks (MobileNet): depthwise kxk + pointwise 1x1, optionally behind a
1x1 expansion (MobileNetV2's inverted residual), and EfficientNet's MBConv (the same with a
squeeze-and-excitation gate before the projection and stochastic depth)."""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, conv_norm_act, register_block
from nasdepth.arch.blocks.squeeze import DropPath, squeeze_for
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import mbconv_expansion, mobile_expansion


@register_block("dwsep")
class DepthwiseSeparableBlock(Block):
    """[1x1 expand to ``round(in * expansion)``] -> depthwise kxk -> [squeeze-and-excitation]
    -> linear pointwise 1x1.

    As in MobileNetV2, the shortcut is an identity and exists only where input and output
    shapes match (stride 1, same width); ``skip=False`` removes it. ``body`` holds the layers
    in torchvision's order (``MBConv.block``: expand, depthwise, SE, project), so checkpoints
    map index for index; ``drop_path`` drops the body where the shortcut carries the input.
    """

    layers = 2

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        e = self.expansion(stage)
        hidden = in_channels if e == 1 else max(1, round(in_channels * e))
        layers: list[nn.Module] = []
        if hidden != in_channels:
            layers.append(conv_norm_act(ops, in_channels, hidden, stage, kernel_size=1))
        layers.append(conv_norm_act(ops, hidden, hidden, stage, stride=self.conv_stride,
                                    groups=hidden))
        se = squeeze_for(self.name, stage, ops, hidden, in_channels)
        if se is not None:
            layers.append(se)
        layers.append(conv_norm_act(ops, hidden, out_channels, stage, kernel_size=1, act=False))
        self.body = nn.Sequential(*layers)
        self.drop = ops.dropout(stage.dropout)
        if skip and self.conv_stride == 1 and in_channels == out_channels:
            self.shortcut = nn.Identity()
        self.drop_path = DropPath(stage.drop_path if self.shortcut is not None else 0.0)

    @staticmethod
    def expansion(stage: StageConfig) -> float:
        return mobile_expansion(stage)

    @classmethod
    def count_layers(cls, stage: StageConfig) -> int:
        return 2 if cls.expansion(stage) == 1 else 3

    def main(self, x: torch.Tensor) -> torch.Tensor:
        out = self.drop(self.body(x))
        return self.drop_path(out) + x if self.shortcut is not None else out


@register_block("mbconv")
class MBConvBlock(DepthwiseSeparableBlock):
    """EfficientNet's mobile inverted bottleneck (Tan & Le 2019; MnasNet's MBConv): 1x1
    expansion (``expansion``, None: 6) -> depthwise kxk -> squeeze-and-excitation (``se_ratio``
    of the block's input width, None: 0.25) -> linear 1x1 projection; an identity shortcut
    where shapes match, its branch dropped per sample with probability ``drop_path``.
    EfficientNet uses it with ``activation: silu``."""

    @staticmethod
    def expansion(stage: StageConfig) -> float:
        return mbconv_expansion(stage)
