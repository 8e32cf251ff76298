"""A study's candidates: the :class:`~nasdepth.train.candidate.Candidate` a trial samples
(the space's architecture, the ``tasks:`` settings, the ``transfer:`` settings, composed), and
the candidate a stored trial trained (its record's ``candidate`` field, or the fields of
records written before it: ``multitask``, ``transfer``, ``arch``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nasdepth.arch import ArchConfig
from nasdepth.arch.multitask import MultitaskConfig
from nasdepth.data import Dataset
from nasdepth.errors import NasdepthError
from nasdepth.study.multitask import multitask_config
from nasdepth.study.record import TrialRecord
from nasdepth.study.study_file import StudyConfig
from nasdepth.study.tasks_file import SEARCHED
from nasdepth.study.transfer import PREFIX
from nasdepth.train.candidate import (
    Candidate,
    MultitaskCandidate,
    SingleTaskCandidate,
    TransferCandidate,
    candidate_from_dict,
)
from nasdepth.train.transfer import TransferConfig


def suggest_candidate(cfg: StudyConfig, trial: Any, data: Dataset,
                      tasks: Sequence[str] = ()) -> Candidate:
    """The trial's candidate: an architecture from the space (or the checkpoint's), one head
    per task where the study has ``tasks:``, started from the checkpoint where it has
    ``transfer:``; at its own input resolution where the space scales it (``scaling:``).
    ``data``: the study's data as the checkpoint takes it."""
    arch: ArchConfig = cfg.space.suggest(trial)
    transfer = None
    if cfg.transfer is not None:  # the mode, blocks and rate factor; the file's architecture
        transfer = cfg.transfer.suggest(trial)
        arch = cfg.transfer.architecture(data) or arch
    inner: Candidate = SingleTaskCandidate(arch, cfg.space.resolution(trial.params))
    if cfg.tasks is not None:
        inner = MultitaskCandidate(multitask_config(cfg.tasks, tasks, arch, trial))
    if transfer is None or cfg.transfer is None:
        return inner
    return TransferCandidate(inner, transfer, cfg.transfer.source)


def recipe_params(cfg: StudyConfig, params: dict[str, Any]) -> dict[str, Any]:
    """The sampled parameters that are the space's (its architecture and recipe), without
    the ``transfer.*`` and the tasks' own (``branch_at`` ...)."""
    task_keys = SEARCHED if cfg.tasks is not None else ()
    return {k: v for k, v in params.items() if not k.startswith(PREFIX) and k not in task_keys}


def candidate_of_record(record: TrialRecord, source: str) -> Candidate:
    """The candidate a stored trial trained: its ``candidate`` field, or for records written
    before it (version <= 4) the ``multitask``, ``transfer`` and ``arch`` fields."""
    where = f"{source}, trial {record.number}"
    if isinstance(record.candidate, dict):
        return candidate_from_dict(record.candidate, where)
    if not record.arch:
        raise NasdepthError(f"Trial {record.number} of {source} recorded no architecture.")
    inner: Candidate = SingleTaskCandidate(ArchConfig.from_dict(record.arch, where))
    if isinstance(record.multitask, dict) and "config" in record.multitask:
        inner = MultitaskCandidate(MultitaskConfig.from_dict(record.multitask["config"], where))
    if record.transfer:
        return TransferCandidate(inner, TransferConfig.from_record(record.transfer, where))
    return inner
