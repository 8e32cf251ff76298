"""``diagnose(...)``: one entry point for a CV result, an architecture or a user's own module."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from nasdepth.arch import ArchConfig
from nasdepth.data import CVConfig, Dataset, Splits, resolve_cv
from nasdepth.diagnosis.controls import parse_controls, run_controls, run_folds
from nasdepth.diagnosis.diagnosis import Diagnosis
from nasdepth.diagnosis.rules import diagnose_traces
from nasdepth.errors import ConfigError
from nasdepth.probes import Probe, ProbeHook, Trace
from nasdepth.train import CVResult, NonFiniteLossError, TrainConfig, cross_validate
from nasdepth.train.progress import epoch_progress

Target = CVResult | ArchConfig | nn.Module | ProbeHook | Probe | Trace | Sequence[Any]


def _training(training: TrainConfig | None, epochs: int | None, lr: float | None,
              optimizer: str | None, batch_size: int | None) -> TrainConfig:
    given = (("epochs", epochs), ("lr", lr), ("optimizer", optimizer), ("batch_size", batch_size))
    changes: dict[str, Any] = {k: v for k, v in given if v is not None}
    return replace(training or TrainConfig(), **changes).validate("diagnose")


def check_model_data(model: nn.Module, data: Dataset) -> None:
    """Clear errors before training: a module without parameters, data of the wrong shape."""
    if not isinstance(data, Dataset):
        raise ConfigError("diagnose", "data", type(data).__name__,
                          "a nasdepth Dataset (see nasdepth.load_data / from_arrays)")
    if not any(p.requires_grad for p in model.parameters()):
        raise ConfigError("diagnose", "model", type(model).__name__,
                          "a module with trainable parameters")
    probe = copy.deepcopy(model).eval()
    try:
        with torch.no_grad():
            out = probe(data.x[:2])
    except (RuntimeError, ValueError, IndexError) as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError("diagnose", "data", f"samples of shape {tuple(data.input_shape)}",
                          f"what the model accepts ({first})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[1] != data.num_classes:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError("diagnose", "model output", shape,
                          f"logits of shape (batch, {data.num_classes}) for "
                          f"{data.num_classes} classes")


def diagnose(
    target: Target,
    data: Dataset | None = None,
    *,
    controls: str | Sequence[str] | None = None,
    cv: CVConfig | Splits | None = None,
    precomputed: dict[str, Any] | None = None,
    epochs: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    folds: int | None = None,
    seed: int | None = None,
    training: TrainConfig | None = None,
    thresholds: dict[str, float] | None = None,
    reference_budget: float | None = None,
    progress: bool = False,
) -> Diagnosis:
    """Diagnose a run: why did training stall (or did it not)?

    ``target`` is one of

    - a ``CVResult`` trained with ``hooks=[ProbeHook()]`` (no training; ``data`` is needed only
      for controls);
    - an ``ArchConfig`` (cross-validated here on ``data`` with probes);
    - a user's own ``nn.Module`` producing logits (deep-copied per fold, trained here on
      ``data`` with probes on every leaf module that has parameters);
    - a ``ProbeHook``, a ``Probe``, a ``Trace`` or a list of traces (their dicts too).

    ``controls``: ``"all"`` or any of ``shuffled, counterfactual, shallow, learning_curve,
    reference``; by default (``None``) the shallow baseline (scikit-learn, seconds) and the
    reference network, where ``data`` is given; ``"none"`` runs none. The reference network
    (:mod:`nasdepth.diagnosis.reference`) trains only where the verdict would otherwise be
    data-limited, within ``reference_budget`` seconds (default
    ``reference.REFERENCE_BUDGET``; 0 turns it off: such a plateau stays undecided).
    ``shallow`` and ``reference`` need only the data; the others train the model again
    (costly). Every control runs on the diagnosed run's splits: those a ``CVResult``
    recorded (checked against ``data``), else ``cv`` (``Splits`` or a ``CVConfig``), else
    stratified ``folds``-fold CV seeded with ``seed``.

    ``progress``: a progress bar over the epochs of the run trained here (an ``ArchConfig``
    or a module; the controls' runs have none), on a terminal.

    ``precomputed``: control results computed once elsewhere (a study computes the shallow
    baseline once for all its trials, and its ``peers``: trials that learned), used where
    their ``splits`` digest matches.
    """
    explicit = controls is not None
    names = parse_controls(controls)
    if reference_budget is not None and (isinstance(reference_budget, bool) or not isinstance(
            reference_budget, int | float) or not reference_budget >= 0):
        raise ConfigError("diagnose", "reference_budget", reference_budget,
                          "a number of seconds >= 0 (0 turns the reference network off)")
    train_cfg = _training(training, epochs, lr, optimizer, batch_size)
    n_folds = 3 if folds is None else folds
    run_seed = 0 if seed is None else seed
    arch: ArchConfig | None = None
    model: nn.Module | None = None
    table = None
    splits: Splits | None = None

    if isinstance(target, CVResult) and target.settings.get("multitask") \
            and "task" not in target.settings:  # a task_view() is one task's side of it
        raise ConfigError("diagnose", "cv_result", "a multitask result",
                          "one task's result: diagnose_tasks(result, data) in "
                          "nasdepth.diagnosis (a verdict per task)")
    if isinstance(target, CVResult):
        traces: list[Any] = list(target.traces)
        if not traces:
            raise ConfigError("diagnose", "cv_result", "a CVResult without traces",
                              "trained with probes: cross_validate(..., hooks=[ProbeHook()])")
        table, arch = target.folds, target.arch
        settings = target.settings
        n_folds = int(settings.get("folds", n_folds)) if folds is None else n_folds
        run_seed = int(settings.get("seed", run_seed)) if seed is None else run_seed
        if training is None and "training" in settings:
            train_cfg = _training(TrainConfig.from_dict(settings["training"]), epochs, lr,
                                  optimizer, batch_size)
        if data is not None:
            splits = run_splits(settings, data, cv)
    elif isinstance(target, ArchConfig):
        data = _need_data(data)
        arch = target
        hook = ProbeHook()
        splits = resolve_cv(cv, data, folds=n_folds, seed=run_seed, source="diagnose")
        with epoch_progress(progress, splits.n_splits, train_cfg.epochs, "diagnose") as bar:
            try:
                result = cross_validate(arch, data, cv=splits, seed=run_seed,
                                        training=train_cfg, hooks=[hook, *bar],
                                        source="diagnose")
                table = result.folds
            except NonFiniteLossError as exc:
                hook.close(str(exc))
        traces = list(hook.traces)
    elif isinstance(target, nn.Module):
        data = _need_data(data)
        check_model_data(target, data)
        model = target
        base = target
        splits = resolve_cv(cv, data, folds=n_folds, seed=run_seed, source="diagnose")
        with epoch_progress(progress, splits.n_splits, train_cfg.epochs, "diagnose") as bar:
            traces, table = run_folds(lambda k: copy.deepcopy(base), data, splits=splits,
                                      seed=run_seed, training=train_cfg, hooks=bar)
        if not len(table):
            table = None
    elif isinstance(target, ProbeHook):
        traces = list(target.traces)
    elif isinstance(target, Probe):
        traces = [target.trace]
    elif isinstance(target, (Trace, dict)):
        traces = [target]
    elif isinstance(target, (list, tuple)):
        traces = list(target)
    else:
        raise ConfigError("diagnose", "target", type(target).__name__,
                          "a CVResult, an ArchConfig, an nn.Module, a ProbeHook, a Probe or "
                          "traces")

    if not explicit and data is None:
        names = []  # the default baseline needs the data; without it the plateau is undecided
    size = _size(table, arch)
    results: dict[str, Any] = {}
    if names:
        data = _need_data(data, "controls")
        if splits is None:
            splits = resolve_cv(cv, data, folds=n_folds, seed=run_seed, source="diagnose")
        digest = splits.digest
        reuse = {k: v for k, v in (precomputed or {}).items()
                 if (k in names or k == "peers") and isinstance(v, dict)
                 and v.get("splits") == digest}
        # the reference network trains only where the verdict would otherwise be
        # data-limited: a first pass reads it as failing ("pending") and asks
        todo = [n for n in names if n not in reuse and n != "reference"]
        results = {**reuse, **run_controls(todo, data=data, splits=splits, seed=run_seed,
                                            training=train_cfg, arch=arch, model=model)}
        if "reference" in names and "reference" not in results:
            first = diagnose_traces(traces, folds=table, thresholds=thresholds, size=size,
                                    controls={**results, "reference": {"pending": True}})
            if first.verdict == "data_limited_plateau":
                seconds = _seconds(table)
                results.update(run_controls(["reference"], data=data, splits=splits,
                                            seed=run_seed, training=train_cfg,
                                            reference_budget=reference_budget,
                                            model_seconds=seconds))
        results = {n: results[n] for n in [*names, "peers"] if n in results}
    return diagnose_traces(traces, folds=table, controls=results, thresholds=thresholds,
                           size=size)


def _size(table: Any, arch: ArchConfig | None) -> dict[str, Any] | None:
    """The diagnosed model's parameters and depth (blocks), where known."""
    params = None
    if table is not None and "params" in table and len(table):
        params = int(table["params"].iloc[0])
    depth = sum(s.depth for s in arch.stages) if arch is not None else None
    return None if params is None and depth is None else {"params": params, "depth": depth}


def _seconds(table: Any) -> float | None:
    """The diagnosed run's training seconds (all folds), where its table has them."""
    if table is None or "seconds" not in table or not len(table):
        return None
    return float(table["seconds"].sum())


def run_splits(settings: dict[str, Any], data: Dataset, cv: CVConfig | Splits | None = None
               ) -> Splits:
    """The splits a ``CVResult`` was trained on, recovered on ``data`` from its settings (and
    checked against the digest it recorded); ``cv``, where given, must be those splits."""
    stored = settings.get("splits")
    if isinstance(stored, dict):
        found = Splits.from_dict(stored, data, source="diagnose")
    elif isinstance(settings.get("cv"), dict):  # results recorded before Splits existed
        found = CVConfig.from_dict(settings["cv"], "diagnose").resolve(data, "diagnose")
    else:
        found = resolve_cv(None, data, folds=int(settings.get("folds", 3)),
                           seed=int(settings.get("seed", 0)), source="diagnose")
    if cv is not None:
        given = resolve_cv(cv, data, source="diagnose")
        if given != found:
            raise ConfigError("diagnose", "cv", repr(given),
                              f"the splits the run was trained on ({found!r})")
    return found


def _need_data(data: Dataset | None, what: str = "training") -> Dataset:
    if data is None:
        raise ConfigError("diagnose", "data", None, f"a Dataset (needed for {what})")
    if not isinstance(data, Dataset):
        raise ConfigError("diagnose", "data", type(data).__name__,
                          "a nasdepth Dataset (see nasdepth.load_data / from_arrays)")
    return data
