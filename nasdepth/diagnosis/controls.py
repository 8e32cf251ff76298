"""Control runs that confirm or overturn a verdict read from the probes.

- ``shuffled``: the same model on permuted labels (what "no signal" scores);
- ``counterfactual``: the same depth with skip connections + BatchNorm (+ He initialization for
  ReLU networks); a user's own module is re-initialized with He initialization;
- ``shallow``: logistic regression and extremely randomized trees (scikit-learn, seconds; see
  :mod:`nasdepth.diagnosis.baseline`); the one control on by default;
- ``learning_curve``: 25/50/100% of each training fold, with the accuracy gained per doubling;
- ``reference``: the reference network of the input's rank (:mod:`nasdepth.diagnosis.
  reference`), the learner that could see what shallow models cannot.

Every control runs on exactly the splits of the run being diagnosed (a
:class:`~nasdepth.data.Splits`: the same splitter, seed, groups and repeats, the held-out test
part left out); every network is trained through ``nasdepth.train.fit_fold`` with probes on.
Each result carries ``seconds``, its cost.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from torch import nn

from nasdepth.arch import ArchConfig, build_model
from nasdepth.arch.build import initialize
from nasdepth.data import Dataset, Splits
from nasdepth.diagnosis.baseline import shallow_baseline
from nasdepth.diagnosis.diagnosis import CONTROLS, DEFAULT_CONTROLS
from nasdepth.diagnosis.reference import REFERENCE_BUDGET, run_reference
from nasdepth.diagnosis.through_time import gated_counterfactual
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.probes import ProbeHook, Trace, signals
from nasdepth.train import NonFiniteLossError, TrainConfig, TrainHook, fit_fold, resolve_device

FRACTIONS = (0.25, 0.5, 1.0)
ModelFactory = Callable[[int], nn.Module]  # fold -> fresh model


def parse_controls(spec: str | Sequence[str] | None, source: str = "diagnose") -> list[str]:
    """``"all"``, a comma-separated string or a list of names -> validated list; ``None``
    gives :data:`DEFAULT_CONTROLS`, ``"none"`` or ``[]`` none at all."""
    if spec is None:
        return list(DEFAULT_CONTROLS)
    if spec == "" or spec == "none" or (not isinstance(spec, str) and not list(spec)):
        return []
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [n.strip() for n in names if n.strip()]
    if names == ["all"]:
        return list(CONTROLS)
    for name in names:
        if name not in CONTROLS:
            raise UnknownNameError(source, "controls", name, (*CONTROLS, "all"))
    return list(dict.fromkeys(names))


def run_folds(make_model: ModelFactory, data: Dataset, *, splits: Splits, seed: int,
              training: TrainConfig, fraction: float = 1.0,
              hooks: Sequence[TrainHook] = ()) -> tuple[list[Trace], pd.DataFrame]:
    """Training with probes on ``splits`` (those of the run diagnosed), fold ``k`` seeded with
    ``seed * 1000 + k`` as ``cross_validate`` seeds it; ``fraction`` keeps that share of each
    training fold; ``hooks`` see the training beside the probes. A fold whose loss overflows
    keeps its partial trace and is left out of the table."""
    device = resolve_device(training.device)
    hook = ProbeHook()
    rows = []
    for k, (tr, va) in enumerate(splits):
        if fraction < 1.0:
            keep = np.random.default_rng(seed * 1000 + k).permutation(len(tr))
            tr = np.sort(tr[keep[:max(2 * data.num_classes, int(len(tr) * fraction))]])
        torch.manual_seed(seed * 1000 + k)
        model = make_model(k)
        try:
            rows.append(fit_fold(model, data, tr, va, training=training, seed=seed * 1000 + k,
                                 device=device, fold=k, hooks=[hook, *hooks]).row)
        except NonFiniteLossError as exc:
            hook.close(str(exc))
    return hook.traces, pd.DataFrame(rows)


def _skill(traces: Sequence[Trace], table: pd.DataFrame) -> dict[str, float | None]:
    s = signals(traces)
    acc = float(table["val_accuracy"].mean()) if len(table) else None
    return {"val_accuracy": acc, "skill_best": s.get("skill_best"),
            "val_loss_norm_min": s.get("val_loss_norm_min"),
            "train_loss_norm_last": s.get("train_loss_norm_last"),
            "grad_depth_log10": s.get("grad_depth_log10")}


def counterfactual_arch(arch: ArchConfig) -> tuple[ArchConfig, str]:
    """The same stages with BatchNorm and skip connections on (and He initialization where the
    network uses ReLU); where all of that is on already, He initialization alone. Vanilla
    ``rnn`` layers become gated ones instead (:func:`through_time.gated_counterfactual`)."""
    gated = gated_counterfactual(arch)
    if gated is not None:
        return gated
    # plain blocks have no shortcut to switch on: residual blocks (two layers each) with the
    # same number of weight layers stand in for them
    stages = tuple(
        replace(s, norm="batch", block="residual", depth=max(1, s.depth // 2))
        if s.block == "plain" else replace(s, norm="batch") for s in arch.stages)
    relu = any(s.activation == "relu" for s in arch.stages)
    init = "kaiming" if relu else arch.init
    cf = replace(arch, stages=stages, skip=True, init=init)
    if cf == arch:
        return replace(arch, init="kaiming"), "He initialization"
    change = "skip connections + BatchNorm" + (" + He initialization" if relu else "")
    if any(s.block == "plain" for s in arch.stages):
        change += " (residual blocks, same number of layers)"
    return cf, change


def he_reinit(model: nn.Module) -> nn.Module:
    """A deep copy with He-initialized linear/conv weights and zero biases."""
    model = copy.deepcopy(model)
    initialize(model, "kaiming")
    return model


def run_controls(
    names: Sequence[str],
    *,
    data: Dataset,
    splits: Splits,
    seed: int,
    training: TrainConfig,
    arch: ArchConfig | None = None,
    model: nn.Module | None = None,
    reference_budget: float | None = None,
    model_seconds: float | None = None,
) -> dict[str, Any]:
    """Run the named controls for ``arch`` (or a user's ``model``) on ``data``, on ``splits``
    (the diagnosed run's). The shallow baseline and the reference network need neither an
    architecture nor a model; ``reference_budget`` bounds the reference's seconds
    (``model_seconds``: the diagnosed run's, for its cost ratio)."""
    if arch is None and model is None and any(n not in ("shallow", "reference")
                                              for n in names):
        raise ConfigError("diagnose", "controls", list(names),
                          "run on an architecture or a model (the CV result has neither)")

    def factory(base: ArchConfig | None, module: nn.Module | None) -> ModelFactory:
        if base is not None:
            return lambda k: build_model(base, data.input_shape, data.num_classes)
        if module is None:
            raise ValueError("a control needs an architecture or a model")
        return lambda k: copy.deepcopy(module)

    same = factory(arch, model) if arch is not None or model is not None else None
    out: dict[str, Any] = {}
    for name in names:
        start = time.perf_counter()
        if name == "shallow":
            out[name] = shallow_baseline(data, splits, seed=seed)
            continue
        if name == "reference":
            out[name] = run_reference(
                data, splits, seed=seed, device=training.device, model_seconds=model_seconds,
                budget=REFERENCE_BUDGET if reference_budget is None else reference_budget)
            continue
        if same is None:  # unreachable: checked above; keeps the type checker informed
            raise ValueError(f"the {name} control needs an architecture or a model")
        if name == "shuffled":
            y = torch.as_tensor(np.random.default_rng(seed).permutation(data.y_numpy))
            shuffled = Dataset(data.x, y, data.name + ":shuffled", data.num_classes,
                               list(data.class_names))
            out[name] = _skill(*run_folds(same, shuffled, splits=splits, seed=seed,
                                          training=training))
        elif name == "counterfactual":
            if arch is not None:
                cf_arch, change = counterfactual_arch(arch)
                make = factory(cf_arch, None)
            else:  # a user's module (``same`` exists: arch or model is given)
                change, make = "He initialization", lambda k: he_reinit(cast(nn.Module, model))
            out[name] = {"change": change, **_skill(*run_folds(make, data, splits=splits,
                                                               seed=seed, training=training))}
        elif name == "learning_curve":
            accs = []
            for frac in FRACTIONS:
                _, table = run_folds(same, data, splits=splits, seed=seed,
                                     training=training, fraction=frac)
                accs.append(float(table["val_accuracy"].mean()) if len(table) else math.nan)
            doublings = math.log2(FRACTIONS[-1] / FRACTIONS[0])
            slope = (accs[-1] - accs[0]) / doublings
            out[name] = {"fractions": list(FRACTIONS), "val_accuracy": accs,
                         "slope": None if not math.isfinite(slope) else slope}
        out[name]["seconds"] = round(time.perf_counter() - start, 3)
    return out
