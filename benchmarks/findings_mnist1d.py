"""MNIST-1D (Greydanus 2020) through nasdepth: the paper's four models at the paper's recipe,
on the paper's data (the ``mnist1d`` package's default generation: 5,000 samples, seed 42),
with and without shuffled positions. ``docs/findings.md`` shows what this prints.

Models (parameter counts equal to the paper's notebook where the block set allows):
logistic regression (the product's shallow baseline, scikit-learn), an MLP 40-100-100-10,
a CNN of three stride-2 convolutions (25 channels) flattened into a linear layer, and a
bidirectional GRU with 6 units per direction whose every step's state is flattened into the
head (``head_pool: flatten``). Recipe: Adam (``adamw`` with weight decay 0), lr 1e-2,
constant, batch 100, 150 epochs of the 4,000 training rows = 6,000 steps.

The paper trains once on its 4,000 training samples and scores its 1,000 test samples:
``--protocol paper`` does exactly that through nasdepth's engine (``fit_fold``, one seeded
run). ``--protocol cv`` (default) runs 5-fold CV over all 5,000, which trains each fold on
4,000 and scores 1,000 (the same sizes), and prints the mean over folds with its standard
deviation (5x the time).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/findings_mnist1d.py \
        [--epochs 150] [--folds 5] [--models mlp,cnn,gru] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.data import CVConfig, load_data
from nasdepth.diagnosis import shallow_baseline
from nasdepth.train import TrainConfig, cross_validate
from nasdepth.train.fit import fit_fold

ARCHS: dict[str, dict[str, Any]] = {
    "mlp": {"stem": [], "skip": False,
            "stages": [{"block": "plain", "depth": 2, "width": 100, "norm": "none"}]},
    "cnn": {"stem": [], "skip": False, "head_pool": "avg", "head_pool_size": 5,
            "stages": [{"block": "plain", "depth": 1, "width": 25, "stride": 2,
                        "kernel_size": k, "norm": "none"} for k in (5, 3, 3)]},
    "gru": {"stem": [], "skip": False, "head_pool": "flatten",
            "stages": [{"block": "gru", "depth": 1, "width": 12, "bidirectional": True,
                        "norm": "none"}]},
}
PUBLISHED = {"logistic": (32, 31.5), "mlp": (68, 65), "cnn": (94, 92), "gru": (91, 89)}
PUBLISHED_SHUFFLED = {"logistic": 32, "mlp": 68, "cnn": 56, "gru": 57}


def recipe(epochs: int) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=100, optimizer="adamw", lr=1e-2,
                       weight_decay=0.0, schedule="none", threads=1)


def run(model: str, shuffled: bool, folds: int, epochs: int,
        protocol: str = "cv") -> dict[str, Any]:
    data = load_data({"source": "mnist1d", "split": "all", "shuffle_positions": shuffled,
                      "flat": model in ("logistic", "mlp")})
    splits = CVConfig(folds=folds, seed=0).resolve(data)
    start = time.perf_counter()
    if protocol == "paper":  # the package's own 4,000 training and 1,000 test samples
        train, test = np.arange(4000), np.arange(4000, 5000)
        if model == "logistic":
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            x, y = data.x.numpy(), data.y.numpy()
            clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
            acc = float(clf.fit(x[train], y[train]).score(x[test], y[test]))
            row = {"accuracy": acc, "std": None, "params": 410, "steps": None}
        else:
            arch = ArchConfig.from_dict(ARCHS[model])
            torch.manual_seed(0)
            net = build_model(arch, data.input_shape, 10)
            res = fit_fold(net, data, train, test, training=recipe(epochs), seed=0,
                           device=torch.device("cpu"))
            row = {"accuracy": float(res.row["val_accuracy"]), "std": None,
                   "train_accuracy": float(res.row["train_accuracy"]),
                   "params": count_parameters(net), "steps": epochs * 40}
        row.update(model=model, shuffled=shuffled, folds=1, protocol=protocol,
                   seconds=round(time.perf_counter() - start, 1))
        return row
    if model == "logistic":
        base = shallow_baseline(data, splits, seed=0)
        per_fold = torch.tensor(base["logistic_fold_accuracy"], dtype=torch.float64)
        row = {"accuracy": float(base["logistic_accuracy"]), "std": float(per_fold.std()),
               "params": 40 * 10 + 10, "steps": None}
    else:
        arch = ArchConfig.from_dict(ARCHS[model])
        result = cross_validate(arch, data, cv=splits, training=recipe(epochs), seed=0)
        steps = int(result.folds["epochs"].iloc[0]) * -(-int(result.folds["n_train"].min())
                                                         // 100)
        row = {"accuracy": result.mean(), "std": result.std(),
               "train_accuracy": float(result.folds["train_accuracy"].mean()),
               "params": count_parameters(build_model(arch, data.input_shape, 10)),
               "steps": steps}
    row.update(model=model, shuffled=shuffled, seconds=round(time.perf_counter() - start, 1),
               folds=folds, protocol=protocol)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=150)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--models", default="logistic,mlp,cnn,gru")
    ap.add_argument("--shuffled", default="no,yes")
    ap.add_argument("--json", default=None)
    ap.add_argument("--protocol", choices=["cv", "paper"], default="cv")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    how = (f"{args.folds}-fold CV over 5,000 samples" if args.protocol == "cv" else
           "the paper's split (train 4,000, test 1,000)")
    print(f"MNIST-1D, {how}, Adam lr 1e-2 batch 100, {args.epochs} epochs, 1 thread")
    print(f"{'model':9s} {'positions':9s} {'params':>7s} {'steps':>6s} {'accuracy':>14s} "
          f"{'published':>10s} {'seconds':>8s}")
    for shuffled in [s == "yes" for s in args.shuffled.split(",")]:
        for model in args.models.split(","):
            row = run(model, shuffled, args.folds, args.epochs, args.protocol)
            rows.append(row)
            pub = (PUBLISHED_SHUFFLED[model] if shuffled else PUBLISHED[model][0])
            std = "" if row["std"] is None else f" ± {row['std']:.3f}"
            print(f"{model:9s} {'shuffled' if shuffled else 'ordered':9s} {row['params']:7d} "
                  f"{row['steps'] or '-':>6} {row['accuracy']:8.3f}{std:>6s} {pub:9d}% "
                  f"{row['seconds']:8.1f}", flush=True)
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
