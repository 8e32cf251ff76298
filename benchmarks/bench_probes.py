"""Overhead of the probes at their default frequency, measured side by side.

For each workload, runs of the same k-fold CV alternate without probes and with a
``ProbeHook`` (N P N P ... N); each probed run's process CPU time is divided by the mean of the
unprobed runs just before and after it, which cancels the machine's drift in speed (on the
shared development VM the same run's time drifts by 20% over minutes). The overhead is the
median of these ratios over the repeats, printed with a 90% bootstrap interval of that median
(single ratios scatter by 5-10% on that VM, so the interval, not the range, says what the
repeats settle), and beside it the ratio of the two sides' fastest runs (timing noise mostly
adds time, though a lucky fast run moves it).
The runs are single-threaded, so CPU time is what they cost and is far less disturbed than
wall time by other processes sharing the machine (the wall time of the median run is printed
beside). As a cross-check, ``inside`` is the probe's own share of the probed runs' time, timed
around its calls within each run (with ``perf_counter``, which costs far less than a CPU-time
clock read): machine load slows both parts of a run alike, so it scatters far less than the
side-by-side ratios, but it misses indirect costs (caches). Each timed run takes 2-4 s on the
2-core development CPU. ``--engine seq`` (the default) runs both sides on the sequential fold
engine; ``--engine auto`` lets the engine choose as it does by default, so the MLPs train their
folds together (stacked layers) with the probes riding along; ``--vmapped`` also times the
fold-parallel engine without probes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probes.py [--repeats 21] [--vmapped]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probes.py --engine auto --workload 0
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
from sklearn.datasets import make_classification

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset, from_arrays, load_data
from nasdepth.diagnosis.groundtruth import long_range, rnn
from nasdepth.probes import ProbeHook
from nasdepth.train import TrainConfig, cross_validate


def workloads() -> list[tuple[str, ArchConfig, Dataset, TrainConfig]]:
    x, y = make_classification(n_samples=6000, n_features=64, n_informative=32, n_classes=4,
                               random_state=0)
    mlp_data = from_arrays(x.astype(np.float32), y, name="synthetic:6000x64")
    mlp = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 8, "width": 128}]})
    cnn = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 32}]})
    lstm = ArchConfig.from_dict({"stages": [{"block": "lstm", "depth": 2, "width": 32,
                                             "norm": "layer"}], "stem": []})
    tanh_rnn = rnn("rnn", 32)
    return [
        ("MLP 8x128, 6000x64, bs64", mlp, mlp_data, TrainConfig(epochs=2, batch_size=64)),
        ("MLP 8x128, 6000x64, bs256", mlp, mlp_data, TrainConfig(epochs=4, batch_size=256)),
        ("residual CNN w32, digits, bs64", cnn, load_data("sklearn:digits"),
         TrainConfig(epochs=2, batch_size=64)),
        # recurrent models: the probes add the gradient through time (one chunked forward
        # and backward of the probe batch per epoch, see nasdepth.probes.time)
        ("LSTM 2x32, mnist1d 1000x1x40, bs64", lstm,
         load_data({"source": "mnist1d", "n_samples": 1250}), TrainConfig(epochs=2,
                                                                          batch_size=64)),
        ("tanh RNN w32, 600x1x100, bs32", tanh_rnn, long_range(0), TrainConfig(epochs=2,
                                                                                batch_size=32)),
    ]


class TimedProbeHook(ProbeHook):
    """A ``ProbeHook`` that adds up the time spent inside its own calls: the probe's share
    of a run, measured within that run (the same machine load hits both parts)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds = 0.0


