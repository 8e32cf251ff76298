"""``TrialRecord``: everything one trial produced, as one typed, versioned, JSON-ready record.

``study`` writes it (one Optuna user attribute, :data:`RECORD_KEY`); ``report``,
``diagnose --study`` and ``export`` read it. Records written by earlier versions (loose user
attributes) load through :meth:`TrialRecord.from_frozen_trial`.

Each field holds plain JSON data (the ``to_dict()`` of the typed object it came from), so a
report can be rebuilt from the storage alone. A part that adds to what a trial records adds a
field here (with a default, so older records still load) and bumps :data:`RECORD_VERSION`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

#: the user attribute that holds the record
RECORD_KEY = "nasdepth_record"
#: 1: loose user attributes (no record); 2: this record
RECORD_VERSION = 2


@dataclass
class TrialRecord:
    """One trial's results.

    ``state``: ``running``, ``complete``, ``pruned``, ``failed`` (Optuna's state, lower-case);
    ``reason``: why it was pruned or failed. ``arch``: ``ArchConfig.to_dict()``; ``training``:
    the recipe it trained with (``TrainConfig.to_dict()``, sampled recipe parameters applied);
    ``params``: Optuna's sampled parameters. ``cv_folds``: the CV table, one dict per fold (the
    finished folds of a pruned trial). ``costs``: ``params``, ``flops``, ``latency_ms``.
    ``probe_summary``: ``ProbeHook.summary()``; ``diagnosis``: ``Diagnosis.to_dict()``.
    ``timings``: ``wall_time`` and other seconds. ``extras``: data of a part not yet given a
    field (read with ``.get``; nothing depends on it being present).
    """

    number: int
    state: str = "running"
    reason: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    cv_folds: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    probe_summary: dict[str, Any] | None = None
    diagnosis: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    seed: int | None = None
    device: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)
    pruned_at: dict[str, Any] | None = None
    duplicate_of: int | None = None
    retry_of: int | None = None
    errors: dict[str, str] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)
    version: int = RECORD_VERSION

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrialRecord:
        """Unknown keys (from a newer version) go to ``extras``; missing ones take defaults."""
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = {k: v for k, v in d.items() if k not in names}
        rec = cls(**known)
        rec.extras = {**extra, **rec.extras}
        return rec
