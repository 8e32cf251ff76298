"""``Trace``: what the probes recorded for one model on one fold, per epoch and per block.

Per-block series are lists in forward order (input -> output), so ``grad_rms[0]`` is the first
block and ``grad_rms[-1]`` the head. Values that were NaN or infinite are stored as ``None``
(JSON holds them) and the epoch is flagged ``nonfinite``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

#: per-block series recorded every epoch (each a list with one value per block)
BLOCK_SERIES = ("grad_rms", "update_ratio", "act_rms", "dead_frac", "saturated_frac",
                "grad_snr")
#: scalar series recorded every epoch
EPOCH_SCALARS = ("train_loss", "val_loss", "val_accuracy", "train_loss_norm", "val_loss_norm",
                 "probe_accuracy")


def finite_or_none(value: float | None) -> float | None:
    """A plain float, or None where the value is missing, NaN or infinite."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class Trace:
    """Probe series of one fold: ``blocks`` names the units, ``epochs`` holds one dict per epoch
    with the scalars of :data:`EPOCH_SCALARS` and the per-block lists of :data:`BLOCK_SERIES`."""

    blocks: list[str]
    block_params: list[int]
    fold: int = 0
    num_classes: int = 0
    label_entropy: float = 0.0  # loss of predicting the class frequencies (nats)
    chance_accuracy: float = 0.0  # accuracy of always predicting the majority class
    n_train: int = 0
    epochs: list[dict[str, Any]] = field(default_factory=list)
    stopped: str | None = None  # why training stopped early (e.g. a non-finite loss)
    #: per-block gradient RMS at the fold's first step (the reference for gradient growth)
    grad_rms_init: list[float | None] | None = None

    def series(self, name: str) -> list[list[float | None]]:
        """One per-block list per epoch for a name of :data:`BLOCK_SERIES`."""
        return [list(e.get(name) or [None] * len(self.blocks)) for e in self.epochs]

    def scalar(self, name: str) -> list[float | None]:
        return [e.get(name) for e in self.epochs]

    @property
    def nonfinite(self) -> bool:
        return self.stopped is not None or any(e.get("nonfinite") for e in self.epochs)

    def to_dict(self) -> dict[str, Any]:
        # a shallow copy per epoch row and list (dataclasses.asdict deep-copies every value)
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["epochs"] = [{k: list(v) if isinstance(v, list) else v for k, v in e.items()}
                       for e in self.epochs]
        for key in ("blocks", "block_params", "grad_rms_init"):
            d[key] = None if d[key] is None else list(d[key])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Trace:
        return cls(
            blocks=list(d["blocks"]), block_params=list(d.get("block_params", [])),
            fold=int(d.get("fold", 0)), num_classes=int(d.get("num_classes", 0)),
            label_entropy=float(d.get("label_entropy", 0.0)),
            chance_accuracy=float(d.get("chance_accuracy", 0.0)),
            n_train=int(d.get("n_train", 0)), epochs=[dict(e) for e in d.get("epochs", [])],
            stopped=d.get("stopped"),
            grad_rms_init=(None if d.get("grad_rms_init") is None
                           else list(d["grad_rms_init"])),
        )
