"""A study file's ``tasks:`` section: a multitask study (checked without importing torch; the
keys, with an example: docs/multitask.md, "Studies").

``branch_at``, ``head_depth`` and ``head_width`` are fixed (an int) or searched: a list of
choices (``[0, 1, 2]``) or an int range (``{low: 0, high: 3}``), an Optuna parameter of that
name. ``branch_at`` above a candidate's depth is clipped to it (every block shared); the record
keeps the value trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nasdepth.errors import ConfigError, UnknownNameError, check_bool, check_int

TASKS_KEYS = {"names", "objective", "metric", "weighting", "weights", "branch_at", "head_depth",
              "head_width", "baselines"}
#: ``objective`` keywords (anything else names one task)
TASK_OBJECTIVES = ("mean", "all")
WEIGHTINGS = ("fixed", "uncertainty")  # = nasdepth.arch.WEIGHTINGS (a test keeps them equal)
SEARCHED = ("branch_at", "head_depth", "head_width")


@dataclass(frozen=True)
class Searched:
    """A fixed int, choices, or an int range: one architecture setting of the tasks."""

    name: str
    value: int | None = None
    choices: tuple[int, ...] = ()
    low: int | None = None
    high: int | None = None

    def suggest(self, trial: Any) -> int | None:
        if self.choices:
            return int(trial.suggest_categorical(self.name, list(self.choices)))
        if self.low is not None and self.high is not None:
            return int(trial.suggest_int(self.name, self.low, self.high))
        return self.value

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.value, "choices": list(self.choices), "low": self.low,
                "high": self.high}

    @property
    def size(self) -> int:
        """How many values it takes (1 where fixed)."""
        if self.choices:
            return len(self.choices)
        if self.low is not None and self.high is not None:
            return self.high - self.low + 1
        return 1


@dataclass(frozen=True)
class TaskSettings:
    names: tuple[str, ...] = ()  # empty: every task of the data
    objective: str = "mean"
    metric: str = "val_accuracy"
    weighting: str = "fixed"
    weights: dict[str, float] = field(default_factory=dict)
    branch_at: Searched = Searched("branch_at")
    head_depth: Searched = Searched("head_depth")
    head_width: Searched = Searched("head_width", value=64)
    baselines: bool = True

    def objectives(self, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
        """The fold-table columns the study optimizes, for the tasks ``names``."""
        if self.objective == "mean":
            return (self.metric,)
        if self.objective == "all":
            return tuple(f"{t}.{self.metric}" for t in names)
        return (f"{self.objective}.{self.metric}",)

    def size(self) -> int:
        """Distinct settings of the tasks' searched values (each candidate of the space
        trains with every one: the grid of an exhaustive sampler)."""
        return self.branch_at.size * self.head_depth.size * self.head_width.size

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "objective": self.objective, "metric": self.metric,
                "weighting": self.weighting, "weights": dict(self.weights),
                "branch_at": self.branch_at.to_dict(), "head_depth": self.head_depth.to_dict(),
                "head_width": self.head_width.to_dict(), "baselines": self.baselines}


def _searched(spec: Any, name: str, source: str, low: int, default: int | None) -> Searched:
    key = f"tasks.{name}"
    if spec is None:
        return Searched(name, value=default)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return Searched(name, value=check_int(spec, source, key, low))
    if isinstance(spec, list):
        if not spec or not all(isinstance(v, int) and not isinstance(v, bool) and v >= low
                               for v in spec):
            raise ConfigError(source, key, spec, f"a non-empty list of ints >= {low}")
        return Searched(name, choices=tuple(dict.fromkeys(spec)))
    if isinstance(spec, dict):
        for k in spec:
            if k not in ("low", "high"):
                raise UnknownNameError(source, key, k, ["low", "high"])
        lo, hi = spec.get("low"), spec.get("high")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)) or \
                lo < low or hi < lo:  # type: ignore[operator]
            raise ConfigError(source, key, spec, f"{{low, high}}: ints with {low} <= low <= high")
        return Searched(name, low=lo, high=hi)
    raise ConfigError(source, key, spec,
                      "an int, a list of choices or {low, high} (searched)")


def parse_tasks(raw: Any, source: str, metrics: tuple[str, ...]) -> TaskSettings:
    """Validate a ``tasks:`` mapping; ``metrics``: the CV metrics a task may be scored by."""
    if not isinstance(raw, dict):
        raise ConfigError(source, "tasks", raw, "a mapping (names, objective, branch_at, ...)")
    for k in raw:
        if k not in TASKS_KEYS:
            raise UnknownNameError(source, "tasks key", k, TASKS_KEYS)
    names = raw.get("names") or []
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names) or \
            len(set(names)) != len(names):
        raise ConfigError(source, "tasks.names", names, "a list of task names without repeats")
    objective = raw.get("objective", "mean")
    if not isinstance(objective, str):
        raise ConfigError(source, "tasks.objective", objective,
                          "mean, all or the name of one task")
    if names and objective not in TASK_OBJECTIVES and objective not in names:
        raise UnknownNameError(source, "tasks.objective", objective, [*TASK_OBJECTIVES, *names])
    metric = raw.get("metric", "val_accuracy")
    if metric not in metrics:
        raise UnknownNameError(source, "tasks.metric", metric, metrics)
    weighting = raw.get("weighting", "fixed")
    if weighting not in WEIGHTINGS:
        raise UnknownNameError(source, "tasks.weighting", weighting, WEIGHTINGS)
    weights = raw.get("weights") or {}
    if not isinstance(weights, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for v in weights.values()):
        raise ConfigError(source, "tasks.weights", weights,
                          "a mapping of task name -> number >= 0")
    if weights and weighting == "uncertainty":
        raise ConfigError(source, "tasks.weights", weights,
                          "unset with weighting: uncertainty (the weights are learned)")
    for t in weights:
        if names and t not in names:
            raise UnknownNameError(source, "tasks.weights", t, names)
    baselines = check_bool(raw.get("baselines", True), source, "tasks.baselines")
    return TaskSettings(
        names=tuple(names), objective=objective, metric=metric, weighting=weighting,
        weights={str(k): float(v) for k, v in weights.items()},
        branch_at=_searched(raw.get("branch_at"), "branch_at", source, 0, None),
        head_depth=_searched(raw.get("head_depth"), "head_depth", source, 0, None),
        head_width=_searched(raw.get("head_width"), "head_width", source, 1, 64),
        baselines=baselines)
