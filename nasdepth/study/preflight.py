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
    check_device(cfg.training.device, source, "training.device")
    cfg.training.augment.check_input(data.input_shape, source)
    cfg.cv.resolve(data, source)  # the same splits every trial trains on
    check_blocks_fit(cfg, data)
    check_transfer_fits(cfg, data)


def check_transfer_fits(cfg: StudyConfig, data: Dataset) -> None:
    """A transfer study whose architecture is fixed (a ``preset:`` for a state_dict) loads its
    checkpoint into that network once here: a checkpoint of another network is one message
    before the first trial, not the same failure in every trial."""
    section = cfg.transfer
    if section is None or section.preset is None or section.source.arch is not None:
        return
    from nasdepth.arch import build_model, load_weights

    adapted, _ = section.adapt_data(data, str(cfg.path))
    arch = section.architecture(adapted)
    if arch is None:
        return
    try:
        load_weights(build_model(arch, adapted.input_shape, adapted.num_classes),
                     section.weights)
    except (NasdepthError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:300].rstrip(".")
        raise ConfigError(str(cfg.path), "transfer.preset", section.preset,
                          f"the network the checkpoint {section.spelled or section.weights} "
                          f"holds ({reason})") from None


def check_blocks_fit(cfg: StudyConfig, data: Dataset) -> None:
    """Every block the space can sample runs on the data's input rank (a recurrent block on
    images, a convolution on flat features): refused once here, not failed in every trial."""
    from nasdepth.arch.config import StageConfig
    from nasdepth.arch.rules import BLOCK_RULES, check_block

    if cfg.transfer is not None and cfg.transfer.arch is not None:
        return  # the checkpoint's architecture, not the space's, is trained
    rank = len(data.input_shape) - 1
    for p, block in [(q, b) for q in cfg.space.params if q.name == "block"
                     for b in q.values() or []]:
        rules = BLOCK_RULES.get(block)
        if rules is None or (rank in rules.ranks and not (rules.conv_only and rank == 0)):
            continue  # fits (unknown names: reported by the space already)
        try:  # the block's own words for what fits instead
            check_block(block, StageConfig(block=block, depth=1, width=8), width=8, stride=1,
                        rank=rank)
        except ConfigError as exc:
            raise ConfigError(cfg.space.source, p.key, block,
                              f"{exc.allowed}; the data {data.name} has samples shaped "
                              f"{tuple(data.input_shape)}") from None


def check_device(device: object, source: str, key: str) -> None:
    """``device`` exists on this machine; the message names ``source`` and ``key`` (the study
    file's ``training.device``, or ``--device`` on the command line where the flag gave it)."""
    base = device.split(":")[0] if isinstance(device, str) else device
    if not isinstance(device, str) or base not in DEVICES:
        raise ConfigError(source, key, device, "one of auto, cpu, cuda, cuda:N, mps")
    try:
        resolve_device(device)
    except (NasdepthError, RuntimeError, AssertionError) as exc:  # torch: a bad cuda:N index
        detail = "" if isinstance(exc, NasdepthError) else f" ({exc})"
        raise ConfigError(source, key, device,
                          "a device this machine has (auto picks cuda, then mps, then cpu)"
                          + detail) from None
    if base == "cuda" and ":" in device:
        import torch

        try:
            index = int(device.split(":")[1])
        except ValueError:
            raise ConfigError(source, key, device, "cuda or cuda:N") from None
        if index >= torch.cuda.device_count():
            raise ConfigError(source, key, device,
                              f"a device this machine has ({torch.cuda.device_count()} CUDA "
                              "devices, numbered from 0)")
