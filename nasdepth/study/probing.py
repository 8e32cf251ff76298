"""Where studies meet probes and diagnosis, through their public API only.

``probe_hooks(trial, arch)`` gives the training hooks that record a trace; after the CV,
``record_diagnosis(trial, result, ...)`` stores ``probe_summary`` and ``diagnosis``
(``Diagnosis.to_dict()``). A failure of either is recorded on the trial and never fails a
finished candidate.

Controls: the shallow baseline is computed once per study (:func:`study_baseline`, kept in the
study's user attribute :data:`BASELINE_ATTR` with the digest of the splits it ran on) and
every trial's diagnosis reads it; the costly controls a study file asks for
(``diagnosis: {controls: [...], on: plateau}``) run only for the trials ``on`` selects, and
their seconds are stored as ``controls_seconds`` (the progress bar shows them).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import optuna

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset, Splits
from nasdepth.diagnosis import PLATEAUS, diagnose, shallow_baseline
from nasdepth.probes import probe_hook
from nasdepth.study.study_file import DiagnosisSettings
from nasdepth.train import TrainHook
from nasdepth.train.cv import CVResult

_HOOK_ATTR = "_nasdepth_probe_hook"
#: the study attribute holding the shallow baseline every trial's diagnosis reads
BASELINE_ATTR = "shallow_baseline"


def probe_hooks(trial: optuna.Trial, arch: ArchConfig) -> Sequence[TrainHook]:
    """One probe hook for this trial (kept on the trial object to summarize after the CV)."""
    hook = probe_hook()
    setattr(trial, _HOOK_ATTR, hook)
    return [hook]


def study_baseline(study: optuna.Study, data: Dataset, splits: Splits) -> dict[str, Any]:
    """The shallow baseline of the study's data on its splits: read from the study where an
    earlier trial (of any worker) stored it for these splits, else computed now (seconds) and
    stored. Two workers that start at the same moment may both compute it; they store the
    same result."""
    stored = study.user_attrs.get(BASELINE_ATTR)
    if isinstance(stored, dict) and stored.get("splits") == splits.digest:
        return stored
    result = shallow_baseline(data, splits, seed=splits.seed)
    study.set_user_attr(BASELINE_ATTR, result)
    return result


def wants_controls(verdict: str, settings: DiagnosisSettings) -> bool:
    """Does a trial with ``verdict`` get the study's costly controls?"""
    if not settings.controls:
        return False
    if settings.on == "all":
        return True
    if settings.on == "unhealthy":
        return verdict != "healthy"
    return verdict in PLATEAUS


def record_diagnosis(trial: optuna.Trial, result: CVResult, *, data: Dataset | None = None,
                     splits: Splits | None = None,
                     settings: DiagnosisSettings | None = None) -> None:
    """Store the probe summary and the diagnosis of a finished CV (when probes ran), with the
    study's shallow baseline (once per study) and, for the trials that ``settings`` selects,
    its costly controls."""
    hook = getattr(trial, _HOOK_ATTR, None)
    if hook is not None and hasattr(hook, "summary"):
        try:
            trial.set_user_attr("probe_summary", hook.summary())
        except Exception as exc:  # a probe bug must not fail a finished candidate
            trial.set_user_attr("probe_error", f"{type(exc).__name__}: {exc}")
    if hook is None and not result.traces:
        return
    settings = settings or DiagnosisSettings()
    try:
        known: dict[str, Any] = {}
        names: list[str] = []
        if data is not None and splits is not None and settings.baseline:
            known["shallow"] = study_baseline(trial.study, data, splits)
            names = ["shallow"]
        d = diagnose(result, data, controls=names, cv=splits, precomputed=known)
        if data is not None and wants_controls(d.verdict, settings):
            start = time.perf_counter()
            d = diagnose(result, data, controls=[*names, *settings.controls], cv=splits,
                         precomputed=known)
            trial.set_user_attr("controls_seconds", round(time.perf_counter() - start, 2))
        trial.set_user_attr("diagnosis", d.to_dict())
    except Exception as exc:
        trial.set_user_attr("diagnosis_error", f"{type(exc).__name__}: {exc}")
