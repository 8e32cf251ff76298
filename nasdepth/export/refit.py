"""``export_model``: refit a trial's architecture and recipe on all non-test data (or keep
its k fold models), score it on the held-out test part, and save one model file.

The held-out test part is set aside exactly as the study's CV did (same ``cv`` settings, same
seed), so the test score of the exported model is as honest as the report's: no sample of it
ever trained a fold or the refit.
"""

from __future__ import annotations

import copy
import datetime as _dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import torch
from torch import nn

from nasdepth.arch import count_parameters
from nasdepth.data import CVConfig, Dataset, Splits, load_data
from nasdepth.errors import ConfigError
from nasdepth.export.model import ExportedModel, save_model, standardization_dict
from nasdepth.export.monitor import monitor_rows
from nasdepth.export.trial import (
    StudySettings,
    cv_scores,
    pick_trial,
    refit_epochs,
    trial_candidate,
    trial_record,
)
from nasdepth.study.measure import versions
from nasdepth.study.record import TrialRecord
from nasdepth.study.runner import load_stored_study
from nasdepth.study.study_file import StudyConfig, load_study
from nasdepth.train import (
    TrainConfig,
    TrainHook,
    cross_validate,
    fit_fold,
    records,
    resolve_device,
)
from nasdepth.train.candidate import Candidate, TransferCandidate
from nasdepth.train.device import configure_threads
from nasdepth.train.metrics import classification_metrics
from nasdepth.train.progress import epoch_progress
from nasdepth.train.stacked import own_tensors
from nasdepth.train.stream import fit_standardizer

log = logging.getLogger("nasdepth.export")

Say = Callable[[str], None]


@dataclass
class ExportResult:
    """Where the model went and what it scored (``metadata`` is what the file holds)."""

    path: Path
    metadata: dict[str, Any]
    model: ExportedModel
    fold_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def test_scores(self) -> dict[str, float] | None:
        return self.metadata["scores"].get("test")

    @property
    def cv_mean(self) -> float:
        return float(self.metadata["scores"]["cv"][self.metadata["objective"]]["mean"])


class _KeepModels(TrainHook):
    """Keeps each fold's trained model (``on_fit_end``), with tensors of its own: folds trained
    together hand over models whose tensors are views of the folds' stacked ones."""

    def __init__(self) -> None:
        self.models: dict[int, nn.Module] = {}

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        self.models[fold] = own_tensors(copy.deepcopy(model))
        return None


def split_indices(data: Dataset, cv: CVConfig, source: str
                  ) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """The study's CV splits and held-out test index on ``data``: the one resolution
    (:meth:`CVConfig.resolve`) that ``cross_validate``, the baselines and the controls use."""
    splits = cv.resolve(data, source)
    return list(splits.folds), splits.test


def trial_splits(record: TrialRecord, settings: StudySettings, data: Dataset) -> Splits:
    """The splits the trial trained on: its recorded ones, checked against ``data`` by their
    digest (data that changed since the study are refused, since the test part would no
    longer be held out), else the study's CV resolved on ``data``."""
    if record.splits:
        return Splits.from_dict(record.splits, data,
                                f"{settings.source}, trial {record.number} (its splits)")
    return settings.cv.resolve(data, settings.source)


def _resolve(study: optuna.Study | StudyConfig | str | Path, storage: str | None
             ) -> tuple[optuna.Study, StudySettings, str | None]:
    if isinstance(study, optuna.Study):
        return study, StudySettings.of(study), None
    cfg = study if isinstance(study, StudyConfig) else load_study(study)
    st = load_stored_study(cfg, storage)  # default: the file's own storage
    return st, StudySettings.of(st, cfg), str(cfg.path if study is cfg else study)


