"""Parameter and FLOP budgets: scale an architecture's widths to the largest that fits.

``budget: {max_params: 50000}`` in a space makes every sampled architecture as wide as the
budget allows, keeping the ratios between its stage widths: blocks of different kinds then
compare at (nearly) equal size. Counting needs a model, so this module builds one on PyTorch's
``meta`` device (shapes only, no memory, no arithmetic): a 64-block network costs ~0.1 s to
count parameters and ~0.5 s to count FLOPs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from nasdepth.arch import ArchConfig, StageConfig, build_model, count_parameters
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.space.fields import WIDTH_KEYS, group_problem

BUDGET_KEYS = ("max_params", "max_flops", "width_divisor")


def complexity(cfg: ArchConfig, input_shape: Sequence[int], num_classes: int,
               *, flops: bool = True) -> tuple[int, int | None]:
    """(parameters, forward FLOPs per sample or None) of ``cfg``, counted on the meta device."""
    # init is irrelevant to the counts and some schemes (orthogonal) cannot run on meta tensors
    with torch.device("meta"):
        model = build_model(replace(cfg, init="default"), input_shape, num_classes)
    params = count_parameters(model)
    if not flops:
        return params, None
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.empty(1, *input_shape, device="meta"))
    return params, int(counter.get_total_flops())


@dataclass(frozen=True)
class Budget:
    max_params: int | None = None
    max_flops: int | None = None
    width_divisor: int = 1

    @classmethod
    def parse(cls, spec: Any, source: str) -> Budget:
        if not isinstance(spec, dict) or not spec:
            raise ConfigError(source, "budget", spec,
                              "a mapping with max_params and/or max_flops")
        for key in spec:
            if key not in BUDGET_KEYS:
                raise UnknownNameError(source, f"budget.{key}", key, BUDGET_KEYS)
        for key in spec:
            v = spec[key]
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(source, f"budget.{key}", v, "an int >= 1")
        if "max_params" not in spec and "max_flops" not in spec:
            raise ConfigError(source, "budget", spec, "a mapping with max_params and/or max_flops")
        return cls(max_params=spec.get("max_params"), max_flops=spec.get("max_flops"),
                   width_divisor=spec.get("width_divisor", 1))

    def fits(self, cfg: ArchConfig, input_shape: Sequence[int], num_classes: int) -> bool:
        params, flops = complexity(cfg, input_shape, num_classes,
                                   flops=self.max_flops is not None)
        if self.max_params is not None and params > self.max_params:
            return False
        return self.max_flops is None or (flops is not None and flops <= self.max_flops)

    def apply(self, cfg: ArchConfig, input_shape: Sequence[int], num_classes: int) -> ArchConfig:
        """The widest version of ``cfg`` (same width ratios) within the budget; the narrowest
        version when even that does not fit (the trial then records its real size)."""
        base = cfg.stages[0].width
        unit = self.width_divisor

        def at(k: int) -> ArchConfig:
            return scale(cfg, k * unit / base, self.width_divisor)

        def ok(k: int) -> bool:
            return self.fits(at(k), input_shape, num_classes)

        # Bracket the answer around the current width, then bisect: cost grows about
        # quadratically with width, so the bracket is found in a few doublings.
        k = max(1, round(base / unit))
        if ok(k):
            lo, hi = k, k * 2
            while ok(hi):
                lo, hi = hi, hi * 2
                if hi > 1 << 16:
                    return at(lo)
        else:
            lo, hi = k // 2, k
            while lo >= 1 and not ok(lo):
                lo, hi = lo // 2, lo
            if lo < 1:
                return at(1)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if ok(mid) else (lo, mid)
        return at(lo)


def scale(cfg: ArchConfig, factor: float, divisor: int = 1) -> ArchConfig:
    """``cfg`` with every width-like field times ``factor``, each stage width rounded to a
    multiple of ``divisor`` that its group count divides (so grouped convolutions stay valid)."""
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
        stages.append(_valid_groups(scaled, divisor))
    stem = cfg.stem_width
    if stem is not None:
        stem = max(divisor, round(stem * factor / divisor) * divisor)
    return replace(cfg, stages=tuple(stages), stem_width=stem)


def _valid_groups(stage: StageConfig, divisor: int) -> StageConfig:
    """The nearest width (narrower first, then wider; multiples of ``divisor``) at which the
    stage's grouped convolution can be built."""
    if group_problem(stage) is None:
        return stage
    for width in [*range(stage.width - divisor, 0, -divisor),
                  *range(stage.width + divisor, stage.width * 64, divisor)]:
        candidate = replace(stage, width=width)
        if group_problem(candidate) is None:
            return candidate
    return stage
