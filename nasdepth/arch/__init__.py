"""Architectures: ``ArchConfig``, the block registry, ``build_model``, presets and complexity."""

from nasdepth.arch.blocks import BLOCKS, Block, get_block, register_block
from nasdepth.arch.build import INITS, Network, build_model, count_parameters, input_rank
from nasdepth.arch.config import ArchConfig, StageConfig, StemLayer
from nasdepth.arch.counting import FLOP_RULES, complexity, config_complexity, count_flops
from nasdepth.arch.layers import ACTIVATIONS, NORMS, Ops
from nasdepth.arch.multitask import (
    WEIGHTINGS,
    MultitaskConfig,
    MultitaskNetwork,
    TaskPath,
    build_multitask,
)
from nasdepth.arch.presets import PRESETS, preset
from nasdepth.arch.weights import load_weights

__all__ = [
    "ACTIVATIONS", "BLOCKS", "FLOP_RULES", "INITS", "NORMS", "PRESETS", "ArchConfig", "Block",
    "Network", "Ops", "StageConfig", "StemLayer", "build_model", "complexity",
    "config_complexity", "count_flops", "count_parameters", "get_block", "input_rank",
    "load_weights", "preset", "register_block", "WEIGHTINGS", "MultitaskConfig",
    "MultitaskNetwork", "TaskPath", "build_multitask",
]