def refit(candidate: Candidate, data: Dataset, cv_idx: np.ndarray, test_idx: np.ndarray,
          training: TrainConfig, seed: int, device: torch.device,
          hooks: Sequence[TrainHook] = ()
          ) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """One fresh network of ``candidate`` trained on ``cv_idx`` exactly as a CV fold trains
    it (``Candidate.fold``: its checkpoint, frozen parts, learning-rate groups and unfreezing
    schedule; ``fit_fold``: the recipe); the per-epoch history scores the test part (no
    decision depends on it: patience is off) or a seeded sample of the training rows.
    ``data``: as the candidate takes it (``candidate.prepare``); ``hooks`` see the training
    (a progress bar)."""
    monitor = monitor_rows(cv_idx, test_idx, seed)
    fm = candidate.fold(data, cv_idx, seed, device)
    result = fit_fold(fm.model, fm.data, cv_idx, monitor, training=training, seed=seed,
                      device=device, hooks=hooks, options=fm.options)
    model = fm.whole if fm.whole is not None else fm.model
    model.requires_grad_(True)  # a saved model is whole; its frozen parts are as loaded
    scaler = fit_standardizer(data.x, cv_idx, device)  # what the fold fitted: same rows
    info = {"monitor": "test" if len(test_idx) else f"{len(monitor)} training rows",
            "history": [{k: h[k] for k in ("epoch", "train_loss", "train_accuracy",
                                          "val_loss", "val_accuracy")}
                        for h in result.history],
            "train_accuracy": result.row.get("train_accuracy"),
            "seconds": result.row.get("seconds")}
    if isinstance(candidate, TransferCandidate):
        info["transfer"] = {**candidate.transfer.to_dict(), **{
            k: fm.notes.get(k) for k in ("frozen", "unfrozen")}}
    return model, (scaler.mean, scaler.std), info


