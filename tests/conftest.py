"""Shared fixtures: tiny real studies on scikit-learn's digits, written into a temp folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml

os.environ.setdefault("MPLBACKEND", "Agg")
# stacked MLP folds in fp32 on every machine: the tests that compare them with folds trained
# one by one compare fp32 with fp32; tests/test_precision.py sets the bf16 answer itself
os.environ.setdefault("NASDEPTH_CPU_BF16_STACKED", "0")
os.environ.setdefault("NASDEPTH_CPU_GROUPED", "0")
torch.set_num_threads(1)

TINY_SPACE = {
    "name": "tiny",
    "stages": 1,
    "depth": {"type": "int", "low": 1, "high": 2},
    "width": 8,
    "block": {"type": "categorical", "choices": ["plain", "residual"]},
    "skip": {"type": "categorical", "choices": [True, False]},
}


def write_study(folder: Path, *, name: str = "tiny", space: dict | None = None,
                **overrides: object) -> Path:
    """Write a study YAML (and its space file) into ``folder``; returns the study path."""
    (folder / "search_spaces").mkdir(exist_ok=True)
    (folder / "studies").mkdir(exist_ok=True)
    space_path = folder / "search_spaces" / f"{name}.yaml"
    space_path.write_text(yaml.safe_dump(space or TINY_SPACE, sort_keys=False))
    study = {
        "name": name,
        "data": "sklearn:digits",
        "space": f"search_spaces/{name}.yaml",
        "cv": {"folds": 2},
        "training": {"epochs": 2, "batch_size": 64, "lr": 0.01},
        "budget": {"trials": 2},
        "seed": 0,
        **overrides,
    }
    path = folder / "studies" / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


@pytest.fixture
def tiny_study(tmp_path: Path) -> Path:
    return write_study(tmp_path)
