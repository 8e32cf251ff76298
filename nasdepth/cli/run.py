"""``nasdepth run STUDY.yaml [--trials N] [--storage URL] [--out DIR]``."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasdepth.report import top_trials, trials_frame, write_report
from nasdepth.space import load_study
from nasdepth.study import run_study


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run (or resume) a study, then write its report")
    p.add_argument("study", help="study YAML file, e.g. studies/quickstart.yaml")
    p.add_argument("--trials", type=int, default=None,
                   help="trial budget of the study (finished trials of earlier runs count)")
    p.add_argument("--storage", default=None, help="Optuna storage URL or journal file path")
    p.add_argument("--out", default=None, help="report folder (default reports/<study>)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    cfg = load_study(args.study)
    study = run_study(cfg, trials=args.trials, storage=args.storage,
                      progress=not args.no_progress)
    trials = trials_frame(study)
    best = top_trials(trials)
    if len(best):
        shown = best[["trial", "depth", "width", "block", "skip", "params"]].copy()
        std = best["cv_std"].fillna(0)
        shown["cv accuracy"] = [f"{m:.4f} ± {s:.4f}"
                                for m, s in zip(best["cv_mean"], std, strict=True)]
        print("\nTop trials:")
        print(shown.to_string(index=False))
    out = Path(args.out) if args.out else Path("reports") / cfg.name
    path = write_report(study, out)
    print(f"\nReport: {path}")
    return 0
