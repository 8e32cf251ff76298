"""Stall diagnosis: vanishing/exploding gradients, a data-limited plateau, overfitting,
an optimization problem, or healthy, with the evidence that decided it.

Public API::

    from nasdepth import diagnose, Diagnosis, Probe, Trace
    d = diagnose(cv_result)                       # a CVResult trained with hooks=[ProbeHook()]
    d = diagnose(arch, data, controls="all")      # cross-validate an ArchConfig with probes
    d = diagnose(my_module, data, epochs=20, lr=1e-3, optimizer="adamw", batch_size=64, seed=0)
    d.verdict, d.confidence, d.evidence, d.advice, d.to_dict()

For studies (cheap; no controls): per trial ::

    hook = nasdepth.probes.probe_hook()           # a fresh ProbeHook per trial
    result = cross_validate(arch, data, ..., hooks=[hook])
    trial.set_user_attr("probe_summary", hook.summary())
    trial.set_user_attr("diagnosis", diagnose(result).to_dict())
    # on NonFiniteLossError: hook.close(str(exc)); diagnose(hook).to_dict()  -> exploding

Figures' data: ``gradient_frame``, ``update_frame``, ``loss_frame``, ``controls_frame``.
"""

from nasdepth.diagnosis.api import check_model_data, diagnose
from nasdepth.diagnosis.controls import CONTROLS, parse_controls, run_controls, run_folds
from nasdepth.diagnosis.diagnosis import VERDICTS, Diagnosis, Evidence
from nasdepth.diagnosis.frames import controls_frame, gradient_frame, loss_frame, update_frame
from nasdepth.diagnosis.rules import THRESHOLDS, diagnose_traces

__all__ = [
    "CONTROLS", "THRESHOLDS", "VERDICTS", "Diagnosis", "Evidence", "check_model_data",
    "controls_frame", "diagnose", "diagnose_traces", "gradient_frame", "loss_frame",
    "parse_controls", "run_controls", "run_folds", "update_frame",
]
