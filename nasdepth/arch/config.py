"""``ArchConfig``: the whole description of an architecture (timm ``ByoBlockCfg`` style).

A network is a stem, a sequence of stages (each a run of identical blocks) and a head.
Everything is a frozen dataclass with ``to_dict``/``from_dict`` so that a config can be
stored as JSON in an Optuna trial and rebuilt bit for bit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from nasdepth.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class StageConfig:
    """One stage: ``depth`` blocks of type ``block`` producing ``width`` channels (features)."""

    block: str = "plain"
    depth: int = 1
    width: int = 32
    stride: int = 1
    kernel_size: int = 3
    norm: str = "batch"
    activation: str = "relu"
    dropout: float = 0.0
    bottleneck_ratio: float = 0.25

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "stage") -> StageConfig:
        _check_keys(cls, d, source)
        return cls(**d)


@dataclass(frozen=True)
class ArchConfig:
    """A network: stem -> stages -> global pooling -> (hidden FC layers) -> linear classifier.

    ``skip=False`` removes every shortcut, so a residual network and its plain twin differ in
    this one switch.
    """

    stages: tuple[StageConfig, ...] = (StageConfig(),)
    stem_width: int | None = None  # None: the first stage's width
    skip: bool = True
    init: str = "default"
    head_hidden: tuple[int, ...] = field(default=())

    @property
    def depth(self) -> int:
        """Total number of blocks over all stages."""
        return sum(s.depth for s in self.stages)

    @property
    def width(self) -> int:
        """Width of the first stage (the base width a search space samples)."""
        return self.stages[0].width

    @property
    def blocks(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.block for s in self.stages))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stages"] = [asdict(s) for s in self.stages]
        d["head_hidden"] = list(self.head_hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "architecture") -> ArchConfig:
        _check_keys(cls, d, source)
        d = dict(d)
        stages = d.get("stages", [{}])
        if not isinstance(stages, (list, tuple)) or not stages:
            raise ConfigError(source, "stages", stages, "a non-empty list of stage mappings")
        d["stages"] = tuple(
            s if isinstance(s, StageConfig) else StageConfig.from_dict(s, f"{source} stage {i}")
            for i, s in enumerate(stages)
        )
        if "head_hidden" in d:
            d["head_hidden"] = tuple(d["head_hidden"])
        return cls(**d)

    def summary(self) -> dict[str, Any]:
        """Flat description for tables: depth, width, block, skip, ..."""
        first = self.stages[0]
        return {
            "depth": self.depth,
            "width": self.width,
            "block": "+".join(self.blocks),
            "skip": self.skip,
            "stages": len(self.stages),
            "norm": first.norm,
            "activation": first.activation,
            "dropout": first.dropout,
            "init": self.init,
        }


def _check_keys(cls: type, d: Any, source: str) -> None:
    if not isinstance(d, dict):
        raise ConfigError(source, cls.__name__, d, "a mapping")
    valid = {f.name for f in fields(cls)}
    for key in d:
        if key not in valid:
            raise UnknownNameError(source, "key", key, valid)
