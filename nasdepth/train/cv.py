"""k-fold cross-validation: a fresh model per fold on the same seeded folds for every candidate."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from nasdepth.arch import ArchConfig, StageConfig, count_parameters
from nasdepth.arch.multitask import MultitaskConfig
from nasdepth.data import CVConfig, Dataset, Splits, resolve_cv
from nasdepth.errors import ConfigError
from nasdepth.train.candidate import Candidate, as_candidate
from nasdepth.train.config import TrainConfig
from nasdepth.train.device import configure_threads, resolve_device
from nasdepth.train.fit import FoldResult, fit_fold
from nasdepth.train.grouped import grouping_pays, groups_cleanly
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import OOM_ERRORS, out_of_memory, resolve_precision
from nasdepth.train.lr_find import candidate_range_test
from nasdepth.train.parallel import fit_folds_parallel, needs_sequential
from nasdepth.train.stacked import can_stack
from nasdepth.train.stream import resolve_placement

log = logging.getLogger("nasdepth.train")

FoldCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class CVResult:
    """Per-fold table (one row per fold), per-epoch history, and per-fold probe traces."""

    folds: pd.DataFrame
    history: pd.DataFrame
    arch: ArchConfig | None = None
    data: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    traces: list[dict[str, Any]] = field(default_factory=list)

    def mean(self, metric: str = "val_accuracy") -> float:
        return float(self.folds[metric].mean())

    def std(self, metric: str = "val_accuracy") -> float:
        return float(self.folds[metric].std(ddof=1)) if len(self.folds) > 1 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "folds": records(self.folds),
            "history": records(self.history),
            "arch": None if self.arch is None else self.arch.to_dict(),
            "data": self.data,
            "settings": self.settings,
            "traces": self.traces,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CVResult:
        return cls(
            folds=pd.DataFrame(d["folds"]),
            history=pd.DataFrame(d.get("history", [])),
            arch=None if d.get("arch") is None else ArchConfig.from_dict(d["arch"]),
            data=d.get("data", {}),
            settings=d.get("settings", {}),
            traces=d.get("traces", []),
        )


def records(rows: pd.DataFrame | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows (a table, or dicts) as JSON-ready dicts of plain Python values (floats kept
    exact): the one conversion the study, export and reports use."""
    if isinstance(rows, pd.DataFrame):
        rows = rows.to_dict(orient="records")
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for row in rows]


def choose_parallel(mode: str | bool, data: Dataset, device: torch.device,
                    hooks: Sequence[TrainHook], splits: Sequence[tuple[np.ndarray, np.ndarray]],
                    training: TrainConfig, placement: str = "device",
                    candidate: Candidate | None = None, model: nn.Module | None = None
                    ) -> bool:
    """Train the folds as one vectorized ensemble? ``auto`` follows the measurements in
    ``docs/data_and_training.md`` and ``benchmarks/bench_cv.py``: on a GPU always (one small
    model leaves it idle); on a CPU for MLPs (overhead-bound; their folds run as stacked
    layers) and for CNNs whose convolutions are small enough that this CPU runs their folds
    faster as grouped convolutions (``model``, one fold's network, in the precision it trains
    in: :func:`~nasdepth.train.grouped.grouping_pays`, measured once per machine for
    mid-sized convolutions, and :func:`~nasdepth.train.grouped.groups_cleanly`), not for
    larger CNNs (compute-bound: no gain, sometimes a loss) nor for a single split. Never
    where one of the reasons below holds (logged where ``on`` asked for it)."""
    mode = {True: "on", False: "off"}.get(mode, mode) if isinstance(mode, bool) else mode
    if mode == "off":
        return False
    sizes = [len(tr) for tr, _ in splits]
    why = None
    if candidate is not None and "parallel" not in candidate.engines:
        why = (f"{candidate.kind} candidates take no fold-parallel engine (it takes freshly "
               "built networks; a transfer candidate loads its own)")
    elif max(sizes) - min(sizes) > 1:
        why = "fold sizes differ by more than one sample"
    elif needs_sequential(hooks):
        why = "a hook needs each fold's model every step"
    elif training.compile:
        why = "compile is on"
    elif placement == "stream":
        why = "the data is streamed from the host"
    if why is not None:
        if mode == "on":
            log.info("training folds sequentially: %s", why)
        return False
    if mode == "on":
        return True
    if device.type == "cuda" or (device.type == "cpu" and len(data.input_shape) == 1):
        return True
    return (device.type == "cpu" and model is not None and len(splits) > 1  # a screen's one
            and grouping_pays(model, data.input_shape, training.batch_size, len(splits),
                              resolve_precision(training.precision, device, model),
                              reference_grouped_speedup)
            and groups_cleanly(model, data.input_shape))


