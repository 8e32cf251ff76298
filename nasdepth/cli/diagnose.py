"""``nasdepth diagnose``: why did this candidate's training stall (or did it not)?

    nasdepth diagnose --study studies/x.yaml --trial 17 [--controls all] [--json]
    nasdepth diagnose --data sklearn:digits --arch arch.yaml [--epochs 20] [--controls shuffled]

``--study`` rebuilds the trial from its record (``arch`` and the ``training`` recipe it ran
with) and reruns the study's cross-validation with probes; ``--arch`` takes a YAML/JSON file,
inline JSON or a preset name.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nasdepth.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from nasdepth.arch import ArchConfig
    from nasdepth.data import Dataset
    from nasdepth.diagnosis import Diagnosis
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


def parse_arch(spec: str, data: Dataset) -> ArchConfig:
    """A YAML/JSON file, inline JSON (``{...}``) or a preset name."""
    from nasdepth.arch import PRESETS, ArchConfig, preset
    from nasdepth.yamlfile import parse_yaml, read_yaml

    raw: Any = None
    if Path(spec).is_file():  # JSON is YAML; one line for any error (nasdepth.yamlfile)
        raw = read_yaml(spec, "--arch file")
    elif spec.lstrip().startswith("{"):
        raw = parse_yaml(spec, "The --arch mapping")
    if raw is not None or Path(spec).is_file():
        return ArchConfig.from_dict(raw, source=f"--arch {spec}")
    if spec in PRESETS:
        return preset(spec, data.input_shape, data.num_classes)
    raise UnknownNameError("--arch", "arch", spec, ["FILE.yaml", "FILE.json", "{...}", *PRESETS])


def _trial_arch(args: argparse.Namespace
                ) -> tuple[ArchConfig, TrainConfig, Any, Dataset, dict[str, Any] | None]:
    import optuna

    from nasdepth.arch import ArchConfig
    from nasdepth.data import load_data
    from nasdepth.study.record import read_record
    from nasdepth.study.storage import make_storage
    from nasdepth.study.study_file import load_study
    from nasdepth.train import TrainConfig

    cfg = load_study(args.study)
    storage = make_storage(args.storage or cfg.storage_url)
    try:
        study = optuna.load_study(study_name=cfg.name, storage=storage)
    except KeyError:
        raise ConfigError(args.study, "study", cfg.name,
                          "a study that has run (nasdepth run first)") from None
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if args.trial not in trials:
        raise ConfigError(args.study, "--trial", args.trial,
                          f"one of the study's trial numbers (0..{max(trials, default=-1)})")
    rec = read_record(trials[args.trial])
    if not rec.arch:
        raise ConfigError(args.study, "--trial", args.trial, "a trial with a stored 'arch'")
    source = f"trial {args.trial} of {args.study}"
    # the recipe the trial ran with (older records lack it: the study's own then)
    training = TrainConfig.from_dict(rec.training, source) if rec.training else cfg.training
    data = load_data(cfg.data, source=str(cfg.path))
    return ArchConfig.from_dict(rec.arch, source=source), training, cfg, data, rec.transfer


def _study_controls(args: argparse.Namespace, cfg: Any, data: Any) -> dict[str, Any]:
    """The study as it stands: its trials that learned on the same splits (and the reference
    network's result where it ran), so a stalled trial is judged beside them."""
    import optuna

    from nasdepth.study.peers import study_controls
    from nasdepth.study.storage import make_storage

    study = optuna.load_study(study_name=cfg.name,
                              storage=make_storage(args.storage or cfg.storage_url))
    return study_controls(study, data, cfg.cv.resolve(data, str(cfg.path)), exclude=args.trial)


def _training(base: TrainConfig, args: argparse.Namespace) -> TrainConfig:
    from dataclasses import replace

    changes = {k: v for k, v in (("epochs", args.epochs), ("lr", args.lr),
                                 ("batch_size", args.batch_size),
                                 ("optimizer", args.optimizer)) if v is not None}
    return replace(base, **changes).validate("the command line") if changes else base


def _diagnose_multitask(args: argparse.Namespace, cfg: Any, data: Any, training: Any,
                        seed: int, controls: Any) -> Any:
    """``--study`` on a multitask study: the trial's multitask network cross-validated again
    with per-task probes, diagnosed per task (``MultitaskDiagnosis``)."""
    import optuna

    from nasdepth.arch.multitask import MultitaskConfig
    from nasdepth.diagnosis.multitask import diagnose_tasks
    from nasdepth.probes import MultitaskProbeHook
    from nasdepth.study.record import read_record
    from nasdepth.study.storage import make_storage
    from nasdepth.train.multitask import cross_validate_multitask

    study = optuna.load_study(study_name=cfg.name,
                              storage=make_storage(args.storage or cfg.storage_url))
    rec = read_record(study.get_trials(deepcopy=False)[args.trial])
    if not isinstance(rec.multitask, dict):
        raise ConfigError(args.study, "--trial", args.trial, "a trial with a multitask record")
    mt = MultitaskConfig.from_dict(rec.multitask["config"], f"trial {args.trial}")
    result = cross_validate_multitask(mt, data, cv=cfg.cv, seed=seed, training=training,
                                      hooks=[MultitaskProbeHook()], source=str(cfg.path))
    return diagnose_tasks(result, data, controls=controls)


def _transfer_cv(arch: ArchConfig, data: Dataset, transfer: dict[str, Any], cfg: Any, seed: int,
                 training: TrainConfig, hook: Any, controls: list[str]) -> Any:
    """A transfer trial cross-validated again as it ran (checkpoint, mode, frozen blocks)."""
    from nasdepth.train.transfer import TransferConfig
    from nasdepth.train.transfer_cv import cross_validate_transfer

    costly = [c for c in controls if c != "shallow"]
    if costly:
        raise ConfigError("the command line", "--controls", ",".join(costly),
                          "shallow or none for a transfer trial (the other controls retrain "
                          "the architecture from scratch)")
    return cross_validate_transfer(arch, data, TransferConfig.from_record(transfer, str(cfg.path)),
                                   cv=cfg.cv, seed=seed, training=training, hooks=[hook],
                                   source=str(cfg.path))


def run_diagnosis(args: argparse.Namespace) -> Diagnosis:
    from nasdepth.data import load_data
    from nasdepth.diagnosis import diagnose, parse_controls
    from nasdepth.probes import ProbeHook
    from nasdepth.train import NonFiniteLossError, cross_validate

    controls = parse_controls(args.controls, "--controls")
    if args.study:
        if args.trial is None:
            raise ConfigError("the command line", "--trial", None, "set with --study")
        arch, trained_with, cfg, data, transfer = _trial_arch(args)
        training = _training(trained_with, args)
        seed = cfg.cv_seed if args.seed is None else args.seed
        if cfg.tasks is not None:  # a multitask trial: a verdict per task
            return _diagnose_multitask(args, cfg, data, training, seed, controls)
        hook = ProbeHook()
        try:
            if transfer is not None:  # from the checkpoint, with the trial's frozen parts
                result = _transfer_cv(arch, data, transfer, cfg, seed, training, hook,
                                      controls)
            else:
                result = cross_validate(arch, data, cv=cfg.cv, seed=seed, training=training,
                                        hooks=[hook], source=str(cfg.path))
        except NonFiniteLossError as exc:
            hook.close(str(exc))
            return diagnose(hook)
        return diagnose(result, data, controls=controls,
                        precomputed=_study_controls(args, cfg, data),
                        reference_budget=args.reference_budget)
    if not (args.data and args.arch):
        raise ConfigError("the command line", "--data/--arch", None,
                          "both set (or --study with --trial)")
    data = load_data(args.data)
    arch = parse_arch(args.arch, data)
    return diagnose(arch, data, controls=controls, epochs=args.epochs, lr=args.lr,
                    batch_size=args.batch_size, optimizer=args.optimizer, folds=args.folds,
                    seed=args.seed, reference_budget=args.reference_budget)


def main(args: argparse.Namespace) -> int:
    from nasdepth.train import configure_threads

    configure_threads(1)
    d = run_diagnosis(args)
    if args.json:
        print(json.dumps(d.to_dict(), indent=2))
    else:
        print(d)
    return 0
