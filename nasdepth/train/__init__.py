"""Training: one fold (``fit_fold``) and k-fold cross-validation (``cross_validate``)."""

from nasdepth.train.config import OPTIMIZERS, SCHEDULES, TrainConfig
from nasdepth.train.cv import CVResult, cross_validate
from nasdepth.train.device import configure_threads, resolve_device, seed_everything
from nasdepth.train.fit import FoldResult, NonFiniteLossError, fit_fold
from nasdepth.train.hooks import TrainHook
from nasdepth.train.metrics import METRICS, classification_metrics

__all__ = [
    "METRICS", "OPTIMIZERS", "SCHEDULES", "CVResult", "FoldResult", "NonFiniteLossError",
    "TrainConfig", "TrainHook", "classification_metrics", "configure_threads", "cross_validate",
    "fit_fold", "resolve_device", "seed_everything",
]
