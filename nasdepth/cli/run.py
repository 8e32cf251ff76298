"""``nasdepth run STUDY.yaml [--trials N] [--workers N] [--storage URL] [--sampler S] ...``.

Every flag overrides the matching key of the study file. Several machines join one study by
running the same command with the same ``--storage`` URL.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasdepth.errors import ConfigError, NasdepthError, check_int
from nasdepth.yamlfile import existing_file

if TYPE_CHECKING:
    import optuna

    from nasdepth.study.study_file import StudyConfig


def add_study_flags(p: argparse.ArgumentParser) -> None:
    """Flags shared by ``run`` and ``sweep`` (each overrides the study file)."""
    p.add_argument("--trials", type=int, default=None,
                   help="trial budget of the study (finished trials of earlier runs count)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting trials after S s")
    p.add_argument("--workers", type=int, default=1,
                   help="local worker processes on the same storage (cores divided, one GPU "
                        "each where there are several)")
    p.add_argument("--worker-index", type=int, default=None,
                   help="this worker's sampler stream when workers are started separately "
                        "(0, 1, 2, ...; default: $NASDEPTH_WORKER_INDEX, else claimed in the "
                        "storage in start order; see docs/workers.md)")
    p.add_argument("--storage", default=None,
                   help="journal file path, postgresql://..., mysql://..., redis://...")
    p.add_argument("--sampler", default=None, help="tpe, random, gp, nsga2, grid, bruteforce")
    p.add_argument("--pruner", default=None,
                   help="none, median, percentile, hyperband, wilcoxon")
    p.add_argument("--screen", default=None, choices=("auto", "on", "off"),
                   help="train a finite space's candidates briefly on one split first and run "
                        "them best first (default auto: where the budget covers the space)")
    p.add_argument("--objectives", default=None,
                   help="comma list, first a CV metric, then costs: val_accuracy,params")
    p.add_argument("--folds", type=int, default=None, help="CV folds")
    p.add_argument("--epochs", type=int, default=None, help="training epochs per fold")
    p.add_argument("--device", default=None, help="auto, cpu, cuda, cuda:1, mps")
    p.add_argument("--seed", type=int, default=None, help="sampler (and CV) seed")
    p.add_argument("--name", default=None, help="study name in the storage")
    p.add_argument("--out", default=None, help="report folder (default reports/<study>)")
    p.add_argument("--allow-changes", action="store_true",
                   help="resume a study under other data, CV or training settings (refused "
                        "without it; see docs/studies.md)")
    p.add_argument("--no-probes", action="store_true", help="train without probe hooks")
    p.add_argument("--no-report", action="store_true", help="do not write the report")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study YAML file, e.g. studies/quickstart.yaml")
    p.add_argument("--data", default=None, help="data spec, e.g. sklearn:digits")
    p.add_argument("--space", default=None, help="search-space YAML file")
    add_study_flags(p)
    p.set_defaults(func=main)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """CLI flags in the layout of a study file (``None``: keep the file's value)."""
    objectives = None
    if args.objectives:
        objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    training = {"epochs": args.epochs, "device": args.device}
    return {
        "name": args.name, "data": getattr(args, "data", None),
        "space": getattr(args, "space", None), "seed": args.seed,
        "budget": {"trials": args.trials, "timeout": args.timeout},
        "cv": {"folds": args.folds}, "training": training, "storage": args.storage,
        "sampler": args.sampler, "pruner": args.pruner, "objectives": objectives,
        "screen": args.screen,
    }


def check_workers(args: argparse.Namespace) -> None:
    check_int(args.workers, "the command line", "--workers", 1)
    if getattr(args, "device", None) is not None:  # the flag, not the study file, is wrong
        from nasdepth.study.preflight import check_device

        check_device(args.device, "the command line", "--device")
    index = getattr(args, "worker_index", None)
    if index is not None and not 0 <= index <= 1_000_000:
        raise ConfigError("the command line", "--worker-index", index, "an int from 0 to 1000000")


def run_and_report(cfg: StudyConfig, args: argparse.Namespace) -> int:
    """Run the study, print the best trials and where the report is. Exit status 1 (with the
    failure reasons on stderr) when this run started trials and none of them completed."""
    from nasdepth.outpath import check_output
    from nasdepth.study import run_study
    from nasdepth.study.names import report_dir
    from nasdepth.study.runner import run_outcome, run_timings
    from nasdepth.study.study_file import study_inputs

    out = report_dir(cfg.name, args.out)
    if not args.no_report:
        # before hours of training, not after; never over what the study reads
        check_output(out, study_inputs(cfg), what="report folder", folder=True)
    run_id = uuid.uuid4().hex
    start = time.perf_counter()
    study = run_study(cfg, progress=not args.no_progress, workers=args.workers,
                      probes=not args.no_probes, allow_changes=args.allow_changes,
                      run_id=run_id, worker_index=getattr(args, "worker_index", None))
    from nasdepth.study.screen import screen_line, screen_of_run

    screen = screen_of_run(study, run_id)
    if screen is not None:  # this run screened the study (docs/studies.md)
        print(screen_line(screen))
    print_summary(study)
    status, message = run_outcome(study, run_id)
    reported = time.perf_counter()
    if not args.no_report:
        write_report_or_explain(study, out)
    end = time.perf_counter()
    if args.workers == 1:  # with several worker processes the trials' seconds overlap
        print(time_split(run_timings(study, run_id), end - start, end - reported,
                         not args.no_report))
    if message:
        print(f"nasdepth: error: {message}", file=sys.stderr)
    return status


def write_report_or_explain(study: optuna.Study, out: Path, **options: Any) -> None:
    """Write the report; a folder that cannot be written is one message (the trials are safe
    in the storage, ``nasdepth report`` rebuilds it)."""
    from nasdepth.report import write_report

    try:
        path = write_report(study, out, **options)
    except OSError as exc:
        raise NasdepthError(f"Cannot write the report into {out}: "
                            f"{exc.strerror or type(exc).__name__}"
                            f"{f' ({exc.filename})' if exc.filename else ''}. The trials are "
                            f"stored; rebuild it with `nasdepth report ... --out DIR`.") from None
    print(f"\nReport: {path}")


def time_split(trials: dict[str, float], total: float, report: float, reported: bool) -> str:
    """One line: where this run's ``total`` seconds went (``trials``: :func:`run_timings`),
    and the share of the probes, diagnosis and report, the parts beyond training itself."""
    extra = trials["probes"] + trials["diagnosis"] + report
    screen = trials.get("screen", 0.0)
    rest = max(total - screen - trials["training"] - trials["diagnosis"] - report, 0.0)
    parts = [f"screen {screen:.1f} s"] if screen else []
    parts += [f"training {trials['training'] - trials['probes']:.1f} s "
              f"({int(trials['trials'])} trials)", f"probes {trials['probes']:.1f} s",
              f"diagnosis {trials['diagnosis']:.1f} s"]
    if reported:
        parts.append(f"report {report:.1f} s")
    parts.append(f"storage and the rest {rest:.1f} s")
    return (f"\nTime: {total:.1f} s: {', '.join(parts)}. Probes, diagnosis"
            f"{' and report' if reported else ''}: {extra:.1f} s, "
            f"{100 * extra / max(total, 1e-9):.1f}% of the run.")


def print_summary(study: optuna.Study) -> None:
    import optuna

    states = [t.state.name.lower() for t in study.trials]
    counts = ", ".join(f"{states.count(s)} {s}" for s in sorted(set(states)))
    print(f"\nStudy '{study.study_name}': {len(states)} trials ({counts})")
    try:
        from nasdepth.report import top_trials, trials_frame

        maximize = study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        best = top_trials(trials_frame(study), maximize=maximize)
    except Exception:  # the summary is a courtesy; the report has the full tables
        return
    cols = [c for c in ("trial", "depth", "width", "block", "skip", "params", "flops")
            if c in best.columns]
    if len(best) and {"cv_mean", "cv_std"} <= set(best.columns):
        shown = best[cols].copy()
        for name, values in _searched_beside_the_architecture(study, best["trial"]).items():
            shown.insert(len(shown.columns) - 2, name, values)
        for c in ("params", "flops"):  # NaN for trials without them makes pandas use floats
            if c in shown:
                shown[c] = shown[c].astype("Int64")
        std = best["cv_std"].fillna(0)
        shown["cv score"] = [f"{m:.4f} ± {s:.4f}"
                             for m, s in zip(best["cv_mean"], std, strict=True)]
        print("\nTop trials:")
        print(shown.to_string(index=False))


def _searched_beside_the_architecture(study: optuna.Study, numbers: Any) -> dict[str, list[Any]]:
    """The searched values of the shown trials that are not architecture columns: the recipe
    (``lr``, ...), the transfer mode and blocks, the tasks' ``branch_at`` and heads."""
    from nasdepth.space.recipe import is_recipe
    from nasdepth.study.tasks_file import SEARCHED

    trials = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    rows = [trials.get(int(n), {}) for n in numbers]
    names = sorted({k for r in rows for k in r
                    if is_recipe(k) or k in SEARCHED or k.startswith("transfer.")})
    return {name.removeprefix("transfer."): [r.get(name, "") for r in rows] for name in names}


def os_errors_as_messages(command: Callable[[argparse.Namespace], int]
                          ) -> Callable[[argparse.Namespace], int]:
    """A file or disk the machine refuses (permissions, a full disk, a vanished mount) is one
    line naming the file, not a traceback; the trials written so far stay in the storage."""

    @functools.wraps(command)
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            what = exc.strerror or f"{type(exc).__name__}: {exc}"
            raise NasdepthError(f"{what}{where}.") from None

    return run


@os_errors_as_messages
def main(args: argparse.Namespace) -> int:
    check_workers(args)
    existing_file(args.study, "study file")  # before the heavy imports
    from nasdepth.study.study_file import load_study

    cfg = load_study(args.study, overrides_from(args))
    return run_and_report(cfg, args)
