"""Width double descent (Nakkiran et al. 2019) on MNIST-1D at a CPU-affordable scale, through
nasdepth's engine (``fit_fold``) and read by the report's ``double_descent``.

The MNIST-1D notebook's setup, reduced: a 2-hidden-layer MLP (40-w-w-10, ReLU, no
normalization) at widths 4 ... 512, 15% of the 4,000 training labels replaced by a random
class (never the 1,000 test labels), SGD with momentum 0.9, lr 0.01, batch 100, constant,
``--epochs`` (default 200 = 8,000 steps; the notebook runs longer). Each width is scored on
the clean test part: training error (on the noisy labels it fitted) and test error.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/findings_double_descent.py

The product's own reproduction is the study ``studies/double_descent_mnist1d.yaml`` (same
setup, 300 epochs, read by the report's Width section); docs/findings.md shows both.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from nasdepth.arch import ArchConfig, build_model
from nasdepth.data import from_arrays, load_data
from nasdepth.report.depth import double_descent
from nasdepth.train import TrainConfig
from nasdepth.train.fit import fit_fold


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--widths", default="4,8,16,32,64,128,256,512")
    ap.add_argument("--noise", type=float, default=0.15)
    ap.add_argument("--n-train", type=int, default=4000,
                    help="training rows (the first of the package's 4,000; fewer: faster)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    clean = load_data({"source": "mnist1d", "split": "all", "flat": True})
    y = clean.y.numpy().copy()
    train, test = np.arange(args.n_train), np.arange(4000, 5000)  # package's train/test parts
    rng = np.random.default_rng(0)
    noisy = rng.choice(train, int(args.noise * len(train)), replace=False)
    y[noisy] = rng.integers(0, 10, len(noisy))
    data = from_arrays(clean.x.numpy(), y, name="mnist1d:label_noise")
    training = TrainConfig(epochs=args.epochs, batch_size=100, optimizer="sgd", lr=0.01,
                           momentum=0.9, weight_decay=0.0, schedule="none", threads=1)
    print(f"MNIST-1D MLP 40-w-w-10, {args.noise:.0%} label noise on {args.n_train:,} "
          "training rows (test: the 1,000 clean test rows), "
          f"SGD momentum 0.9 lr 0.01 batch 100, {args.epochs} epochs, 1 thread")
    print(f"{'width':>6s} {'params':>8s} {'train err':>10s} {'test err':>9s} {'seconds':>8s}")
    rows = []
    for w in (int(s) for s in args.widths.split(",")):
        arch = ArchConfig.from_dict({"stem": [], "skip": False, "stages": [
            {"block": "plain", "depth": 2, "width": w, "norm": "none"}]})
        torch.manual_seed(0)
        model = build_model(arch, data.input_shape, 10)
        start = time.perf_counter()
        res = fit_fold(model, data, train, test, training=training, seed=0,
                       device=torch.device("cpu"))
        row = {"width": w, "params": sum(p.numel() for p in model.parameters()),
               "train_error": 1 - res.row["train_accuracy"],
               "val_error": 1 - res.row["val_accuracy"],
               "seconds": time.perf_counter() - start}
        rows.append(row)
        print(f"{w:6d} {row['params']:8d} {row['train_error']:10.3f} {row['val_error']:9.3f} "
              f"{row['seconds']:8.1f}", flush=True)
    dd = double_descent(pd.DataFrame(rows))
    print(dd["text"] if dd and dd["text"] else f"no double descent read: {dd}")


if __name__ == "__main__":
    main()
