"""Compound scaling (Tan & Le 2019): a base architecture scaled by φ in depth, width and input
resolution, as a search dimension. A space's ``scaling:`` section (its keys, with an example:
docs/architectures.md, "Compound scaling") adds the parameters ``scaling.phi`` and
``scaling.rule``.

A rule is a triple (α, β, γ): the network's total depth becomes ``round(depth * α**φ)`` (spread
over the stages in the base's proportions), every width ``round(width * β**φ)``, the input side
``round(resolution * γ**φ)``. Every rule of one space is held to the same FLOPs factor per unit
of φ, α·β²·γ² = ``target``, so that the rules compare at matched FLOPs, up to rounding (and
layers whose FLOPs grow slower than β², which ``match_flops`` corrects by moving each
candidate's φ along its rule). Nothing here imports torch.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from nasdepth.arch.config import ArchConfig, StageConfig
from nasdepth.errors import ConfigError, UnknownNameError, check_bool, check_int, check_section
from nasdepth.space.params import Param

SCALING_KEYS = ("resolution", "phi", "rule", "alpha", "beta", "gamma", "target", "tolerance",
                "grid", "width_divisor", "match_flops")
#: steps of the search for the φ that matches a rule's FLOPs to target**phi
MATCH_STEPS = 10
#: rules by name; compound's triple comes from the section's alpha, beta, gamma
NAMED_RULES = ("depth", "width", "resolution", "compound")
#: the paper's coefficients (a grid search at φ = 1 on EfficientNet-B0)
PAPER = (1.2, 1.1, 1.15)
#: Optuna names of the two parameters a scaling section adds
PHI, RULE = "scaling.phi", "scaling.rule"


@dataclass(frozen=True)
class Rule:
    """One scaling rule: its name and (α, β, γ)."""

    name: str
    alpha: float
    beta: float
    gamma: float

    @property
    def product(self) -> float:
        """α·β²·γ²: the FLOPs factor per unit of φ."""
        return self.alpha * self.beta**2 * self.gamma**2


@dataclass(frozen=True)
class Scaling:
    """A parsed ``scaling:`` section: the φ and rule parameters and every rule's triple."""

    phi: Param
    rule: Param
    rules: tuple[Rule, ...]
    resolution: int
    target: float = 2.0
    tolerance: float = 0.05
    width_divisor: int = 1
    match_flops: bool = False
    source: str = "the search space"

    @property
    def params(self) -> tuple[Param, Param]:
        return self.phi, self.rule

    def get_rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise UnknownNameError(self.source, RULE, name, [r.name for r in self.rules])

    def phis(self) -> list[float]:
        """Every φ the space can take (the ends of a continuous range)."""
        vals = self.phi.values()
        return [float(v) for v in vals] if vals is not None else [self.phi.low, self.phi.high]

    def values(self, shared: Mapping[str, Any]) -> tuple[float, Rule]:
        """(φ, rule) of one candidate from its shared values (keyed by parameter name)."""
        phi = shared.get(PHI, self.phi.value)
        rule = shared.get(RULE, self.rule.value)
        return float(phi), self.get_rule(str(rule))

    # --- the scaled network -------------------------------------------------------------------

    def side(self, phi: float, rule: Rule) -> int:
        """The input side (pixels, or steps of a 1-D input) at ``phi`` under ``rule``."""
        return max(1, round(self.resolution * rule.gamma**phi))

    def width(self, width: int, phi: float, rule: Rule) -> int:
        d = self.width_divisor
        return max(d, round(width * rule.beta**phi / d) * d)

    def depths(self, depths: Sequence[int], phi: float, rule: Rule) -> list[int]:
        """Stage depths whose total is ``round(total * α**φ)`` (at least one block a stage),
        shared out in the base's proportions (largest remainders)."""
        total = sum(depths)
        want = max(len(depths), round(total * rule.alpha**phi))
        exact = [d * want / total for d in depths]
        out = [max(1, int(e)) for e in exact]
        order = sorted(range(len(depths)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
        i = 0
        while sum(out) < want:
            out[order[i % len(order)]] += 1
            i += 1
        while sum(out) > want:  # the at-least-one floor overshot: trim the deepest stages
            j = max(range(len(out)), key=lambda k: out[k])
            out[j] -= 1
        return out

    def apply(self, cfg: ArchConfig, phi: float, rule: Rule) -> ArchConfig:
        """``cfg`` (the base network) scaled by ``phi`` under ``rule``."""
        depths = self.depths([s.depth for s in cfg.stages], phi, rule)
        stages = tuple(self._stage(s, d, phi, rule) for s, d in zip(cfg.stages, depths,
                                                                     strict=True))
        stem = tuple(s if s.width is None else replace(s, width=self.width(s.width, phi, rule))
                     for s in cfg.stem)
        stem_width = None if cfg.stem_width is None else self.width(cfg.stem_width, phi, rule)
        return replace(cfg, stages=stages, stem=stem, stem_width=stem_width)

    def _stage(self, stage: StageConfig, depth: int, phi: float, rule: Rule) -> StageConfig:
        growth = stage.growth_rate
        return replace(stage, depth=depth, width=self.width(stage.width, phi, rule),
                       growth_rate=None if growth is None else self.width(growth, phi, rule))

    def matched_phi(self, base: ArchConfig, phi: float, rule: Rule, input_shape: Sequence[int],
                    num_classes: int) -> float:
        """The φ along ``rule`` whose network (and input side) has the FLOPs nearest to
        ``target**phi`` times the base's (``phi`` itself without ``match_flops``)."""
        if not self.match_flops or phi == 0:
            return phi
        return _matched(self._key(), base, phi, rule, tuple(input_shape), num_classes)

    def _key(self) -> tuple[int, float, int]:
        return self.resolution, self.target, self.width_divisor

    def flops(self, base: ArchConfig, phi: float, rule: Rule, input_shape: Sequence[int],
              num_classes: int) -> int:
        return _flops(self._key(), base, phi, rule, tuple(input_shape), num_classes)

    # --- checks -------------------------------------------------------------------------------

    def check_network(self, cfg: ArchConfig, rank: int | None, label: str = "") -> None:
        """Refuse a resolution below what the network needs: every stride of the stem and
        the stages must have at least one pixel (step) to halve."""
        if rank == 0:
            if any(r.gamma != 1 for r in self.rules):
                bad = next(r for r in self.rules if r.gamma != 1)
                raise ConfigError(self.source, RULE, bad.name,
                                  "rules with gamma 1 for flat (N, F) inputs (they have no "
                                  "resolution to scale)")
            return
        need = minimum_side(cfg)
        low = min(self.side(phi, r) for phi in self.phis() for r in self.rules)
        if low < need:
            where = f" ({label})" if label else ""
            raise ConfigError(self.source, "scaling.resolution", low,
                              f"an input side >= {need}, the network's minimum: its strides "
                              f"downsample {need}x{where}; raise scaling.resolution or phi")


@functools.lru_cache(maxsize=4096)
def _flops(key: tuple[int, float, int], base: ArchConfig, phi: float, rule: Rule,
           input_shape: tuple[int, ...], num_classes: int) -> int:
    """FLOPs of ``base`` scaled by ``phi`` (its input side included); cached: a trial and
    its report ask about the same few networks."""
    from nasdepth.arch.counting import config_complexity  # torch: only to count

    resolution, target, divisor = key
    scaling = Scaling(Param(PHI, "fixed", value=phi), Param(RULE, "fixed", value=rule.name),
                      (rule,), resolution, target, width_divisor=divisor)
    side = scaling.side(phi, rule)
    shape = (input_shape[0], *([side] * (len(input_shape) - 1)))
    _, flops = config_complexity(scaling.apply(base, phi, rule), shape, num_classes)
    return int(flops or 0)


@functools.lru_cache(maxsize=1024)
def _matched(key: tuple[int, float, int], base: ArchConfig, phi: float, rule: Rule,
             input_shape: tuple[int, ...], num_classes: int) -> float:
    """Bisection on φ' in [0, 2φ] (FLOPs never fall as φ' grows: every coefficient is >= 1)
    for FLOPs(φ') = FLOPs(0) * target**phi; then the nearer (in log ratio) of the two
    roundings around the crossing."""
    def f(x: float) -> int:
        return _flops(key, base, x, rule, input_shape, num_classes)

    want = f(0.0) * key[1] ** phi
    low, high = 0.0, 2.0 * phi
    if f(high) < want:
        return high
    for _ in range(MATCH_STEPS):
        mid = (low + high) / 2
        low, high = (mid, high) if f(mid) < want else (low, mid)
    return min((low, high), key=lambda x: abs(math.log(max(f(x), 1) / want)))


def minimum_side(cfg: ArchConfig) -> int:
    """The smallest input side at which every stride of ``cfg`` still has a pixel to reduce."""
    strides = [s.stride for s in cfg.stem] + [s.stride for s in cfg.stages]
    return math.prod(max(1, int(s)) for s in strides)


def _number(source: str, key: str, value: Any, *, low: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= low \
            or not math.isfinite(value):
        raise ConfigError(source, f"scaling.{key}", value, what)
    return float(value)


def _phi(spec: Any, source: str) -> Param:
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    p = Param.parse(PHI, spec, source, PHI)
    if p.when:
        raise ConfigError(source, f"{PHI}.when", dict(p.when), "absent (phi is unconditional)")
    for v in p.values() or [p.low, p.high]:
        _number(source, "phi", v, low=0, what="a number >= 0 (or a list / range of them)")
    return p


def _rules(spec: Mapping[str, Any], target: float, source: str) -> tuple[list[Rule], list[str]]:
    """Every rule the section defines (named, triples, grid) and the rule values listed."""
    coeffs = [_number(source, k, spec.get(k, d), low=1.0, what="a number >= 1 (a "
                      "coefficient below 1 would shrink its dimension as phi grows)")
              for k, d in zip(("alpha", "beta", "gamma"), PAPER, strict=True)]
    root = math.sqrt(target)
    named = {"depth": Rule("depth", target, 1.0, 1.0), "width": Rule("width", 1.0, root, 1.0),
             "resolution": Rule("resolution", 1.0, 1.0, root),
             "compound": Rule("compound", *coeffs)}
    listed: list[str] = []
    raw = spec.get("rule")
    if raw is not None:
        listed = [str(r) for r in (raw if isinstance(raw, list) else [raw])]
        if not listed:
            raise ConfigError(source, RULE, raw, "a rule or a non-empty list of rules")
    rules: list[Rule] = []
    for name in listed:
        if name in named:
            rules.append(named[name])
            continue
        parts = name.split("/")
        try:
            a, b, g = (float(x) for x in parts)
        except ValueError:
            raise UnknownNameError(source, RULE, name, [*NAMED_RULES, "ALPHA/BETA/GAMMA"]
                                   ) from None
        for key, v in zip(("alpha", "beta", "gamma"), (a, b, g), strict=True):
            _number(source, f"rule {name} {key}", v, low=1.0, what="a number >= 1")
        rules.append(Rule(name, a, b, g))
    grid = spec.get("grid")
    if grid is not None:
        found = _grid(grid, target, source)
        rules += [r for r in found if r.name not in listed]
        listed += [r.name for r in found if r.name not in listed]
    if not rules:
        rules, listed = [named["compound"]], ["compound"]
    return rules, listed


def _grid(grid: Any, target: float, source: str) -> list[Rule]:
    """The paper's grid search: every (α, β) of the grid with γ = √(target / (α β²)) >= 1."""
    if not isinstance(grid, dict) or set(grid) - {"alpha", "beta"} or not grid:
        raise ConfigError(source, "scaling.grid", grid,
                          "a mapping of alpha and beta lists (gamma follows from the target)")
    lists = {}
    for key in ("alpha", "beta"):
        vals = grid.get(key, [1.0])
        if not isinstance(vals, list) or not vals:
            raise ConfigError(source, f"scaling.grid.{key}", vals, "a non-empty list of numbers")
        lists[key] = [_number(source, f"grid.{key}", v, low=1.0, what="a number >= 1")
                      for v in vals]
    out = []
    for a in lists["alpha"]:
        for b in lists["beta"]:
            rest = target / (a * b * b)
            if rest >= 1 - 1e-9:
                g = round(math.sqrt(rest), 3)
                out.append(Rule(f"{a:g}/{b:g}/{g:g}", a, b, g))
    if not out:
        raise ConfigError(source, "scaling.grid", grid,
                          f"alpha and beta values with alpha * beta**2 <= {target:g} (the "
                          f"target), so that a gamma >= 1 can meet alpha * beta**2 * "
                          f"gamma**2 = {target:g}; the smallest here gives "
                          f"{min(lists['alpha']) * min(lists['beta'])**2:g}")
    return out


def parse_scaling(spec: Any, source: str) -> Scaling:
    """Read and check a space's ``scaling:`` section."""
    spec = check_section(spec, source, "scaling", SCALING_KEYS,
                         "a mapping (resolution, phi, rule, ...)")
    res = check_int(spec.get("resolution"), source, "scaling.resolution", 1,
                    "an int >= 1: the base network's input side (the data are resized to it "
                    "times gamma**phi)")
    target = _number(source, "target", spec.get("target", 2.0), low=1.0,
                     what="a number > 1 (the FLOPs factor per unit of phi)")
    if target == 1:
        raise ConfigError(source, "scaling.target", spec.get("target"),
                          "a number > 1 (the FLOPs factor per unit of phi)")
    tol = spec.get("tolerance", 0.05)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        raise ConfigError(source, "scaling.tolerance", tol, "a number in [0, 1)")
    divisor = check_int(spec.get("width_divisor", 1), source, "scaling.width_divisor", 1)
    match = check_bool(spec.get("match_flops", False), source, "scaling.match_flops")
    rules, listed = _rules(spec, target, source)
    for r in rules:
        if abs(r.product / target - 1) > tol:
            need = math.sqrt(target / (r.alpha * r.beta**2))
            key = "scaling.gamma" if r.name == "compound" else RULE
            value = r.gamma if r.name == "compound" else r.name
            fix = f"; gamma {need:.3f} meets it" if need >= 1 else (
                "; no gamma >= 1 can: alpha * beta**2 is already above it")
            raise ConfigError(source, key, value,
                              f"coefficients with alpha * beta**2 * gamma**2 within "
                              f"{tol:.0%} of the target {target:g} (the {r.name} rule gives "
                              f"{r.product:.3f}{fix})")
    rule = (Param(RULE, "fixed", value=listed[0], label=RULE) if len(listed) == 1 else
            Param(RULE, "categorical", choices=tuple(listed), label=RULE))
    return Scaling(phi=_phi(spec.get("phi", 1), source), rule=rule, rules=tuple(rules),
                   resolution=res, target=target, tolerance=float(tol), width_divisor=divisor,
                   match_flops=match, source=source)


def explain(scaling: Scaling, base: ArchConfig, input_shape: Sequence[int] | None = None,
            num_classes: int = 10) -> list[dict[str, Any]]:
    """One row per (rule, φ): the coefficients and the resulting depth, widths and input side
    of ``base`` (what ``nasdepth spaces check`` prints). With ``match_flops`` (and the
    space's ``input_shape``) also the matched φ and the FLOPs reached over the base's."""
    rows = []
    for rule in scaling.rules:
        for phi in scaling.phis():
            eff = phi
            row: dict[str, Any] = {"rule": rule.name, "alpha": rule.alpha, "beta": rule.beta,
                                   "gamma": rule.gamma, "phi": phi}
            if scaling.match_flops and input_shape is not None:
                eff = scaling.matched_phi(base, phi, rule, input_shape, num_classes)
                ratio = (scaling.flops(base, eff, rule, input_shape, num_classes)
                         / scaling.flops(base, 0.0, rule, input_shape, num_classes))
                row.update(matched_phi=round(eff, 3), flops_reached=round(ratio, 3))
            cfg = scaling.apply(base, eff, rule)
            row.update({"depth": cfg.depth, "widths": [s.width for s in cfg.stages],
                        "resolution": scaling.side(eff, rule),
                        "flops_target": round(scaling.target**phi, 3)})
            rows.append(row)
    return rows
