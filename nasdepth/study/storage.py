"""Storages: a journal file by default (safe for several local processes), any Optuna URL."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend


def make_storage(url: str) -> optuna.storages.BaseStorage:
    """``path/to/file.journal`` (or any path without ``://``) -> journal file storage;
    ``sqlite:///``, ``postgresql://``, ``mysql://`` -> RDB storage."""
    if "://" not in url:
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    return optuna.storages.RDBStorage(url)
