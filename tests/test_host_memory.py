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

# the page faults of a CV (after a first one, which warms up oneDNN and the heap)
SCRIPT = """
import json, resource
import torch
from nasdepth import ArchConfig, StageConfig, TrainConfig, cross_validate, load_data
from nasdepth.train.host_memory import keep_freed_memory
torch.set_num_threads(1)
data = load_data("sklearn:digits")
arch = ArchConfig(stages=(StageConfig(depth=4, width=32, block="plain"),), skip=False)
training = TrainConfig(epochs=1, batch_size=64, precision="fp32")
cross_validate(arch, data, folds=2, training=training)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
res = cross_validate(arch, data, folds=2, training=training)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"applied": keep_freed_memory(), "faults": faults,
                  "accuracy": float(res.mean())}))
"""


def _run(env_value: str) -> dict:
    env = {**os.environ, "NASDEPTH_MALLOC_TUNING": env_value, "OMP_NUM_THREADS": "1"}
    for key in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        env.pop(key, None)
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_training_on_the_cpu_keeps_freed_memory_and_stops_the_page_faults():
    tuned, plain = _run("1"), _run("0")
    assert tuned["applied"] is True and plain["applied"] is False
    # a step's activations (512 kB each) go back to the kernel every step by default and
    # fault in again; kept in the heap, they are reused
    assert plain["faults"] > 20000
    assert tuned["faults"] < plain["faults"] / 10
    assert tuned["accuracy"] == plain["accuracy"]  # the same training, only faster


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
