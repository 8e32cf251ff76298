"""Data: loading into tensors, fold splits, and preprocessing fitted on training folds."""

from nasdepth.data.dataset import Dataset
from nasdepth.data.folds import make_folds
from nasdepth.data.load import SOURCES, from_arrays, load_data
from nasdepth.data.preprocess import Standardizer

__all__ = ["SOURCES", "Dataset", "Standardizer", "from_arrays", "load_data", "make_folds"]
