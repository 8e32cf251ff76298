"""Which keys a search space may set, and which values each key takes.

The keys are read from the ``StageConfig`` and ``ArchConfig`` dataclasses (``dataclasses``
type hints), so a field the architecture gains is a valid space key at once; names are checked
against the architecture's name lists (the blocks' rules, ``NORMS``, ``ACTIVATION_NAMES``,
``INITS``). Nothing here imports torch.
"""

from __future__ import annotations

import functools
import types
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, Union, get_args, get_origin, get_type_hints

from nasdepth.arch import config as arch_config
from nasdepth.arch.config import ACTIVATION_NAMES, INITS, NORMS, ArchConfig, StageConfig
from nasdepth.arch.rules import BLOCK_RULES, check_block
from nasdepth.errors import ConfigError, UnknownNameError

# Keys the space adds on top of the dataclass fields.
HELPER_KEYS: dict[str, Any] = {"stages": int, "width_multiplier": float}
META_KEYS = ("name", "description", "input_shape", "num_classes", "budget", "scaling")
# Keys that count something and so must be >= 1 (other numbers, if ints, must be >= 0).
POSITIVE = {"depth", "width", "stride", "kernel_size", "stem_width", "stages", "cardinality",
            "growth_rate", "head_pool_size", "heads"}
# Upper limits of the counting keys: beyond them a network cannot be built in any memory
# (a width of 10**9 made the space itself exhaust memory).
LIMITS = {"depth": 10_000, "width": 2**20, "stem_width": 2**20, "growth_rate": 2**20,
          "cardinality": 2**20, "heads": 2**16, "stages": 1_000, "kernel_size": 1_024,
          "stride": 1_024, "head_pool_size": 1_024, "width_multiplier": 1_024}
# Width-like stage keys a parameter budget scales together.
WIDTH_KEYS = ("width", "growth_rate")


def named() -> dict[str, Any]:
    """Registry per name-valued key (read at call time: blocks may be registered later)."""
    return {"block": BLOCK_RULES, "norm": NORMS, "activation": ACTIVATION_NAMES, "init": INITS,
            "downsample": arch_config.DOWNSAMPLES, "head_pool": arch_config.HEAD_POOLS,
            "nonlinearity": arch_config.NONLINEARITIES, "positional": arch_config.POSITIONALS}


def stage_problem(stage: StageConfig, rank: int | None = 2) -> ConfigError | None:
    """Why a block of this stage cannot be built (say, a cardinality that does not divide the
    width), or None. Asks the block's own rules (:func:`nasdepth.arch.rules.check_block`, the
    checks the block runs when it is built; no torch, microseconds). ``rank`` None: the
    input is not known yet, so only the block's options are checked (at a rank it runs on)."""
    rules = BLOCK_RULES.get(stage.block)
    if rules is None or (rank == 0 and rules.conv_only):
        return None  # reported by name and rank checks with better messages
    if rank is None:
        rank = max(rules.ranks)
    try:
        check_block(stage.block, replace(stage, depth=1), width=stage.width, stride=1,
                    rank=rank)
    except ConfigError as exc:
        return exc
    return None


@functools.cache
def stage_keys() -> dict[str, Any]:
    """Type hint of every ``StageConfig`` field."""
    return get_type_hints(StageConfig)


@functools.cache
def arch_keys() -> dict[str, Any]:
    """Type hint of every ``ArchConfig`` field except ``stages`` (the space builds those)."""
    return {k: t for k, t in get_type_hints(ArchConfig).items() if k != "stages"}


def shared_keys() -> dict[str, Any]:
    """Keys allowed at the top of a space: stage fields (shared by all stages), architecture
    fields and the helper keys."""
    return {**stage_keys(), **arch_keys(), **HELPER_KEYS}


def _conforms(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_conforms(value, arg) for arg in get_args(hint))
    if hint is type(None):
        return value is None
    if origin is tuple:
        args = get_args(hint)
        return isinstance(value, (list, tuple)) and all(_conforms(v, args[0]) for v in value)
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    return True  # a type this module does not know: the dataclass itself will judge


def describe_hint(hint: Any) -> str:
    """'an int', 'a number or null', 'a list of ints' ... for error messages."""
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe_hint(a) for a in get_args(hint))
    if hint is type(None):
        return "null"
    if origin is tuple:
        return "a list of " + describe_hint(get_args(hint)[0]).split(" ", 1)[-1] + "s"
    return {bool: "true or false", int: "an int", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint)))


def accepts(hint: Any, kind: str) -> bool:
    """Whether a key of type ``hint`` can take an Optuna ``kind`` ('int' or 'float')."""
    return _conforms(1 if kind == "int" else 0.5, hint)


def check_value(key: str, label: str, value: Any, hints: Mapping[str, Any], source: str) -> None:
    """Raise a :class:`ConfigError` naming ``source`` and ``label`` if ``key`` cannot be
    ``value``."""
    registry = named().get(key)
    if registry is not None and value not in registry:
        raise UnknownNameError(source, label, value, registry)
    hint = hints[key]
    if not _conforms(value, hint):
        raise ConfigError(source, label, value, describe_hint(hint))
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if key == "dropout" and not 0 <= value < 1:
        raise ConfigError(source, label, value, "a number in [0, 1)")
    if key in ("bottleneck_ratio", "width_multiplier", "compression") and value <= 0:
        raise ConfigError(source, label, value, "a number > 0")
    if key in POSITIVE and value < 1:
        raise ConfigError(source, label, value, f"{describe_hint(hint)} >= 1")
    if key in LIMITS and value > LIMITS[key]:
        raise ConfigError(source, label, value, f"{describe_hint(hint)} <= {LIMITS[key]}")
    if isinstance(value, int) and value < 0:
        raise ConfigError(source, label, value, f"{describe_hint(hint)} >= 0")
