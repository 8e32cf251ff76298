"""Costs of a candidate measured before training: parameters, FLOPs, latency; and the
environment a trial ran in (versions, worker)."""

from __future__ import annotations

import os
import platform
import socket
import statistics
import time
from collections.abc import Sequence

import optuna
import sklearn
import torch
from torch import nn


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__,
            "optuna": optuna.__version__, "sklearn": sklearn.__version__}


def worker_info() -> dict[str, object]:
    """Which process runs a trial: lets a local worker tell a dead sibling's trial apart."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one sample (multiply-add = 2), as ``nasdepth.arch.complexity`` counts
    them (a test checks they agree), without its one-off start-up cost of several seconds
    per process (``FlopCounterMode``), which every worker process would pay."""
    return _count_flops_by_hooks(model, input_shape)


def _count_flops_by_hooks(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Multiply-adds of convolutions and linear layers (what dominates; norms and activations
    are ignored), counted by forward hooks on one eval-mode forward pass. PyTorch's
    ``FlopCounterMode`` gives the same figures but costs seconds on first use."""
    total = [0]

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Linear):
            total[0] += 2 * module.in_features * output.numel()
        elif isinstance(module, nn.modules.conv._ConvNd):
            per_out = module.in_channels // module.groups
            for k in module.kernel_size:
                per_out *= k
            total[0] += 2 * per_out * output.numel()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Linear, nn.modules.conv._ConvNd))]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return total[0]


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
