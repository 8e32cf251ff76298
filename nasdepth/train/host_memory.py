"""Keep freed host memory in the process instead of handing it back to the kernel.

Training a small CNN on the CPU allocates and frees activations of a few hundred kilobytes
every step. glibc's ``malloc`` returns the top of its heap to the kernel once more than
``M_TRIM_THRESHOLD`` is free there (128 KiB by default, raised dynamically up to 64 MiB) and
serves large requests with fresh ``mmap`` pages, so every step touched new pages: a 5-fold CV
of a plain 8x32 CNN on digits took 0.8-1.5 million page faults, and ran 1.45x faster once
they were gone (``docs/data_and_training.md``, "Host memory"). :func:`keep_freed_memory`
sets ``M_TRIM_THRESHOLD`` to its maximum (freed memory stays in the heap, to be reused) and
``M_MMAP_THRESHOLD`` to 32 MiB (only larger blocks, such as a dataset's tensors, are mapped
on their own and returned when freed): what the ``MALLOC_TRIM_THRESHOLD_`` and
``MALLOC_MMAP_THRESHOLD_`` environment variables do, set from inside the process.

The setting is process-wide and stays: the engine applies it the first time it trains on a
CPU; the price is that a process keeps the peak of its small allocations resident until it
exits. ``NASDEPTH_MALLOC_TUNING=0`` leaves ``malloc`` as it is. Elsewhere than glibc (macOS,
Windows, musl) nothing is done.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

from nasdepth.errors import ConfigError

ENV = "NASDEPTH_MALLOC_TUNING"
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
TRIM = 2**31 - 1
MMAP = 32 * 2**20
_state: dict[str, bool] = {}


def keep_freed_memory(device: torch.device | None = None) -> bool:
    """Apply the setting once per process (see the module's docstring) when training on
    ``device`` (a CPU, or None: the host); whether it is in effect."""
    if device is not None and device.type != "cpu":
        return _state.get("applied", False)
    if "applied" in _state:
        return _state["applied"]
    wanted = os.environ.get(ENV, "1")
    if wanted not in ("0", "1"):
        raise ConfigError(f"the environment variable {ENV}", ENV, wanted,
                          "1 (keep freed memory in the process: the default) or 0")
    applied = False
    if wanted == "1" and platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            applied = bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM)) and bool(
                libc.mallopt(M_MMAP_THRESHOLD, MMAP))
        except (OSError, AttributeError):
            applied = False
    _state["applied"] = applied
    return applied