def cross_validate(
    candidate: Candidate | ArchConfig | MultitaskConfig,
    data: Dataset,
    *,
    folds: int = 5,
    epochs: int | None = None,
    seed: int = 0,
    training: TrainConfig | None = None,
    on_fold: FoldCallback | None = None,
    hooks: Sequence[TrainHook] = (),
    cv: CVConfig | Splits | None = None,
    parallel: str | bool | None = None,
    source: str = "cross_validate",
) -> CVResult:
    """Train and score ``candidate`` on every fold; the splits are fixed by the seed, so
    every candidate sees the same folds. The one CV driver: single-task, multitask and
    transfer candidates (:mod:`nasdepth.train.candidate`) all train here; an
    :class:`ArchConfig` (or a ``MultitaskConfig``) is the candidate that trains it alone.

    ``cv``: the splits, as :class:`~nasdepth.data.Splits` resolved once (shared with the
    baselines and the diagnosis controls) or a ``CVConfig`` (a study's ``cv:`` section)
    resolved here; either wins over ``folds`` and ``seed`` for the splits. ``seed`` always
    seeds the models (fold k: ``seed * 1000 + k``). ``epochs`` overrides
    ``training.epochs``; ``parallel`` overrides ``training.parallel`` (``auto``/``on``/``off``
    or a bool). ``on_fold(fold, row)`` runs after every fold (the study reports to Optuna there
    and may stop the trial by raising ``TrialPruned``). ``hooks`` see the training loop.

    The engine is chosen once, from what the candidate supports (``Candidate.engines``):
    settings that ask for one it lacks are logged and fall back to the sequential engine
    with the data on the device.
    """
    cand = as_candidate(candidate)
    data = cand.prepare(data, source)
    training = _supported(cand, (training or TrainConfig()).validate().with_epochs(epochs))
    resolved = resolve_cv(cv, data, folds=folds, seed=seed, source=source)
    cv_cfg = resolved.cv
    if training.threads:
        configure_threads(threads=training.threads)
    device = resolve_device(training.device)
    training.augment.check_input(data.input_shape, source)
    # build once before any fold: a shape the architecture cannot take fails here, not midway
    model0 = cand.build(data)
    params = count_parameters(model0)  # the trainable ones
    splits, test_idx = list(resolved.folds), resolved.test
    sizes = [len(tr) for tr, _ in splits]
    # equal steps for every fold (sizes differ by at most one) keeps the paths identical
    n_used = min(sizes) if max(sizes) - min(sizes) <= 1 else None
    seeds = [seed * 1000 + k for k in range(len(splits))]
    mode = training.parallel if parallel is None else parallel
    # once for all folds; the fold-parallel path keeps all N rows once, no more than this
    placement = resolve_placement(training.data_placement, data, device, max(sizes),
                                  max(len(va) for _, va in splits), len(test_idx))
    use_parallel = choose_parallel(mode, data, device, hooks, splits, training, placement, cand,
                                   model0)

    found = None
    if training.lr_auto:  # a range test on fold 0's training part picks every fold's rate
        found = candidate_range_test(cand, data, splits[0][0], training=training,
                                     seed=seeds[0], device=device, folds=len(splits))
        training = replace(training, lr=found.lr)

    results: list[FoldResult] = []
    notes: list[dict[str, Any]] = []
    try:
        if use_parallel:
            try:
                fms = [cand.fold(data, tr, seeds[k], device) for k, (tr, _) in enumerate(splits)]
                results = fit_folds_parallel(
                    [fm.model for fm in fms], data, splits, training=training, seeds=seeds,
                    device=device, hooks=hooks, test_idx=test_idx, n_used=int(min(sizes)),
                    targets=fms[0].options.targets, aux_weight=fms[0].options.aux_weight)
            except OOM_ERRORS:
                if mode not in ("auto", None):
                    raise
                log.warning("fold-parallel training ran out of memory; going sequential")
                use_parallel = False
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            except (RuntimeError, NotImplementedError) as exc:
                if "vmap" not in str(exc).lower() and "batched" not in str(exc).lower():
                    raise
                log.warning("this model cannot be vmapped (%s); training folds sequentially",
                            exc)
                use_parallel = False
            for k, result in enumerate(results):
                _finish(result, k, params, resolved, on_fold)
        if not use_parallel:
            for k, (tr, va) in enumerate(splits):
                fm = cand.fold(data, tr, seeds[k], device)
                options = replace(fm.options, test_idx=test_idx, n_used=n_used,
                                  placement=fm.options.placement or placement)
                result = fit_fold(fm.model, fm.data, tr, va, training=training, seed=seeds[k],
                                  device=device, fold=k, hooks=hooks, options=options)
                result.row.update(fm.row)
                if "feature_seconds" in fm.row:
                    result.row["seconds"] = float(result.row["seconds"]) + fm.row[
                        "feature_seconds"]
                notes.append(fm.notes)
                results.append(result)
                _finish(result, k, params, resolved, on_fold)
    except OOM_ERRORS as exc:
        raise out_of_memory(exc, device, training, params, "while cross-validating") from None
    if not results:
        raise ConfigError(source, "folds", cv_cfg.folds, "a split that leaves training data")
    tasks = bool(cand.targets().tasks)
    # as the engine that trained resolved it (stacked MLP folds: per width, measured)
    stacked = use_parallel and len(splits) > 1 and can_stack(model0, data.input_shape)
    precision = resolve_precision(training.precision, device, model0, stacked=stacked)
    return CVResult(
        folds=pd.DataFrame([r.row for r in results]),
        history=pd.DataFrame([h for r in results for h in r.history]),
        arch=cand.arch,
        data=data.to_dict(),
        settings={"folds": resolved.n_splits, "seed": seed, "cv": cv_cfg.to_dict(),
                  # with the indices for several tasks: per-task diagnoses re-read these
                  # exact splits on data stratified on another task
                  "splits": resolved.to_dict(indices=tasks),
                  "training": training.to_dict(), "device": str(device),
                  "parallel": use_parallel, "data_placement": placement,
                  "precision": precision,
                  "n_test": int(len(test_idx)),
                  "lr_find": None if found is None else found.to_dict(),
                  "candidate": cand.describe(), **cand.settings(notes)},
        traces=[t for r in results for t in r.traces],
    )


