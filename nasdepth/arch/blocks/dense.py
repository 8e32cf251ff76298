"""DenseNet: each layer adds ``growth_rate`` channels to everything before it; a transition
layer (norm, activation, 1x1 conv by ``compression``, average pooling) opens later stages."""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, norm_act_conv, register_block
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import check_compression, dense_expansion


class Transition(nn.Module):
    """Between dense stages: compress the channels and downsample by ``stride``."""

    def __init__(self, in_channels: int, *, stride: int, stage: StageConfig, ops: Ops) -> None:
        super().__init__()
        check_compression(stage)
        self.in_channels, self.stride = in_channels, stride
        self.out_channels = max(1, int(in_channels * stage.compression))
        self.body = norm_act_conv(ops, in_channels, self.out_channels, stage, kernel_size=1)
        self.pool = ops.pool(stride, "max" if stage.downsample == "maxpool" else "avg")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.body(x))


@register_block("dense")
class DenseLayer(Block):
    """One DenseNet-BC layer: norm-act-1x1 (to ``expansion * growth``) -> norm-act-kxk (to
    ``growth``), concatenated to its input. Without ``skip`` it does not concatenate: the layers
    become a plain pre-activation stack of ``growth`` channels. The stage's ``width`` is the
    growth rate unless ``growth_rate`` is set; strides happen in the transition layers."""

    preactivation = True
    strides_by_pool = True
    transition = Transition

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        growth = stage.width if stage.growth_rate is None else stage.growth_rate
        e = dense_expansion(stage)
        layers: list[nn.Module] = []
        cin = in_channels
        if e > 0:
            inner = max(1, round(e * growth))
            layers.append(norm_act_conv(ops, cin, inner, stage, kernel_size=1))
            cin = inner
        layers.append(norm_act_conv(ops, cin, growth, stage))
        self.body = nn.Sequential(*layers)
        self.drop = ops.dropout(stage.dropout)
        if skip:
            self.shortcut = nn.Identity()  # the concatenation carries the input forward
        self.out_channels = in_channels + growth if skip else growth

    @classmethod
    def count_layers(cls, stage: StageConfig) -> int:
        return 2 if dense_expansion(stage) > 0 else 1

    def main(self, x: torch.Tensor) -> torch.Tensor:
        new = self.drop(self.body(x))
        return torch.cat([x, new], 1) if self.shortcut is not None else new
