"""Checks that run once before the first trial, so that a setting no trial can train under ends
the run with one message instead of a budget of failed trials.

They are the checks ``cross_validate`` makes at its start, run on the study's own data and
settings: the device exists, augmentation suits the input rank, the held-out test part and the
folds are possible for the class counts (and groups). Anything that depends on the candidate
(its shape, its memory) is still checked per trial.
"""

from __future__ import annotations

from nasdepth.data import Dataset
from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.study.study_file import StudyConfig
from nasdepth.train.device import DEVICES, resolve_device


def preflight(cfg: StudyConfig, data: Dataset) -> None:
    """Raise a :class:`NasdepthError` naming the study file and key for the first setting no
    trial of ``cfg`` could train under."""
    source = str(cfg.path)
    device = cfg.training.device
    base = device.split(":")[0] if isinstance(device, str) else device
    if base not in DEVICES:
        raise ConfigError(source, "training.device", device,
                          "one of auto, cpu, cuda, cuda:N, mps")
    try:
        resolve_device(device)
    except (NasdepthError, RuntimeError, AssertionError) as exc:  # torch: a bad cuda:N index
        detail = "" if isinstance(exc, NasdepthError) else f" ({exc})"
        raise ConfigError(source, "training.device", device,
                          "a device this machine has (auto picks cuda, then mps, then cpu)"
                          + detail) from None
    try:
        import torch

        if base == "cuda" and ":" in device and int(device.split(":")[1]) >= \
                torch.cuda.device_count():
            raise ConfigError(source, "training.device", device,
                              f"a device this machine has ({torch.cuda.device_count()} CUDA "
                              "devices, numbered from 0)")
    except ValueError as exc:
        if isinstance(exc, NasdepthError):
            raise
        raise ConfigError(source, "training.device", device, "cuda or cuda:N") from None
    cfg.training.augment.check_input(data.input_shape, source)
    cfg.cv.resolve(data, source)  # the same splits every trial trains on
