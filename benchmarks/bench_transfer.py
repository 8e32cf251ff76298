"""Transfer learning on real data, nothing downloaded: pre-train with nasdepth on digits 0-4,
then cross-validate scratch, feature extraction and fine-tuning of the top N blocks on digits
5-9 with few samples per class, and time feature extraction against fine-tuning.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_transfer.py            # ~2 min
    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_transfer.py --quick    # ~20 s
    PYTHONPATH=. python benchmarks/bench_transfer.py --figures docs/figures

The source model is a nasdepth model file (``save_model``, what ``nasdepth export`` writes),
so the target runs exactly as a study's ``transfer.weights`` would. Every mode trains with
the same recipe (AdamW, cosine schedule, ``--epochs``) at the best of ``--lrs`` (what a study
searching ``lr`` would pick), ``body_lr_factor`` 0.3 for the pre-trained blocks a fine-tune
trains. Seconds per fold: the mean over the learning rates tried. Scores: mean and standard
deviation over the stratified folds of each target set (``--folds``); each target set is a
seeded draw of ``n`` samples per class from digits 5-9.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nasdepth.arch import ArchConfig, build_model
from nasdepth.data import Dataset, Standardizer, load_data
from nasdepth.export.model import save_model
from nasdepth.train import TrainConfig, cross_validate, fit_fold
from nasdepth.train.candidate import transfer_candidate
from nasdepth.train.transfer import TransferConfig

ARCH = ArchConfig.from_dict({"stages": [
    {"block": "residual", "depth": 2, "width": 16},
    {"block": "residual", "depth": 2, "width": 32, "stride": 2}]})  # 4 blocks
#: (label, mode, trainable_blocks): fine_tune None trains every block and the stem
CANDIDATES = [("scratch", "scratch", None), ("feature_extraction", "feature_extraction", None),
              ("fine_tune top-1", "fine_tune", 1), ("fine_tune top-2", "fine_tune", 2),
              ("fine_tune all", "fine_tune", None)]


def pretrain(path: Path, epochs: int) -> tuple[float, float]:
    """Train ``ARCH`` on digits 0-4 (all samples; 20% held out to report its accuracy) and
    save it as a nasdepth model file; returns (held-out accuracy, seconds)."""
    source = load_data({"source": "sklearn:digits", "classes": [0, 1, 2, 3, 4]})
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(source))
    cut = int(0.8 * len(idx))
    torch.manual_seed(0)
    model = build_model(ARCH, source.input_shape, source.num_classes)
    start = time.perf_counter()
    res = fit_fold(model, source, np.sort(idx[:cut]), np.sort(idx[cut:]),
                   training=TrainConfig(epochs=epochs, lr=0.01, batch_size=64), seed=0,
                   device=torch.device("cpu"))
    seconds = time.perf_counter() - start
    sc = Standardizer.fit(source.x[torch.as_tensor(np.sort(idx[:cut]))])
    save_model(path, [model], [(sc.mean, sc.std)],
               {"arch": ARCH.to_dict(), "input_shape": list(source.input_shape),
                "class_names": list(source.class_names)})
    return float(res.row["val_accuracy"]), seconds


def target(per_class: int, seed: int) -> Dataset:
    """``per_class`` samples of each of digits 5-9 (seeded draw)."""
    return load_data({"source": "sklearn:digits", "classes": [5, 6, 7, 8, 9],
                      "limit": 5 * per_class, "limit_seed": seed})


def run(sizes: list[int], epochs: int, lrs: list[float], folds: int,
        weights: Path) -> pd.DataFrame:
    """One row per target size and candidate: its best learning rate of ``lrs`` (as a study
    searching ``lr`` would pick; the same choice for every candidate) and its cost."""
    rows = []
    for n in sizes:
        data = target(n, seed=0)
        for label, mode, blocks in CANDIDATES:
            t = TransferConfig(str(weights), mode, blocks, 0.3 if mode == "fine_tune" else 1.0)
            tried = []
            for lr in lrs:
                training = TrainConfig(epochs=epochs, lr=lr, batch_size=32)
                res = cross_validate(transfer_candidate(t), data, folds=folds,
                                     training=training)
                tried.append({"per_class": n, "candidate": label, "mode": mode, "lr": lr,
                              "val_accuracy": res.mean(), "std": res.std(),
                              "seconds_per_fold": float(res.folds["seconds"].mean()),
                              "feature_seconds": float(res.folds["feature_seconds"].mean())
                              if "feature_seconds" in res.folds else float("nan"),
                              "trainable_params": int(res.folds["params"].iloc[0])})
            r = max(tried, key=lambda row: row["val_accuracy"])
            r["seconds_per_fold"] = float(np.mean([row["seconds_per_fold"] for row in tried]))
            rows.append(r)
            print(f"  {n:3d}/class  {label:20s} {r['val_accuracy']:.3f} ± {r['std']:.3f} "
                  f"(lr {r['lr']:g})  {r['seconds_per_fold']:6.3f} s/fold  "
                  f"{r['trainable_params']:6d} trainable params", flush=True)
    return pd.DataFrame(rows)


def figures(table: pd.DataFrame, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for label, part in table.groupby("candidate", sort=False):
        ax.errorbar(part["per_class"], part["val_accuracy"], yerr=part["std"], marker="o",
                    capsize=3, label=label)
    ax.set(title="Digits 5-9 from a digits 0-4 model: CV accuracy by training set size",
           xlabel="target samples per class (CV over them)", ylabel="CV accuracy")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = [folder / "transfer_benchmark.png"]
    fig.savefig(out[0], dpi=100)
    largest = table[table["per_class"] == table["per_class"].max()]
    fig, ax = plt.subplots(figsize=(8, 3.6))
    ax.barh(largest["candidate"], largest["seconds_per_fold"], color="tab:gray")
    ax.invert_yaxis()
    ax.set(title=f"Seconds per fold at {int(largest['per_class'].iloc[0])} samples per class "
                 "(training + scoring; feature extraction: features included)",
           xlabel="seconds per fold (one CPU core)")
    fig.tight_layout()
    out.append(folder / "transfer_timing.png")
    fig.savefig(out[1], dpi=100)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one target size, fewer epochs")
    ap.add_argument("--sizes", type=int, nargs="+", default=[20, 50],
                    help="target samples per class (default 20 50)")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.01, 0.03],
                    help="learning rates tried per candidate (the best is kept)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--source-epochs", type=int, default=15)
    ap.add_argument("--figures", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.epochs, args.source_epochs, args.lrs = [20], 20, 8, [0.03]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "digits_0_4.pt"
        acc, secs = pretrain(weights, args.source_epochs)
        print(f"source: digits 0-4, {ARCH.depth} residual blocks, {args.source_epochs} epochs: "
              f"held-out accuracy {acc:.3f} ({secs:.1f} s)")
        print(f"target: digits 5-9, {args.folds}-fold CV, {args.epochs} epochs, best lr of "
              f"{', '.join(map(str, args.lrs))}")
        table = run(args.sizes, args.epochs, args.lrs, args.folds, weights)
    print()
    print(table.pivot(index="candidate", columns="per_class", values="val_accuracy")
          .loc[[c for c, _, _ in CANDIDATES]].round(3).to_string())
    fe = table[table["mode"] == "feature_extraction"]["seconds_per_fold"].mean()
    print("\nseconds per fold (mean over target sizes):")
    for label, _, _ in CANDIDATES:
        s = table[table["candidate"] == label]["seconds_per_fold"].mean()
        print(f"  {label:20s} {s:6.3f} s   {s / fe:5.1f}x feature extraction")
    share = table[table["mode"] == "feature_extraction"]
    print(f"  feature extraction: computing the features {share['feature_seconds'].mean():.3f} s "
          "of each fold")
    if args.figures is not None:
        for path in figures(table, args.figures):
            print(f"wrote {path}")


if __name__ == "__main__":
    main()
