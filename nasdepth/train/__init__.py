"""Training: one fold (``fit_fold``), all folds at once (``fit_folds_parallel``) and k-fold
cross-validation (``cross_validate``); data on the device or streamed from the host
(``data_placement``, ``resolve_placement``)."""

from nasdepth.train.config import OPTIMIZERS, PLACEMENTS, PRECISIONS, SCHEDULES, TrainConfig
from nasdepth.train.cv import CVResult, cross_validate, records
from nasdepth.train.device import configure_threads, resolve_device, seed_everything
from nasdepth.train.fit import FoldResult, fit_fold, predict_proba
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import DeviceOutOfMemoryError, NonFiniteLossError
from nasdepth.train.metrics import LOWER_IS_BETTER, METRICS, classification_metrics
from nasdepth.train.parallel import fit_folds_parallel
from nasdepth.train.stream import (
    DEVICE_FRACTION,
    fold_device_bytes,
    placement_decision,
    resolve_placement,
)

__all__ = [
    "DEVICE_FRACTION", "LOWER_IS_BETTER", "METRICS", "OPTIMIZERS", "PLACEMENTS", "PRECISIONS",
    "SCHEDULES", "CVResult",
    "DeviceOutOfMemoryError", "FoldResult", "NonFiniteLossError", "TrainConfig", "TrainHook",
    "classification_metrics", "configure_threads", "cross_validate", "fit_fold",
    "fit_folds_parallel", "fold_device_bytes", "placement_decision", "predict_proba", "records",
    "resolve_device", "resolve_placement", "seed_everything",
]
