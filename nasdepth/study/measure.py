"""Costs of a candidate measured before training: parameters, FLOPs (counted by
:func:`nasdepth.arch.count_flops`, re-exported here), latency; and the environment a trial ran in
(versions, worker)."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import sys
import time
from collections.abc import Sequence

import numpy as np
import optuna
import sklearn
import torch
from torch import nn

from nasdepth.arch import count_flops

__all__ = ["count_flops", "measure_latency", "versions", "worker_info"]


def versions() -> dict[str, str]:
    """The versions a trial ran (or a model was exported) with. The package's own is read from
    the loaded package, without importing the top layer from this one."""
    package = sys.modules["nasdepth"]
    return {"nasdepth": str(getattr(package, "__version__", "unknown")),
            "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "optuna": optuna.__version__,
            "sklearn": sklearn.__version__}


def worker_info() -> dict[str, object]:
    """Which process runs a trial: lets a local worker tell a dead sibling's trial apart."""
    from nasdepth.study.distinct import CURRENT  # the worker index and sampler seed

    return {"host": socket.gethostname(), "pid": os.getpid(), **CURRENT}


def measure_latency(model: nn.Module, input_shape: Sequence[int], *, repeats: int = 20
                    ) -> float:
    """Median milliseconds of one eval-mode forward pass of a single sample on the CPU."""
    was_training = model.training
    model.eval()
    x = torch.zeros(1, *input_shape)
    times = []
    with torch.no_grad():
        for i in range(repeats + 3):
            start = time.perf_counter()
            model(x)
            if i >= 3:  # the first calls allocate: not what a deployed model pays
                times.append(time.perf_counter() - start)
    model.train(was_training)
    return 1000.0 * statistics.median(times)
