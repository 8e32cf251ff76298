"""Does bf16 autocast pay on this CPU? Conv + batch norm + ReLU twice, forward and backward,
batch 64 of 8x8 images, 16 and 32 channels, NCHW and channels-last, fp32 against
``torch.autocast("cpu", torch.bfloat16)``, interleaved; prints microseconds per step.

    .venv/bin/python benchmarks/bench_cpu_bf16.py --repeats 3

Measured on an AMD EPYC without AMX: bf16 8-15x slower (``docs/gpu.md``); on a Xeon with AMX:
0.6-0.9x fp32's time (``docs/data_and_training.md``); on an AMD EPYC of Zen 5 (``avx512_bf16``,
no AMX): 0.5-1.2x. Two convolutions say less than a deeper model (the cache footprint of fp32
activations grows with depth), so ``precision: auto`` decides by the CPU's features or, on
``avx512_bf16`` without AMX, by timing a six-convolution step once
(``nasdepth/train/cpu_bf16.py``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn


def bench(fn: Callable[[], None], n: int) -> float:
    for _ in range(3):
        fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(1)
    res: dict[tuple[int, str, str], list[float]] = {}
    for _ in range(args.repeats):
        for c in (16, 32):
            for layout, fmt in (("NCHW", torch.contiguous_format),
                                ("channels-last", torch.channels_last)):
                x = torch.randn(64, c, 8, 8).contiguous(memory_format=fmt).requires_grad_()
                m = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                                  nn.ReLU(), nn.Conv2d(c, c, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(c), nn.ReLU()).to(memory_format=fmt)

                def fp32(m: nn.Module = m, x: torch.Tensor = x) -> None:
                    m(x).sum().backward()

                def bf16(m: nn.Module = m, x: torch.Tensor = x) -> None:
                    with torch.autocast("cpu", dtype=torch.bfloat16):
                        y = m(x)
                    y.float().sum().backward()

                for name, fn in (("fp32", fp32), ("bf16", bf16)):
                    res.setdefault((c, layout, name), []).append(bench(fn, args.steps))
    print(f"torch {torch.__version__}, 1 thread, median of {args.repeats} interleaved repeats")
    print(f"{'channels':>8} {'layout':>14} {'fp32 us':>9} {'bf16 us':>9} {'bf16/fp32':>9}")
    for c in (16, 32):
        for layout in ("NCHW", "channels-last"):
            f = sorted(res[(c, layout, "fp32")])[len(res[(c, layout, "fp32")]) // 2]
            b = sorted(res[(c, layout, "bf16")])[len(res[(c, layout, "bf16")]) // 2]
            print(f"{c:>8} {layout:>14} {f:9.0f} {b:9.0f} {b / f:9.1f}")


if __name__ == "__main__":
    main()
