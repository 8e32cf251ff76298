"""Which trial to export, what it recorded, and the settings it was trained with.

Everything comes from the storage: the study's ``config`` attribute (written when the study
was created: data spec, CV, training) and the trial's record, so a trial exports the way it
was cross-validated even when the study file has changed since, or ran with CLI overrides.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from nasdepth.data import CVConfig
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.study.candidates import candidate_of_record
from nasdepth.study.record import TrialRecord, read_record, read_study_record
from nasdepth.study.study_file import StudyConfig
from nasdepth.train import TrainConfig
from nasdepth.train.candidate import Candidate


@dataclass(frozen=True)
class StudySettings:
    """What an export needs to know about the study (as its trials ran)."""

    name: str
    data: str | dict[str, Any]
    cv: CVConfig
    cv_seed: int
    training: TrainConfig
    objective: str
    maximize: bool
    source: str

    @classmethod
    def of(cls, study: optuna.Study, cfg: StudyConfig | None = None) -> StudySettings:
        """From the study's stored config, else from ``cfg`` (a study without one)."""
        stored = read_study_record(study).settings
        maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        source = str(cfg.path) if cfg is not None else f"the study '{study.study_name}'"
        if isinstance(stored, dict) and "data" in stored and "training" in stored:
            cv = CVConfig.from_dict(stored.get("cv") or {"folds": stored.get("folds", 3),
                                                         "seed": stored.get("cv_seed", 0)},
                                    source)
            return cls(name=study.study_name, data=stored["data"], cv=cv,
                       cv_seed=int(stored.get("cv_seed", cv.seed)),
                       training=TrainConfig.from_dict(stored["training"], source),
                       objective=str(stored.get("objective", "val_accuracy")),
                       maximize=maximize, source=source)
        if cfg is None:
            raise NasdepthError(f"The study '{study.study_name}' has no stored configuration; "
                                "export it with its study file (nasdepth export STUDY.yaml).")
        return cls(name=cfg.name, data=cfg.data, cv=cfg.cv, cv_seed=cfg.cv_seed,
                   training=cfg.training, objective=cfg.objective, maximize=maximize,
                   source=source)


def trial_record(trial: FrozenTrial) -> TrialRecord:
    """The trial's :class:`TrialRecord` (records of earlier versions converted)."""
    return read_record(trial)


def pick_trial(study: optuna.Study, which: int | str, maximize: bool) -> FrozenTrial:
    """``best`` (the complete trial with the best primary objective, ties: fewer parameters)
    or a trial number, which must be a complete trial with an architecture."""
    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.values and math.isfinite(float(t.values[0]))]
    where = f"the study '{study.study_name}'"
    if which == "best":
        if not complete:
            raise NasdepthError(f"{where} has no complete trial yet: nothing to export.")
        sign = -1.0 if maximize else 1.0
        return min(complete, key=lambda t: (sign * float(t.values[0]),
                                            trial_record(t).costs.get("params", math.inf)))
    try:
        number = int(which)
    except (TypeError, ValueError):
        raise ConfigError("the command line", "--trial", which,
                          "'best' or a trial number") from None
    numbers = sorted(t.number for t in complete)
    shown = ", ".join(map(str, numbers[:20])) + (", ..." if len(numbers) > 20 else "")
    found = [t for t in study.get_trials(deepcopy=False) if t.number == number]
    if not found:
        raise ConfigError(where, "trial", number,
                          f"the number of a complete trial ({shown or 'none yet'})")
    trial = found[0]
    if trial not in complete:
        raise ConfigError(where, "trial", number,
                          f"a complete trial (trial {number} is {trial.state.name.lower()}); "
                          f"complete: {shown or 'none yet'}")
    return trial


def trial_candidate(record: TrialRecord, source: str) -> Candidate:
    """What the trial trained (:func:`~nasdepth.study.candidates.candidate_of_record`); a
    multitask network is refused (an exported file predicts one label column)."""
    candidate = candidate_of_record(record, source)
    if candidate.targets().tasks:  # its network has one head per task
        raise NasdepthError(f"Trial {record.number} of {source} is a multitask network; export "
                            "takes single-task trials only (docs/multitask.md).")
    return candidate


def refit_epochs(record: TrialRecord, training: TrainConfig) -> tuple[int, str]:
    """Epochs for the refit and why: the recipe's, or with early stopping (``patience``) the
    median epoch at which the folds stopped (the fold rows record ``epochs``)."""
    if not training.patience:
        return training.epochs, f"the study's {training.epochs} epochs"
    ran = [int(r["epochs"]) for r in record.cv_folds if r.get("epochs") is not None]
    if not ran:
        return training.epochs, (f"the study's {training.epochs} epochs (no fold recorded "
                                 "where it stopped)")
    median = max(1, int(round(statistics.median(ran))))
    return median, (f"the median epoch at which the {len(ran)} folds stopped early "
                    f"(patience {training.patience}; folds ran {sorted(ran)})")


def cv_scores(record: TrialRecord) -> dict[str, Any]:
    """Mean and std (ddof=1) over the trial's folds of every validation and test metric."""
    out: dict[str, Any] = {"folds": len(record.cv_folds)}
    if not record.cv_folds:
        return out
    keys = [k for k in record.cv_folds[0] if k.startswith(("val_", "test_"))]
    for key in keys:
        vals = [float(r[key]) for r in record.cv_folds
                if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))]
        if vals:
            out[key] = {"mean": statistics.fmean(vals),
                        "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}
    return out
