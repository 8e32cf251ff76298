"""Registries of samplers and pruners: a name in a study file -> an Optuna object.

Each entry declares the options it accepts (with defaults), so a study file is checked before
any training starts, and an unknown name is answered with the valid names and the closest one.
Pruners also declare the *granularity* of the steps they need (see ``docs/studies.md``):
``epoch`` pruners see one value per fold x epoch, ``fold`` pruners one value per fold.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import optuna

from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.space.space import SearchSpace


@dataclass(frozen=True)
class SamplerContext:
    """What a sampler factory may need besides its options."""

    seed: int
    space: SearchSpace


@dataclass(frozen=True)
class SamplerEntry:
    build: Callable[[SamplerContext, dict[str, Any]], optuna.samplers.BaseSampler]
    options: dict[str, Any] = field(default_factory=dict)
    needs_finite_space: bool = False


@dataclass(frozen=True)
class PrunerEntry:
    build: Callable[[dict[str, Any], int], optuna.pruners.BasePruner]  # (options, max steps)
    options: dict[str, Any] = field(default_factory=dict)
    granularity: str = "epoch"  # "epoch": step = fold * epochs + epoch; "fold": step = fold


SAMPLERS: dict[str, SamplerEntry] = {}
PRUNERS: dict[str, PrunerEntry] = {}


def _register(table: dict[str, Any], kind: str, name: str,
              entry: Callable[[Callable], Any]) -> Callable:
    """A decorator that files ``entry(fn)`` under ``name``; a name taken twice is refused."""
    def deco(fn: Callable) -> Callable:
        if name in table:
            raise ValueError(f"{kind} {name!r} is already registered")
        table[name] = entry(fn)
        return fn
    return deco


def register_sampler(name: str, *, options: dict[str, Any] | None = None,
                     needs_finite_space: bool = False) -> Callable:
    return _register(SAMPLERS, "sampler", name,
                     lambda fn: SamplerEntry(fn, dict(options or {}), needs_finite_space))


def register_pruner(name: str, *, options: dict[str, Any] | None = None,
                    granularity: str = "epoch") -> Callable:
    return _register(PRUNERS, "pruner", name,
                     lambda fn: PrunerEntry(fn, dict(options or {}), granularity))


def _check_options(kind: str, registry: dict[str, Any], name: str, given: dict[str, Any],
                   source: str) -> dict[str, Any]:
    """``given`` options of the ``kind`` named ``name`` checked against its entry's defaults,
    which fill in the rest."""
    if name not in registry:
        raise UnknownNameError(source, kind, name, registry)
    defaults = registry[name].options
    for key, value in given.items():
        if key not in defaults:
            raise UnknownNameError(source, f"{kind}.{key}", key, defaults or ["(no options)"])
        expected = type(defaults[key])
        ok = isinstance(value, (int, float)) if expected is float else isinstance(value, expected)
        if not ok or isinstance(value, bool) != isinstance(defaults[key], bool) or (
                isinstance(value, (int, float)) and value < 0):
            raise ConfigError(source, f"{kind}.{key}", value,
                              f"a {expected.__name__} >= 0 (default {defaults[key]!r})")
    return {**defaults, **given}


def check_sampler(name: str, options: dict[str, Any], source: str) -> dict[str, Any]:
    return _check_options("sampler", SAMPLERS, name, options, source)


def check_pruner(name: str, options: dict[str, Any], source: str) -> dict[str, Any]:
    return _check_options("pruner", PRUNERS, name, options, source)


def make_sampler(name: str, options: dict[str, Any], ctx: SamplerContext,
                 source: str = "the study") -> optuna.samplers.BaseSampler:
    opts = check_sampler(name, options, source)
    entry = SAMPLERS[name]
    if entry.needs_finite_space and ctx.space.grid() is None:
        raise ConfigError(source, "sampler", name,
                          "used with a finite space (categorical or int parameters only)")
    with warnings.catch_warnings():  # chosen on purpose: no "experimental" noise per worker
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return entry.build(ctx, opts)


def make_pruner(name: str, options: dict[str, Any], max_steps: int,
                source: str = "the study") -> optuna.pruners.BasePruner:
    opts = check_pruner(name, options, source)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return PRUNERS[name].build(opts, max_steps)


def pruner_granularity(name: str) -> str:
    return PRUNERS[name].granularity


# -- samplers -----------------------------------------------------------------------------

@register_sampler("tpe", options={"startup_trials": 10, "multivariate": True})
def _tpe(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    # multivariate TPE models depth x width jointly (they interact strongly)
    return optuna.samplers.TPESampler(seed=ctx.seed, n_startup_trials=o["startup_trials"],
                                      multivariate=o["multivariate"])


@register_sampler("random")
def _random(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=ctx.seed)


@register_sampler("gp", options={"startup_trials": 10})
def _gp(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.GPSampler(seed=ctx.seed, n_startup_trials=o["startup_trials"])


@register_sampler("nsga2", options={"population_size": 20})
def _nsga2(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.NSGAIISampler(seed=ctx.seed, population_size=o["population_size"])


@register_sampler("grid", needs_finite_space=True)
def _grid(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    # every value of every sampled parameter; conditional parameters make redundant points,
    # which ``bruteforce`` avoids
    space = ctx.space.optuna_grid() or {}  # Optuna names: per-stage keys are stageN.key
    return optuna.samplers.GridSampler(space, seed=ctx.seed)  # type: ignore[arg-type]


@register_sampler("bruteforce", needs_finite_space=True)
def _bruteforce(ctx: SamplerContext, o: dict[str, Any]) -> optuna.samplers.BaseSampler:
    return optuna.samplers.BruteForceSampler(seed=ctx.seed)


# -- pruners ------------------------------------------------------------------------------

@register_pruner("none")
def _none(o: dict[str, Any], max_steps: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.NopPruner()


@register_pruner("median", options={"startup_trials": 5, "warmup_steps": 0})
def _median(o: dict[str, Any], max_steps: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.MedianPruner(n_startup_trials=o["startup_trials"],
                                       n_warmup_steps=o["warmup_steps"])


@register_pruner("percentile",
                 options={"percentile": 25.0, "startup_trials": 5, "warmup_steps": 0})
def _percentile(o: dict[str, Any], max_steps: int) -> optuna.pruners.BasePruner:
    return optuna.pruners.PercentilePruner(float(o["percentile"]),
                                           n_startup_trials=o["startup_trials"],
                                           n_warmup_steps=o["warmup_steps"])


@register_pruner("hyperband", options={"min_resource": 1, "reduction_factor": 3})
def _hyperband(o: dict[str, Any], max_steps: int) -> optuna.pruners.BasePruner:
    # a resource unit is one epoch of one fold: the whole CV is folds x epochs units
    return optuna.pruners.HyperbandPruner(min_resource=o["min_resource"],
                                          max_resource=max(max_steps, o["min_resource"] + 1),
                                          reduction_factor=o["reduction_factor"])


@register_pruner("wilcoxon", options={"p_threshold": 0.1, "startup_steps": 2},
                 granularity="fold")
def _wilcoxon(o: dict[str, Any], max_steps: int) -> optuna.pruners.BasePruner:
    # pairs this trial's fold scores with the best trial's scores on the same folds
    return optuna.pruners.WilcoxonPruner(p_threshold=float(o["p_threshold"]),
                                         n_startup_steps=o["startup_steps"])
