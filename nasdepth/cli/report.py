"""``nasdepth report STUDY.yaml [--storage URL] [--out DIR]``: rebuild ``reports/<study>/``
from the study's storage alone (any time: while workers still run, or long after)."""

from __future__ import annotations

import argparse
from pathlib import Path

from nasdepth.cli.run import need_study_file, os_errors_as_messages
from nasdepth.errors import NasdepthError


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
    need_study_file(args.study)
    import optuna

    from nasdepth.cli.run import write_report_or_explain
    from nasdepth.redact import redact
    from nasdepth.study import make_storage
    from nasdepth.study.names import check_writable, report_dir
    from nasdepth.study.storage import storage_url
    from nasdepth.study.study_file import load_study, study_inputs

    cfg = load_study(args.study)
    out = report_dir(cfg.name, args.out)
    # before the storage is read and baselines fitted; never over what the report reads
    check_writable(out, "report folder", study_inputs(cfg, args.storage))
    url = storage_url(args.storage or cfg.storage_url)  # libpq keywords: a URL, not a file
    if "://" not in url and not Path(url).is_file():
        raise NasdepthError(f"No storage at {url} for study '{cfg.name}' ({args.study}): run "
                            f"`nasdepth run {args.study}` first, or pass --storage.")
    try:
        study = optuna.load_study(study_name=cfg.name, storage=make_storage(url))
    except KeyError:
        raise NasdepthError(f"The storage {redact(url)} holds no study named '{cfg.name}' "
                            f"(from {args.study}).") from None
    write_report_or_explain(study, out, baselines=not args.no_baselines)
    return 0
