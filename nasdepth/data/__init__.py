"""Data: loading into tensors, fold splits, and preprocessing fitted on training folds."""

from nasdepth.data.arrays import encode_labels, from_arrays, multitask_from_arrays
from nasdepth.data.augment import AugmentConfig, augment_batch
from nasdepth.data.dataset import Dataset
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
from nasdepth.data.tasks import Task, check_task, label_matrix, task_data, with_stratify

__all__ = [
    "CV_KINDS", "SOURCES", "AugmentConfig", "CVConfig", "Dataset", "Standardizer",
    "augment_batch", "encode_labels", "from_arrays", "holdout_split", "load_data", "make_folds",
    "make_splits", "register_source", "resolve_cv", "Splits", "Task", "check_task",
    "label_matrix", "multitask_from_arrays", "task_data", "with_stratify",
]
