"""nasdepth: how deep and how wide should my network be, and why did my training stall.

The public names below load on first use (PEP 562): ``import nasdepth`` costs no torch import,
so the command line can answer ``--help`` or a bad-input error at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nasdepth.lazy import lazy_exports

#: public name -> the module that defines it
_EXPORTS = {
    "ArchConfig": "nasdepth.arch",
    "StageConfig": "nasdepth.arch",
    "build_model": "nasdepth.arch",
    "load_weights": "nasdepth.arch",
    "Dataset": "nasdepth.data",
    "load_data": "nasdepth.data",
    "Diagnosis": "nasdepth.diagnosis",
    "diagnose": "nasdepth.diagnosis",
    "ConfigError": "nasdepth.errors",
    "NasdepthError": "nasdepth.errors",
    "Probe": "nasdepth.probes",
    "ProbeHook": "nasdepth.probes",
    "Trace": "nasdepth.probes",
    "CVResult": "nasdepth.train",
    "TrainConfig": "nasdepth.train",
    "cross_validate": "nasdepth.train",
    "export_model": "nasdepth.export",
    "load_model": "nasdepth.export",
    "LRFinding": "nasdepth.train.lr_find",
    "find_lr": "nasdepth.train.lr_find",
}

__all__ = [
    "ArchConfig", "CVResult", "ConfigError", "Dataset", "NasdepthError", "StageConfig",
    "TrainConfig", "build_model", "cross_validate", "load_data",
    "Diagnosis", "Probe", "ProbeHook", "Trace", "diagnose", "export_model", "load_model",
    "load_weights", "LRFinding", "find_lr",
]
__version__ = "0.1.0"

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads them
    from nasdepth.arch import ArchConfig, StageConfig, build_model, load_weights
    from nasdepth.data import Dataset, load_data
    from nasdepth.diagnosis import Diagnosis, diagnose
    from nasdepth.errors import ConfigError, NasdepthError
    from nasdepth.export import export_model, load_model
    from nasdepth.probes import Probe, ProbeHook, Trace
    from nasdepth.train import CVResult, TrainConfig, cross_validate
    from nasdepth.train.lr_find import LRFinding, find_lr


#: the parts, reachable as attributes (``nasdepth.study.run_study``) after ``import nasdepth``
_PARTS = ("arch", "cli", "data", "diagnosis", "errors", "probes", "report", "space", "study",
          "train")
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _PARTS)
