"""Where one 5-fold CV of the engine spends its time, by phase (``torch.profiler``, self CPU
time of every operator, so nothing is counted twice).

The cases are ``bench_cv.py``'s: a residual 3x32 CNN on digits (8x8) and an 8x128 MLP on
synthetic 20,000x64 data, batch 64, AdamW 1e-3. Operators are grouped into phases:
convolutions, matrix products, normalization, activations, the optimizer step, copies and
allocation, loss and metrics, and the rest (dispatch, autograd bookkeeping, small ops). The
profiler slows every operator call a little, so the table is read as shares; the CPU seconds of
the same CV without the profiler are printed beside it.

    .venv/bin/python benchmarks/profile_cv.py                    # the CNN, sequential folds
    .venv/bin/python benchmarks/profile_cv.py --case mlp --parallel on
    .venv/bin/python benchmarks/profile_cv.py --top 25           # and the busiest operators
"""

from __future__ import annotations

import argparse
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

from nasdepth import TrainConfig, cross_validate

#: phase -> operator names (``aten::`` dropped) or name prefixes ending in ``*``
PHASES = {
    "convolutions": ["convolution_backward", "mkldnn_convolution", "convolution",
                     "_convolution", "conv2d", "conv1d"],
    "matrix products": ["bmm", "baddbmm", "addmm", "mm", "matmul", "linear"],
    "normalization": ["native_batch_norm", "native_batch_norm_backward", "batch_norm",
                      "_batch_norm_impl_index", "layer_norm", "native_layer_norm*"],
    "activations": ["clamp_min", "relu", "relu_", "threshold_backward", "gelu*", "sigmoid*",
                    "tanh*"],
    "optimizer": ["_fused_adamw_", "_fused_sgd_", "Optimizer.step*", "Optimizer.zero_grad*",
                  "zero_", "_foreach*"],
    "copies and allocation": ["copy_", "empty", "empty_strided", "_to_copy", "to", "resize_",
                              "as_strided", "as_strided_", "contiguous", "clone", "index",
                              "index_select", "cat", "stack"],
    "loss and metrics": ["cross_entropy_loss", "nll_loss*", "log_softmax", "_log_softmax*",
                         "softmax", "_softmax*", "argmax", "eq", "sum", "mean", "div", "div_",
                         "log", "clamp"],
}


def phase_of(name: str) -> str:
    op = name.removeprefix("aten::")
    for phase, names in PHASES.items():
        for n in names:
            if op == n or (n.endswith("*") and op.startswith(n[:-1])) or name == n or (
                    n.endswith("*") and name.startswith(n[:-1])):
                return phase
    return "the rest"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["cnn", "mlp"], default="cnn")
    ap.add_argument("--parallel", choices=["on", "off"], default="off")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--top", type=int, default=0, help="also list the N busiest operators")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from bench_cv import cases  # the same cases as the timings (this script's folder)

    (chosen,) = cases(args.case, 20000)
    arch, data = chosen.arch, chosen.data
    training = TrainConfig(epochs=args.epochs, batch_size=64, lr=1e-3)

    def run(epochs: int = args.epochs) -> None:
        cross_validate(arch, data, folds=args.folds, seed=0,
                       training=training.with_epochs(epochs), parallel=args.parallel)

    run(1)  # warm-up: kernels, allocator, lazy imports
    cpu = time.process_time()
    run()
    cpu = time.process_time() - cpu
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run()
    events = prof.key_averages()
    totals: dict[str, float] = {}
    for e in events:
        phase = phase_of(e.key)
        totals[phase] = totals.get(phase, 0.0) + e.self_cpu_time_total / 1e6
    whole = sum(totals.values())
    print(f"torch {torch.__version__}, {args.threads} thread(s), load average "
          f"{os.getloadavg()[0]:.1f}: {args.case}, {args.folds} folds x {args.epochs} epochs, "
          f"parallel {args.parallel}")
    print(f"CV without the profiler: {cpu:.2f} CPU s; with it: {whole:.2f} s of operator time")
    print(f"  {'phase':<24} {'self s':>7} {'share':>6}")
    for phase, s in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {phase:<24} {s:7.2f} {s / whole:6.1%}")
    if args.top:
        print()
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.top))


if __name__ == "__main__":
    main()
