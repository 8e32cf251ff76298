"""The linear probes' share of a trial's time (issue 28: at most 5%).

For each workload one k-fold CV runs with a ``LinearProbeHook``; the hook times itself
(feature forward pass and the per-unit L-BFGS fits, ``summary()["seconds"]``) inside the run,
so machine load slows both parts alike and the printed share is the probes' seconds over the
CV's wall seconds. ``--side-by-side`` also times the same CV without the hook (wall time)
as a rough cross-check of indirect costs.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_linear_probes.py
"""

from __future__ import annotations

import argparse
import time

import torch

from nasdepth.arch import ArchConfig
from nasdepth.data import CVConfig, load_data
from nasdepth.probes import LinearProbeHook
from nasdepth.train import TrainConfig, cross_validate

WORKLOADS: dict[str, tuple[object, dict]] = {
    # the digits study's typical candidate (8x8 images), an 8x128 MLP on 20,000 flat rows
    # (PERF_NOTES's workload) and a 1-D CNN on MNIST-1D
    "cnn digits residual d4 w32": ("sklearn:digits", {
        "stages": [{"depth": 4, "width": 32, "block": "residual"}], "skip": True}),
    "mlp synthetic plain d8 w128": ({"source": "synthetic:classification", "n_samples": 20000,
                                     "n_features": 64, "n_informative": 20, "n_classes": 4}, {
        "stages": [{"depth": 8, "width": 128, "block": "plain"}]}),
    "cnn mnist1d residual d4 w32": ({"source": "mnist1d", "n_samples": 5000}, {
        "stages": [{"depth": 4, "width": 32, "block": "residual"}], "skip": True}),
}


def run(spec: object, arch: dict, epochs: int, probes: bool) -> tuple[float, float]:
    data = load_data(spec)  # type: ignore[arg-type]
    splits = CVConfig(folds=5, seed=0).resolve(data)
    hook = LinearProbeHook(data, splits) if probes else None
    start = time.perf_counter()
    cross_validate(ArchConfig.from_dict(arch), data, cv=splits,
                   training=TrainConfig(epochs=epochs, batch_size=64, lr=0.003),
                   hooks=[hook] if hook else [])
    wall = time.perf_counter() - start
    summary = hook.summary() if hook else None
    return (0.0 if summary is None else float(summary["seconds"])), wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--side-by-side", action="store_true")
    ap.add_argument("--workloads", default=",".join(str(i) for i in range(len(WORKLOADS))),
                    help="comma-separated indices into the workload list")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"5-fold CV, {args.epochs} epochs, batch 64, 1 thread")
    print(f"{'workload':32s} {'trial s':>8s} {'probes s':>9s} {'share':>7s}")
    chosen = {int(i) for i in args.workloads.split(",")}
    for i, (name, (spec, arch)) in enumerate(WORKLOADS.items()):
        if i not in chosen:
            continue
        probe_s, wall = run(spec, arch, args.epochs, True)
        print(f"{name:32s} {wall:8.2f} {probe_s:9.3f} {probe_s / wall:7.2%}", flush=True)
        if args.side_by_side:
            _, without = run(spec, arch, args.epochs, False)
            print(f"{'':32s} wall without probes {without:.2f} s")


if __name__ == "__main__":
    main()