def _supported(cand: Candidate, training: TrainConfig) -> TrainConfig:
    """``training`` without what ``cand`` cannot take (logged); the rest as asked."""
    if training.compile and "compile" not in cand.engines:
        log.info("%s candidates are not compiled (compile: on ignored)", cand.kind)
        training = replace(training, compile=False)
    if training.data_placement == "stream" and "stream" not in cand.engines:
        log.warning("%s candidates keep the fold's data on the device", cand.kind)
        training = replace(training, data_placement="device")
    return training


def _finish(result: FoldResult, k: int, params: int, splits: Splits,
            on_fold: FoldCallback | None) -> None:
    result.row["params"] = params
    if splits.kind == "repeated_stratified":
        result.row["repeat"] = splits.repeat_of(k)
    if on_fold is not None:
        on_fold(k, result.row)


def reference_grouped_speedup(channels: int, side: int, dims: int, batch: int, k: int,
                              bf16: bool, depth: int = 3, rounds: int = 2) -> float:
    """Sequential seconds over grouped seconds of a reference CV
    (:mod:`nasdepth.train.cpu_grouped` asks it once per machine and shape class): this
    driver's own :func:`cross_validate`, ``parallel: off`` against ``on``, of a plain
    CNN of ``depth`` convolutions of ``channels`` on one-channel ``side``-wide maps (random
    data, 12 steps of ``batch`` per fold and epoch, ``k`` folds x 2 epochs), the best of
    ``rounds`` interleaved runs after a warm-up. The whole step counts, not the convolutions
    alone: at 32 channels on 8x8 maps under bf16 the convolutions' forward and backward ran
    0.91-0.93x grouped on a Xeon with AMX, the CV 1.14-1.32x (one optimizer step, one
    scoring pass and one Python loop for the k folds). About 2-10 s."""
    gen = torch.Generator().manual_seed(0)
    rows = batch * 12 * k // (k - 1)  # 12 steps a fold (k >= 2: grouping_fast asks)
    data = Dataset(torch.randn(rows, 1, *([side] * dims), generator=gen),
                   torch.randint(0, 4, (rows,), generator=gen), "reference", 4)
    arch = ArchConfig(stages=(StageConfig(depth=depth, width=channels, block="plain"),))

    def run(parallel: str) -> float:
        training = TrainConfig(epochs=2, batch_size=batch, parallel=parallel,
                               precision="bf16" if bf16 else "fp32")
        start = time.perf_counter()
        cross_validate(arch, data, folds=k, seed=0, training=training)
        return time.perf_counter() - start

    run("off"), run("on")  # oneDNN builds its kernels on the first call
    best = {"off": float("inf"), "on": float("inf")}
    for _ in range(rounds):
        for mode in best:
            best[mode] = min(best[mode], run(mode))
    return best["off"] / best["on"]
