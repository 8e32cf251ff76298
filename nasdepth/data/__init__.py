"""Data: loading into tensors, fold splits, and preprocessing fitted on training folds.

Names load on first use (:mod:`nasdepth.lazy`)."""

# the imports under TYPE_CHECKING are for type checkers only; __all__ is _EXPORTS's names
# ruff: noqa: F401

from __future__ import annotations

from typing import TYPE_CHECKING

from nasdepth.lazy import lazy_exports

_EXPORTS = {
    **dict.fromkeys(("encode_labels", "from_arrays", "multitask_from_arrays"),
                    "nasdepth.data.arrays"),
    **dict.fromkeys(("Task",), "nasdepth.data.dataset"),
    **dict.fromkeys(("check_task", "derive_tasks", "label_matrix", "task_data",
                     "with_stratify"), "nasdepth.data.tasks"),
    **dict.fromkeys(("AugmentConfig",), "nasdepth.data.augment_config"),
    **dict.fromkeys(("augment_batch",), "nasdepth.data.augment"),
    **dict.fromkeys(("Dataset",), "nasdepth.data.dataset"),
    **dict.fromkeys(
        (
            "CV_KINDS",
            "CVConfig",
            "Splits",
            "holdout_split",
            "make_folds",
            "make_splits",
            "resolve_cv",
        ),
        "nasdepth.data.folds",
    ),
    **dict.fromkeys(("load_data",), "nasdepth.data.load"),
    **dict.fromkeys(("Standardizer",), "nasdepth.data.preprocess"),
    **dict.fromkeys(("SOURCES", "register_source"), "nasdepth.data.sources"),
}
__all__ = sorted(_EXPORTS)  # one list: the names _EXPORTS maps
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from nasdepth.data.arrays import encode_labels, from_arrays, multitask_from_arrays
    from nasdepth.data.augment import augment_batch
    from nasdepth.data.augment_config import AugmentConfig
    from nasdepth.data.dataset import Dataset, Task
    from nasdepth.data.folds import (
        CV_KINDS,
        CVConfig,
        Splits,
        holdout_split,
        make_folds,
        make_splits,
        resolve_cv,
    )
    from nasdepth.data.load import load_data
    from nasdepth.data.preprocess import Standardizer
    from nasdepth.data.sources import SOURCES, register_source
    from nasdepth.data.tasks import (
        check_task,
        derive_tasks,
        label_matrix,
        task_data,
        with_stratify,
    )
