"""Architectures: ``ArchConfig``, the block registry and ``build_model``."""

from nasdepth.arch.blocks import BLOCKS, Block, get_block, register_block
from nasdepth.arch.build import INITS, Network, build_model, count_parameters, input_rank
from nasdepth.arch.config import ArchConfig, StageConfig
from nasdepth.arch.layers import ACTIVATIONS, NORMS, Ops

__all__ = [
    "ACTIVATIONS", "BLOCKS", "INITS", "NORMS", "ArchConfig", "Block", "Network", "Ops",
    "StageConfig", "build_model", "count_parameters", "get_block", "input_rank", "register_block",
]
