"""``nasdepth export STUDY.yaml --trial best|N --out model.pt [--ensemble] [--storage URL]``:
refit a trial on all non-test data (or keep its fold models), score it on the held-out test
part, and save one model file (see ``docs/export.md``)."""

from __future__ import annotations

import argparse
import math
from typing import Any


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study YAML file, e.g. studies/quickstart.yaml")
    p.add_argument("--trial", default="best", help="'best' (default) or a trial number")
    p.add_argument("--out", default="model.pt", help="model file to write (default model.pt)")
    p.add_argument("--ensemble", action="store_true",
                   help="keep the k fold models (retrained as in the CV) and average them")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL or journal file path (default: the study's)")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps")
    p.set_defaults(func=main)


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) and math.isfinite(v) else str(v)


def main(args: argparse.Namespace) -> int:
    from nasdepth.yamlfile import existing_file

    existing_file(args.study, "study file")  # before the heavy imports
    from nasdepth.outpath import check_output
    from nasdepth.study.study_file import load_study, study_inputs

    # before the refit trains: never over the study's storage, data or files; writable
    cfg = load_study(args.study, {"storage": args.storage})
    check_output(args.out, study_inputs(cfg, args.storage), what="model file")
    from nasdepth.export import export_model

    result = export_model(args.study, args.trial, args.out, ensemble=args.ensemble,
                          storage=args.storage, device=args.device, say=print, progress=True)
    meta = result.metadata
    metric = meta["objective"]
    cv = meta["scores"]["cv"].get(metric, {})
    print(f"CV {metric} of trial {meta['trial']}: {_fmt(cv.get('mean'))} ± "
          f"{_fmt(cv.get('std'))} over {meta['scores']['cv']['folds']} folds")
    for row in result.fold_rows:
        recorded = [r for r in meta["scores"]["cv_folds"] if r.get("fold") == row["fold"]]
        was = f" (in the study: {_fmt(recorded[0].get(metric))})" if recorded else ""
        print(f"  fold model {row['fold']}: {metric} {_fmt(row.get(metric))}{was}, "
              f"{row['epochs']} epochs")
    test = result.test_scores
    members = meta["refit"]["members"]
    kind = f"ensemble of {members} fold models" if args.ensemble else "refitted model"
    if test is not None:
        key = metric.removeprefix("val_")
        shown = dict.fromkeys([key, "accuracy", "log_loss"])
        scores = ", ".join(f"{k.replace('_', ' ')} {_fmt(test.get(k))}" for k in shown)
        print(f"Held-out test ({meta['n_test']} samples), {kind}: {scores}")
    else:
        print(f"No held-out test part (cv.test_size is 0): the {kind} is not scored; its CV "
              "score above is the estimate.")
    print(f"Model: {result.path}")
    return 0
