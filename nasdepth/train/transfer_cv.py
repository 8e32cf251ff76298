"""k-fold cross-validation of one transfer candidate (``cross_validate_transfer``), its
``feature_extraction`` fold (body features once, the head trained on them) and the training
subsets of a learning curve.

Transfer candidates train fold after fold (the sequential path): the fold-parallel engine
stacks k freshly built networks, which would need each fold's loaded and partly frozen
copy in the stack; a frozen body also leaves little for it to gain.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch

from nasdepth.arch import ArchConfig, count_parameters
from nasdepth.arch.adapt import SourceModel, read_source
from nasdepth.data import CVConfig, Dataset, Splits, Standardizer, resolve_cv
from nasdepth.errors import ConfigError
from nasdepth.train.config import TrainConfig
from nasdepth.train.cv import CVResult, FoldCallback
from nasdepth.train.device import configure_threads, resolve_device
from nasdepth.train.fit import FoldResult, fit_fold
from nasdepth.train.hooks import TrainHook
from nasdepth.train.loop import OOM_ERRORS, out_of_memory
from nasdepth.train.stream import resolve_placement
from nasdepth.train.transfer import (
    PreparedModel,
    TransferConfig,
    adapt_data,
    body_features,
    head_of,
    needs_new_stem,
    prepare_model,
)

log = logging.getLogger("nasdepth.train")


def subsample(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, stratified ``fraction`` of a training part (at least 2 samples per class
    present, in the original order): the training subsets of a learning curve."""
    if not 0 < fraction <= 1:
        raise ConfigError("the learning curve", "fraction", fraction, "a number in (0, 1]")
    if fraction == 1:
        return train_idx
    rng = np.random.default_rng(seed)
    keep = []
    labels = y[train_idx]
    for c in np.unique(labels):
        members = train_idx[labels == c]
        n = min(len(members), max(2, int(round(fraction * len(members)))))
        keep.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(keep))


def fit_fold_features(prepared: PreparedModel, data: Dataset, train_idx: np.ndarray,
                      val_idx: np.ndarray, *, training: TrainConfig, seed: int,
                      device: torch.device, fold: int = 0, hooks: Sequence[TrainHook] = (),
                      test_idx: np.ndarray | None = None, n_used: int | None = None
                      ) -> FoldResult:
    """``feature_extraction`` on one fold: the frozen body (eval mode) turns every sample,
    standardized with the training part's statistics, into features once; the head then
    trains on those cached features as they are (``fit_fold`` on a features data set,
    without a second standardization: the network stays one function of its input, the same
    as ``fine_tune`` with ``trainable_blocks: 0`` computes it every step). The row's
    ``feature_seconds`` is the body's share of ``seconds``."""
    start = time.perf_counter()
    body, head = head_of(prepared.model)
    scaler = Standardizer.fit(data.x[torch.as_tensor(train_idx)])
    feats = body_features(body, scaler(data.x), device)
    features = Dataset(feats, data.y, data.name, data.num_classes, list(data.class_names),
                       data.groups)
    spent = time.perf_counter() - start
    result = fit_fold(head, features, train_idx, val_idx, training=training, seed=seed,
                      device=device, fold=fold, hooks=hooks, test_idx=test_idx, n_used=n_used,
                      placement="device", standardize=False)
    result.row["feature_seconds"] = spent
    result.row["seconds"] = float(result.row["seconds"]) + spent
    return result


