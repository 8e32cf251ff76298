"""The block registry: every block shares one constructor signature (as torchvision's
``BasicBlock`` and ``Bottleneck`` do) and declares what the builder needs to know.

    Block(in_channels, out_channels, *, stride, stage, skip, ops)

``stage`` is the :class:`StageConfig` (kernel size, norm, activation, dropout, block options),
``skip`` switches every shortcut on or off and ``ops`` makes layers of the input's rank.
What a block accepts (the input ranks it runs on, ``conv_only``: not on flat features, and its
option checks) is in :mod:`nasdepth.arch.rules`, which needs no torch; the block checks them
when it is built. Class attributes the builder reads: ``conv_only`` and ``ranks`` (copied from
the rules at registration), ``layers``
(weight layers on the main path, see :meth:`Block.count_layers`), ``preactivation`` (the
network needs a final norm + activation after the last block, as DenseNet), ``transition`` (a
module that opens every later stage of this block, as DenseNet's transition layers) and
``strides_by_pool`` (the block cannot stride itself; a pooling layer downsamples before it)
and ``entry`` (a
module that opens a run of stages of this block, as a Transformer's embedding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nasdepth.arch.config import ArchConfig, StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import BLOCK_RULES, SOURCE, BlockRules, check_block
from nasdepth.errors import UnknownNameError

BLOCKS: dict[str, type[Block]] = {}


def register_block(name: str) -> Callable[[type[Block]], type[Block]]:
    """Class decorator adding a block to :data:`BLOCKS`; a duplicate name is a bug. The
    block's rules come from :data:`~nasdepth.arch.rules.BLOCK_RULES`; a block that has none
    there (one of the user's own) adds them from its ``ranks`` and ``conv_only``."""

    def add(cls: type[Block]) -> type[Block]:
        if name in BLOCKS:
            raise ValueError(f"block {name!r} is registered twice")
        rules = BLOCK_RULES.get(name)
        if rules is None:
            BLOCK_RULES[name] = BlockRules(ranks=tuple(cls.ranks), conv_only=cls.conv_only)
        else:
            cls.ranks, cls.conv_only = rules.ranks, rules.conv_only
        BLOCKS[name] = cls
        cls.name = name
        return cls

    return add


def get_block(name: str, source: str = SOURCE) -> type[Block]:
    if name not in BLOCKS:
        raise UnknownNameError(source, "block", name, BLOCKS)
    return BLOCKS[name]


class Block(nn.Module):
    """Base of every block: checks the input rank and applies pooled downsampling.

    A subclass builds its layers with ``self.conv_stride`` (1 when a pooling layer already
    downsampled) and implements :meth:`main`; ``shortcut`` is None exactly when the block has
    no shortcut path (so ``skip=False`` networks can be checked for leftovers).
    """

    name = ""
    conv_only = False
    layers = 1
    preactivation = False
    strides_by_pool = False
    transition: Callable[..., nn.Module] | None = None
    ranks: tuple[int, ...] = (0, 1, 2)  # 0: flat (N, F), 1: (N, C, L), 2: (N, C, H, W)
    entry: Callable[..., nn.Module] | None = None

    def __init__(
        self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
        skip: bool, ops: Ops,
    ) -> None:
        super().__init__()
        rules = BLOCK_RULES.get(self.name) or BlockRules(self.ranks, self.conv_only)
        check_block(self.name, stage, width=out_channels, stride=stride, rank=ops.rank,
                    rules=rules)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.shortcut: nn.Module | None = None
        # Downsampling by pooling happens before the block, so its convolutions do not stride.
        pooled = stride > 1 and (stage.downsample != "stride" or self.strides_by_pool)
        kind = "avg" if stage.downsample == "avgpool" else "max"
        self.pre = ops.pool(stride, kind) if pooled else nn.Identity()
        self.conv_stride = 1 if pooled else stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(self.pre(x))

    def main(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def has_shortcut(self) -> bool:
        return self.shortcut is not None

    @classmethod
    def count_layers(cls, stage: StageConfig) -> int:
        """Weight layers on the longest path through one block of ``stage``."""
        return cls.layers


def conv_norm_act(
    ops: Ops, cin: int, cout: int, stage: StageConfig, *, kernel_size: int | None = None,
    stride: int = 1, groups: int = 1, act: bool = True,
) -> nn.Sequential:
    k = stage.kernel_size if kernel_size is None else kernel_size
    layers = [ops.conv(cin, cout, k, stride, groups=groups, bias=stage.norm == "none"),
              ops.norm(stage.norm, cout)]
    if act:
        layers.append(ops.act(stage.activation))
    return nn.Sequential(*layers)


def norm_act_conv(
    ops: Ops, cin: int, cout: int, stage: StageConfig, *, kernel_size: int | None = None,
) -> nn.Sequential:
    """Pre-activation order (DenseNet): norm -> activation -> conv."""
    k = stage.kernel_size if kernel_size is None else kernel_size
    return nn.Sequential(ops.norm(stage.norm, cin), ops.act(stage.activation),
                         ops.conv(cin, cout, k, 1, bias=stage.norm == "none"))


def shortcut(ops: Ops, cin: int, cout: int, stride: int, stage: StageConfig) -> nn.Module:
    """Identity where shapes match, else a strided 1x1 projection with norm (ResNet 'B')."""
    if cin == cout and stride == 1:
        return nn.Identity()
    return nn.Sequential(ops.conv(cin, cout, 1, stride), ops.norm(stage.norm, cout))


def has_transition(block_cls: type[Block], stage_index: int, stride: int) -> bool:
    """Whether a stage of ``block_cls`` opens with its transition layer (DenseNet: every stage
    but the first, and any stage that must downsample)."""
    return block_cls.transition is not None and (stage_index > 0 or stride > 1)


def count_layers(cfg: ArchConfig) -> int:
    """Weight layers on the main path: stem convs, blocks (longest path), transitions, head."""
    n = sum(1 for s in cfg.stem if s.kind == "conv")
    for i, stage in enumerate(cfg.stages):
        block_cls = get_block(stage.block)
        n += int(has_transition(block_cls, i, stage.stride))
        n += stage.depth * block_cls.count_layers(stage)
    return n + len(cfg.head_hidden) + 1
