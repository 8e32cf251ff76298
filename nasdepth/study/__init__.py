"""Studies: Optuna studies over a search space, their storage, objective, workers and runner."""

from nasdepth.study.objective import EpochPruningHook, Objective
from nasdepth.study.registry import PRUNERS, SAMPLERS, make_pruner, make_sampler
from nasdepth.study.runner import count_trials, open_study, run_worker
from nasdepth.study.storage import make_storage, redact
from nasdepth.study.study_file import StudyConfig, load_study
from nasdepth.study.workers import run_study

__all__ = [
    "PRUNERS", "SAMPLERS", "EpochPruningHook", "Objective", "StudyConfig", "count_trials",
    "load_study", "make_pruner", "make_sampler", "make_storage", "open_study", "redact",
    "run_study", "run_worker",
]