def cross_validate_transfer(
    arch: ArchConfig | None,
    data: Dataset,
    transfer: TransferConfig,
    *,
    folds: int = 5,
    epochs: int | None = None,
    seed: int = 0,
    training: TrainConfig | None = None,
    on_fold: FoldCallback | None = None,
    hooks: Sequence[TrainHook] = (),
    cv: CVConfig | Splits | None = None,
    train_fraction: float = 1.0,
    source_model: SourceModel | None = None,
    source: str = "the study",
) -> CVResult:
    """``cross_validate`` for a transfer candidate: every fold starts from the checkpoint
    (``scratch``: from a fresh initialization of the same architecture), with the mode's
    frozen parts and learning-rate groups. ``arch`` None: the checkpoint's own architecture
    (a nasdepth model file). The data is adapted to the checkpoint's input shape as
    ``transfer.adapt`` says (for every mode, so that all modes see the same inputs).
    ``train_fraction`` < 1 trains each fold on a stratified seeded subset of its training
    part (a learning curve); validation parts stay whole. ``settings["transfer"]`` records
    the settings, the frozen units and the adaptations."""
    training = (training or TrainConfig()).validate().with_epochs(epochs)
    transfer.validate(source)
    src = source_model
    if src is None and transfer.weights is not None:
        src = read_source(transfer.weights)
    if arch is None:
        if src is None or src.arch is None:
            raise ConfigError(source, "transfer.weights", transfer.weights,
                              "a nasdepth model file (it names its architecture) when no "
                              "architecture is given")
        arch = src.arch
    notes: list[str] = []
    if src is not None:
        data, notes = adapt_data(data, src, transfer.adapt, source)
    if transfer.mode == "feature_extraction" and needs_new_stem(transfer, src,
                                                                tuple(data.input_shape)):
        raise ConfigError(source, "transfer.adapt.channels", "new_stem",
                          "repeat with mode feature_extraction (its body's features are "
                          "computed once: a new stem convolution would never train), or mode "
                          "fine_tune")
    if transfer.mode == "feature_extraction" and training.augment.enabled:
        raise ConfigError(source, "training.augment", training.augment.to_dict(),
                          "off with transfer mode feature_extraction (its features are "
                          "computed once per fold; augment with mode fine_tune)")
    resolved = resolve_cv(cv, data, folds=folds, seed=seed, source=source)
    if training.threads:
        configure_threads(threads=training.threads)
    device = resolve_device(training.device)
    training.augment.check_input(data.input_shape, source)
    splits = list(resolved.folds)
    y = data.y_numpy
    seeds = [seed * 1000 + k for k in range(len(splits))]
    if train_fraction < 1:
        splits = [(subsample(tr, y, train_fraction, seeds[k]), va)
                  for k, (tr, va) in enumerate(splits)]
    sizes = [len(tr) for tr, _ in splits]
    n_used = min(sizes) if max(sizes) - min(sizes) <= 1 else None
    placement = resolve_placement(training.data_placement, data, device, max(sizes),
                                  max(len(va) for _, va in splits), len(resolved.test))
    probe = prepare_model(arch, data.input_shape, data.num_classes, transfer, src)
    params = count_parameters(probe.model)  # the trainable ones
    results: list[FoldResult] = []
    unfrozen: list[dict[str, object]] = []
    try:
        for k, (tr, va) in enumerate(splits):
            torch.manual_seed(seeds[k])  # the fold's fresh parts (head, new stem, scratch)
            prepared = prepare_model(arch, data.input_shape, data.num_classes, transfer, src)
            if transfer.mode == "feature_extraction":
                result = fit_fold_features(prepared, data, tr, va, training=training,
                                           seed=seeds[k], device=device, fold=k, hooks=hooks,
                                           test_idx=resolved.test, n_used=n_used)
            else:
                on_epoch, unfrozen = prepared.unfreezer(transfer.unfreeze_every)
                result = fit_fold(prepared.model, data, tr, va, training=training,
                                  seed=seeds[k], device=device, fold=k, hooks=hooks,
                                  test_idx=resolved.test, n_used=n_used, placement=placement,
                                  lr_groups=prepared.lr_groups, on_epoch=on_epoch)
            result.row["params"] = params
            result.row["mode"] = transfer.mode
            results.append(result)
            if on_fold is not None:
                on_fold(k, result.row)
    except OOM_ERRORS as exc:
        raise out_of_memory(exc, device, training, params, "while cross-validating") from None
    if not results:
        raise ConfigError(source, "folds", resolved.cv.folds, "a split that leaves training data")
    return CVResult(
        folds=pd.DataFrame([r.row for r in results]),
        history=pd.DataFrame([h for r in results for h in r.history]),
        arch=arch,
        data=data.to_dict(),
        settings={"folds": resolved.n_splits, "seed": seed, "cv": resolved.cv.to_dict(),
                  "splits": resolved.to_dict(), "training": training.to_dict(),
                  "device": str(device), "parallel": False, "data_placement": placement,
                  "n_test": int(len(resolved.test)), "lr_find": None,
                  "transfer": {**transfer.to_dict(), "frozen": probe.frozen,
                               "fresh": probe.fresh, "adapted": notes,
                               "train_fraction": train_fraction, "unfrozen": unfrozen,
                               "n_blocks": len(probe.model.blocks)}},
        traces=[t for r in results for t in r.traces],
    )


