"""``nasdepth diagnose``: why did this candidate's training stall (or did it not)?

    nasdepth diagnose --study studies/x.yaml --trial 17 [--controls all] [--json]
    nasdepth diagnose --data sklearn:digits --arch arch.yaml [--epochs 20] [--controls shuffled]

``--study`` rebuilds the trial's candidate from its record (single-task, multitask or
transfer, and the ``training`` recipe it ran with) and reruns the study's cross-validation
with probes; ``--arch`` takes a YAML/JSON file,
inline JSON or a preset name.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from nasdepth.errors import ConfigError

if TYPE_CHECKING:
    from nasdepth.data import Dataset
    from nasdepth.diagnosis import Diagnosis
    from nasdepth.diagnosis.multitask import MultitaskDiagnosis
    from nasdepth.train import TrainConfig


def register(p: argparse.ArgumentParser) -> None:
    from nasdepth.diagnosis.diagnosis import CONTROLS  # the help lists them

    p.add_argument("--study", help="study YAML file (with --trial)")
    p.add_argument("--trial", type=int, help="trial number in the study's storage")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: the study's)")
    p.add_argument("--data", help="data spec, e.g. sklearn:digits (with --arch)")
    p.add_argument("--arch", help="architecture: YAML/JSON file, inline JSON or a preset name")
    p.add_argument("--epochs", type=int, default=None, help="epochs per fold")
    p.add_argument("--folds", type=int, default=None, help="CV folds (default 3)")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--batch-size", type=int, default=None, help="batch size")
    p.add_argument("--optimizer", default=None, help="optimizer (adamw, sgd, ...)")
    p.add_argument("--seed", type=int, default=None, help="seed of folds and models")
    p.add_argument("--controls", default=None,
                   help=f"comma-separated: {', '.join(CONTROLS)}, or 'all' (extra runs)")
    p.add_argument("--reference-budget", type=float, default=None,
                   help="seconds the reference network control may take where a plateau "
                        "would otherwise be data-limited (default 300; 0: off)")
    p.add_argument("--json", action="store_true", help="print the diagnosis as JSON")
    p.set_defaults(func=main)


def _trial_candidate(args: argparse.Namespace) -> tuple[Any, TrainConfig, Any, Dataset, Any]:
    """The candidate a stored trial trained, its recipe, the study file, its data and the
    stored study."""
    from nasdepth.data import load_data
    from nasdepth.study.candidates import candidate_of_record
    from nasdepth.study.record import read_record
    from nasdepth.study.runner import load_stored_study
    from nasdepth.study.study_file import load_study
    from nasdepth.train import TrainConfig

    cfg = load_study(args.study)
    study = load_stored_study(cfg, args.storage)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if args.trial not in trials:
        raise ConfigError(args.study, "--trial", args.trial,
                          f"one of the study's trial numbers (0..{max(trials, default=-1)})")
    rec = read_record(trials[args.trial])
    if not rec.arch and not rec.candidate:
        raise ConfigError(args.study, "--trial", args.trial, "a trial with a stored 'arch'")
    source = f"trial {args.trial} of {args.study}"
    # the recipe the trial ran with (older records lack it: the study's own then)
    training = TrainConfig.from_dict(rec.training, source) if rec.training else cfg.training
    data = load_data(cfg.data, source=str(cfg.path))
    return candidate_of_record(rec, source), training, cfg, data, study


def _training(base: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    from dataclasses import replace

    changes = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr),
                                 ("batch_size", args.batch_size),
                                 ("optimizer", args.optimizer)) if v is not None}
    return replace(base, **changes).validate("the command line") if changes else base


def run_diagnosis(args: argparse.Namespace) -> Diagnosis | MultitaskDiagnosis:
    from nasdepth.cli.arch import parse_arch
    from nasdepth.data import load_data
    from nasdepth.diagnosis import diagnose, parse_controls
    from nasdepth.probes import MultitaskProbeHook, ProbeHook
    from nasdepth.train import NonFiniteLossError, cross_validate
    from nasdepth.train.progress import epoch_progress

    controls = parse_controls(args.controls, "--controls")
    if args.study:
        if args.trial is None:
            raise ConfigError("the command line", "--trial", None, "set with --study")
        candidate, trained_with, cfg, data, study = _trial_candidate(args)
        training = _training(trained_with, args)
        seed = cfg.cv_seed if args.seed is None else args.seed
        costly = [c for c in controls if c != "shallow"]
        if costly and candidate.kind == "transfer":
            raise ConfigError("the command line", "--controls", ",".join(costly),
                              "shallow or none for a transfer trial (the other controls "
                              "retrain the architecture from scratch)")
        tasks = candidate.targets().tasks
        hook: Any = MultitaskProbeHook() if tasks else ProbeHook()
        data = candidate.prepare(data, str(cfg.path))  # as the trial took it
        try:  # the trial's candidate again, as it ran (checkpoint, frozen parts, tasks)
            with epoch_progress(True, cfg.cv.n_splits, training.epochs,
                                f"trial {args.trial}") as bar:
                result = cross_validate(candidate, data, cv=cfg.cv, seed=seed,
                                        training=training, hooks=[hook, *bar],
                                        source=str(cfg.path))
        except NonFiniteLossError as exc:
            if tasks:
                raise
            hook.close(str(exc))
            return diagnose(hook)
        if tasks:  # a multitask trial: a verdict per task
            from nasdepth.diagnosis.multitask import diagnose_tasks

            return diagnose_tasks(result, data, controls=controls)
        from nasdepth.study.peers import study_controls

        # the study as it stands: its trials that learned on the same splits (and the
        # reference network's result where it ran), so a stalled trial is judged beside them
        known = study_controls(study, data, cfg.cv.resolve(data, str(cfg.path)),
                               exclude=args.trial)
        return diagnose(result, data, controls=controls, precomputed=known,
                        reference_budget=args.reference_budget)
    if not (args.data and args.arch):
        raise ConfigError("the command line", "--data/--arch", None,
                          "both set (or --study with --trial)")
    data = load_data(args.data)
    arch = parse_arch(args.arch, data.input_shape, data.num_classes)
    return diagnose(arch, data, controls=controls, epochs=args.epochs, lr=args.lr,
                    batch_size=args.batch_size, optimizer=args.optimizer, folds=args.folds,
                    seed=args.seed, reference_budget=args.reference_budget, progress=True)


def main(args: argparse.Namespace) -> int:
    from nasdepth.train import configure_threads

    configure_threads(1)
    d = run_diagnosis(args)
    print(json.dumps(d.to_dict(), indent=2) if args.json else d)
    return 0
