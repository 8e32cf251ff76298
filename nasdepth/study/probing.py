"""Where studies meet probes and diagnosis, through their public API only.

``probe_hooks(trial, candidate)`` gives the training hooks that record a trace; after the CV,
``record_diagnosis(trial, result, record, ...)`` fills the trial record's ``probe_summary``,
``trace_summary`` (the per-epoch series the report draws) and ``diagnosis``
(``Diagnosis.to_dict()``). A failure of either is recorded in ``record.errors`` and never
fails a finished candidate.

Controls: the shallow baseline is computed once per study (:func:`study_baseline`, kept as
the study record's ``shallow`` with the digest of the splits it ran on) and every trial's
diagnosis reads it; the costly controls a study file asks for
(``diagnosis: {controls: [...], on: plateau}``) run only for the trials ``on`` selects, and
their seconds are stored in ``record.timings["controls"]`` (the progress bar shows the sum).

Capable learners: every diagnosis reads the study's trials that learned on the same splits
(:mod:`nasdepth.study.peers`); where none did and the verdict would be data-limited, the
reference network runs (once per study: the study record's ``reference``; its seconds go to the
record's ``timings["reference"]``), within the study file's ``diagnosis.reference_budget``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import optuna

from nasdepth.data import Dataset, Splits
from nasdepth.diagnosis import PLATEAUS, diagnose, shallow_baseline
from nasdepth.probes import LinearProbeHook, MultitaskProbeHook, Trace, probe_hook
from nasdepth.probes.summary import median_of
from nasdepth.study.record import TrialRecord, store, stored
from nasdepth.study.study_file import DiagnosisSettings
from nasdepth.train import TrainHook
from nasdepth.train.candidate import Candidate
from nasdepth.train.cv import CVResult

#: per-block series and per-epoch scalars kept in the trace summary: what the evidence
#: figure draws (gradient RMS heatmap, update ratios, normalized losses)
SUMMARY_SERIES = ("grad_rms", "update_ratio")
SUMMARY_SCALARS = ("train_loss_norm", "val_loss_norm", "val_accuracy")
#: longer runs are thinned to this many evenly spaced epochs (first and last kept), so a
#: record stays a few kilobytes whatever the epoch count
MAX_SUMMARY_EPOCHS = 50


def probe_hooks(trial: optuna.Trial, candidate: Candidate) -> Sequence[TrainHook]:
    """One probe hook for this trial's candidate (one probe per task for several tasks); the
    objective keeps it to summarize after the CV."""
    if candidate.targets().tasks:
        return [MultitaskProbeHook()]
    return [probe_hook()]


def linear_probe_hooks(candidate: Candidate, data: Dataset, splits: Splits
                       ) -> list[TrainHook]:
    """Per-block linear probes of each fold's trained model, for a trial that probes (the
    objective asks only then); ``record_diagnosis`` stores their summary in
    ``record.linear_probes``. None for a candidate with several tasks."""
    if candidate.targets().tasks:
        return []
    return [LinearProbeHook(data, splits)]


def study_baseline(study: optuna.Study, data: Dataset, splits: Splits) -> dict[str, Any]:
    """The shallow baseline of the study's data on its splits: read from the study where an
    earlier trial (of any worker) stored it for these splits, else computed now (seconds) and
    stored. Two workers that start at the same moment may both compute it; they store the
    same result."""
    known = stored(study, "shallow", splits.digest)
    if known is not None:
        return known
    result = shallow_baseline(data, splits, seed=splits.seed)
    store(study, "shallow", result)
    return result


def capable_controls(trial: optuna.Trial, splits: Splits, known: dict[str, Any],
                     settings: DiagnosisSettings, names: list[str]
                     ) -> tuple[list[str], float | None]:
    """Add the capable learners to ``known`` (the study's trials that learned on these splits;
    the reference network's result where an earlier trial ran it) and ``reference`` to the
    controls where the study file leaves it on. Returns (controls, reference budget)."""
    from nasdepth.study.peers import study_peers

    chance = float(known["shallow"].get("chance_accuracy") or 0.0)
    known["peers"] = study_peers(trial.study, splits.digest, chance, exclude=trial.number)
    ref = stored(trial.study, "reference", splits.digest)
    if ref is not None:
        known["reference"] = ref
    budget = settings.reference_budget if settings.reference else 0.0
    return [*names, "reference"], budget


def keep_reference(trial: optuna.Trial, controls: dict[str, Any]) -> None:
    """Store a reference network result that trained, once per study (later trials read it;
    one that ran out of its budget too, so the study pays the budget once, not per trial)."""
    ref = controls.get("reference")
    if isinstance(ref, dict) and (ref.get("ran") or (ref.get("seconds") or 0) > 0) and \
            stored(trial.study, "reference") != ref:
        store(trial.study, "reference", ref)


def wants_controls(verdict: str, settings: DiagnosisSettings) -> bool:
    """Does a trial with ``verdict`` get the study's costly controls?"""
    selected = {"all": True, "unhealthy": verdict != "healthy", "plateau": verdict in PLATEAUS}
    return bool(settings.controls) and selected[settings.on]


def record_diagnosis(trial: optuna.Trial, result: CVResult, record: TrialRecord, *,
                     data: Dataset | None = None, splits: Splits | None = None,
                     settings: DiagnosisSettings | None = None,
                     probes: Sequence[TrainHook] = ()) -> None:
    """Put the probe summary, the trace summary and the diagnosis of a finished CV (when
    probes ran) into ``record`` (the caller stores it); the diagnosis reads the study's
    shallow baseline (once per study) and, for the trials that ``settings`` selects, runs its
    costly controls. ``probes``: the trial's probe hooks (none: no probes ran)."""
    hook: Any = next((h for h in probes if hasattr(h, "summary")
                      and not isinstance(h, LinearProbeHook)), None)
    if hook is not None:
        try:
            record.probe_summary = hook.summary()
            record.trace_summary = trace_summary(hook.traces)
        except Exception as exc:  # a probe bug must not fail a finished candidate
            record.errors["probes"] = f"{type(exc).__name__}: {exc}"
    linear = next((h for h in probes if isinstance(h, LinearProbeHook)), None)
    if linear is not None:
        try:
            record.linear_probes = linear.summary()
        except Exception as exc:
            record.errors["linear_probes"] = f"{type(exc).__name__}: {exc}"
    if hook is None and not result.traces:
        return
    settings = settings or DiagnosisSettings()
    try:
        known: dict[str, Any] = {}
        names: list[str] = []
        budget = None
        if data is not None and splits is not None and settings.baseline:
            known["shallow"] = study_baseline(trial.study, data, splits)
            names, budget = capable_controls(trial, splits, known, settings, ["shallow"])
        d = diagnose(result, data, controls=names, cv=splits, precomputed=known,
                     reference_budget=budget)
        keep_reference(trial, d.controls)
        if data is not None and wants_controls(d.verdict, settings):
            start = time.perf_counter()
            d = diagnose(result, data, controls=[*names, *settings.controls], cv=splits,
                         precomputed={**known, **d.controls}, reference_budget=budget)
            record.timings["controls"] = round(time.perf_counter() - start, 2)
        reference = d.controls.get("reference") or {}
        if reference.get("ran") and reference is not known.get("reference"):
            record.timings["reference"] = float(reference.get("seconds") or 0.0)
        record.diagnosis = d.to_dict()
    except Exception as exc:
        record.errors["diagnosis"] = f"{type(exc).__name__}: {exc}"


def _time_summary(at: Sequence[dict[str, Any]], n_blocks: int) -> dict[str, Any]:
    """``time_steps`` and ``grad_time`` of one epoch over the folds (recurrent units only: the
    gradient at each sampled step, geometric mean over the folds that sampled the same steps);
    nothing for a model without recurrent blocks."""
    with_time = [r for r in at if r.get("grad_time")]
    if not with_time:
        return {}
    steps = list(with_time[0].get("time_steps") or [None] * n_blocks)
    profiles: list[list[float | None] | None] = []
    for i in range(n_blocks):
        same = [r["grad_time"][i] for r in with_time
                if i < len(r["grad_time"]) and r["grad_time"][i]
                and (r.get("time_steps") or [None] * n_blocks)[i] == steps[i]]
        profiles.append([_sig(_geomean([p[j] for p in same])) for j in range(len(same[0]))]
                        if same else None)
    return {"time_steps": steps, "grad_time": profiles}


def _sig(value: float | None, digits: int = 4) -> float | None:
    """``digits`` significant digits (JSON-small), None for missing or non-finite values."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _geomean(values: Sequence[Any]) -> float | None:
    logs = [math.log10(v) for v in values
            if isinstance(v, int | float) and math.isfinite(v) and v > 0]
    return 10 ** (sum(logs) / len(logs)) if logs else None


def trace_summary(traces: Sequence[Trace]) -> dict[str, Any] | None:
    """The folds' traces as one trace-shaped dict: ``blocks``, ``folds`` and one row per
    epoch (``epoch``, 1-based) with the per-block :data:`SUMMARY_SERIES` (geometric mean over
    the folds that reached that epoch: these ratios span orders of magnitude) and the
    :data:`SUMMARY_SCALARS` (median over folds). Runs longer than
    :data:`MAX_SUMMARY_EPOCHS` keep that many evenly spaced epochs. None without traces."""
    traces = [t for t in traces if t.epochs]
    if not traces:
        return None
    blocks = list(traces[0].blocks)
    same = [t for t in traces if len(t.blocks) == len(blocks)]
    n_epochs = max(len(t.epochs) for t in same)
    keep = list(range(n_epochs))
    if n_epochs > MAX_SUMMARY_EPOCHS:
        step = (n_epochs - 1) / (MAX_SUMMARY_EPOCHS - 1)
        keep = sorted({round(i * step) for i in range(MAX_SUMMARY_EPOCHS)})
    rows = []
    for e in keep:
        at = [t.epochs[e] for t in same if e < len(t.epochs)]
        row: dict[str, Any] = {"epoch": e + 1}  # 1-based, as the figures number epochs
        for name in SUMMARY_SERIES:
            lists = [r.get(name) or [] for r in at]
            row[name] = [_sig(_geomean([x[i] for x in lists if i < len(x)]))
                         for i in range(len(blocks))]
        for name in SUMMARY_SCALARS:
            # normalized losses sit near 1 when nothing is learned: keep their small changes
            row[name] = _sig(median_of([r.get(name) for r in at]), digits=6)
        row.update(_time_summary(at, len(blocks)))
        rows.append(row)
    return {"blocks": blocks, "folds": len(same), "epochs": rows}
