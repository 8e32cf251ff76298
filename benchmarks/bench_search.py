"""Search strategies and workers on the quickstart data (8x8 digits, the quickstart space).

Prints, for TPE + median pruning across folds versus random search without pruning: the wall
time and the number of trials each needed to come within 1% of the best CV accuracy either of
them found; and trials per hour with 1 versus 2 local worker processes (random sampler, no
pruning, one thread per worker).

    .venv/bin/python benchmarks/bench_search.py --quick      # a few minutes on 2 cores
    .venv/bin/python benchmarks/bench_search.py --trials 40 --epochs 6
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import optuna  # noqa: E402
from optuna.trial import TrialState  # noqa: E402

from nasdepth.study import run_study  # noqa: E402
from nasdepth.study.study_file import study_from_dict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def study(folder: Path, name: str, *, trials: int, epochs: int, folds: int, sampler: Any,
          pruner: Any) -> Any:
    raw = {
        "name": name, "data": "sklearn:digits",
        "space": str(ROOT / "search_spaces" / "quickstart.yaml"),
        "cv": {"folds": folds}, "training": {"epochs": epochs, "batch_size": 64, "lr": 0.003},
        "budget": {"trials": trials}, "sampler": sampler, "pruner": pruner, "seed": 0,
        "storage": str(folder / f"{name}.journal"),
    }
    return study_from_dict(raw, folder / f"{name}.yaml")


def trials_to_reach(st: optuna.Study, target: float) -> tuple[int | None, float | None]:
    """(trials, seconds from the first trial's start) until the running best >= target."""
    trials = sorted(st.trials, key=lambda t: t.number)
    start = min(t.datetime_start for t in trials if t.datetime_start)
    for i, t in enumerate(trials, 1):
        done = t.datetime_complete
        if t.state == TrialState.COMPLETE and t.value is not None and t.value >= target and \
                done is not None:
            return i, (done - start).total_seconds()
    return None, None


def wall(st: optuna.Study) -> float:
    start = min(t.datetime_start for t in st.trials if t.datetime_start)
    end = max(t.datetime_complete for t in st.trials if t.datetime_complete)
    return (end - start).total_seconds()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 trials, 2 epochs, 3 folds")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--folds", type=int, default=3)
    ap.add_argument("--worker-trials", type=int, default=None,
                    help="trials of each workers run (default: --trials)")
    ap.add_argument("--part", choices=("all", "search", "workers"), default="all",
                    help="run only the sampler comparison or only the workers comparison")
    args = ap.parse_args()
    if args.quick:
        args.trials, args.epochs, args.worker_trials = 10, 2, 6
    worker_trials = args.worker_trials or args.trials
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"# bench_search: digits, quickstart space, {args.folds}-fold CV, {args.epochs} epochs,"
          f" {args.trials} trials; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, load {load:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if args.part in ("all", "search"):
            compare_search(folder, args)
        if args.part in ("all", "workers"):
            compare_workers(folder, args, worker_trials)


def compare_search(folder: Path, args: argparse.Namespace) -> None:
    # the first CV in a process pays one-off lazy imports (~10 s on a loaded machine): pay
    # them before timing, or the strategy that runs first looks slower
    run_study(study(folder, "warmup", trials=1, epochs=1, folds=2, sampler="random",
                    pruner="none"), progress=False, probes=False)
    runs = {}
    warmup = args.epochs  # judge a candidate on one complete fold first
    startup = max(3, args.trials // 4)  # random trials before TPE models (and prunes)
    for label, sampler, pruner in (
        ("tpe + median pruning", {"name": "tpe", "startup_trials": startup},
         {"name": "median", "startup_trials": startup, "warmup_steps": warmup}),
        ("random, no pruning", "random", "none"),
    ):
        cfg = study(folder, label.split()[0].strip(","), trials=args.trials,
                    epochs=args.epochs, folds=args.folds, sampler=sampler, pruner=pruner)
        t0 = time.perf_counter()
        st = run_study(cfg, progress=False, probes=False)
        runs[label] = (st, time.perf_counter() - t0)
    best = max(st.best_value for st, _ in runs.values())
    target = 0.99 * best
    print(f"\nbest CV accuracy found: {best:.4f}; target (within 1%): {target:.4f}\n")
    print("| strategy | wall s | trials to target | s to target | pruned | best |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, (st, seconds) in runs.items():
        n, s = trials_to_reach(st, target)
        pruned = sum(t.state == TrialState.PRUNED for t in st.trials)
        print(f"| {label} | {seconds:.1f} | {n if n else 'not reached'} | "
              f"{f'{s:.1f}' if s is not None else '-'} | {pruned} | {st.best_value:.4f} |")


def compare_workers(folder: Path, args: argparse.Namespace, worker_trials: int) -> None:
    print("\n| workers | trials | wall s (with start-up) | trials/h | trials/h, trials only |")
    print("| --- | --- | --- | --- | --- |")
    for workers in (1, 2):
        cfg = study(folder, f"workers{workers}", trials=worker_trials, epochs=args.epochs,
                    folds=args.folds, sampler="random", pruner="none")
        t0 = time.perf_counter()
        st = run_study(cfg, workers=workers, progress=False, probes=False)
        total = time.perf_counter() - t0  # includes starting the worker processes
        done = sum(t.state == TrialState.COMPLETE for t in st.trials)
        print(f"| {workers} | {done} | {total:.1f} | {3600 * done / total:.0f} | "
              f"{3600 * done / wall(st):.0f} |")


if __name__ == "__main__":
    main()
