"""The block registry and every block family (importing this package registers them all)."""

from nasdepth.arch.blocks import attention, dense, inception, mobile, recurrent, resnet, squeeze
from nasdepth.arch.blocks.base import (
    BLOCKS,
    Block,
    conv_norm_act,
    count_layers,
    get_block,
    has_transition,
    register_block,
    shortcut,
)

__all__ = [
    "BLOCKS", "Block", "attention", "conv_norm_act", "count_layers", "dense", "get_block",
    "has_transition", "inception", "mobile", "recurrent", "register_block", "resnet", "shortcut",
    "squeeze",
]
