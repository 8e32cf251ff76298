"""Training: one fold (``fit_fold``), all folds at once (``fit_folds_parallel``) and k-fold
cross-validation (``cross_validate``); data on the device or streamed from the host
(``data_placement``, ``resolve_placement``).

Names load on first use (:mod:`nasdepth.lazy`)."""

# the imports under TYPE_CHECKING are for type checkers only; __all__ is _EXPORTS's names
# ruff: noqa: F401

from __future__ import annotations

from typing import TYPE_CHECKING

from nasdepth.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(
        ("OPTIMIZERS", "PLACEMENTS", "PRECISIONS", "SCHEDULES", "TrainConfig"),
        "nasdepth.train.config",
    ),
    **dict.fromkeys(("CVResult", "cross_validate", "records"), "nasdepth.train.cv"),
    **dict.fromkeys(
        ("Candidate", "MultitaskCandidate", "SingleTaskCandidate", "TransferCandidate",
         "candidate_from_dict"), "nasdepth.train.candidate"),
    **dict.fromkeys(
        ("configure_threads", "resolve_device"), "nasdepth.train.device"
    ),
    **dict.fromkeys(("FitOptions", "FoldResult", "fit_fold", "predict_proba"),
                    "nasdepth.train.fit"),
    **dict.fromkeys(("TrainHook",), "nasdepth.train.hooks"),
    **dict.fromkeys(("DeviceOutOfMemoryError", "NonFiniteLossError"), "nasdepth.train.loop"),
    **dict.fromkeys(
        ("LOWER_IS_BETTER", "METRICS", "classification_metrics"), "nasdepth.train.metrics"
    ),
    **dict.fromkeys(("fit_folds_parallel",), "nasdepth.train.parallel"),
    **dict.fromkeys(
        ("DEVICE_FRACTION", "fold_device_bytes", "placement_decision", "resolve_placement"),
        "nasdepth.train.stream",
    ),
}
__all__ = sorted(_EXPORTS)  # one list: the names _EXPORTS maps
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from nasdepth.train.candidate import (
        Candidate,
        MultitaskCandidate,
        SingleTaskCandidate,
        TransferCandidate,
        candidate_from_dict,
    )
    from nasdepth.train.config import OPTIMIZERS, PLACEMENTS, PRECISIONS, SCHEDULES, TrainConfig
    from nasdepth.train.cv import CVResult, cross_validate, records
    from nasdepth.train.device import configure_threads, resolve_device
    from nasdepth.train.fit import FitOptions, FoldResult, fit_fold, predict_proba
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
