"""nasdepth: how deep and how wide should my network be, and why did my training stall."""

from nasdepth.arch import ArchConfig, StageConfig, build_model, load_weights
from nasdepth.data import Dataset, load_data
from nasdepth.diagnosis import Diagnosis, diagnose
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.export import export_model, load_model
from nasdepth.probes import Probe, ProbeHook, Trace
from nasdepth.train import CVResult, TrainConfig, cross_validate

__all__ = [
    "ArchConfig", "CVResult", "ConfigError", "Dataset", "NasdepthError", "StageConfig",
    "TrainConfig", "build_model", "cross_validate", "load_data",
    "Diagnosis", "Probe", "ProbeHook", "Trace", "diagnose", "export_model", "load_model",
    "load_weights",
]
__version__ = "0.1.0"
