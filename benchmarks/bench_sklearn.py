"""``ArchClassifier`` against skorch's ``NeuralNetClassifier`` under ``cross_val_score``.

Both train the same module (the network ``build_model`` makes for one ``ArchConfig``, wrapped
for skorch as a module class), on the same data and folds, for the same epochs and batch size,
with the same recipe: AdamW (lr, weight decay), a per-step cosine schedule, shuffled batches,
inputs standardized on each training part (skorch: a scaler in a Pipeline; nasdepth: the
per-fit standardization), every row trained (skorch: ``train_split=None``). Cases: an MLP on
scikit-learn's digits as 64 features, and a small residual CNN on the same digits as 1x8x8
images. The two run interleaved, ``--repeats`` times; the printout gives each wall time, the
median of the per-repeat ratios (skorch / nasdepth: > 1 means nasdepth is faster) and the
mean CV accuracies.

    pip install -e .[bench]     # skorch: the benchmark's extra, never a runtime dependency
    OMP_NUM_THREADS=1 python benchmarks/bench_sklearn.py             # 3 repeats, 10 epochs
    OMP_NUM_THREADS=1 python benchmarks/bench_sklearn.py --quick     # 1 repeat, 4 epochs

skorch runs in a child process of its own (spawned), as its users run it: nasdepth tunes the
process's ``malloc`` the first time it trains (``nasdepth.train.host_memory``), which would speed
up a peer in the same process too; ``--same-process`` runs skorch here instead.

Timings on a shared CPU are noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from peer_process import PeerProcess  # noqa: E402  (this script's folder)
from sklearn.base import BaseEstimator, TransformerMixin  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import StratifiedKFold, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from torch import nn  # noqa: E402

from nasdepth.arch import ArchConfig, build_model  # noqa: E402
from nasdepth.sklearn import ArchClassifier  # noqa: E402

try:
    from skorch import NeuralNetClassifier
    from skorch.callbacks import LRScheduler
except ImportError as exc:  # pragma: no cover - the benchmark's extra
    raise SystemExit("bench_sklearn needs skorch: pip install -e .[bench]") from exc

CASES: dict[str, dict[str, Any]] = {
    "mlp 64 features": {"shape": (64,), "params": {"depth": 2, "width": 128}},
    "cnn 1x8x8": {"shape": (1, 8, 8), "params": {"depth": 4, "width": 16, "block": "residual",
                                                "stages": 2}},
}


class NasdepthModule(nn.Module):
    """The network ``build_model`` makes, as the module class skorch instantiates per fit."""

    def __init__(self, arch: dict[str, Any], shape: tuple[int, ...], num_classes: int,
                 seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = build_model(ArchConfig.from_dict(arch), shape, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ChannelScaler(TransformerMixin, BaseEstimator):
    """nasdepth's per-fit standardization for skorch: per feature for flat rows, per channel
    for images (statistics of the training part), then the sample shape."""

    def __init__(self, shape: tuple[int, ...] = (64,)) -> None:
        self.shape = shape

    def fit(self, X: np.ndarray, y: Any = None) -> ChannelScaler:
        x = np.asarray(X, dtype=np.float32).reshape(len(X), *self.shape)
        dims = (0,) if x.ndim == 2 else (0, *range(2, x.ndim))
        self.mean_ = x.mean(axis=dims, keepdims=True)[0]
        self.std_ = np.maximum(x.std(axis=dims, ddof=1, keepdims=True)[0], 1e-6)
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        x = np.asarray(X, dtype=np.float32).reshape(len(X), *self.shape)
        return ((x - self.mean_) / self.std_).astype(np.float32)


def nasdepth_estimator(case: dict[str, Any], epochs: int, batch: int, lr: float
                       ) -> ArchClassifier:
    return ArchClassifier(**case["params"], epochs=epochs, batch_size=batch, lr=lr,
                          optimizer="adamw", weight_decay=1e-4, device="cpu",
                          input_shape=case["shape"], random_state=0)


def skorch_estimator(case: dict[str, Any], epochs: int, batch: int, lr: float,
                     n_train: int) -> Any:
    arch = nasdepth_estimator(case, epochs, batch, lr).arch_config(case["shape"], 10)
    steps = epochs * max(1, -(-n_train // batch))
    net = NeuralNetClassifier(
        NasdepthModule, module__arch=arch.to_dict(), module__shape=case["shape"],
        module__num_classes=10, criterion=nn.CrossEntropyLoss, optimizer=torch.optim.AdamW,
        optimizer__weight_decay=1e-4, lr=lr, max_epochs=epochs, batch_size=batch,
        iterator_train__shuffle=True, train_split=None, device="cpu", verbose=0,
        callbacks=[LRScheduler(policy="CosineAnnealingLR", T_max=steps,
                               step_every="batch")])
    return make_pipeline(ChannelScaler(case["shape"]), net)


def digits() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y.astype(np.int64)


def timed_cv(who: str, name: str, args: argparse.Namespace) -> tuple[float, float]:
    """(seconds, mean accuracy) of one ``cross_val_score`` of ``who``'s estimator on the case
    ``name``, timed where it runs."""
    X, y = digits()
    case = CASES[name]
    cv = StratifiedKFold(args.folds, shuffle=True, random_state=0)
    n_train = len(X) - len(X) // args.folds
    est = (nasdepth_estimator(case, args.epochs, args.batch, args.lr) if who == "nasdepth"
           else skorch_estimator(case, args.epochs, args.batch, args.lr, n_train))
    start = time.perf_counter()
    scores = cross_val_score(est, X, y, cv=cv)
    return time.perf_counter() - start, float(np.mean(scores))


def warm_up(who: str, args: argparse.Namespace) -> None:
    """Imports and first-call costs out of the timings: one short fit per case."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    X, y = digits()
    for case in CASES.values():
        est = (nasdepth_estimator(case, 1, args.batch, args.lr) if who == "nasdepth"
               else skorch_estimator(case, 1, args.batch, args.lr, 256))
        est.fit(X[:256], y[:256])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="1 repeat, 4 epochs")
    parser.add_argument("--same-process", action="store_true",
                        help="run skorch in this process (sharing nasdepth's malloc setting)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs = 1, 4
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    X, _ = digits()
    peer = PeerProcess(args.same_process)
    print(f"# digits {X.shape}, {args.folds}-fold cross_val_score, {args.epochs} epochs, batch "
          f"{args.batch}, AdamW lr {args.lr}, cosine; torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}; "
          f"skorch {peer.where}")

    def run(who: str, fn: Any, *a: Any) -> Any:
        return fn(who, *a) if who == "nasdepth" else peer.call(fn, who, *a)

    with peer:
        for who in ("nasdepth", "skorch"):
            run(who, warm_up, args)
        print("| case | nasdepth s | skorch s | ratio skorch/nasdepth | nasdepth acc | "
              "skorch acc |")
        print("| --- | --- | --- | --- | --- | --- |")
        for name in CASES:
            times: dict[str, list[float]] = {"nasdepth": [], "skorch": []}
            accs: dict[str, list[float]] = {"nasdepth": [], "skorch": []}
            for r in range(args.repeats):
                order = ("nasdepth", "skorch") if r % 2 == 0 else ("skorch", "nasdepth")
                for who in order:
                    seconds, acc = run(who, timed_cv, name, args)
                    times[who].append(seconds)
                    accs[who].append(acc)
            ratio = statistics.median(s / n for s, n in zip(times["skorch"], times["nasdepth"],
                                                             strict=True))
            print(f"| {name} | {statistics.median(times['nasdepth']):.1f} | "
                  f"{statistics.median(times['skorch']):.1f} | {ratio:.2f}x | "
                  f"{statistics.mean(accs['nasdepth']):.3f} | "
                  f"{statistics.mean(accs['skorch']):.3f} |", flush=True)


if __name__ == "__main__":
    main()
