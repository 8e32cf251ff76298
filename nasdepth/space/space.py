"""``SearchSpace``: a YAML file of parameters that Optuna samples into an ``ArchConfig``.

The keys (docs/search_spaces.md, "Which keys exist"): any ``StageConfig`` field (shared by every
stage) or ``ArchConfig`` field, each fixed or a distribution (:mod:`nasdepth.space.params`);
``stages`` (a count, or one mapping per stage); ``width_multiplier``; ``input_shape`` and
``num_classes`` (what a ``budget:`` counts on); ``budget:`` (:mod:`nasdepth.space.budget`);
``scaling:`` (:mod:`nasdepth.space.scaling`); ``name``, ``description``; and training-recipe
keys (:mod:`nasdepth.space.recipe`), applied to the study's ``training:`` by
:meth:`SearchSpace.training`. A shared ``depth`` is the *total* number of blocks, split as
evenly as possible over the stages (later stages get the remainder); stage i gets
``width * width_multiplier**i`` and stride 2 for i > 0 unless ``stride`` is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasdepth.arch.config import ArchConfig, StageConfig
from nasdepth.arch.rules import BLOCK_RULES
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError, check_int
from nasdepth.space.budget import Budget
from nasdepth.space.fields import (
    META_KEYS,
    accepts,
    arch_keys,
    check_value,
    describe_hint,
    shared_keys,
    stage_keys,
    stage_problem,
)
from nasdepth.space.params import Param
from nasdepth.space.recipe import (
    ALL_KEYS,
    apply_recipe,
    checked,
    flatten,
    is_recipe,
    link_momentum,
    recipe_values,
)
from nasdepth.space.scaling import Rule, Scaling, parse_scaling
from nasdepth.train.config import TrainConfig
from nasdepth.yamlfile import read_yaml

if TYPE_CHECKING:
    import optuna

# grid() refuses to list more combinations than this; size() then answers None.
GRID_LIMIT = 20_000
# Loading asks the blocks about every distinct stage of spaces up to this many combinations
# (depth left out), and of at most a quarter as many distinct stages: loads stay under ~1 s.
CHECK_LIMIT = 1_200
STAGE_DEFAULTS = {f.name: f.default for f in fields(StageConfig)}
_UNSET = object()  # a parameter without a value (not sampled, not fixed)


@dataclass(frozen=True)
class SearchSpace:
    name: str
    shared: tuple[Param, ...]
    # per-stage parameters (one tuple per stage); None: the stage count comes from `stages`
    per_stage: tuple[tuple[Param, ...], ...] | None = None
    source: str = "the search space"
    description: str = ""
    input_shape: tuple[int, ...] | None = None
    num_classes: int = 10
    budget: Budget | None = None
    scaling: Scaling | None = None

    @property
    def params(self) -> tuple[Param, ...]:
        """Every parameter in sampling order (shared first, then stage by stage)."""
        return self.shared + tuple(p for stage in self.per_stage or () for p in stage)

    @property
    def recipe_params(self) -> tuple[Param, ...]:
        """The training-recipe parameters (fixed or sampled), by key."""
        return tuple(p for p in self.shared if is_recipe(p.name))

    def searched_recipe(self) -> dict[str, Param]:
        """Recipe keys the space sets (fixed or sampled): a study may not also fix them."""
        return {p.name: p for p in self.recipe_params}

    def recipe(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The recipe values of one set of parameter values (Optuna names, e.g.
        ``trial.params``): fixed ones fill in, inactive conditional ones drop."""
        shared, _ = self.scopes(values)
        return recipe_values(shared)

    def training(self, values: Mapping[str, Any], base: TrainConfig) -> TrainConfig:
        """``base`` (the study's ``training:``) with this space's recipe values applied: the
        settings a trial with these parameters trains with."""
        return apply_recipe(base, self.recipe(values), self.source)

    @classmethod
    def from_dict(cls, d: Any, source: str) -> SearchSpace:
        if not isinstance(d, dict):
            raise ConfigError(source, "search space", type(d).__name__, "a mapping of parameters")
        hints = shared_keys()
        shared: list[Param] = []
        per_stage: tuple[tuple[Param, ...], ...] | None = None
        for key, spec in flatten(d).items():
            if key in META_KEYS:
                continue
            if key == "stages" and isinstance(spec, list):
                per_stage = _parse_stages(spec, source)
                continue
            if is_recipe(key):
                shared.append(checked(Param.parse(key, spec, source), source))
                continue
            if key not in hints:
                raise UnknownNameError(source, "parameter", key,
                                       [*hints, *ALL_KEYS, *META_KEYS])
            shared.append(_checked(Param.parse(key, spec, source), hints, source))
        scaling = None if d.get("scaling") is None else parse_scaling(d["scaling"], source)
        if scaling is not None:
            shared += list(scaling.params)
        ordered = _order(link_momentum(shared, source), (), source)
        stages = None if per_stage is None else tuple(
            _order(list(s), ordered, source) for s in per_stage)
        space = cls(
            name=str(d.get("name", Path(source).stem)), shared=ordered, per_stage=stages,
            source=source, description=str(d.get("description", "")),
            input_shape=_input_shape(d.get("input_shape"), source),
            num_classes=check_int(d.get("num_classes", 10), source, "num_classes", 2),
            budget=None if d.get("budget") is None else Budget.parse(d["budget"], source),
            scaling=scaling,
        )
        space._validate()
        return space

    # --- sampling -------------------------------------------------------------------------

    def suggest(self, trial: optuna.Trial, *, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None) -> ArchConfig:
        """Sample one architecture (conditional parameters only where their condition holds).

        ``input_shape``/``num_classes`` (the study's data) override the space's own for the
        budget's counts."""
        values: dict[str, Any] = {}

        def draw(p: Param) -> Any:
            values[p.key] = p.suggest(trial)
            return values[p.key]

        self._walk(draw)
        return self.to_arch(values, input_shape=input_shape, num_classes=num_classes)

    def scopes(self, values: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Split flat values (Optuna names, e.g. ``trial.params``) into the shared values and
        one dict per stage, keyed by field; fixed parameters fill in, inactive ones drop."""
        known = {p.key for p in self.params}
        for key in values:
            if key not in known:
                raise UnknownNameError(self.source, "parameter", key, known)
        return self._walk(lambda p: p.decode(values[p.key]) if p.key in values
                          else p.value if p.kind == "fixed" else _UNSET)

    def _walk(self, value_of: Callable[[Param], Any]
              ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The shared values and one dict per stage, keyed by field: ``value_of`` each active
        parameter in sampling order (a condition reads the values before it), unless
        :data:`_UNSET`."""
        shared: dict[str, Any] = {}
        stages: list[dict[str, Any]] = []
        for scope, params in [(shared, self.shared), *(({}, s) for s in self.per_stage or ())]:
            for p in params:
                if p.active(scope, shared) and (value := value_of(p)) is not _UNSET:
                    scope[p.name] = value
            if scope is not shared:
                stages.append(scope)
        return shared, stages

    def resolution(self, values: Mapping[str, Any]) -> int | None:
        """The input side a candidate's data are resized to (``scaling:``), or None."""
        return None if self.scaling is None else self.scaling.side(*self.scaled(values))

    def scaled(self, values: Mapping[str, Any], *, input_shape: Sequence[int] | None = None,
               num_classes: int | None = None) -> tuple[float, Rule]:
        """(φ, rule) a candidate is scaled by: the sampled φ, or with ``match_flops`` the φ
        along its rule that matches its FLOPs to the target (counted: imports torch)."""
        if self.scaling is None:
            raise ConfigError(self.source, "scaling", None, "a scaling: section")
        shared, _ = self.scopes(values)
        phi, rule = self.scaling.values(shared)
        if self.scaling.match_flops:
            base = self.to_arch(values, scale=False, apply_budget=False)
            phi = self.scaling.matched_phi(base, phi, rule, self._shape(input_shape),
                                           num_classes or self.num_classes)
        return phi, rule

    def _shape(self, input_shape: Sequence[int] | None) -> tuple[int, ...]:
        """The data's shape, else the space's (set wherever a count needs it: ``_validate``)."""
        return tuple(input_shape or self.input_shape or ())

    def to_arch(self, values: Mapping[str, Any], *, input_shape: Sequence[int] | None = None,
                num_classes: int | None = None, apply_budget: bool = True,
                scale: bool = True) -> ArchConfig:
        """The architecture for one set of parameter values (Optuna names); ``scale`` False:
        the base network, before a ``scaling:`` section scales it."""
        shared, own = self.scopes(values)
        n = len(own) if self.per_stage is not None else int(shared.get("stages", 1))
        total = shared.get("depth")
        if total is not None and self.per_stage is None:
            n = min(n, int(total))  # fewer blocks than stages: fewer stages
        own = own or [{} for _ in range(n)]
        depths = (_split(int(total), n) if total is not None
                  else [int(s.get("depth", STAGE_DEFAULTS["depth"])) for s in own])
        base = shared.get("width", STAGE_DEFAULTS["width"])
        mult = shared.get("width_multiplier", 2)
        stage_fields = stage_keys()
        common = {k: v for k, v in shared.items() if k in stage_fields}
        arch = {k: v for k, v in shared.items() if k in arch_keys()}
        try:
            stages = []
            for i in range(n):
                if depths[i] < 1:
                    continue
                kwargs = {**common, "depth": depths[i], "width": int(round(base * mult**i)),
                          "stride": shared.get("stride", 1 if i == 0 else 2)}
                kwargs.update({k: v for k, v in own[i].items() if k != "depth" or total is None})
                stages.append(StageConfig(**_as_fields(kwargs, stage_fields)))
            # from_dict turns nested mappings (stem layers) into their dataclasses
            cfg = ArchConfig.from_dict({"stages": stages, **_as_fields(arch, arch_keys())},
                                       self.source)
        except (TypeError, ValueError) as exc:
            if isinstance(exc, NasdepthError):
                raise
            raise NasdepthError(f"{self.source}: cannot make an architecture of "
                                f"{dict(values)}: {exc}") from None
        if self.scaling is not None and scale:
            shape = input_shape or self.input_shape
            self.scaling.check_network(cfg, None if shape is None else len(shape) - 1)
            phi, rule = self.scaling.values(shared)
            if self.scaling.match_flops and apply_budget:  # counting: a study's candidate
                phi = self.scaling.matched_phi(cfg, phi, rule, self._shape(input_shape),
                                               num_classes or self.num_classes)
            cfg = self.scaling.apply(cfg, phi, rule)
        if self.budget is not None and apply_budget:
            cfg = self.budget.apply(cfg, self._shape(input_shape), num_classes or self.num_classes)
        return cfg

    # --- enumeration ----------------------------------------------------------------------

    def bound(self) -> int | None:
        """Product of the parameters' value counts (an upper bound of the grid), or None where
        a parameter is continuous."""
        counts = [p.values() for p in self.params]
        if any(c is None for c in counts):
            return None
        return math.prod(len(c) for c in counts if c is not None)

    def grid(self, limit: int = GRID_LIMIT) -> list[dict[str, Any]] | None:
        """Every combination of values (Optuna names; conditional parameters only where
        active), or None where the space is infinite. More than ``limit`` combinations raise a
        :class:`ConfigError`."""
        bound = self.bound()
        if bound is None:
            return None
        if bound > limit:
            raise ConfigError(self.source, "grid", f"{bound} combinations",
                              f"at most {limit} combinations (to list every one)")
        return self._combos(self.params)

    def _combos(self, params: Sequence[Param]) -> list[dict[str, Any]]:
        """Every combination of ``params``' values where active (branching on each parameter
        in sampling order, so no combination comes twice)."""
        # each entry: (values by Optuna name, shared values, one dict per stage)
        n_stages = len(self.per_stage or ())
        combos: list[tuple[dict[str, Any], dict[str, Any], tuple[dict[str, Any], ...]]] = [
            ({}, {}, tuple({} for _ in range(n_stages)))]
        for p in params:
            vals = p.values() or []
            index = self._stage_of(p)
            nxt = []
            for values, shared, stages in combos:
                active = p.active(shared) if index is None else p.active(stages[index], shared)
                if not active:
                    nxt.append((values, shared, stages))
                    continue
                for x in vals:
                    if index is None:
                        nxt.append(({**values, p.key: x}, {**shared, p.name: x}, stages))
                    else:
                        own = {**stages[index], p.name: x}
                        nxt.append(({**values, p.key: x}, shared,
                                    stages[:index] + (own,) + stages[index + 1:]))
            combos = nxt
        return [values for values, _, _ in combos]

    def size(self) -> int | None:
        """Number of distinct candidates, architecture and training recipe (before any budget
        scaling, which is one function of the rest), or None where the space is infinite.
        Small spaces are listed and deduplicated by (architecture, recipe); larger ones count
        combinations of values, listing only the parameters tied by conditions (None if even
        those are too many)."""
        bound = self.bound()
        if bound is None:
            return None
        if bound <= GRID_LIMIT:
            return len({(self.to_arch(c, apply_budget=False), self.resolution(c),
                         tuple(sorted(self.recipe(c).items()))) for c in self.grid() or []})
        tested = {cond for p in self.params for cond in p.when}
        tied = [p for p in self.params if p.when or p.name in tested]
        free = math.prod(len(p.values() or []) for p in self.params if p not in tied)
        if math.prod(len(p.values() or []) for p in tied) > GRID_LIMIT:
            return None
        return free * len(self._combos(tied))

    def architecture_only(self) -> SearchSpace:
        """This space without its recipe parameters (for counting architectures alone)."""
        return replace(self, shared=tuple(p for p in self.shared if not is_recipe(p.name)))

    def optuna_grid(self) -> dict[str, list[Any]] | None:
        """Search space for ``optuna.samplers.GridSampler``: every sampled parameter's values
        under its Optuna name (as Optuna stores them), or None where a parameter is
        continuous."""
        if self.bound() is None:
            return None
        return {p.key: [p.encode(v) for v in p.values() or []] for p in self.params
                if p.kind != "fixed"}

    def describe(self) -> list[dict[str, Any]]:
        """One row per parameter: its Optuna name, type, values and condition."""
        return [{"parameter": p.key, "type": p.kind, "values": p.describe(),
                 "count": "inf" if (vals := p.values()) is None else str(len(vals)),
                 "when": "; ".join(f"{k} in {', '.join(map(str, v))}" for k, v in p.when.items())}
                for p in self.params]

    # --- validation -----------------------------------------------------------------------

    def _stage_of(self, param: Param) -> int | None:
        for i, stage in enumerate(self.per_stage or ()):
            if any(p is param for p in stage):
                return i
        return None

    def _validate(self) -> None:
        src = self.source
        n_stages = len(self.per_stage or ())
        shared_depth = next((p for p in self.shared if p.name == "depth"), None)
        for stage in self.per_stage or ():
            own = next((p for p in stage if p.name == "depth"), None)
            if own is not None and shared_depth is not None:
                raise ConfigError(src, own.key, own.describe(),
                                  "absent when a shared 'depth' (the total) is set")
        if shared_depth is not None and self.per_stage is not None:
            low = min(shared_depth.values() or [shared_depth.low])
            if low < n_stages:
                raise ConfigError(src, "depth", low, f">= the number of stages ({n_stages}): "
                                  "shared depth is the total over the stages")
        if self.scaling is not None and self.scaling.match_flops and self.input_shape is None:
            raise ConfigError(src, "input_shape", None,
                              "set (e.g. [1, 8, 8]) when scaling.match_flops counts FLOPs")
        if self.budget is not None and self.scaling is not None:
            raise ConfigError(src, "budget", "a budget",
                              "absent when a scaling: section sets the network's size")
        if self.budget is not None and self.input_shape is None:
            raise ConfigError(src, "input_shape", None,
                              "set (e.g. [1, 8, 8]) when a budget counts parameters or FLOPs")
        if self.input_shape is not None and len(self.input_shape) == 1:
            flat_ok = sorted(n for n, b in BLOCK_RULES.items() if not b.conv_only)
            for p in self.params:
                for block in (p.values() or []) if p.name == "block" else []:
                    if block in BLOCK_RULES and BLOCK_RULES[block].conv_only:
                        raise ConfigError(
                            src, p.key, block, f"a block that runs on flat features "
                            f"({', '.join(flat_ok)}) since input_shape {list(self.input_shape)} "
                            "is flat")
        # Ask each distinct stage's block whether it can be built (e.g. a cardinality that
        # does not divide the width). Depth does not change a block, so it is left out of the
        # list (unless a condition tests it). A budget picks buildable widths itself; an
        # infinite or huge space leaves this to build time.
        tested = {cond for p in self.params for cond in p.when}
        # recipe parameters do not change a block: left out (a continuous lr would otherwise
        # leave the space's blocks unchecked)
        params = [p for p in self.params if (p.name != "depth" or "depth" in tested)
                  and (not is_recipe(p.name) or p.name in tested)]
        counts = [p.values() for p in params]
        bound = None if any(c is None for c in counts) else math.prod(
            len(c or []) for c in counts)
        if self.budget is None and bound is not None and bound <= CHECK_LIMIT:
            # without input_shape the rank is not known: the blocks' options are still checked
            rank = None if self.input_shape is None else len(self.input_shape) - 1
            distinct: dict[StageConfig, int] = {}
            for combo in self._combos(params):
                for i, cfg in enumerate(self.to_arch(combo, apply_budget=False).stages):
                    distinct.setdefault(replace(cfg, depth=1), i)
            # one build is ~3 ms: beyond a few hundred forms loading would get slow
            if len(distinct) <= CHECK_LIMIT // 4:
                for cfg, i in distinct.items():
                    self._check_stage(cfg, i, rank)

    def _check_stage(self, stage: StageConfig, index: int, rank: int | None) -> None:
        problem = stage_problem(stage, rank)
        if problem is None:
            return
        label = problem.key  # the space's name of the key the block refused, where it has one
        for p in self.params:
            if p.name == problem.key and self._stage_of(p) in (None, index):
                label = p.key
        raise ConfigError(self.source, label, problem.value,
                          f"{problem.allowed} (stage {index + 1}, {stage.block} block)")


def _split(total: int, n: int) -> list[int]:
    """``total`` blocks over ``n`` stages, as even as possible, later stages get the rest."""
    return [total // n + (1 if i >= n - total % n else 0) for i in range(n)]


def _as_fields(values: Mapping[str, Any], hints: Mapping[str, Any]) -> dict[str, Any]:
    """YAML lists become tuples where the dataclass field is a tuple."""
    return {k: tuple(v) if isinstance(v, list) and "tuple" in str(hints.get(k)) else v
            for k, v in values.items()}


def _checked(p: Param, hints: Mapping[str, Any], source: str) -> Param:
    """Check every value a parameter can take against the key's type and registry."""
    hint = hints[p.name]
    if p.kind in ("int", "float"):
        if not accepts(hint, p.kind):
            raise ConfigError(source, f"{p.key}.type", p.kind,
                              f"categorical or a fixed value ('{p.name}' takes "
                              f"{describe_hint(hint)})")
        for bound in (p.low, p.high):
            check_value(p.name, p.key, bound, hints, source)
    else:
        for value in p.values() or []:
            check_value(p.name, p.key, value, hints, source)
    return p


def _parse_stages(spec: list[Any], source: str) -> tuple[tuple[Param, ...], ...]:
    if not spec:
        raise ConfigError(source, "stages", spec, "a stage count or a non-empty list of stages")
    hints = stage_keys()
    out = []
    for i, stage in enumerate(spec):
        label = f"stage{i + 1}"
        if stage is None:
            stage = {}
        if not isinstance(stage, dict):
            raise ConfigError(source, label, stage, "a mapping of stage parameters")
        params = []
        for key, value in stage.items():
            if key not in hints:
                raise UnknownNameError(source, f"{label}.{key}", key, hints)
            params.append(_checked(Param.parse(key, value, source, f"{label}.{key}"),
                                   hints, source))
        out.append(tuple(params))
    return tuple(out)


def _order(params: list[Param], outer: Sequence[Param], source: str) -> tuple[Param, ...]:
    """Sort so that each parameter comes after its conditions (declaration order otherwise);
    a condition on a parameter the space does not declare is an error."""
    names = {p.name: p for p in params}
    outer_names = {p.name: p for p in outer}
    for p in params:
        for cond, allowed in p.when.items():
            target = names.get(cond) or outer_names.get(cond)
            if target is None:
                raise ConfigError(source, f"{p.key}.when", cond,
                                  "a parameter declared in this space (a condition needs the "
                                  "parameter it tests)")
            if target is p:
                raise ConfigError(source, f"{p.key}.when", cond, "another parameter")
            possible = target.values()
            for v in allowed:
                if possible is not None and v not in possible:
                    raise UnknownNameError(source, f"{p.key}.when.{cond}", v,
                                           [str(x) for x in possible])
    done: list[Param] = []
    pending = list(params)
    while pending:
        ready = [p for p in pending if all(c not in names or names[c] in done for c in p.when)]
        if not ready:
            raise ConfigError(source, f"{pending[0].key}.when", dict(pending[0].when),
                              "free of cycles between conditions")
        done += ready
        pending = [p for p in pending if p not in ready]
    return tuple(done)


def _input_shape(spec: Any, source: str) -> tuple[int, ...] | None:
    if spec is None:
        return None
    if (not isinstance(spec, list) or not 1 <= len(spec) <= 3
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in spec)):
        raise ConfigError(source, "input_shape", spec,
                          "[features], [channels, length] or [channels, height, width]")
    return tuple(spec)


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("the study", "space", str(path), "an existing search-space file")
    return SearchSpace.from_dict(read_yaml(path, "search-space file"), str(path))
