"""nasdepth: how deep and how wide should my network be, and why did my training stall."""

from nasdepth.arch import ArchConfig, StageConfig, build_model
from nasdepth.data import Dataset, load_data
from nasdepth.diagnosis import Diagnosis, diagnose
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.probes import Probe, ProbeHook, Trace
from nasdepth.train import CVResult, TrainConfig, cross_validate
from nasdepth.train.lr_find import LRFinding, find_lr

__all__ = [
    "ArchConfig", "CVResult", "ConfigError", "Dataset", "NasdepthError", "StageConfig",
    "TrainConfig", "build_model", "cross_validate", "load_data",
    "Diagnosis", "Probe", "ProbeHook", "Trace", "diagnose",
    "LRFinding", "find_lr",
]
__version__ = "0.1.0"
