"""Overhead of the probes at their default frequency, measured side by side.

For each workload, one repeat trains the same k-fold CV without probes and with a
``ProbeHook`` (order alternating between repeats, so drifting machine load hits both alike);
the overhead is the median over repeats of the per-repeat ratio of process CPU time (the
runs are single-threaded, so CPU time is what they cost and is far less disturbed than wall
time by other processes sharing the machine; wall times are printed beside). Both runs use the
sequential fold engine, since probes need each fold's own model; the vectorized fold engine
(``parallel=auto``, no probes) is timed too, since that is what a probe-free MLP run would use.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probes.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from sklearn.datasets import make_classification

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset, from_arrays, load_data
from nasdepth.probes import ProbeHook
from nasdepth.train import TrainConfig, cross_validate


def workloads() -> list[tuple[str, ArchConfig, Dataset, TrainConfig]]:
    x, y = make_classification(n_samples=6000, n_features=64, n_informative=32, n_classes=4,
                               random_state=0)
    mlp_data = from_arrays(x.astype(np.float32), y, name="synthetic:6000x64")
    mlp = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 8, "width": 128}]})
    cnn = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 32}]})
    return [
        ("MLP 8x128, 6000x64, bs64", mlp, mlp_data, TrainConfig(epochs=4, batch_size=64)),
        ("MLP 8x128, 6000x64, bs256", mlp, mlp_data, TrainConfig(epochs=4, batch_size=256)),
        ("residual CNN w32, digits, bs64", cnn, load_data("sklearn:digits"),
         TrainConfig(epochs=3, batch_size=64)),
    ]


def timed(arch: ArchConfig, data: Dataset, training: TrainConfig, *, probes: bool,
          parallel: str | bool) -> tuple[float, float]:
    hooks = [ProbeHook()] if probes else []
    start, wall = time.process_time(), time.perf_counter()
    cross_validate(arch, data, folds=3, seed=0, training=training, hooks=hooks,
                   parallel=parallel)
    return time.process_time() - start, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description="probe overhead, side by side")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print("CPU seconds per 3-fold CV (median over repeats); wall seconds in brackets")
    print(f"{'workload':32s} {'no probes':>16s} {'probes':>16s} {'overhead':>9s} "
          f"{'(range)':>17s} {'vmapped, no probes':>19s}")
    for name, arch, data, training in workloads():
        timed(arch, data, training, probes=True, parallel=False)  # warm up
        base, probed, ratios, vmapped = [], [], [], []
        for r in range(args.repeats):
            order = (False, True) if r % 2 == 0 else (True, False)
            t = {p: timed(arch, data, training, probes=p, parallel=False) for p in order}
            base.append(t[False])
            probed.append(t[True])
            ratios.append(t[True][0] / t[False][0])
            vmapped.append(timed(arch, data, training, probes=False, parallel="auto"))

        def med(runs: list[tuple[float, float]]) -> str:
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            return f"{cpu:6.2f} [{wall:6.2f}]"

        overhead = statistics.median(ratios) - 1
        print(f"{name:32s} {med(base):>16s} {med(probed):>16s} {overhead:+8.1%} "
              f"[{min(ratios) - 1:+6.1%} {max(ratios) - 1:+6.1%}] {med(vmapped):>19s}")


if __name__ == "__main__":
    main()
