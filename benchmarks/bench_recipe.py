"""Does the recipe decide the depth? A depth sweep (plain and residual blocks) three ways:

- ``fixed``: every candidate at one learning rate (the study's ``training: {lr: ...}``);
- ``auto``: ``lr: auto``, a range test per candidate on its first fold;
- ``tpe``: ``lr`` searched by TPE at the same trial budget: one trial per architecture (each
  architecture enqueued once, TPE samples its lr from what the earlier trials scored).

on scikit-learn's digits (8x8 images, 2-D CNNs) and MNIST-1D (40-step signals, 1-D CNNs). For
each way it prints the CV score (and lr) per depth and block, the depth the report recommends
(one-standard-error rule over the best candidate per depth) and the wall time; for ``auto``
also what the range tests cost as a share of the candidates' CV time. ``--quickstart`` runs
the quickstart study with ``lr: auto`` and prints the range test's share of each trial's time.

    .venv/bin/python benchmarks/bench_recipe.py --quick            # depths 2,8,32; minutes
    .venv/bin/python benchmarks/bench_recipe.py                    # depths 2,4,8,16,32
    .venv/bin/python benchmarks/bench_recipe.py --quickstart --data none
    .venv/bin/python benchmarks/bench_recipe.py --schedules          # the default schedule

``--schedules`` answers another question: which schedule (and rate) should be the default?
It cross-validates fixed models under each recipe (``schedule@lr``; ``lr`` a number or
``auto``) at budgets of 1, 3, 5, 10 and 30 epochs on digits (2-D CNNs), MNIST-1D (1-D CNNs)
and breast cancer (tabular MLPs), a small and a larger model each, and prints the mean CV
accuracy, the fold standard deviation and, per recipe, its worst loss to the best recipe of
each budget in units of that best recipe's fold standard deviation (the default must stay
within 1). A constant rate is trained once for the longest budget and read at each shorter
one (the model after epoch e of a constant-rate run is the model a run of e epochs ends
with: same seeds, same batches).

Timings on a shared CPU are noisy: compare the ways within one run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import optuna  # noqa: E402
import torch  # noqa: E402

from nasdepth.report.tables import best_per_depth, collect, recommend_depth  # noqa: E402
from nasdepth.study import open_study, run_study, run_worker  # noqa: E402
from nasdepth.study.record import read_record  # noqa: E402
from nasdepth.study.study_file import load_study, study_from_dict  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = {"digits": "sklearn:digits", "mnist1d": {"source": "mnist1d", "n_samples": 4000}}
WAYS = ("fixed", "auto", "tpe")


def study_raw(folder: Path, name: str, data: Any, *, way: str, depths: list[int],
              epochs: int, patience: int, folds: int, lr: float, width: int) -> dict[str, Any]:
    space: dict[str, Any] = {
        "name": f"depth-{way}", "stages": 1, "width": width,
        "depth": {"type": "categorical", "choices": depths},
        "block": {"type": "categorical", "choices": ["plain", "residual"]},
        "skip": True, "norm": "batch", "activation": "relu",
    }
    training: dict[str, Any] = {"epochs": epochs, "patience": patience, "batch_size": 64}
    if way == "fixed":
        training["lr"] = lr
    elif way == "auto":
        training["lr"] = "auto"
    else:
        space["lr"] = {"type": "float", "low": 1e-4, "high": 0.3, "log": True}
    n = 2 * len(depths)
    return {"name": name, "data": data, "space": space, "cv": {"folds": folds},
            "training": training, "budget": {"trials": n},
            "sampler": "grid" if way != "tpe" else {"name": "tpe", "startup_trials": 4},
            "seed": 0, "storage": str(folder / f"{name}.journal")}


def sweep(folder: Path, label: str, data: Any, way: str, args: argparse.Namespace
          ) -> dict[str, Any]:
    raw = study_raw(folder, f"{label}-{way}", data, way=way, depths=args.depths,
                    epochs=args.epochs, patience=args.patience, folds=args.folds, lr=args.lr,
                    width=args.width)
    cfg = study_from_dict(raw, folder / f"{label}-{way}.yaml")
    start = time.perf_counter()
    if way == "tpe":
        st = open_study(cfg)
        for depth in args.depths:  # every architecture once; TPE picks each one's lr
            for block in ("plain", "residual"):
                st.enqueue_trial({"depth": depth, "block": block})
        st = run_worker(cfg, progress=False, probes=False)
    else:
        st = run_study(cfg, progress=False, probes=False)
    wall = time.perf_counter() - start
    tables = collect(st)
    rec = recommend_depth(tables)
    done = tables.scored
    lr_cost = [f.get("seconds", 0.0) for f in tables.lr_finds.values()]
    cv_time = float(done["seconds"].sum()) if len(done) else float("nan")
    return {"way": way, "wall": wall, "trials": done, "best": best_per_depth(tables),
            "recommended": None if rec is None else float(rec.recommended["depth"]),
            "lr_share": sum(lr_cost) / cv_time if lr_cost and cv_time else None}


def show(label: str, results: list[dict[str, Any]], depths: list[int]) -> None:
    print(f"\n== {label}: CV accuracy (lr) per depth and block ==")
    header = f"{'depth':>5} {'block':>8} " + " ".join(f"{r['way']:>17}" for r in results)
    print(header)
    for depth in depths:
        for block in ("plain", "residual"):
            cells = []
            for r in results:
                t = r["trials"]
                row = t[(t["depth"] == depth) & (t["block"] == block)]
                cells.append("-".rjust(17) if row.empty else
                             f"{row['cv_mean'].iloc[0]:.4f} ({row['lr'].iloc[0]:.2g})".rjust(17))
            print(f"{depth:>5} {block:>8} " + " ".join(cells))
    print("best per depth (over blocks and recipes), the table the one-SE rule reads:")
    for depth in depths:
        cells = []
        for r in results:
            b = r["best"][r["best"]["depth"] == depth]
            cells.append("-".rjust(17) if b.empty else
                         f"{b['cv_mean'].iloc[0]:.4f}±{b['cv_se'].iloc[0]:.4f}".rjust(17))
        print(f"{depth:>5} {'':>8} " + " ".join(cells))
    print(f"{'recommended depth':>14} " + " ".join(
        f"{r['recommended'] if r['recommended'] is None else int(r['recommended'])!s:>17}"
        for r in results))
    print(f"{'wall time (s)':>14} " + " ".join(f"{r['wall']:>17.1f}" for r in results))
    for r in results:
        if r["lr_share"] is not None:
            print(f"  {r['way']}: range tests took {100 * r['lr_share']:.1f}% of the "
                  "candidates' CV time")


def quickstart_cost(folder: Path, trials: int) -> None:
    """The quickstart study (probes on, as ``nasdepth run``) with ``lr: auto``."""
    path = folder / "quickstart.yaml"
    text = (ROOT / "studies" / "quickstart.yaml").read_text()
    text = text.replace("space: search_spaces/quickstart.yaml",
                        f"space: {ROOT / 'search_spaces' / 'quickstart.yaml'}")
    path.write_text(text.replace("lr: 0.003", "lr: auto"))
    cfg = load_study(path, {"budget": {"trials": trials}, "pruner": "none"})
    start = time.perf_counter()
    st = run_study(cfg, progress=False, probes=True)
    wall = time.perf_counter() - start
    shares = []
    print(f"\n== quickstart study with lr: auto ({trials} trials, probes on, {wall:.0f} s) ==")
    print(" trial  depth  width     block   steps  lr       test s   trial s   share")
    for t in st.trials:
        rec = read_record(t)
        found = rec.lr_find
        if t.state.name != "COMPLETE" or not found or rec.duplicate_of is not None:
            continue
        s = rec.summary
        wall = float(rec.timings["wall_time"])
        share = found["seconds"] / wall
        shares.append(share)
        print(f"{t.number:>6} {s.get('depth'):>6} {s.get('width'):>6} {s.get('block'):>9} "
              f"{len(found['lrs']):>7}  {found['lr']:<8.2g} {found['seconds']:>6.2f} "
              f"{wall:>9.2f} {100 * share:>6.1f}%")
    if shares:
        print(f"range test / trial time: median {100 * statistics.median(shares):.1f}%, "
              f"max {100 * max(shares):.1f}% (the first trial also pays the process's "
              "first-call overheads)")


SCHEDULE_CASES: dict[str, tuple[Any, list[tuple[str, dict[str, Any]]]]] = {
    "digits": ("sklearn:digits", [
        ("CNN plain 2x16", {"stages": [{"block": "plain", "depth": 2, "width": 16}]}),
        ("CNN residual 4x16", {"stages": [{"block": "residual", "depth": 4, "width": 16}]}),
    ]),
    "mnist1d": ({"source": "mnist1d", "n_samples": 4000}, [
        ("1-D CNN plain 2x16", {"stages": [{"block": "plain", "depth": 2, "width": 16}]}),
    ]),
    "breast_cancer": ("sklearn:breast_cancer", [
        ("MLP plain 2x64", {"stages": [{"block": "plain", "depth": 2, "width": 64}]}),
        ("MLP residual 8x128", {"stages": [{"block": "residual", "depth": 8, "width": 128}]}),
    ]),
}
RECIPES = "cosine@1e-3,none@1e-3,warmup_cosine@1e-3,none@3e-3"


def recipe_scores(arch: Any, data: Any, recipe: str, budgets: list[int], folds: int
                  ) -> tuple[dict[int, tuple[float, float]], float]:
    """{budget: (mean, fold std)} of the val accuracy under ``schedule@lr``, and the wall
    time. A constant rate (``none``) trains once for the longest budget."""
    from nasdepth import TrainConfig, cross_validate

    schedule, lr = recipe.split("@")
    base: dict[str, Any] = {"batch_size": 64, "schedule": schedule,
                            "lr": lr if lr == "auto" else float(lr)}
    out: dict[int, tuple[float, float]] = {}
    start = time.perf_counter()
    if schedule == "none" and lr != "auto":
        res = cross_validate(arch, data, folds=folds, seed=0, training=TrainConfig.from_dict(
            {**base, "epochs": max(budgets)}))
        h = res.history
        for b in budgets:
            acc = h[h["epoch"] == b - 1]["val_accuracy"]
            out[b] = (float(acc.mean()), float(acc.std(ddof=1)))
    else:
        for b in budgets:
            res = cross_validate(arch, data, folds=folds, seed=0,
                                 training=TrainConfig.from_dict({**base, "epochs": b}))
            out[b] = (res.mean(), res.std())
    return out, time.perf_counter() - start


def schedules_table(args: argparse.Namespace) -> None:
    from nasdepth import ArchConfig, load_data

    budgets = [int(b) for b in args.budgets.split(",")]
    recipes = args.recipes.split(",")
    worst: dict[str, float] = {r: 0.0 for r in recipes}
    for label in [d for d in args.data.split(",") if d in SCHEDULE_CASES]:
        spec, models = SCHEDULE_CASES[label]
        data = load_data(spec)
        for name, arch_d in models:
            if args.models and not any(m.strip() in name for m in args.models.split(",")):
                continue
            arch = ArchConfig.from_dict(arch_d)
            rows = {r: recipe_scores(arch, data, r, budgets, args.folds) for r in recipes}
            print(f"\n== {label}, {name}: mean CV accuracy ± fold std "
                  f"({args.folds} folds, batch 64, AdamW) ==", flush=True)
            print(f"{'recipe':>20} " + " ".join(f"{f'{b} ep':>14}" for b in budgets)
                  + f" {'worst/std':>9} {'wall s':>7}")
            best = {b: max(recipes, key=lambda r: rows[r][0][b][0]) for b in budgets}
            for r in recipes:
                scores, wall = rows[r]
                losses = [(rows[best[b]][0][b][0] - scores[b][0])
                          / max(rows[best[b]][0][b][1], 1e-9) for b in budgets]
                worst[r] = max(worst[r], max(losses))
                cells = " ".join(f"{scores[b][0]:.3f}±{scores[b][1]:.3f}".rjust(14)
                                 + ("*" if best[b] == r else " ") for b in budgets)
                print(f"{r:>20} {cells} {max(losses):9.2f} {wall:7.1f}", flush=True)
    print("\nworst loss to the best recipe of a budget, in the best's fold std, over every case:")
    for r in recipes:
        print(f"{r:>20} {worst[r]:6.2f}" + ("  (within one std everywhere)"
                                              if worst[r] <= 1 else ""))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="depths 2,8,32, 4 epochs")
    p.add_argument("--data", default="digits,mnist1d", help="digits, mnist1d, or none")
    p.add_argument("--ways", default=",".join(WAYS))
    p.add_argument("--depths", default="2,4,8,16,32")
    p.add_argument("--epochs", type=int, default=15, help="the cap (patience stops earlier)")
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--folds", type=int, default=3)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3, help="the fixed way's rate")
    p.add_argument("--quickstart", action="store_true",
                   help="also time lr: auto on the quickstart study")
    p.add_argument("--quickstart-trials", type=int, default=12)
    p.add_argument("--schedules", action="store_true",
                   help="compare schedules and rates across budgets (the default recipe)")
    p.add_argument("--recipes", default=RECIPES, help="comma list of schedule@lr")
    p.add_argument("--budgets", default="1,3,5,10,30")
    p.add_argument("--models", default="",
                   help="--schedules: only the cases whose name holds one of these "
                        "(comma list, e.g. 'residual 4x16')")
    args = p.parse_args()
    if args.schedules:
        torch.set_num_threads(1)
        if args.data == "digits,mnist1d":
            args.data = ",".join(SCHEDULE_CASES)
        args.folds = 5 if args.folds == 3 else args.folds
        print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
              f"1 thread; budgets {args.budgets}; recipes {args.recipes}")
        schedules_table(args)
        return
    if args.quick:
        args.depths, args.epochs = "2,8,32", 4
        args.quickstart_trials = min(args.quickstart_trials, 6)
    args.depths = [int(d) for d in args.depths.split(",")]
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"1 thread; depths {args.depths}, {args.folds}-fold CV, epochs <= {args.epochs} "
          f"(patience {args.patience}), width {args.width}, fixed lr {args.lr}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label in [d for d in args.data.split(",") if d in DATA]:
            results = [sweep(folder, label, DATA[label], way, args)
                       for way in args.ways.split(",")]
            show(label, results, args.depths)
        if args.quickstart:
            quickstart_cost(folder, args.quickstart_trials)


if __name__ == "__main__":
    main()