def _timed(name: str) -> Any:
    base = getattr(ProbeHook, name)

    def method(self: TimedProbeHook, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return base(self, *args)
        finally:
            self.seconds += time.perf_counter() - start

    return method


for _name in ("on_fit_start", "after_backward", "after_step", "after_backward_folds",
              "after_step_folds", "on_epoch_end", "on_fit_end"):
    setattr(TimedProbeHook, _name, _timed(_name))


def timed(arch: ArchConfig, data: Dataset, training: TrainConfig, *, probes: bool,
          parallel: str | bool) -> tuple[float, float, float]:
    """(CPU seconds, wall seconds, share of the wall time inside the probe's calls) of one
    3-fold CV."""
    hooks = [TimedProbeHook()] if probes else []
    start, wall = time.process_time(), time.perf_counter()
    cross_validate(arch, data, folds=3, seed=0, training=training, hooks=hooks,
                   parallel=parallel)
    cpu, wall = time.process_time() - start, time.perf_counter() - wall
    return cpu, wall, hooks[0].seconds / wall if hooks else 0.0


def median_interval(values: list[float], level: float = 0.9,
                    resamples: int = 4000) -> tuple[float, float]:
    """Bootstrap interval of the median of ``values`` (resampled with replacement)."""
    rng = np.random.default_rng(0)
    medians = np.median(rng.choice(np.asarray(values), (resamples, len(values))), axis=1)
    tail = (1 - level) / 2
    return float(np.quantile(medians, tail)), float(np.quantile(medians, 1 - tail))


def main() -> None:
    parser = argparse.ArgumentParser(description="probe overhead, side by side")
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--workload", type=int, action="append",
                        help="run only these workloads (0-based index; repeatable)")
    parser.add_argument("--vmapped", action="store_true",
                        help="also time the vectorized fold engine without probes")
    parser.add_argument("--engine", choices=["seq", "auto"], default="seq",
                        help="seq: folds one by one on both sides; auto: as cross_validate "
                             "chooses (MLP folds together, probes riding along)")
    args = parser.parse_args()
    engine: str | bool = False if args.engine == "seq" else "auto"
    torch.set_num_threads(1)
    print(f"engine: {args.engine}; CPU seconds per 3-fold CV (median of {args.repeats} repeats); "
          "wall seconds in "
          "brackets; overhead = median over probed runs of CPU time / mean of the unprobed runs "
          "before and after, [90% bootstrap interval of that median];"
          "\nfastest = ratio of the fastest runs' CPU times; inside = time inside the probe's "
          "calls / time of the probed run (median)")
    print(f"{'workload':32s} {'no probes':>16s} {'probes':>16s} {'overhead':>9s} "
          f"{'[90% interval]':>17s} {'fastest':>8s} {'inside':>7s}"
          + (f" {'vmapped, no probes':>19s}" if args.vmapped else ""))
    for w, (name, arch, data, training) in enumerate(workloads()):
        if args.workload and w not in args.workload:
            continue
        # warm-up: one probed run (the unprobed one trains the same code; its first run counts)
        timed(arch, data, training, probes=True, parallel=engine)
        base = [timed(arch, data, training, probes=False, parallel=engine)]
        probed, ratios, vmapped, inside = [], [], [], []
        for _ in range(args.repeats):
            # runs alternate without probes / with probes / without ...: each probed run is
            # compared with the mean of the unprobed runs just before and after it, which
            # cancels the machine's drift in speed over the minutes of the benchmark
            probed.append(timed(arch, data, training, probes=True, parallel=engine))
            base.append(timed(arch, data, training, probes=False, parallel=engine))
            ratios.append(probed[-1][0] / ((base[-2][0] + base[-1][0]) / 2))
            inside.append(probed[-1][2])
            if args.vmapped:
                vmapped.append(timed(arch, data, training, probes=False, parallel="auto"))

        def med(runs: list[tuple[float, float, float]]) -> str:
            cpu = statistics.median(r[0] for r in runs)
            wall = statistics.median(r[1] for r in runs)
            return f"{cpu:6.2f} [{wall:6.2f}]"

        overhead = statistics.median(ratios) - 1
        low, high = median_interval(ratios)
        fastest = min(r[0] for r in probed) / min(r[0] for r in base) - 1
        print(f"{name:32s} {med(base):>16s} {med(probed):>16s} {overhead:+8.1%} "
              f"[{low - 1:+6.1%} {high - 1:+6.1%}] {fastest:+7.1%} "
              f"{statistics.median(inside):6.1%}"
              + (f" {med(vmapped):>19s}" if args.vmapped else ""), flush=True)


if __name__ == "__main__":
    main()
