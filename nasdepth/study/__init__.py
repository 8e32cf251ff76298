"""Studies: Optuna studies over a search space, their storage, objective and runner."""

from nasdepth.study.objective import Objective
from nasdepth.study.runner import open_study, run_study
from nasdepth.study.storage import make_storage

__all__ = ["Objective", "make_storage", "open_study", "run_study"]
