"""One search-space parameter: a fixed value or an Optuna distribution, maybe conditional.

YAML vocabulary (Optuna's): ``{type: int, low, high, step, log}``, ``{type: float, low, high,
step, log}``, ``{type: categorical, choices: [...]}``, a plain value (fixed), or
``{value: X, when: ...}`` (fixed, conditional). ``when: {block: [bottleneck, grouped]}`` makes a
parameter exist only for those values of another one.

``name`` is the key the parameter sets (``width``); ``label`` is its name in Optuna
(``width`` for a shared key, ``stage2.width`` for a per-stage one).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nasdepth.errors import ConfigError, UnknownNameError, check_bool

if TYPE_CHECKING:
    import optuna

TYPES = ("int", "float", "categorical")
SPEC_KEYS = ("type", "low", "high", "step", "log", "choices", "when", "value")
# Optuna's categorical distribution holds only these; other choices (lists, for ``head_hidden``)
# are stored in Optuna as their JSON text and decoded on the way out.
PRIMITIVES = (type(None), bool, int, float, str)
#: bounds of any numeric parameter (keys have tighter ones, space/fields.py LIMITS)
MAX_ABS = 1e15
#: a float grid with more steps than this is treated as continuous
MAX_LISTED = 1_000_000


def _is_number(v: Any, *, integral: bool) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) if integral else isinstance(v, (int, float))


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # "fixed" or one of TYPES
    value: Any = None  # fixed value
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()
    when: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    label: str = ""  # Optuna's name; the key name when empty

    @property
    def key(self) -> str:
        """The name Optuna knows this parameter by."""
        return self.label or self.name

    @classmethod
    def parse(cls, name: str, spec: Any, source: str, label: str = "") -> Param:
        """Read one YAML entry; ``source`` (the file) and ``label`` name it in errors."""
        label = label or name
        if not isinstance(spec, dict):
            return cls(name, "fixed", value=spec, label=label)
        for key in spec:
            if key not in SPEC_KEYS:
                raise UnknownNameError(source, f"{label}.{key}", key, SPEC_KEYS)
        when = _parse_when(spec.get("when"), label, source)
        if "value" in spec:
            extra = sorted(set(spec) - {"value", "when"})
            if extra:
                raise ConfigError(source, f"{label}.{extra[0]}", spec[extra[0]],
                                  "absent when 'value' fixes the parameter")
            return cls(name, "fixed", value=spec["value"], when=when, label=label)
        kind = spec.get("type")
        if kind is None and "choices" in spec:
            kind = "categorical"
        if kind not in TYPES:
            raise UnknownNameError(source, f"{label}.type", kind, TYPES)
        if kind == "categorical":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices:
                raise ConfigError(source, f"{label}.choices", choices, "a non-empty list")
            for key in ("low", "high", "step", "log"):
                if key in spec:
                    raise ConfigError(source, f"{label}.{key}", spec[key],
                                      "absent for a categorical parameter")
            return cls(name, kind, choices=tuple(choices), when=when, label=label)
        return cls._numeric(name, kind, spec, when, label, source)

    @classmethod
    def _numeric(cls, name: str, kind: str, spec: dict[str, Any],
                 when: dict[str, tuple[Any, ...]], label: str, source: str) -> Param:
        integral = kind == "int"
        what = "an int" if integral else "a number"
        if "choices" in spec:
            raise ConfigError(source, f"{label}.choices", spec["choices"],
                              f"absent for a {kind} parameter (use type: categorical)")
        bounds: dict[str, float] = {}
        for key in ("low", "high"):
            v = spec.get(key)
            if v is None or not _is_number(v, integral=integral):
                raise ConfigError(source, f"{label}.{key}", v, what)
            if not math.isfinite(v) or abs(v) > MAX_ABS:
                raise ConfigError(source, f"{label}.{key}", v,
                                  f"{what} between {-MAX_ABS:g} and {MAX_ABS:g}")
            bounds[key] = v
        low, high = bounds["low"], bounds["high"]
        if low > high:
            raise ConfigError(source, f"{label}.low", low, f"<= {label}.high ({high})")
        log = check_bool(spec.get("log", False), source, f"{label}.log")
        if log and low <= 0:
            raise ConfigError(source, f"{label}.low", low, "> 0 when log: true")
        step = spec.get("step")
        if step is not None:
            if not _is_number(step, integral=integral) or step <= 0:
                raise ConfigError(source, f"{label}.step", step, f"{what} > 0")
            # Optuna samples log-uniformly only without a step (int: step 1).
            if log and not (integral and step == 1):
                raise ConfigError(source, f"{label}.step", step,
                                  "absent when log: true (Optuna cannot combine them)")
        return cls(name, kind, low=low, high=high, step=step, log=log, when=when, label=label)

    def active(self, *scopes: dict[str, Any]) -> bool:
        """True when every ``when`` condition holds; each condition is looked up in the first
        scope that has it (a stage's own values, then the shared ones)."""
        for cond, allowed in self.when.items():
            found = next((s[cond] for s in scopes if cond in s), _MISSING)
            if found is _MISSING or found not in allowed:
                return False
        return True

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "fixed":
            return self.value
        if self.kind == "categorical":
            if all(isinstance(c, PRIMITIVES) for c in self.choices):
                return trial.suggest_categorical(self.key, list(self.choices))
            encoded = [self.encode(c) for c in self.choices]
            return self.decode(trial.suggest_categorical(self.key, encoded))
        if self.kind == "int":
            return trial.suggest_int(self.key, int(self.low), int(self.high),
                                     step=int(self.step or 1), log=self.log)
        return trial.suggest_float(self.key, float(self.low), float(self.high),
                                   step=self.step, log=self.log)

    def encode(self, value: Any) -> Any:
        """A value as Optuna stores it (JSON text for choices Optuna cannot hold)."""
        if self.kind == "categorical" and not all(isinstance(c, PRIMITIVES)
                                                  for c in self.choices):
            return json.dumps(value)
        return value

    def decode(self, value: Any) -> Any:
        """A value as Optuna stores it (``trial.params``) back to the value it stands for."""
        if self.kind == "categorical" and isinstance(value, str) and value not in self.choices:
            try:
                decoded = json.loads(value)
            except ValueError:
                return value
            return decoded if decoded in self.choices else value
        return value

    def values(self) -> list[Any] | None:
        """Every value this parameter can take, or None where that set is infinite."""
        if self.kind == "fixed":
            return [self.value]
        if self.kind == "categorical":
            return list(self.choices)
        if self.kind == "int":  # a range: counted without being listed
            return range(int(self.low), int(self.high) + 1,  # type: ignore[return-value]
                         int(self.step or 1))
        if self.step is None:
            return None
        if self.low == self.high:
            return [self.low]
        # Optuna's grid: low + k * step up to high (rounded to dodge float noise)
        n = math.floor((self.high - self.low) / self.step + 1e-9)
        if n >= MAX_LISTED:  # too many to list: counted as continuous
            return None
        return [round(self.low + k * self.step, 12) for k in range(n + 1)]

    def describe(self) -> str:
        """The values in a few characters, for the CLI's table."""
        if self.kind == "fixed":
            return json.dumps(self.value)
        if self.kind == "categorical":
            return ", ".join(json.dumps(c) for c in self.choices)
        text = f"{self.low:g} .. {self.high:g}"
        if self.step is not None and self.step != 1:
            text += f" step {self.step:g}"
        return text + (" log" if self.log else "")


_MISSING = object()


def _parse_when(when: Any, label: str, source: str) -> dict[str, tuple[Any, ...]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise ConfigError(source, f"{label}.when", when,
                          "a mapping of parameter -> allowed values, e.g. {block: [bottleneck]}")
    return {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in when.items()}
