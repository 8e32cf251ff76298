"""Stall diagnosis: vanishing/exploding gradients, a data-limited plateau, overfitting,
an optimization problem, or healthy, with the evidence that decided it.

Public API::

    from nasdepth import diagnose, Diagnosis, Probe, Trace
    d = diagnose(cv_result)                       # a CVResult trained with hooks=[ProbeHook()]
    d = diagnose(arch, data, controls="all")      # cross-validate an ArchConfig with probes
    d = diagnose(my_module, data, epochs=20, lr=1e-3, optimizer="adamw", batch_size=64, seed=0)
    d.verdict, d.confidence, d.evidence, d.advice, d.to_dict()

By default every call also runs the shallow baseline (logistic regression + extra trees on
the run's own splits, seconds) where ``data`` is given; ``controls="none"`` turns it off.

For studies: the splits are resolved once, the shallow baseline computed once per study, and
each trial's diagnosis reads it ::

    splits = cfg.cv.resolve(data)                 # one Splits for every trial
    base = shallow_baseline(data, splits)         # once per study
    hook = nasdepth.probes.probe_hook()           # a fresh ProbeHook per trial
    result = cross_validate(arch, data, cv=splits, ..., hooks=[hook])
    d = diagnose(result, data, controls=["shallow"], precomputed={"shallow": base})
    # on NonFiniteLossError: hook.close(str(exc)); diagnose(hook).to_dict()  -> exploding

Figures' data: ``gradient_frame``, ``update_frame``, ``loss_frame``, ``controls_frame``.

Names load on first use (:mod:`nasdepth.lazy`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasdepth.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("check_model_data", "diagnose"), "nasdepth.diagnosis.api"),
    **dict.fromkeys(("shallow_baseline",), "nasdepth.diagnosis.baseline"),
    **dict.fromkeys(
        ("parse_controls", "run_controls", "run_folds"),
        "nasdepth.diagnosis.controls",
    ),
    **dict.fromkeys(
        ("CONTROLS", "DEFAULT_CONTROLS", "PLATEAUS", "VERDICTS", "Diagnosis", "Evidence"),
        "nasdepth.diagnosis.diagnosis",
    ),
    **dict.fromkeys(
        ("controls_frame", "gradient_frame", "loss_frame", "update_frame"),
        "nasdepth.diagnosis.frames",
    ),
    **dict.fromkeys(("THRESHOLDS", "diagnose_traces"), "nasdepth.diagnosis.rules"),
}
__all__ = [
    "CONTROLS",
    "DEFAULT_CONTROLS",
    "Diagnosis",
    "Evidence",
    "PLATEAUS",
    "THRESHOLDS",
    "VERDICTS",
    "check_model_data",
    "controls_frame",
    "diagnose",
    "diagnose_traces",
    "gradient_frame",
    "loss_frame",
    "parse_controls",
    "run_controls",
    "run_folds",
    "shallow_baseline",
    "update_frame",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from nasdepth.diagnosis.api import check_model_data, diagnose
    from nasdepth.diagnosis.baseline import shallow_baseline
    from nasdepth.diagnosis.controls import (
        parse_controls,
        run_controls,
        run_folds,
    )
    from nasdepth.diagnosis.diagnosis import (
        CONTROLS,
        DEFAULT_CONTROLS,
        PLATEAUS,
        VERDICTS,
        Diagnosis,
        Evidence,
    )
    from nasdepth.diagnosis.frames import controls_frame, gradient_frame, loss_frame, update_frame
    from nasdepth.diagnosis.rules import THRESHOLDS, diagnose_traces
