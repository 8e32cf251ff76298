"""Where studies meet probes and diagnosis, through their public API only.

``probe_hooks(trial, arch)`` gives the training hooks that record a trace; after the CV,
``record_diagnosis(trial, result)`` stores ``probe_summary`` and ``diagnosis``
(``Diagnosis.to_dict()``) as trial attributes. A failure of either is recorded on the trial
and never fails a finished candidate.
"""

from __future__ import annotations

from collections.abc import Sequence

import optuna

from nasdepth.arch import ArchConfig
from nasdepth.diagnosis import diagnose
from nasdepth.probes import probe_hook
from nasdepth.train import TrainHook
from nasdepth.train.cv import CVResult

_HOOK_ATTR = "_nasdepth_probe_hook"


def probe_hooks(trial: optuna.Trial, arch: ArchConfig) -> Sequence[TrainHook]:
    """One probe hook for this trial (kept on the trial object to summarize after the CV)."""
    hook = probe_hook()
    setattr(trial, _HOOK_ATTR, hook)
    return [hook]


def record_diagnosis(trial: optuna.Trial, result: CVResult) -> None:
    """Store the probe summary and the diagnosis of a finished CV (when probes ran)."""
    hook = getattr(trial, _HOOK_ATTR, None)
    if hook is not None and hasattr(hook, "summary"):
        try:
            trial.set_user_attr("probe_summary", hook.summary())
        except Exception as exc:  # a probe bug must not fail a finished candidate
            trial.set_user_attr("probe_error", f"{type(exc).__name__}: {exc}")
    if hook is None and not result.traces:
        return
    try:
        trial.set_user_attr("diagnosis", diagnose(result).to_dict())
    except Exception as exc:
        trial.set_user_attr("diagnosis_error", f"{type(exc).__name__}: {exc}")
