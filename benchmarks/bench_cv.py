"""One 5-fold CV three ways, side by side on the same model, data and epochs:

* ``plain``: the loop a user would write by hand (``TensorDataset`` + ``DataLoader``,
  ``AdamW``, cosine schedule, validation each epoch);
* ``engine-seq``: ``cross_validate(..., parallel=False)`` (tensors on the device, randperm
  batches, fused optimizer, channels-last for CNNs);
* ``engine-par``: ``cross_validate(..., parallel=True)`` (the k folds at once: an MLP as stacked
  layers with grouped matmuls, a CNN as one ``vmap``-ped ensemble).

Variants are interleaved within each repeat so that foreign load hits them alike; the table
shows medians over repeats and the median of per-repeat ratios against ``plain``.

    .venv/bin/python benchmarks/bench_cv.py                  # CPU, 1 thread, both cases
    .venv/bin/python benchmarks/bench_cv.py --case mlp --repeats 5 --epochs 10
    .venv/bin/python benchmarks/bench_cv.py --device cuda    # on a GPU machine
    .venv/bin/python benchmarks/bench_cv.py --device cuda --precisions fp32,bf16,fp16

``--precisions``: the engine's variants again under each autocast precision (CUDA only: on a
CPU the engine trains in fp32 whatever ``precision`` says; bf16 autocast measured 8-15x
slower there, see ``docs/gpu.md``). Mean CV accuracies are printed beside the times, so that
a faster precision that loses accuracy shows it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from nasdepth import ArchConfig, StageConfig, TrainConfig, build_model, cross_validate, load_data
from nasdepth.data import Dataset, Standardizer, make_folds


@dataclass
class Case:
    name: str
    arch: ArchConfig
    data: Dataset


def cases(which: str, mlp_samples: int) -> list[Case]:
    out = []
    if which in ("cnn", "all"):
        cnn = ArchConfig(stages=(StageConfig(block="residual", depth=3, width=32),))
        out.append(Case("CNN residual 3x32 (7 convs), digits 1x8x8", cnn,
                        load_data("sklearn:digits")))
    if which in ("mlp", "all"):
        mlp = ArchConfig(stages=(StageConfig(block="plain", depth=8, width=128),))
        data = load_data({"source": "synthetic:classification", "n_samples": mlp_samples,
                          "n_features": 64, "n_informative": 16, "n_classes": 4})
        out.append(Case(f"MLP 8x128, synthetic {mlp_samples}x64", mlp, data))
    return out


def plain_loop(case: Case, folds: int, epochs: int, bs: int, lr: float, device: str) -> None:
    """What a user writes by hand: a DataLoader per fold, a step per batch, eval per epoch."""
    dev = torch.device(device)
    for k, (tr, va) in enumerate(make_folds(case.data.y_numpy, folds, seed=0)):
        torch.manual_seed(k)
        model = build_model(case.arch, case.data.input_shape, case.data.num_classes).to(dev)
        scaler = Standardizer.fit(case.data.x[tr])
        train = TensorDataset(scaler(case.data.x[tr]), case.data.y[tr])
        val = TensorDataset(scaler(case.data.x[va]), case.data.y[va])
        loader = DataLoader(train, batch_size=bs, shuffle=True, drop_last=True)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(dev), yb.to(dev)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for xb, yb in DataLoader(val, batch_size=1024):
                    correct += int((model(xb.to(dev)).argmax(1) == yb.to(dev)).sum())


#: mean CV accuracy of each engine variant's last run (printed beside its time)
ACCURACY: dict[str, float] = {}


def engine(parallel: bool, precision: str = "fp32", name: str = ""
           ) -> Callable[[Case, int, int, int, float, str], None]:
    def run(case: Case, folds: int, epochs: int, bs: int, lr: float, device: str) -> None:
        training = TrainConfig(epochs=epochs, batch_size=bs, lr=lr, device=device,
                               precision=precision)
        res = cross_validate(case.arch, case.data, folds=folds, seed=0, training=training,
                             parallel=parallel)
        ACCURACY[name] = res.mean()

    return run


def variants(precisions: list[str]) -> dict[str, Callable[..., None]]:
    out: dict[str, Callable[..., None]] = {"plain": plain_loop}
    for p in precisions:
        tag = "" if p == "fp32" else f"-{p}"
        out[f"engine-seq{tag}"] = engine(False, p, f"engine-seq{tag}")
        out[f"engine-par{tag}"] = engine(True, p, f"engine-par{tag}")
    return out


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["cnn", "mlp", "all"], default="all")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mlp-samples", type=int, default=20000)
    ap.add_argument("--precisions", default="fp32",
                    help="comma list of engine precisions: fp32, bf16, fp16 (autocast, CUDA)")
    args = ap.parse_args()
    VARIANTS = variants(args.precisions.split(","))
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} thread(s), "
          f"{args.folds}-fold CV x {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.repeats} interleaved repeats, load average {os.getloadavg()[0]:.1f}")
    for case in cases(args.case, args.mlp_samples):
        n_train = len(case.data) * (args.folds - 1) / args.folds
        samples = n_train * args.epochs * args.folds
        for fn in VARIANTS.values():  # warm-up: allocator, kernels, lazy imports
            fn(case, 2, 1, args.batch_size, args.lr, args.device)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        for _ in range(args.repeats):
            for name, fn in VARIANTS.items():
                sync(args.device)
                start = time.perf_counter()
                fn(case, args.folds, args.epochs, args.batch_size, args.lr, args.device)
                sync(args.device)
                walls[name].append(time.perf_counter() - start)
        print(f"\n{case.name}: {samples:,.0f} training samples per CV")
        print(f"  {'variant':<16} {'wall s':>8} {'samples/s':>10} {'x plain':>8} {'x seq':>6} "
              f"{'CV acc':>7}")
        for name, w in walls.items():
            ratio = statistics.median(np.array(walls["plain"]) / np.array(w))
            vs_seq = statistics.median(np.array(walls["engine-seq"]) / np.array(w))
            med = statistics.median(w)
            acc = f"{ACCURACY[name]:.4f}" if name in ACCURACY else "-"
            print(f"  {name:<16} {med:8.2f} {samples / med:10,.0f} {ratio:8.2f} {vs_seq:6.2f} "
                  f"{acc:>7}", flush=True)


if __name__ == "__main__":
    main()
