"""Parameter and FLOP budgets: scale an architecture's widths to the largest that fits.

``budget: {max_params: 50000}`` in a space makes every sampled architecture as wide as the
budget allows, keeping the ratios between its stage widths: blocks of different kinds then
compare at (nearly) equal size. The counts are the architecture package's
(:func:`nasdepth.arch.config_complexity`: a model on PyTorch's ``meta`` device, shapes only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from nasdepth.arch.config import ArchConfig, StageConfig
from nasdepth.errors import ConfigError, check_int, check_section
from nasdepth.space.fields import WIDTH_KEYS, stage_problem

BUDGET_KEYS = ("max_params", "max_flops", "width_divisor")


@dataclass(frozen=True)
class Budget:
    max_params: int | None = None
    max_flops: int | None = None
    width_divisor: int = 1

    @classmethod
    def parse(cls, spec: Any, source: str) -> Budget:
        spec = check_section(spec, source, "budget", BUDGET_KEYS,
                             "a mapping with max_params and/or max_flops")
        for key, v in spec.items():
            check_int(v, source, f"budget.{key}", 1)
        if "max_params" not in spec and "max_flops" not in spec:
            raise ConfigError(source, "budget", spec, "a mapping with max_params and/or max_flops")
        return cls(**spec)  # keys and values checked above

    def ratio(self, cfg: ArchConfig, input_shape: Sequence[int], num_classes: int) -> float:
        """Size over budget (the larger of params and FLOPs ratios): <= 1 fits."""
        from nasdepth.arch.counting import config_complexity  # torch: only to count

        params, flops = config_complexity(cfg, input_shape, num_classes,
                                          flops=self.max_flops is not None)
        out = 0.0
        if self.max_params is not None:
            out = params / self.max_params
        if self.max_flops is not None and flops is not None:
            out = max(out, flops / self.max_flops)
        return out

    def apply(self, cfg: ArchConfig, input_shape: Sequence[int], num_classes: int) -> ArchConfig:
        """The widest version of ``cfg`` (same width ratios) within the budget; the narrowest
        version when even that does not fit (the trial then records its real size)."""
        base = cfg.stages[0].width
        unit = self.width_divisor
        seen: dict[int, float] = {}

        def at(k: int) -> ArchConfig:
            return scale(cfg, k * unit / base, unit, input_shape)

        def ok(k: int) -> bool:
            if k not in seen:
                seen[k] = self.ratio(at(k), input_shape, num_classes)
            return seen[k] <= 1

        # Size grows about quadratically with width: one count at the sampled width predicts
        # the answer, and a short gallop from there brackets it (3-5 counts in all).
        k = max(1, round(base / unit))
        ok(k)
        k = max(1, int(k / math.sqrt(max(seen[k], 1e-12))))
        step = 1
        if ok(k):
            lo, hi = k, k + step
            while ok(hi):
                if hi > 1 << 16:
                    return at(hi)
                lo, step = hi, step * 2
                hi = lo + step
        else:
            lo, hi = k - step, k
            while lo >= 1 and not ok(lo):
                hi, step = lo, step * 2
                lo = hi - step
            if lo < 1:
                if not ok(1):
                    return at(1)
                lo = 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return at(lo)


def scale(cfg: ArchConfig, factor: float, divisor: int = 1,
          input_shape: Sequence[int] = (1, 1, 1)) -> ArchConfig:
    """``cfg`` with every width-like field times ``factor``, each stage width rounded to a
    multiple of ``divisor`` at which its block can be built (grouped convolutions need a width
    their groups divide)."""
    stages = []
    for stage in cfg.stages:
        changes: dict[str, int] = {}
        for key in WIDTH_KEYS:
            value = getattr(stage, key, None)
            if not isinstance(value, int) or isinstance(value, bool):
                continue
            unit = divisor if key == "width" else 1
            changes[key] = max(unit, round(value * factor / unit) * unit)
        scaled = replace(stage, **changes)  # type: ignore[arg-type]
        stages.append(_buildable(scaled, divisor, rank=len(input_shape) - 1))
    stem = cfg.stem_width
    if stem is not None:
        stem = max(divisor, round(stem * factor / divisor) * divisor)
    return replace(cfg, stages=tuple(stages), stem_width=stem)


def _buildable(stage: StageConfig, divisor: int, rank: int) -> StageConfig:
    """The nearest width (narrower first, then wider; multiples of ``divisor``) at which the
    stage's block can be built (a grouped convolution needs a width its groups divide)."""
    if stage_problem(stage, rank) is None:
        return stage
    for width in [*range(stage.width - divisor, 0, -divisor),
                  *range(stage.width + divisor, stage.width * 64, divisor)]:
        candidate = replace(stage, width=width)
        if stage_problem(candidate, rank) is None:
            return candidate
    return stage
