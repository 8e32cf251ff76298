"""Evaluation chunk size on the CPU: time and page faults of predicting 2,000 rows.

Both engines predict the validation (and training, test) rows of every fold in chunks. On the
CPU each chunk's activations are fresh allocations; above glibc's mmap threshold they are
mapped and unmapped every time, and each fresh 4 KB page costs a page fault. The benchmark
alternates the chunk sizes in one process (the machine's drift hits them alike) and prints the
median time and page faults per prediction, for one model (the sequential engine) and for 3
stacked fold models (the fold-parallel engine), an 8x128 MLP and a small residual CNN.
``nasdepth.train.fit.EVAL_ROWS`` holds the chunk the engines use.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict.py [--repeats 12]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable

import torch

from nasdepth.arch import ArchConfig, build_model
from nasdepth.train import TrainConfig
from nasdepth.train.fit import eval_rows, predict_proba
from nasdepth.train.parallel import _predict, make_ensemble

ROWS = 2000
CHUNKS = (128, 256, 512, 1024)


def faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def cases() -> list[tuple[str, Callable[[int], object]]]:
    torch.manual_seed(0)
    mlp = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 8, "width": 128}]})
    cnn = ArchConfig.from_dict({"stages": [{"block": "residual", "depth": 2, "width": 32}]})
    out: list[tuple[str, Callable[[int], object]]] = []
    for name, arch, shape in (("MLP 8x128", mlp, (64,)), ("residual CNN w32, 8x8", cnn,
                                                          (1, 8, 8))):
        model = build_model(arch, shape, 10)
        x = torch.randn(ROWS, *shape)
        out.append((f"{name}, one model", lambda c, m=model, x=x: predict_proba(m, x, c)))
    models = [build_model(mlp, (64,), 10) for _ in range(3)]
    ens = make_ensemble(models, torch.device("cpu"), (64,))
    x = torch.randn(3 * ROWS, 64)
    idx = torch.stack([torch.randperm(3 * ROWS)[:ROWS] for _ in range(3)])
    out.append(("MLP 8x128, 3 stacked folds",
                lambda c: _predict(ens, x, idx, lambda z: z, TrainConfig(), chunk=c)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description="evaluation chunk size on the CPU")
    parser.add_argument("--repeats", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"ms and page faults per prediction of {ROWS} rows (median of {args.repeats}); "
          f"the engines use chunks of {eval_rows(torch.device('cpu'))} rows on the CPU")
    print(f"{'case':30s}" + "".join(f" {f'chunk {c}':>20s}" for c in CHUNKS))
    for name, run in cases():
        times: dict[int, list[float]] = {c: [] for c in CHUNKS}
        pages: dict[int, list[int]] = {c: [] for c in CHUNKS}
        run(CHUNKS[0])
        for r in range(args.repeats):
            for c in CHUNKS if r % 2 == 0 else tuple(reversed(CHUNKS)):
                f0, t0 = faults(), time.perf_counter()
                run(c)
                times[c].append(time.perf_counter() - t0)
                pages[c].append(faults() - f0)
        print(f"{name:30s}" + "".join(
            f" {statistics.median(times[c]) * 1e3:8.1f} ms {statistics.median(pages[c]):7.0f} pf"
            for c in CHUNKS), flush=True)


if __name__ == "__main__":
    main()
