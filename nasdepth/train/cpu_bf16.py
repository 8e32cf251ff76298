"""Whether bf16 autocast makes 2-D convolutions faster on this CPU (``precision: auto``).

The CPU's features decide where they can: AMX tiles (Intel Xeon from Sapphire Rapids on) run
bf16 convolutions in the matrix units (a CNN's CV measured 1.7-1.9x faster); a CPU without a
native bf16 dot product (no ``avx512_bf16``) emulates it, slower than fp32. Between the two,
``avx512_bf16`` without AMX (AMD EPYC of Zen 4 and 5, some Xeons), chips differ: the residual
3x32 CNN's CV ran 1.46x faster under bf16 on an EPYC of family 26 (Zen 5), while bf16
convolutions were 8-15x slower on an earlier EPYC. There a reference step (a small plain CNN:
:func:`measure_speedup`) is timed once in fp32 and under bf16 autocast, and bf16 is used where
it is at least :data:`MIN_SPEEDUP` faster.

The answer is kept for the process and in a small file under the user's cache folder
(``$XDG_CACHE_HOME/nasdepth/cpu_bf16.json``, else ``~/.cache/...``), keyed by the CPU model,
the torch version and the thread count: every later run on the machine trains in the same
precision, so the same seed gives the same scores. ``NASDEPTH_CPU_BF16=1`` (or ``0``) sets
the answer instead. See ``docs/data_and_training.md``, "bf16 on the CPU".
"""

from __future__ import annotations

import json
import os
import platform
import time
from functools import cache
from pathlib import Path

import torch
from torch import nn

from nasdepth.errors import ConfigError

ENV = "NASDEPTH_CPU_BF16"
#: bf16 must make the reference step at least this much faster to be used
MIN_SPEEDUP = 1.1
_known: dict[str, bool] = {}


@cache
def cpu_model() -> str:
    """The CPU's model name (Linux: ``/proc/cpuinfo``), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasdepth" / "cpu_bf16.json"


def _flag(name: str) -> bool:
    return bool(getattr(torch.cpu, name, lambda: False)())


def cpu_bf16_fast() -> bool:
    """Whether this CPU trains 2-D convolutions faster under bf16 autocast (see the module's
    docstring): by its features, else by one cached measurement."""
    forced = os.environ.get(ENV)
    if forced is not None:
        if forced not in ("0", "1"):
            raise ConfigError(f"the environment variable {ENV}", ENV, forced,
                              "1 (bf16 for CNNs under precision: auto) or 0 (fp32)")
        return forced == "1"
    key = f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"
    if key not in _known:
        if _flag("_is_amx_tile_supported"):
            _known[key] = True
        elif not _flag("_is_avx512_bf16_supported"):
            _known[key] = False
        else:
            _known[key] = _cached_or_measured(key)
    return _known[key]


def _cached_or_measured(key: str) -> bool:
    path = cache_file()
    try:
        table = json.loads(path.read_text())
        if not isinstance(table, dict):
            table = {}
    except (OSError, ValueError):
        table = {}
    entry = table.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)):
        return float(entry["speedup"]) >= MIN_SPEEDUP
    speedup = measure_speedup()
    table[key] = {"speedup": round(speedup, 3), "bf16": speedup >= MIN_SPEEDUP}
    try:  # a read-only home still gets the answer, for this process
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(table, indent=1, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass
    return speedup >= MIN_SPEEDUP


def measure_speedup(channels: int = 32, depth: int = 6, steps: int = 3, rounds: int = 5
                    ) -> float:
    """fp32 seconds over bf16 seconds of the reference step (the best of ``rounds``
    interleaved rounds of ``steps`` steps each): above 1, bf16 is faster. About 0.25 s.

    The reference is a plain CNN of ``depth`` 3x3 convolutions of ``channels`` (batch norm and
    ReLU after each) on a batch of 64 one-channel 8x8 images, channels-last, forward and
    backward: a small model of a depth search. A shallower one says less: on the EPYC above,
    two such convolutions ran as fast in fp32 as in bf16, six 1.2-1.4x faster in bf16 (the CV
    of the residual 3x32 CNN: 1.46x), as the fp32 activations outgrow the core's caches."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=gen).contiguous(memory_format=torch.channels_last)
    layers: list[nn.Module] = []
    for i in range(depth):
        layers += [nn.Conv2d(1 if i == 0 else channels, channels, 3, padding=1, bias=False),
                   nn.BatchNorm2d(channels), nn.ReLU()]
    model = nn.Sequential(*layers).to(memory_format=torch.channels_last)

    def run(bf16: bool) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = model(x)
            out.float().sum().backward()
        return time.perf_counter() - start

    run(False), run(True)  # warm-up: oneDNN builds its kernels on the first call
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], run(bf16))
    return best[False] / best[True]
