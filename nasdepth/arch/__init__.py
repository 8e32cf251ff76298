"""Architectures: ``ArchConfig``, the block registry, ``build_model``, presets and complexity.

Names load on first use (:mod:`nasdepth.lazy`): ``nasdepth.arch.config`` and
``nasdepth.arch.rules`` (what each block accepts) need no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasdepth.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("BLOCKS", "Block", "get_block", "register_block"), "nasdepth.arch.blocks"),
    **dict.fromkeys(("Network", "build_model", "count_parameters", "input_rank"),
                    "nasdepth.arch.build"),
    **dict.fromkeys(("ACTIVATION_NAMES", "INITS", "NORMS", "ArchConfig", "StageConfig",
                     "StemLayer"), "nasdepth.arch.config"),
    **dict.fromkeys(("FLOP_RULES", "complexity", "config_complexity", "count_flops"),
                    "nasdepth.arch.counting"),
    **dict.fromkeys(("ACTIVATIONS", "Ops"), "nasdepth.arch.layers"),
    **dict.fromkeys(("PRESETS", "preset"), "nasdepth.arch.presets"),
    **dict.fromkeys(("BLOCK_RULES", "BlockRules", "check_block"), "nasdepth.arch.rules"),
    "load_weights": "nasdepth.arch.weights",
}
__all__ = [
    "ACTIVATIONS", "ACTIVATION_NAMES", "ArchConfig", "BLOCKS", "BLOCK_RULES", "Block",
    "BlockRules", "FLOP_RULES", "INITS", "NORMS", "Network", "Ops", "PRESETS", "StageConfig",
    "StemLayer", "build_model", "check_block", "complexity", "config_complexity", "count_flops",
    "count_parameters", "get_block", "input_rank", "load_weights", "preset", "register_block",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from nasdepth.arch.blocks import BLOCKS, Block, get_block, register_block
    from nasdepth.arch.build import Network, build_model, count_parameters, input_rank
    from nasdepth.arch.config import (
        ACTIVATION_NAMES,
        INITS,
        NORMS,
        ArchConfig,
        StageConfig,
        StemLayer,
    )
    from nasdepth.arch.counting import FLOP_RULES, complexity, config_complexity, count_flops
    from nasdepth.arch.layers import ACTIVATIONS, Ops
    from nasdepth.arch.presets import PRESETS, preset
    from nasdepth.arch.rules import BLOCK_RULES, BlockRules, check_block
    from nasdepth.arch.weights import load_weights
