"""``TrainConfig``: how one candidate is trained on one fold (a study YAML's ``training:``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from nasdepth.data.augment_config import AugmentConfig
from nasdepth.errors import ConfigError, UnknownNameError

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "warmup_cosine", "wsd", "onecycle", "none")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
SWITCHES = ("auto", "on", "off")
#: where a fold's data lives while it trains: on the device, or streamed from the host
PLACEMENTS = ("auto", "device", "stream")
#: transfer-learning modes (``TransferConfig.mode``; reports order their tables by it)
TRANSFER_MODES = ("scratch", "feature_extraction", "fine_tune")
#: the learning-rate range test's choice rules (``lr_find.choose``; ``nasdepth lr-find --rule``)
LR_RULES = ("blend", "steepest", "min10", "valley")
#: ``lr: auto`` in YAML: a learning-rate range test per candidate picks ``lr``
LR_AUTO = "auto"


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


#: upper limits of the counting settings
INT_LIMITS = {"epochs": 100_000, "batch_size": 2**24, "patience": 100_000, "threads": 4_096}


@dataclass(frozen=True)
class TrainConfig:
    """Every training option (the YAML keys, what each does, and the measurements behind the
    defaults: ``docs/data_and_training.md``). ``0`` switches ``grad_clip``, ``patience`` and
    ``threads`` off.

    The default recipe (AdamW at 3e-3, ``wsd``) was chosen by ``benchmarks/bench_recipe.py
    --schedules``: of the recipes measured at budgets of 1 to 30 epochs it was the one within
    a fold's standard deviation of the best everywhere. ``patience``: stop a fold when its
    validation loss has not improved by ``min_delta`` for that many epochs (the model at the
    stopping epoch is scored). ``lr_auto`` (``lr: auto`` in YAML): ``cross_validate`` runs a
    learning-rate range test on the first fold's training part and trains every fold at the
    rate it picks (:mod:`nasdepth.train.lr_find`); ``lr`` then holds that rate.
    """

    epochs: int = 10
    batch_size: int = 64
    optimizer: str = "adamw"
    lr: float = 3e-3
    lr_auto: bool = False
    weight_decay: float = 1e-4
    momentum: float = 0.9
    schedule: str = "wsd"
    label_smoothing: float = 0.0
    grad_clip: float = 0.0
    patience: int = 0
    min_delta: float = 0.0
    device: str = "auto"
    precision: str = "auto"
    threads: int = 0
    parallel: str = "auto"
    channels_last: str = "auto"
    compile: bool = False
    data_placement: str = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self, source: str = "the training settings") -> TrainConfig:
        ints = (("epochs", 1), ("batch_size", 2), ("patience", 0), ("threads", 0))
        for key, low in ints:
            v = getattr(self, key)
            if not _int(v) or v < low:
                raise ConfigError(source, key, v, f"an int >= {low}")
            if v > INT_LIMITS.get(key, v):  # a typo of 10**9 epochs would run for years
                raise ConfigError(source, key, v, f"an int from {low} to {INT_LIMITS[key]}")
        if not (_number(self.lr) and self.lr > 0):
            raise ConfigError(source, "lr", self.lr,
                              "a number > 0 (or auto: a learning-rate range test)")
        for key in ("weight_decay", "grad_clip", "min_delta"):
            if not (_number(getattr(self, key)) and getattr(self, key) >= 0):
                raise ConfigError(source, key, getattr(self, key), "a number >= 0")
        for key in ("momentum", "label_smoothing"):
            if not (_number(getattr(self, key)) and 0 <= getattr(self, key) < 1):
                raise ConfigError(source, key, getattr(self, key), "a number in [0, 1)")
        for key, valid in (("optimizer", OPTIMIZERS), ("schedule", SCHEDULES),
                           ("precision", PRECISIONS), ("parallel", SWITCHES),
                           ("channels_last", SWITCHES), ("data_placement", PLACEMENTS)):
            if getattr(self, key) not in valid:
                raise UnknownNameError(source, key, getattr(self, key), valid)
        for key in ("compile", "lr_auto"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(source, key, getattr(self, key), "true or false")
        if not isinstance(self.device, str):
            raise ConfigError(source, "device", self.device, "auto, cpu, cuda, cuda:N or mps")
        self.augment.validate(source)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "the training settings") -> TrainConfig:
        valid = {f.name for f in fields(cls)}
        d = dict(d or {})
        for key in d:
            if key not in valid:
                raise UnknownNameError(source, "training key", key, valid)
        for key in ("parallel", "channels_last"):  # YAML true/false
            if isinstance(d.get(key), bool):
                d[key] = "on" if d[key] else "off"
        if d.get("lr") == LR_AUTO:
            d["lr"], d["lr_auto"] = cls.lr, True
        if "augment" in d:
            d["augment"] = AugmentConfig.from_dict(d["augment"], source)
        return cls(**d).validate(source)

    def with_epochs(self, epochs: int | None) -> TrainConfig:
        return self if epochs is None else replace(self, epochs=epochs).validate()
