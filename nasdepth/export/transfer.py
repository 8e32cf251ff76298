"""Refitting a transfer trial: the trial's checkpoint, mode and frozen blocks again, on every
sample outside the held-out test part. The exported file takes inputs of the shape the trial
trained on (after its recorded ``adapt``: repeated channels, resized samples), and its
standardization is that of those inputs; the frozen parts are saved as loaded."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from nasdepth.arch import ArchConfig
from nasdepth.arch.adapt import read_source
from nasdepth.data import Dataset
from nasdepth.errors import ConfigError
from nasdepth.export.monitor import monitor_rows
from nasdepth.study.record import TrialRecord
from nasdepth.train import TrainConfig, fit_fold
from nasdepth.train.stream import fit_standardizer
from nasdepth.train.transfer import TransferConfig, adapt_data, prepare_model
from nasdepth.train.transfer_cv import fit_fold_features


def transfer_of(record: TrialRecord, data: Dataset, source: str, ensemble: bool
                ) -> tuple[TransferConfig | None, Dataset]:
    """The trial's transfer settings (None for a trial without) and the data adapted as the
    trial's was."""
    if not record.transfer:
        return None, data
    transfer = TransferConfig.from_record(record.transfer, source)
    if ensemble:
        raise ConfigError(source, "--ensemble", True,
                          "off for a transfer trial (it is refitted once from its checkpoint)")
    if transfer.weights is None:
        return transfer, data
    adapted, _ = adapt_data(data, read_source(transfer.weights), transfer.adapt, source)
    return transfer, adapted


def refit_transfer(arch: ArchConfig, data: Dataset, cv_idx: np.ndarray, test_idx: np.ndarray,
                   training: TrainConfig, seed: int, device: torch.device,
                   transfer: TransferConfig
                   ) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """``refit._refit`` for a transfer trial: the same monitor rows, the same outputs."""
    monitor = monitor_rows(cv_idx, test_idx, seed)
    src = read_source(transfer.weights) if transfer.weights else None
    torch.manual_seed(seed)
    prepared = prepare_model(arch, data.input_shape, data.num_classes, transfer, src)
    if transfer.mode == "feature_extraction":
        result = fit_fold_features(prepared, data, cv_idx, monitor, training=training,
                                   seed=seed, device=device)
    else:
        result = fit_fold(prepared.model, data, cv_idx, monitor, training=training, seed=seed,
                          device=device, lr_groups=prepared.lr_groups)
    model = prepared.model
    model.requires_grad_(True)  # a saved model is whole; its frozen parts are as loaded
    scaler = fit_standardizer(data.x, cv_idx, device)
    info = {"monitor": "test" if len(test_idx) else f"{len(monitor)} training rows",
            "history": [{k: h[k] for k in ("epoch", "train_loss", "train_accuracy",
                                          "val_loss", "val_accuracy")}
                        for h in result.history],
            "train_accuracy": result.row.get("train_accuracy"),
            "seconds": result.row.get("seconds"), "transfer": record_of(transfer, prepared)}
    return model, (scaler.mean, scaler.std), info


def record_of(transfer: TransferConfig, prepared: Any) -> dict[str, Any]:
    return {**transfer.to_dict(), "frozen": list(prepared.frozen)}
