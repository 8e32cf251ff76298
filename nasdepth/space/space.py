"""``SearchSpace``: a YAML file of parameters that Optuna samples into an ``ArchConfig``.

Keys (each fixed or a distribution, see :mod:`nasdepth.space.params`):

- ``depth``: total number of blocks, split as evenly as possible over ``stages``
- ``stages``: number of stages; stages after the first halve the resolution (stride 2)
- ``width``: channels (features) of the first stage; stage i has ``width * width_multiplier**i``
- ``block``, ``skip``, ``norm``, ``activation``, ``dropout``, ``kernel_size``,
  ``bottleneck_ratio``, ``init``, ``stem_width``
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import yaml

from nasdepth.arch import ACTIVATIONS, BLOCKS, INITS, NORMS, ArchConfig, StageConfig
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError
from nasdepth.space.params import Param

DEFAULTS: dict[str, Any] = {
    "depth": 2, "stages": 1, "width": 32, "width_multiplier": 2, "block": "plain",
    "skip": True, "norm": "batch", "activation": "relu", "dropout": 0.0, "kernel_size": 3,
    "bottleneck_ratio": 0.25, "init": "default", "stem_width": None,
}
NAMED = {"block": BLOCKS, "norm": NORMS, "activation": ACTIVATIONS, "init": INITS}
META_KEYS = {"name", "description"}


@dataclass(frozen=True)
class SearchSpace:
    name: str
    params: tuple[Param, ...]
    source: str = "the search space"

    @classmethod
    def from_dict(cls, d: Any, source: str) -> SearchSpace:
        if not isinstance(d, dict):
            raise ConfigError(source, "search space", type(d).__name__, "a mapping of parameters")
        params = []
        for key, spec in d.items():
            if key in META_KEYS:
                continue
            if key not in DEFAULTS:
                raise UnknownNameError(source, "parameter", key, DEFAULTS)
            param = Param.parse(key, spec, source)
            for value in param.values() or []:
                _check_value(key, value, source)
            params.append(param)
        names = {p.name for p in params}
        for p in params:
            for cond in p.when:
                if cond not in names:
                    raise ConfigError(source, f"{p.name}.when", cond,
                                      "a parameter declared in this space")
        return cls(str(d.get("name", Path(source).stem)), tuple(params), source)

    def suggest(self, trial: optuna.Trial) -> ArchConfig:
        """Sample one architecture (conditional parameters only where their condition holds)."""
        values: dict[str, Any] = {}
        for p in self.params:
            if p.active(values):
                values[p.name] = p.suggest(trial)
        return self.to_arch(values)

    def to_arch(self, values: dict[str, Any]) -> ArchConfig:
        v = {**DEFAULTS, **values}
        depth, n_stages = int(v["depth"]), max(1, int(v["stages"]))
        n_stages = min(n_stages, depth)
        per_stage = [depth // n_stages + (1 if i >= n_stages - depth % n_stages else 0)
                     for i in range(n_stages)]
        stages = tuple(
            StageConfig(
                block=v["block"], depth=d, width=int(v["width"] * v["width_multiplier"] ** i),
                stride=1 if i == 0 else 2, kernel_size=int(v["kernel_size"]), norm=v["norm"],
                activation=v["activation"], dropout=float(v["dropout"]),
                bottleneck_ratio=float(v["bottleneck_ratio"]),
            )
            for i, d in enumerate(per_stage)
        )
        return ArchConfig(stages=stages, stem_width=v["stem_width"], skip=bool(v["skip"]),
                          init=v["init"])

    def size(self) -> int | None:
        """Number of distinct parameter combinations, or None where the space is infinite."""
        grid = self.grid()
        return None if grid is None else len(grid)

    def grid(self) -> list[dict[str, Any]] | None:
        """Every combination of values (conditional parameters only where active)."""
        combos: list[dict[str, Any]] = [{}]
        for p in self.params:
            vals = p.values()
            if vals is None:
                return None
            nxt = []
            for c in combos:
                nxt += [{**c, p.name: x} for x in vals] if p.active(c) else [c]
            combos = nxt
        unique = {tuple(sorted(c.items(), key=lambda kv: kv[0])) for c in combos}
        return [dict(u) for u in sorted(unique, key=str)]

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for p in self.params:
            vals = p.values()
            rows.append({"parameter": p.name, "type": p.kind,
                         "values": vals if vals is not None and len(vals) <= 12
                         else f"[{p.low}, {p.high}]" + (" log" if p.log else ""),
                         "when": p.when or ""})
        return rows


def _check_value(key: str, value: Any, source: str) -> None:
    if key in NAMED and value not in NAMED[key]:
        raise UnknownNameError(source, key, value, NAMED[key])
    if key in ("depth", "stages", "width", "kernel_size") and (
        not isinstance(value, int) or isinstance(value, bool) or value < 1
    ):
        raise ConfigError(source, key, value, "an int >= 1")
    if key == "dropout" and not (isinstance(value, (int, float)) and 0 <= value < 1):
        raise ConfigError(source, key, value, "a number in [0, 1)")
    if key == "skip" and not isinstance(value, bool):
        raise ConfigError(source, key, value, "true or false")


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("the study", "space", str(path), "an existing search-space file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NasdepthError(f"{path} is not valid YAML: {exc}") from None
    return SearchSpace.from_dict(raw, str(path))


