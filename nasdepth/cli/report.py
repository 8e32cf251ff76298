"""``nasdepth report STUDY.yaml [--storage URL] [--out DIR]``: rebuild ``reports/<study>/``
from the study's storage alone (any time: while workers still run, or long after)."""

from __future__ import annotations

import argparse

from nasdepth.cli.run import os_errors_as_messages
from nasdepth.yamlfile import existing_file


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("study", help="study YAML file, e.g. studies/quickstart.yaml")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL or journal file path (default: the study's)")
    p.add_argument("--out", default=None, help="report folder (default reports/<study>)")
    p.add_argument("--no-baselines", action="store_true",
                   help="skip fitting the majority-class and logistic-regression baselines")
    p.set_defaults(func=main)


@os_errors_as_messages
def main(args: argparse.Namespace) -> int:
    existing_file(args.study, "study file")  # before the heavy imports

    from nasdepth.cli.run import write_report_or_explain
    from nasdepth.outpath import check_output
    from nasdepth.study.names import report_dir
    from nasdepth.study.runner import load_stored_study
    from nasdepth.study.study_file import load_study, study_inputs

    cfg = load_study(args.study)
    out = report_dir(cfg.name, args.out)
    # before the storage is read and baselines fitted; never over what the report reads
    check_output(out, study_inputs(cfg, args.storage), what="report folder", folder=True)
    study = load_stored_study(cfg, args.storage)
    write_report_or_explain(study, out, baselines=not args.no_baselines)
    return 0
