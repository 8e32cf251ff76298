"""Devices and threads: chosen on purpose, never left to chance (each fold's model is seeded
where it is built: :meth:`nasdepth.train.candidate.Candidate.fold`)."""

from __future__ import annotations

import os

import torch

from nasdepth.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(name: str = "auto") -> torch.device:
    """``auto``: cuda, then mps, then cpu; a named device must exist."""
    base = name.split(":")[0]
    if base not in DEVICES:
        raise ConfigError("the training settings", "device", name, "one of " + ", ".join(DEVICES))
    if base == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if ((base == "cuda" and not torch.cuda.is_available())
            or (base == "mps" and not torch.backends.mps.is_available())):
        raise ConfigError("the training settings", "device", name,
                          "a device this machine has (auto picks cuda, then mps, then cpu)")
    return torch.device(name)


def configure_threads(workers: int = 1, threads: int | None = None) -> int:
    """Set the intra-op threads of this process on purpose; returns the number set.

    ``threads`` given: exactly that many. Otherwise the CPU cores are split between
    ``workers`` processes, ``cores // workers`` each (at least one): two processes that each
    use every core can run many times slower from OpenMP contention (see PERF_NOTES).
    """
    if threads is None or threads < 1:
        cores = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                 else os.cpu_count())
        threads = max(1, (cores or 1) // max(1, workers))
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    # deep sigmoid/tanh nets with vanishing gradients produce subnormals: avoid the slow path
    torch.set_flush_denormal(True)
    return threads
