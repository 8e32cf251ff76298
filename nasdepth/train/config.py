"""``TrainConfig``: how one candidate is trained on one fold."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from nasdepth.errors import ConfigError, UnknownNameError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "none")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "cosine"
    device: str = "auto"

    def validate(self, source: str = "the training settings") -> TrainConfig:
        if not isinstance(self.epochs, int) or self.epochs < 1:
            raise ConfigError(source, "epochs", self.epochs, "an int >= 1")
        if not isinstance(self.batch_size, int) or self.batch_size < 2:
            raise ConfigError(source, "batch_size", self.batch_size, "an int >= 2")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ConfigError(source, "lr", self.lr, "a number > 0")
        if self.optimizer not in OPTIMIZERS:
            raise UnknownNameError(source, "optimizer", self.optimizer, OPTIMIZERS)
        if self.schedule not in SCHEDULES:
            raise UnknownNameError(source, "schedule", self.schedule, SCHEDULES)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "the training settings") -> TrainConfig:
        valid = {f.name for f in fields(cls)}
        for key in d:
            if key not in valid:
                raise UnknownNameError(source, "training key", key, valid)
        return cls(**d).validate(source)
