"""What each block accepts, without building it: the input ranks it runs on and the checks of
its stage options (a cardinality that divides the width, an even width for a bidirectional
layer...).

The rules are plain Python (no torch), so a search space is validated against the blocks' own
rules in milliseconds (``nasdepth spaces check``); the blocks call :func:`check_block` when
they are built, so the rules exist once. :func:`register_block` of a block that has no entry
here (a block of the user's own) derives one from the class attributes ``ranks`` and
``conv_only``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nasdepth.arch.config import DOWNSAMPLES, NONLINEARITIES, POSITIONALS, StageConfig
from nasdepth.errors import ConfigError, UnknownNameError

SOURCE = "the architecture"
SHAPES = {0: "flat (N, F)", 1: "1-D (N, C, L)", 2: "2-D (N, C, H, W)"}

#: block options -> ConfigError; called with the stage and the block's output width
Check = Callable[[StageConfig, int], object]  # what it returns is ignored


@dataclass(frozen=True)
class BlockRules:
    """``ranks``: the input ranks a block runs on (0 flat, 1 sequences/1-D, 2 images);
    ``conv_only``: it cannot run on flat features; ``check``: its own option checks."""

    ranks: tuple[int, ...] = (0, 1, 2)
    conv_only: bool = False
    check: Check | None = None
    #: the block's squeeze-and-excitation ratio when ``se_ratio`` is None; None: no SE option
    se_default: float | None = None
    #: the block has a residual branch that ``drop_path`` (stochastic depth) can drop
    drop_path: bool = False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _bottleneck(stage: StageConfig, width: int) -> None:
    if not stage.bottleneck_ratio > 0:
        raise ConfigError(SOURCE, "bottleneck_ratio", stage.bottleneck_ratio, "a number > 0")


def _grouped(stage: StageConfig, width: int) -> None:
    _bottleneck(stage, width)
    c = stage.cardinality
    if not _is_int(c) or c < 1 or width % c:
        raise ConfigError(SOURCE, "cardinality", c,
                          f"an int >= 1 that divides the stage width {width}")


def dense_expansion(stage: StageConfig) -> float:
    """A dense layer's bottleneck factor (None: 4, 0: no 1x1 bottleneck)."""
    e = 4.0 if stage.expansion is None else stage.expansion
    if e < 0:
        raise ConfigError(SOURCE, "expansion", e, "a number >= 0 (0: no bottleneck)")
    return e


def _dense(stage: StageConfig, width: int) -> None:
    growth = stage.width if stage.growth_rate is None else stage.growth_rate
    if growth < 1:
        raise ConfigError(SOURCE, "growth_rate", growth, "an int >= 1")
    dense_expansion(stage)
    check_compression(stage)


def check_compression(stage: StageConfig) -> None:
    """The transition layer's channel factor (it opens every later dense stage)."""
    if not 0 < stage.compression <= 1:
        raise ConfigError(SOURCE, "compression", stage.compression, "a number in (0, 1]")


def branch_widths(stage: StageConfig, width: int) -> tuple[int, int, int, int, int, int]:
    """(1x1, kxk reduce, kxk, wide reduce, wide, pool projection) of an inception block.

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


def _inception(stage: StageConfig, width: int) -> None:
    branch_widths(stage, width)
    if not stage.wide_kernels or min(stage.wide_kernels) < 1:
        raise ConfigError(SOURCE, "wide_kernels", list(stage.wide_kernels),
                          "a non-empty list of kernel sizes >= 1")


def mobile_expansion(stage: StageConfig) -> float:
    """A depthwise-separable block's inverted-residual factor (None or 1: no expansion)."""
    e = 1.0 if stage.expansion is None else stage.expansion
    if e <= 0:
        raise ConfigError(SOURCE, "expansion", e, "a number > 0 (1: no expansion layer)")
    return e


def mbconv_expansion(stage: StageConfig) -> float:
    """An MBConv block's expansion factor (None: 6, EfficientNet's MBConv6; 1: none)."""
    e = 6.0 if stage.expansion is None else stage.expansion
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not e > 0:
        raise ConfigError(SOURCE, "expansion", e, "a number > 0 (1: no expansion layer)")
    return float(e)


def se_ratio(stage: StageConfig, rules: BlockRules) -> float:
    """The squeeze-and-excitation ratio a block of ``rules`` uses (0: off)."""
    if rules.se_default is None:
        return 0.0
    r = rules.se_default if stage.se_ratio is None else stage.se_ratio
    if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r <= 1:
        raise ConfigError(SOURCE, "se_ratio", r,
                          "a number in [0, 1] (0: no squeeze-and-excitation; null: the "
                          "block's default)")
    return float(r)


def squeeze_width(channels: int, ratio: float) -> int:
    """Channels of the squeeze layer: ``int(channels * ratio)``, at least 1 (torchvision's
    ``max(1, channels // 4)`` at 0.25)."""
    return max(1, int(channels * ratio))


