"""``TrialRecord``: everything one trial produced, as one typed, versioned, JSON-ready record.

``study`` writes it (one Optuna user attribute, :data:`RECORD_KEY`, rewritten as the trial
goes: after the costs, after every fold, at the end, and when it is pruned or fails);
``report``, ``diagnose --study`` and the runner read it through :func:`read_record`, which also
turns the loose user attributes of trials written before the record existed (version 1) into a
record.

Each field holds plain JSON data (the ``to_dict()`` of the typed object it came from), so a
report can be rebuilt from the storage alone. A part that adds to what a trial records adds a
field here (with a default, so older records still load) and bumps :data:`RECORD_VERSION`.

This module imports neither torch nor optuna: the CLI and the report read records cheaply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from optuna.trial import BaseTrial  # FrozenTrial and a live Trial

#: the user attribute that holds the record
RECORD_KEY = "nasdepth_record"
#: 1: loose user attributes (no record); 2: this record; 3: adds ``splits``,
#: ``settings_id`` and ``run_id``; 4: adds ``multitask`` and ``transfer``; 5: adds
#: ``candidate`` (what the trial trained, as one object)
RECORD_VERSION = 6
#: the record's states (Optuna's, lower-case)
STATES = ("running", "waiting", "complete", "pruned", "failed")
#: a few flat user attributes written beside the record for Optuna's own tools (the
#: dashboard's trial table shows user attributes); nothing in nasdepth reads them
DASHBOARD_ATTRS = ("reason", "verdict", "duplicate_of")
_OPTUNA_STATES = {"RUNNING": "running", "WAITING": "waiting", "COMPLETE": "complete",
                  "PRUNED": "pruned", "FAIL": "failed"}


@dataclass
class TrialRecord:
    """One trial's results.

    ``state``: one of :data:`STATES`; ``reason``: why it was pruned or failed. ``arch``:
    ``ArchConfig.to_dict()``; ``summary``: the architecture's summary (depth, width, block,
    skip, ...) with ``params`` and ``flops``; ``training``: the recipe it trained with
    (``TrainConfig.to_dict()``); ``params``: Optuna's sampled parameters. ``cv_folds``: the CV
    table, one dict per fold (the finished folds of a pruned or failed trial). ``costs``:
    ``params``, ``flops`` and ``latency_ms`` where measured. ``probe_summary``:
    ``ProbeHook.summary()``; ``trace_summary``: the probes' per-epoch series over folds
    (``blocks`` + ``epochs``, see :func:`nasdepth.study.probing.trace_summary`), what the
    report's evidence figure draws; ``diagnosis``: ``Diagnosis.to_dict()``. ``timings``
    (seconds): ``wall_time`` (the CV: training with the probes in it), ``probes`` (the probes'
    own calls, inside ``wall_time``), ``diagnosis`` (after the CV: the verdict, its baselines
    and any controls), ``controls`` (the study's opt-in diagnosis controls, inside
    ``diagnosis``) and ``reference``.
    ``splits``: the CV the trial trained on (``Splits.to_dict()``: description and digest;
    the diagnosis controls ran on the same). ``pruned_at``: ``{fold, epoch, step}`` of a
    pruned trial; ``duplicate_of``: the trial whose results a repeated candidate copies;
    ``retry_of``: the failed trial this one runs again. ``settings_id``: the digest of the
    study settings (data, CV, recipe, space, objectives; :mod:`nasdepth.study.identity`) it
    trained under; ``run_id``: the run that started it. ``errors``: ``traceback`` of a
    failure, ``probes`` / ``diagnosis`` when those parts failed on a finished candidate.
    ``multitask``: a multitask trial's config, tasks, per-task scores and per-task diagnosis
    (:mod:`nasdepth.study.multitask`; None for single-task trials).
    ``extras``: data of a part not yet given a field (read with ``.get``; nothing depends on
    it being present).
    """

    number: int
    state: str = "running"
    reason: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    #: under ``lr: auto``: the learning-rate range test (``LRFinding.to_dict()``)
    lr_find: dict[str, Any] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    cv_folds: list[dict[str, Any]] = field(default_factory=list)
    costs: dict[str, float] = field(default_factory=dict)
    probe_summary: dict[str, Any] | None = None
    trace_summary: dict[str, Any] | None = None
    diagnosis: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    splits: dict[str, Any] | None = None
    seed: int | None = None
    device: str | None = None
    #: what ``training.precision`` resolved to on that device (``auto``: bf16 for 2-D CNNs and
    #: stacked MLP folds on a CPU where measured faster, else fp32); None in records written
    #: before it was kept
    precision: str | None = None
    #: whether the CV trained the folds together (one fold-parallel ensemble: stacked MLP
    #: layers, grouped CNN convolutions, vmap) rather than one after another: a retraining of
    #: the folds (``export --ensemble``) takes the same engine, so the same floats. None in
    #: records of version <= 5
    parallel: bool | None = None
    versions: dict[str, str] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)
    pruned_at: dict[str, Any] | None = None
    duplicate_of: int | None = None
    retry_of: int | None = None
    settings_id: str | None = None
    run_id: str | None = None
    errors: dict[str, str] = field(default_factory=dict)
    multitask: dict[str, Any] | None = None
    #: a transfer study's candidate: ``TransferConfig.to_dict()`` with the frozen units, the
    #: input adaptations and the ``learning_curve`` rows (:mod:`nasdepth.study.transfer`)
    transfer: dict[str, Any] | None = None
    #: what the trial trained: ``Candidate.describe()`` (``kind``, ``version`` and the
    #: candidate's own fields; a transfer candidate holds the one it wraps). None in records
    #: of version <= 4: :func:`nasdepth.study.candidates.candidate_of_record` rebuilds it
    #: from ``arch``, ``multitask`` and ``transfer``
    candidate: dict[str, Any] | None = None
    #: per-unit linear classifier probes of each fold's trained model (stem, blocks):
    #: ``LinearProbeHook.summary()`` (:mod:`nasdepth.probes.linear`); None without probes
    linear_probes: dict[str, Any] | None = None
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
        rec.extras = {**extra, **(rec.extras or {})}
        return rec

    @classmethod
    def from_frozen_trial(cls, trial: BaseTrial) -> TrialRecord:
        """The record of an Optuna trial (``FrozenTrial`` or a live ``Trial``); see
        :func:`read_record`."""
        return read_record(trial)

    @property
    def wall_time(self) -> float | None:
        value = self.timings.get("wall_time")
        return float(value) if isinstance(value, int | float) else None

    @property
    def verdict(self) -> str | None:
        return self.diagnosis.get("verdict") if isinstance(self.diagnosis, dict) else None


def read_record(trial: BaseTrial) -> TrialRecord:
    """The trial's record: the stored one, or one converted from the loose attributes of an
    earlier version. The state is Optuna's where the trial has one (a trial failed by
    heartbeat or by another worker never rewrote its record), and a finished trial without
    a recorded reason gets one that says what is known."""
    attrs = dict(trial.user_attrs)
    stored = attrs.get(RECORD_KEY)
    rec = TrialRecord.from_dict(stored) if isinstance(stored, dict) else _from_loose(attrs)
    rec.number = int(trial.number)
    state = getattr(getattr(trial, "state", None), "name", None)
    if state in _OPTUNA_STATES:
        rec.state = _OPTUNA_STATES[state]
    if not rec.params and isinstance(getattr(trial, "params", None), dict):
        rec.params = dict(trial.params)
    if rec.reason is None:
        rec.reason = _default_reason(rec)
    if "resolution" in attrs and "resolution" not in rec.summary:  # scaling trials before v5
        rec.summary.update({**attrs.get("scaling", {}), "resolution": attrs["resolution"]})
    return rec


def write_record(trial: Any, rec: TrialRecord) -> None:
    """Store ``rec`` on a live ``optuna.Trial`` (and the few flat attributes the dashboard
    shows). Written whole each time: one attribute, so a reader never sees half an update."""
    trial.set_user_attr(RECORD_KEY, rec.to_dict())
    for key, value in dashboard_attrs(rec).items():
        trial.set_user_attr(key, value)


def dashboard_attrs(rec: TrialRecord) -> dict[str, Any]:
    """The flat attributes of :data:`DASHBOARD_ATTRS` that have a value."""
    return {k: v for k in DASHBOARD_ATTRS if (v := getattr(rec, k)) is not None}


def _default_reason(rec: TrialRecord) -> str | None:
    if rec.state == "pruned":
        at = rec.pruned_at or {}
        if "epoch" in at:
            return f"pruned at fold {at.get('fold')}, epoch {at['epoch']}"
        if "fold" in at:
            return f"pruned after fold {at['fold']}"
        return f"pruned after {len(rec.cv_folds)} fold(s)"
    if rec.state == "failed":
        return "failed (no reason recorded: the worker may have died)"
    return None


#: version-1 user attributes copied as they are into the field of the same name
_LOOSE_SAME = ("arch", "summary", "cv_folds", "probe_summary", "diagnosis", "seed", "device",
               "versions", "worker", "pruned_at", "duplicate_of", "retry_of")


def _from_loose(attrs: dict[str, Any]) -> TrialRecord:
    """A record from version-1 loose user attributes (also a trial that has not written its
    record yet: one enqueued with ``retry_of``)."""
    rec = TrialRecord(number=-1, version=1 if "arch" in attrs else RECORD_VERSION)
    for key in _LOOSE_SAME:
        if attrs.get(key) is not None:
            setattr(rec, key, attrs[key])
    rec.reason = attrs.get("fail_reason")
    summary = rec.summary if isinstance(rec.summary, dict) else {}
    costs = {"params": summary.get("params"), "flops": attrs.get("flops", summary.get("flops")),
             "latency_ms": attrs.get("latency_ms")}
    rec.costs = {k: float(v) for k, v in costs.items() if isinstance(v, int | float)}
    if isinstance(attrs.get("wall_time"), int | float):
        rec.timings = {"wall_time": float(attrs["wall_time"])}
    errors = {"traceback": attrs.get("fail_traceback"), "probes": attrs.get("probe_error"),
              "diagnosis": attrs.get("diagnosis_error")}
    rec.errors = {k: str(v) for k, v in errors.items() if v}
    return rec


# --- the study's own record --------------------------------------------------------------

#: 1: the study-level attributes read as one record (settings, identity, data, baselines)
STUDY_RECORD_VERSION = 1
#: the study user attributes the record is made of (its field: the attribute). Kept as
#: separate attributes on purpose: several workers write them at different moments (the
#: shallow baseline, the reference network, the multitask baselines), and one attribute
#: rewritten whole by each would lose the others' updates.
STUDY_ATTRS = {"settings": "config", "identity": "identity", "data": "data",
               "identity_changes": "identity_changes", "shallow": "shallow_baseline",
               "shallow_tasks": "shallow_baseline_tasks", "reference": "reference_network",
               "reference_tasks": "reference_network_tasks",
               "multitask_baselines": "multitask_baselines", "version": "study_record_version"}


@dataclass
class StudyRecord:
    """What a study recorded about itself, typed: what ``report`` reads once (as it reads
    each trial's :class:`TrialRecord`), instead of Optuna's user attributes.

    ``settings``: ``StudyConfig.to_dict()`` as the study was created (or last changed with
    ``--allow-changes``); ``identity``: what a resume is compared against
    (:mod:`nasdepth.study.identity`) and ``identity_changes`` the accepted changes; ``data``:
    ``Dataset.to_dict()`` (name, samples, classes, input shape, tasks); ``shallow``: the
    shallow baseline on the study's splits (``shallow_tasks``: one per task);
    ``reference``: the reference network's result (``reference_tasks``: one per task);
    ``multitask_baselines``: the best
    trial's architecture trained on each task alone. ``name``, ``directions`` (``maximize``
    / ``minimize``) and ``metric_names`` are Optuna's, copied here so readers need nothing
    else. ``version``: :data:`STUDY_RECORD_VERSION` of the study's writer (0: written before
    this record existed; every field reads the same).
    """

    name: str = ""
    directions: list[str] = field(default_factory=list)
    metric_names: list[str] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] | None = None
    identity_changes: list[dict[str, Any]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    shallow: dict[str, Any] | None = None
    shallow_tasks: dict[str, Any] | None = None
    reference: dict[str, Any] | None = None
    reference_tasks: dict[str, Any] | None = None
    multitask_baselines: dict[str, Any] | None = None
    version: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any], *, name: str = "",
                   directions: list[str] | None = None,
                   metric_names: list[str] | None = None) -> StudyRecord:
        """From a study's user attributes (:data:`STUDY_ATTRS`); a value of the wrong type
        (a damaged or foreign attribute) reads as missing."""
        rec = cls(name=name, directions=list(directions or []), metric_names=metric_names)
        for fname, attr in STUDY_ATTRS.items():
            value = attrs.get(attr)
            default = getattr(rec, fname)
            kind = type(default) if default is not None else dict
            if isinstance(value, kind) and not isinstance(value, bool):
                setattr(rec, fname, value)
        return rec

    @property
    def maximize(self) -> bool:
        return not self.directions or self.directions[0].lower() == "maximize"


def read_study_record(study: Any) -> StudyRecord:
    """The :class:`StudyRecord` of an ``optuna.Study`` (read once: its user attributes,
    name, directions and metric names)."""
    return StudyRecord.from_attrs(
        dict(study.user_attrs), name=str(study.study_name),
        directions=[d.name.lower() for d in study.directions],
        metric_names=study.metric_names)


def stored(study: Any, name: str, splits: str | None = None) -> dict[str, Any] | None:
    """The study's stored result ``name`` (a :class:`StudyRecord` field: ``shallow``,
    ``reference``, ...) where it is a mapping and, with ``splits`` (a digest), was computed
    on those splits; else None (missing, damaged, or from other splits)."""
    value = study.user_attrs.get(STUDY_ATTRS[name])
    if not isinstance(value, dict) or (splits is not None and value.get("splits") != splits):
        return None
    return value


def store(study: Any, name: str, value: Any) -> None:
    """Store the study's result ``name`` (a :class:`StudyRecord` field) for every worker."""
    study.set_user_attr(STUDY_ATTRS[name], value)
