"""The Optuna objective: sample an architecture, cross-validate it, store everything."""

from __future__ import annotations

import platform
import time
from typing import Any

import optuna
import sklearn
import torch

from nasdepth.arch import build_model, count_parameters
from nasdepth.data import Dataset
from nasdepth.space import StudyConfig
from nasdepth.train import NonFiniteLossError, cross_validate
from nasdepth.train.cv import FoldCallback, records


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "optuna": optuna.__version__, "sklearn": sklearn.__version__}


class Objective:
    """Callable objective; ``fold_progress(trial_number, folds)`` may return a fold callback."""

    def __init__(self, cfg: StudyConfig, data: Dataset,
                 fold_progress: Any = None) -> None:
        self.cfg, self.data, self.fold_progress = cfg, data, fold_progress

    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self._run(trial)
        except (optuna.TrialPruned, KeyboardInterrupt):
            raise
        except Exception as exc:  # recorded with the trial; the study goes on
            reason = str(exc) if isinstance(exc, NonFiniteLossError) else (
                f"{type(exc).__name__}: {exc}")
            trial.set_user_attr("fail_reason", reason)
            raise

    def _run(self, trial: optuna.Trial) -> float:
        cfg = self.cfg
        arch = cfg.space.suggest(trial)
        model = build_model(arch, self.data.input_shape, self.data.num_classes)
        trial.set_user_attr("arch", arch.to_dict())
        trial.set_user_attr("summary", {**arch.summary(), "params": count_parameters(model)})
        on_fold: FoldCallback | None = None
        if self.fold_progress is not None:
            on_fold = self.fold_progress(trial.number, cfg.folds)
        start = time.perf_counter()
        result = cross_validate(arch, self.data, folds=cfg.folds, seed=cfg.cv_seed,
                                training=cfg.training, on_fold=on_fold)
        trial.set_user_attr("cv_folds", records(result.folds))
        trial.set_user_attr("wall_time", time.perf_counter() - start)
        trial.set_user_attr("device", result.settings["device"])
        trial.set_user_attr("seed", cfg.seed)
        trial.set_user_attr("versions", versions())
        return result.mean(cfg.objective)