def check_gate_bias(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(SOURCE, "gate_bias", value, "a number (or null for the default)")


def _recurrent(stage: StageConfig, width: int) -> None:
    if not isinstance(stage.bidirectional, bool):
        raise ConfigError(SOURCE, "bidirectional", stage.bidirectional, "true or false")
    if stage.bidirectional and width % 2:
        raise ConfigError(SOURCE, "width", width,
                          "an even int when bidirectional is on (each direction gets half)")


def _rnn(stage: StageConfig, width: int) -> None:
    _recurrent(stage, width)
    if stage.nonlinearity not in NONLINEARITIES:
        raise UnknownNameError(SOURCE, "nonlinearity", stage.nonlinearity, NONLINEARITIES)


def _gated(stage: StageConfig, width: int) -> None:
    _recurrent(stage, width)
    if stage.gate_bias is not None:
        check_gate_bias(stage.gate_bias)


def _transformer(stage: StageConfig, width: int) -> None:
    heads = stage.heads
    if not _is_int(heads) or heads < 1 or width % heads:
        raise ConfigError(SOURCE, "heads", heads,
                          f"an int >= 1 that divides the stage width {width}")
    e = 4.0 if stage.expansion is None else stage.expansion
    if not e > 0:
        raise ConfigError(SOURCE, "expansion", e, "a number > 0 (feed-forward width / width)")
    if not isinstance(stage.norm_first, bool):
        raise ConfigError(SOURCE, "norm_first", stage.norm_first, "true or false")
    if stage.positional not in POSITIONALS:
        raise UnknownNameError(SOURCE, "positional", stage.positional, POSITIONALS)


SEQUENCE = (1,)

#: every block's rules, by registry name (blocks registered later add theirs)
BLOCK_RULES: dict[str, BlockRules] = {
    "plain": BlockRules(),
    "residual": BlockRules(se_default=0.0, drop_path=True),
    "bottleneck": BlockRules(check=_bottleneck, se_default=0.0, drop_path=True),
    "grouped": BlockRules(conv_only=True, check=_grouped, se_default=0.0, drop_path=True),
    "dense": BlockRules(conv_only=True, check=_dense),
    "inception": BlockRules(conv_only=True, check=_inception),
    "dwsep": BlockRules(conv_only=True, check=lambda stage, _: mobile_expansion(stage),
                        se_default=0.0, drop_path=True),
    "mbconv": BlockRules(conv_only=True, check=lambda stage, _: mbconv_expansion(stage),
                         se_default=0.25, drop_path=True),
    "rnn": BlockRules(ranks=SEQUENCE, conv_only=True, check=_rnn),
    "lstm": BlockRules(ranks=SEQUENCE, conv_only=True, check=_gated),
    "gru": BlockRules(ranks=SEQUENCE, conv_only=True, check=_gated),
    "transformer": BlockRules(ranks=SEQUENCE, conv_only=True, check=_transformer),
}


def flat_blocks() -> list[str]:
    """Blocks that run on flat (N, F) features."""
    return sorted(n for n, r in BLOCK_RULES.items() if not r.conv_only)


def check_block(name: str, stage: StageConfig, *, width: int, stride: int, rank: int,
                rules: BlockRules | None = None) -> None:
    """Raise the ConfigError a block ``name`` of ``stage`` would raise when built for inputs of
    ``rank`` (0 flat, 1, 2) with ``width`` output channels and ``stride`` (``rules``: those of
    an unregistered block)."""
    if rules is None:
        if name not in BLOCK_RULES:
            raise UnknownNameError(SOURCE, "block", name, BLOCK_RULES)
        rules = BLOCK_RULES[name]
    if rank not in rules.ranks:
        fits = sorted(n for n, r in BLOCK_RULES.items()
                      if rank in r.ranks and not (rank == 0 and r.conv_only))
        runs_on = " or ".join(SHAPES[r] for r in rules.ranks)
        raise ConfigError(SOURCE, "block", name,
                          f"one of {', '.join(fits)} for {SHAPES[rank]} inputs (a "
                          f"{name} block runs on {runs_on} inputs only)")
    if rules.conv_only and rank == 0:
        raise ConfigError(SOURCE, "block", name,
                          f"one of {', '.join(flat_blocks())} for flat (N, F) inputs "
                          "(it is a convolutional block: it needs 1-D or 2-D inputs)")
    if stage.downsample not in DOWNSAMPLES:
        raise UnknownNameError(SOURCE, "downsample", stage.downsample, DOWNSAMPLES)
    for key in ("width", "kernel_size"):
        if getattr(stage, key) < 1:
            raise ConfigError(SOURCE, key, getattr(stage, key), "an int >= 1")
    if stride < 1:
        raise ConfigError(SOURCE, "stride", stride, "an int >= 1")
    if not 0 <= stage.dropout < 1:
        raise ConfigError(SOURCE, "dropout", stage.dropout, "a number in [0, 1)")
    if se_ratio(stage, rules) > 0 and rank == 0:
        raise ConfigError(SOURCE, "se_ratio", stage.se_ratio,
                          "0 for flat (N, F) inputs (squeeze-and-excitation pools over "
                          "positions: it needs 1-D or 2-D inputs)")
    dp = stage.drop_path
    if rules.drop_path and (isinstance(dp, bool) or not isinstance(dp, (int, float))
                            or not 0 <= dp < 1):
        raise ConfigError(SOURCE, "drop_path", dp, "a number in [0, 1)")
    if rules.check is not None:
        rules.check(stage, width)
