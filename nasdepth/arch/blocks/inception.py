"""Inception (GoogLeNet): parallel 1x1, kxk, wide and pool-projection branches, concatenated."""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import SOURCE, Block, conv_norm_act, register_block
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.errors import ConfigError


def branch_widths(stage: StageConfig, width: int) -> tuple[int, int, int, int, int, int]:
    """(1x1, kxk reduce, kxk, wide reduce, wide, pool projection).

    Explicit ``stage.branches`` (GoogLeNet's per-block table) must add up to ``width``;
    otherwise the proportions of GoogLeNet's inception 3a are used (1/4, 1/2, 1/8, 1/8 of the
    output, reductions 3/4 and 1/2 of their branch).
    """
    if stage.branches:
        b = stage.branches
        if len(b) != 6 or any(not isinstance(v, int) or v < 1 for v in b):
            raise ConfigError(SOURCE, "branches", list(b),
                              "six ints >= 1 (1x1, kxk reduce, kxk, wide reduce, wide, pool)")
        if b[0] + b[2] + b[4] + b[5] != width:
            raise ConfigError(SOURCE, "branches", list(b),
                              f"branch outputs (1st, 3rd, 5th, 6th) that add up to the stage "
                              f"width {width}")
        return b[0], b[1], b[2], b[3], b[4], b[5]
    c1, c3, c5 = width // 4, width // 2, width // 8
    pool = width - c1 - c3 - c5
    if min(c1, c3, c5, pool) < 1:
        raise ConfigError(SOURCE, "width", width, "an int >= 8 for inception blocks")
    return c1, max(1, 3 * c3 // 4), c3, max(1, c5 // 2), c5, pool


@register_block("inception")
class InceptionBlock(Block):
    """Four branches on the same input, concatenated along channels. It has no shortcut
    (``skip`` does not change it); a stride is applied by max pooling before the block, as
    GoogLeNet does between its inception groups."""

    conv_only = True
    strides_by_pool = True

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        c1, c3r, c3, cwr, cw, cp = branch_widths(stage, out_channels)
        if not stage.wide_kernels or min(stage.wide_kernels) < 1:
            raise ConfigError(SOURCE, "wide_kernels", list(stage.wide_kernels),
                              "a non-empty list of kernel sizes >= 1")
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
