"""Would fold-parallel CNNs pay as grouped convolutions? One 3x3 convolution layer of k fold
models, forward and backward, two ways on the same shapes:

* ``k convs``: each fold's ``Conv2d(C, C)`` on its own batch (what the sequential engine runs);
* ``grouped``: one ``Conv2d(k*C, k*C, groups=k)`` on the folds' batches side by side in the
  channels (what a grouped-convolution fold stack would run).

    OMP_NUM_THREADS=1 python benchmarks/bench_grouped_conv.py
    python benchmarks/bench_grouped_conv.py --device cuda

Prints milliseconds per step and the ratio (above 1: grouped is faster). One layer only: the
engine's grouped fold stack (``nasdepth/train/grouped.py``) groups whole CNNs, where a step's
batch norms, activations and optimizer update are shared too; whole-CV figures and the rule
``parallel: auto`` follows: ``docs/data_and_training.md``, "Fold-parallel CNNs as grouped
convolutions".
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch
from torch import nn


def bench(f: Callable[[], None], reps: int, device: torch.device) -> float:
    for _ in range(5):
        f()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(reps):
        f()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - t) / reps * 1e3


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=40)
    args = p.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    k, n = args.folds, args.batch_size
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} thread(s), "
          f"{k} folds, batch {n}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'channels':>8} {'side':>4} {'layout':>13} {'k convs ms':>10} {'grouped ms':>10} "
          f"{'ratio':>6}")
    for c, side in [(16, 8), (32, 8), (16, 28), (32, 16)]:
        for layout in (torch.contiguous_format, torch.channels_last):
            xs = [torch.randn(n, c, side, side, device=device).contiguous(
                memory_format=layout).requires_grad_() for _ in range(k)]
            convs = [nn.Conv2d(c, c, 3, padding=1).to(device, memory_format=layout)
                     for _ in range(k)]
            xg = torch.randn(n, k * c, side, side, device=device).contiguous(
                memory_format=layout).requires_grad_()
            grouped = nn.Conv2d(k * c, k * c, 3, padding=1, groups=k).to(
                device, memory_format=layout)

            def each(xs: list[torch.Tensor] = xs, convs: list[nn.Conv2d] = convs) -> None:
                for x, conv in zip(xs, convs, strict=True):
                    conv(x).sum().backward()

            def together(grouped: nn.Conv2d = grouped, xg: torch.Tensor = xg) -> None:
                grouped(xg).sum().backward()

            a, b = bench(each, args.reps, device), bench(together, args.reps, device)
            name = "channels-last" if layout == torch.channels_last else "contiguous"
            print(f"{c:>8} {side:>4} {name:>13} {a:>10.2f} {b:>10.2f} {a / b:>5.2f}x")


if __name__ == "__main__":
    main()
