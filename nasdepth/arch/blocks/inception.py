"""Inception (GoogLeNet): parallel 1x1, kxk, wide and pool-projection branches, concatenated."""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, conv_norm_act, register_block
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import branch_widths


@register_block("inception")
class InceptionBlock(Block):
    """Four branches on the same input, concatenated along channels. It has no shortcut
    (``skip`` does not change it); a stride is applied by max pooling before the block, as
    GoogLeNet does between its inception groups."""

    strides_by_pool = True

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        c1, c3r, c3, cwr, cw, cp = branch_widths(stage, out_channels)
        self.branch1 = conv_norm_act(ops, in_channels, c1, stage, kernel_size=1)
        self.branch2 = nn.Sequential(conv_norm_act(ops, in_channels, c3r, stage, kernel_size=1),
                                     conv_norm_act(ops, c3r, c3, stage))
        wide: list[nn.Module] = [conv_norm_act(ops, in_channels, cwr, stage, kernel_size=1)]
        cin = cwr
        for k in stage.wide_kernels:
            wide.append(conv_norm_act(ops, cin, cw, stage, kernel_size=k))
            cin = cw
        self.branch3 = nn.Sequential(*wide)
        self.branch4 = nn.Sequential(ops.pool(1, "max", kernel_size=3),
                                     conv_norm_act(ops, in_channels, cp, stage, kernel_size=1))
        self.drop = ops.dropout(stage.dropout)
        self.out_channels = c1 + c3 + cw + cp

    @classmethod
    def count_layers(cls, stage: StageConfig) -> int:
        return max(2, 1 + len(stage.wide_kernels))

    def main(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)
        return self.drop(out)
