"""One search-space parameter: a fixed value or an Optuna distribution, maybe conditional.

YAML vocabulary (Optuna's): ``{type: int, low, high, step, log}``, ``{type: float, low, high,
step, log}``, ``{type: categorical, choices: [...]}``, or a plain value (fixed). ``when:
{block: [bottleneck, grouped]}`` makes a parameter exist only for those values of another one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import optuna

from nasdepth.errors import ConfigError, UnknownNameError

TYPES = ("int", "float", "categorical")
SPEC_KEYS = {"type", "low", "high", "step", "log", "choices", "when"}


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "fixed" or one of TYPES
    value: Any = None  # fixed value
    low: float = 0
    high: float = 0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    @classmethod
    def parse(cls, name: str, spec: Any, source: str) -> Param:
        if not isinstance(spec, dict):
            return cls(name, "fixed", value=spec)
        for key in spec:
            if key not in SPEC_KEYS:
                raise UnknownNameError(source, f"{name}.{key}", key, SPEC_KEYS)
        when = {str(k): tuple(v if isinstance(v, list) else [v])
                for k, v in (spec.get("when") or {}).items()}
        kind = spec.get("type")
        if kind is None and "choices" in spec:
            kind = "categorical"
        if kind is None and "when" in spec and "value" not in spec:
            raise ConfigError(source, f"{name}.type", None, "one of " + ", ".join(TYPES))
        if kind not in TYPES:
            raise UnknownNameError(source, f"{name}.type", kind, TYPES)
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(source, f"{name}.choices", choices, "a non-empty list")
            return cls(name, kind, choices=tuple(choices), when=when)
        low, high = spec.get("low"), spec.get("high")
        number = int if kind == "int" else (int, float)
        for key, v in (("low", low), ("high", high)):
            if not isinstance(v, number) or isinstance(v, bool):
                what = "an int" if kind == "int" else "a number"
                raise ConfigError(source, f"{name}.{key}", v, what)
        if low > high:
            raise ConfigError(source, f"{name}.low", low, f"<= {name}.high ({high})")
        log = bool(spec.get("log", False))
        if log and low <= 0:
            raise ConfigError(source, f"{name}.low", low, "> 0 when log: true")
        return cls(name, kind, low=low, high=high, step=spec.get("step"), log=log, when=when)

    def active(self, values: dict[str, Any]) -> bool:
        """True when every ``when`` condition holds for the values sampled so far."""
        return all(values.get(k) in allowed for k, allowed in self.when.items())

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.name, float(self.low), float(self.high),
                                   step=self.step, log=self.log)

    def values(self) -> list[Any] | None:
        """Every value this parameter can take, or None where that set is infinite."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int" and not self.log:
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        return None
