"""Training: one fold (``fit_fold``), all folds at once (``fit_folds_parallel``) and k-fold
cross-validation (``cross_validate``)."""

from nasdepth.train.config import OPTIMIZERS, PRECISIONS, SCHEDULES, TrainConfig
from nasdepth.train.cv import CVResult, cross_validate, records
from nasdepth.train.device import configure_threads, resolve_device, seed_everything
from nasdepth.train.fit import FoldResult, fit_fold, predict_proba
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import DeviceOutOfMemoryError, NonFiniteLossError
from nasdepth.train.metrics import LOWER_IS_BETTER, METRICS, classification_metrics
from nasdepth.train.parallel import fit_folds_parallel

__all__ = [
    "LOWER_IS_BETTER", "METRICS", "OPTIMIZERS", "PRECISIONS", "SCHEDULES", "CVResult",
    "DeviceOutOfMemoryError", "FoldResult", "NonFiniteLossError", "TrainConfig", "TrainHook",
    "classification_metrics", "configure_threads", "cross_validate", "fit_fold",
    "fit_folds_parallel", "predict_proba", "records", "resolve_device", "seed_everything",
]