def export_model(
    study: optuna.Study | StudyConfig | str | Path,
    trial: int | str = "best",
    path: str | Path = "model.pt",
    *,
    ensemble: bool = False,
    storage: str | None = None,
    device: str | None = None,
    data: Dataset | None = None,
    say: Say | None = None,
    progress: bool = False,
) -> ExportResult:
    """Refit trial ``trial`` (``best`` or a number) of ``study`` and save it to ``path`` (on
    which rows, with which recipe and for how many epochs: ``docs/export.md``).

    ``study``: a study file path, a :class:`StudyConfig` or an ``optuna.Study`` (settings from
    its stored config). ``ensemble=True`` instead retrains the k fold models exactly as the CV
    did and keeps them all; the saved model averages their probabilities. ``device``
    overrides the recipe's. ``data``: the study's data, already loaded. ``say`` receives
    progress lines; ``progress`` shows a bar over the epochs (on a terminal).
    """
    say = say or log.info
    st, settings, study_file = _resolve(study, storage)
    frozen = pick_trial(st, trial, settings.maximize)
    record = trial_record(frozen)
    source = settings.source
    candidate = trial_candidate(record, source)
    arch = candidate.arch
    # the recipe the trial was cross-validated with: its own (sampled recipe parameters
    # applied) where recorded, else the study's
    training = (TrainConfig.from_dict(record.training, f"{source}, trial {record.number}")
                if record.training else settings.training)
    if device is not None:
        training = replace(training, device=device).validate(source)
    if training.threads:
        configure_threads(threads=training.threads)
    dev = resolve_device(training.device)
    if data is None:
        data = load_data(settings.data, source=source)
    if ensemble and isinstance(candidate, TransferCandidate):
        raise ConfigError(source, "--ensemble", True,
                          "off for a transfer trial (it is refitted once from its checkpoint)")
    data = candidate.prepare(data, source)  # adapted as the trial's
    resolved = trial_splits(record, settings, data)
    splits, test_idx = list(resolved.folds), resolved.test
    cv_idx = np.setdiff1d(np.arange(len(data)), test_idx)  # every sample not held out
    scores = cv_scores(record)
    objective = settings.objective
    shape = ", ".join(f"{k} {v}" for k, v in arch.summary().items()
                      if k in ("depth", "width", "block", "skip"))
    say(f"Trial {record.number} of '{settings.name}' ({shape}): CV {objective} "
        f"{scores.get(objective, {}).get('mean', float('nan')):.4f} over {scores['folds']} "
        f"folds.")
    fold_rows: list[dict[str, Any]] = []
    how: dict[str, Any]
    if ensemble:
        say(f"Retraining the {len(splits)} fold models on {dev} ...")
        keep = _KeepModels()
        with epoch_progress(progress, len(splits), training.epochs, "fold models") as bar:
            result = cross_validate(candidate, data, cv=resolved, seed=settings.cv_seed,
                                    training=training, hooks=[keep, *bar],
                                    # the engine the CV ran (records before version 6: the
                                    # folds one after another, as exports then retrained them)
                                    parallel="on" if record.parallel else "off",
                                    source=source)
        members = [keep.models[k].eval() for k in range(len(splits))]
        scalers = [fit_standardizer(data.x, tr, dev) for tr, _ in splits]
        standardizations = [(s.mean, s.std) for s in scalers]
        fold_rows = records(result.folds)
        how = {"kind": "ensemble", "members": len(members), "epochs": training.epochs,
                 "epochs_rule": "each fold as in the CV (its own early stopping)",
                 "seeds": [settings.cv_seed * 1000 + k for k in range(len(splits))],
                 "fold_epochs": [int(r["epochs"]) for r in fold_rows],
                 "n_train": [int(len(tr)) for tr, _ in splits]}
        used = training
    else:
        epochs, rule = refit_epochs(record, training)
        # a fixed epoch count and no early stopping: nothing is held out
        used = replace(training, epochs=epochs, patience=0).validate()
        seed = settings.cv_seed * 1000 + len(splits)  # next to the fold seeds, distinct
        say(f"Refitting on {len(cv_idx)} samples (all but the {len(test_idx)} held out) for "
            f"{epochs} epochs ({rule}) on {dev} ...")
        with epoch_progress(progress, 1, epochs, "refit") as bar:
            model, std, info = refit(candidate, data, cv_idx, test_idx, used, seed, dev, bar)
        members, standardizations = [model.eval()], [std]
        how = {"kind": "refit", "members": 1, "epochs": epochs, "epochs_rule": rule,
                 "seed": seed, "n_train": int(len(cv_idx)), **info}
    meta: dict[str, Any] = {
        "study": settings.name, "study_file": study_file, "trial": record.number,
        "objective": objective, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(
            timespec="seconds"),
        "arch": arch.to_dict(), "arch_summary": arch.summary(),
        "params": count_parameters(members[0]),
        "training": used.to_dict(), "refit": how,
        "input_shape": list(data.input_shape), "class_names": list(data.class_names),
        # a scaled trial's input side: the model resizes inputs of the data's own size to it
        "resolution": getattr(candidate, "resolution", None),
        "num_classes": data.num_classes, "data": settings.data, "data_info": data.to_dict(),
        "cv": resolved.cv.to_dict(), "cv_seed": settings.cv_seed,
        "splits": resolved.to_dict(),
        "n_test": int(len(test_idx)), "versions": versions(),
        "scores": {"cv": scores, "cv_folds": record.cv_folds},
    }
    # what is saved is what is scored: the model as it loads (contiguous weights: channels-last
    # training leaves conv weights in another layout, which rounds differently), its
    # standardization included
    members = [m.to(memory_format=torch.contiguous_format) for m in members]
    means, stds = zip(*standardizations, strict=True)
    exported = ExportedModel(members, means, stds, meta).to(dev).eval()
    meta["preprocessing"] = [standardization_dict(m, s) for m, s in standardizations]
    if len(test_idx):
        proba = exported.predict_proba(data.x[torch.as_tensor(test_idx)]).cpu().numpy()
        meta["scores"]["test"] = classification_metrics(data.y_numpy[test_idx], proba,
                                                        data.num_classes)
    if fold_rows:
        meta["scores"]["ensemble_folds"] = fold_rows
    out = save_model(path, members, standardizations, meta)
    return ExportResult(path=out, metadata=meta, model=exported, fold_rows=fold_rows)


__all__ = ["ExportResult", "export_model", "refit", "split_indices"]
