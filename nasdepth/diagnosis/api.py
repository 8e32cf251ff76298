"""``diagnose(...)``: one entry point for a CV result, an architecture or a user's own module."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from nasdepth.arch import ArchConfig
from nasdepth.data import Dataset
from nasdepth.diagnosis.controls import parse_controls, run_controls, run_folds
from nasdepth.diagnosis.diagnosis import Diagnosis
from nasdepth.diagnosis.rules import diagnose_traces
from nasdepth.errors import ConfigError
from nasdepth.probes import Probe, ProbeHook, Trace
from nasdepth.train import CVResult, NonFiniteLossError, TrainConfig, cross_validate

Target = CVResult | ArchConfig | nn.Module | ProbeHook | Probe | Trace | Sequence[Any]


def _training(training: TrainConfig | None, epochs: int | None, lr: float | None,
              optimizer: str | None, batch_size: int | None) -> TrainConfig:
    cfg = training or TrainConfig()
    changes: dict[str, Any] = {}
    for key, value in (("epochs", epochs), ("lr", lr), ("optimizer", optimizer),
                       ("batch_size", batch_size)):
        if value is not None:
            changes[key] = value
    return replace(cfg, **changes).validate("diagnose") if changes else cfg.validate("diagnose")


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
    epochs: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    folds: int | None = None,
    seed: int | None = None,
    training: TrainConfig | None = None,
    thresholds: dict[str, float] | None = None,
) -> Diagnosis:
    """Diagnose a run: why did training stall (or did it not)?

    ``target`` is one of

    - a ``CVResult`` trained with ``hooks=[ProbeHook()]`` (no training; ``data`` is needed only
      for controls);
    - an ``ArchConfig`` (cross-validated here on ``data`` with probes);
    - a user's own ``nn.Module`` producing logits (deep-copied per fold, trained here on
      ``data`` with probes on every leaf module that has parameters);
    - a ``ProbeHook``, a ``Probe``, a ``Trace`` or a list of traces (their dicts too).

    ``controls``: ``"all"`` or any of ``shuffled, counterfactual, shallow, learning_curve``
    (each costs extra training runs on the same folds).
    """
    names = parse_controls(controls)
    train_cfg = _training(training, epochs, lr, optimizer, batch_size)
    n_folds = 3 if folds is None else folds
    run_seed = 0 if seed is None else seed
    arch: ArchConfig | None = None
    model: nn.Module | None = None
    table = None

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
    elif isinstance(target, ArchConfig):
        data = _need_data(data)
        arch = target
        hook = ProbeHook()
        try:
            cv = cross_validate(arch, data, folds=n_folds, seed=run_seed, training=train_cfg,
                                hooks=[hook])
            table = cv.folds
        except NonFiniteLossError as exc:
            hook.close(str(exc))
        traces = list(hook.traces)
    elif isinstance(target, nn.Module):
        data = _need_data(data)
        check_model_data(target, data)
        model = target
        base = target
        traces, table = run_folds(lambda k: copy.deepcopy(base), data, folds=n_folds,
                                  seed=run_seed, training=train_cfg)
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

    results: dict[str, Any] = {}
    if names:
        data = _need_data(data, "controls")
        chance = (traces[0].chance_accuracy if isinstance(traces[0], Trace)
                  else float(traces[0].get("chance_accuracy", 0.0)))
        results = run_controls(names, data=data, folds=n_folds, seed=run_seed,
                               training=train_cfg, arch=arch, model=model, chance=chance)
    return diagnose_traces(traces, folds=table, controls=results, thresholds=thresholds)


def _need_data(data: Dataset | None, what: str = "training") -> Dataset:
    if data is None:
        raise ConfigError("diagnose", "data", None, f"a Dataset (needed for {what})")
    if not isinstance(data, Dataset):
        raise ConfigError("diagnose", "data", type(data).__name__,
                          "a nasdepth Dataset (see nasdepth.load_data / from_arrays)")
    return data
