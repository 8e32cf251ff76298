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

The fold-parallel engine's stacked MLPs (:mod:`nasdepth.train.stacked`: the k folds' linear
layers as one ``bmm``) ask the same question of their matrix products, width by width
(:func:`stacked_bf16_fast`): on an EPYC of family 25 (Zen 4) a 5-fold stacked step ran 1.2x
faster under bf16 at width 128 and 1.6x at 256, but 0.85x at 64 and 0.75x at 32, where the
casts cost more than the products save. So each width (rounded to a power of two) is measured
once on a reference stacked step and cached beside the CNN answer;
``NASDEPTH_CPU_BF16_STACKED=1`` (or ``0``) sets it instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nasdepth.errors import ConfigError

log = logging.getLogger(__name__)
ENV = "NASDEPTH_CPU_BF16"
#: the same for the fold-parallel engine's stacked MLP layers (:func:`stacked_bf16_fast`)
STACKED_ENV = "NASDEPTH_CPU_BF16_STACKED"
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
    forced = forced_answer(ENV, "1 (bf16 for CNNs under precision: auto) or 0 (fp32)")
    if forced is not None:
        return forced
    key = machine()
    if key not in _known:
        if _flag("_is_amx_tile_supported"):
            _known[key] = True
        elif not _flag("_is_avx512_bf16_supported"):
            _known[key] = False
        else:
            _known[key] = bool(cached_speedup(key, measure_speedup))
    return _known[key]


def stacked_bf16_fast(width: int) -> bool:
    """Whether this CPU trains the fold-parallel engine's stacked linear layers of about
    ``width`` features faster under bf16 autocast: no without a native bf16 dot product (no
    ``avx512_bf16`` and no AMX), else one cached measurement per width, rounded to a power of
    two (:func:`measure_stacked_speedup`)."""
    forced = forced_answer(
        STACKED_ENV, "1 (bf16 for stacked MLP folds under precision: auto) or 0 (fp32)")
    if forced is not None:
        return forced
    bucket = stacked_bucket(width)
    key = f"{machine()} | stacked linear {bucket}"
    if key not in _known:
        if not (_flag("_is_amx_tile_supported") or _flag("_is_avx512_bf16_supported")):
            _known[key] = False
        else:
            _known[key] = bool(cached_speedup(key, lambda: measure_stacked_speedup(bucket)))
    return _known[key]


def stacked_bucket(width: int) -> int:
    """The power of two nearest ``width``, within 16..1024: the widths measured."""
    return pow2_bucket(width, 16, 1024)


def pow2_bucket(n: float, low: int, high: int) -> int:
    """The power of two nearest ``n``, within ``low..high``: measurements are keyed by it."""
    return int(min(high, max(low, 2 ** round(math.log2(max(n, 1))))))


def machine() -> str:
    """The cache's key for this machine: the CPU model, the torch version, the threads."""
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads"


def forced_answer(env: str, allowed: str) -> bool | None:
    """The answer the environment variable ``env`` sets (``1`` or ``0``), None where unset;
    another value is named with ``allowed``, what 1 and 0 mean."""
    forced = os.environ.get(env)
    if forced is None:
        return None
    if forced not in ("0", "1"):
        raise ConfigError(f"the environment variable {env}", env, forced, allowed)
    return forced == "1"


def _table(path: Path) -> dict[str, Any]:
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return table if isinstance(table, dict) else {}


def cached_speedup(key: str, measure: Callable[[], float] | None) -> bool | None:
    """Whether the speedup stored under ``key`` in :func:`cache_file` (else ``measure()``'s,
    then stored) is at least :data:`MIN_SPEEDUP`: one measurement per machine and question
    (also :mod:`nasdepth.train.cpu_grouped`'s). None where nothing is stored and there is no
    ``measure``."""
    path = cache_file()
    table = _table(path)
    entry = table.get(key)
    if isinstance(entry, dict) and isinstance(entry.get("speedup"), (int, float)):
        return float(entry["speedup"]) >= MIN_SPEEDUP
    if measure is None:
        return None
    log.info("measuring once on this machine: %s (cached in %s)", key, path)
    with torch.random.fork_rng(devices=[]):  # its models' draws leave a CV's stream alone
        speedup = measure()
    table[key] = {"speedup": round(speedup, 3), "faster": speedup >= MIN_SPEEDUP}
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
    return _speedup(lambda: model(x), steps, rounds)


def _speedup(forward: Callable[[], torch.Tensor], steps: int, rounds: int) -> float:
    """fp32 seconds over bf16 seconds of ``steps`` steps (``forward`` under autocast or not,
    then a backward pass): the best of ``rounds`` interleaved rounds, after one warm-up each
    (oneDNN builds its kernels on the first call)."""

    def run(bf16: bool) -> float:
        start = time.perf_counter()
        for _ in range(steps):
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                out = forward()
            out.float().sum().backward()
        return time.perf_counter() - start

    run(False), run(True)
    best = {False: float("inf"), True: float("inf")}
    for _ in range(rounds):
        for bf16 in (False, True):
            best[bf16] = min(best[bf16], run(bf16))
    return best[False] / best[True]


def measure_stacked_speedup(width: int, depth: int = 4, folds: int = 5, steps: int = 3,
                            rounds: int = 5) -> float:
    """fp32 seconds over bf16 seconds of a reference stacked step, as :func:`measure_speedup`:
    ``folds`` MLPs of ``depth`` linear layers of ``width`` (batch norm and ReLU after each)
    stacked by :class:`~nasdepth.train.stacked.StackedFolds`, a batch of 64 rows of 64
    features per fold, forward and backward."""
    from nasdepth.train.stacked import StackedFolds

    gen = torch.Generator().manual_seed(0)

    def mlp() -> nn.Module:
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [nn.Linear(64 if i == 0 else width, width, bias=False),
                       nn.BatchNorm1d(width), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(width, 4))

    stack = StackedFolds([mlp() for _ in range(folds)], torch.device("cpu"))
    x = torch.randn(folds, 64, 64, generator=gen)
    return _speedup(lambda: stack(x, train=True)[0], steps, rounds)
