"""The engine keeps freed host memory in the process: a training step no longer faults in
fresh pages (``nasdepth.train.host_memory``). Run in fresh interpreters: the setting is
process-wide and stays."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="malloc tuning applies to glibc on Linux only")

# a CV on the CPU, then what glibc does with 16 MB of freed 256 kB blocks: handed back to the
# kernel (the resident size drops; the next step faults them in again) or kept for reuse
SCRIPT = """
import ctypes, json, resource
import torch
from nasdepth import ArchConfig, StageConfig, TrainConfig, cross_validate, load_data
from nasdepth.train.host_memory import keep_freed_memory
torch.set_num_threads(1)
data = load_data("sklearn:digits")
arch = ArchConfig(stages=(StageConfig(depth=2, width=16, block="plain"),), skip=False)
res = cross_validate(arch, data, folds=2, training=TrainConfig(epochs=1, precision="fp32"))
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
page = resource.getpagesize()
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * page
blocks = [libc.malloc(256 * 1024) for _ in range(64)]
for b in blocks:
    ctypes.memset(b, 1, 256 * 1024)
held = resident()
for b in blocks:
    libc.free(b)
print(json.dumps({"applied": keep_freed_memory(), "released": held - resident(),
                  "accuracy": float(res.mean())}))
"""


def _run(env_value: str) -> dict:
    env = {**os.environ, "NASDEPTH_MALLOC_TUNING": env_value, "OMP_NUM_THREADS": "1"}
    for key in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_on_the_cpu_keeps_freed_memory_for_reuse():
    tuned, plain = _run("1"), _run("0")
    assert tuned["applied"] is True and plain["applied"] is False
    # by default the 16 MB go back to the kernel (mapped blocks, or a trimmed heap), so the
    # next step faults them in again; after the engine trained, they stay for reuse
    assert plain["released"] > 4 * 2**20  # 9.8-14.5 MB seen
    assert tuned["released"] < 2**20
    assert tuned["accuracy"] == plain["accuracy"]  # the same training


def test_a_bad_value_is_named():
    from nasdepth.errors import ConfigError
    from nasdepth.train import host_memory

    old = dict(host_memory._state)
    host_memory._state.clear()
    os.environ[host_memory.ENV] = "on"
    try:
        with pytest.raises(ConfigError, match="NASDEPTH_MALLOC_TUNING.*on"):
            host_memory.keep_freed_memory()
    finally:
        del os.environ[host_memory.ENV]
        host_memory._state.clear()
        host_memory._state.update(old)
