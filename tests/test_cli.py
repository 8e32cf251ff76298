"""The CLI end to end on a tiny real study, and its answers to bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from nasdepth.cli import main
from tests.conftest import TINY_SPACE, write_study


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasdepth", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_run_end_to_end_writes_report(tmp_path: Path) -> None:
    study = write_study(tmp_path)
    out = tmp_path / "rep"
    proc = run_cli("run", str(study), "--trials", "2", "--out", str(out), "--no-progress",
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Top trials" in proc.stdout and str(out / "index.html") in proc.stdout
    assert (out / "report.md").read_text().startswith("# Study `tiny`")
    assert (out / "depth.png").stat().st_size > 1000
    trials = pd.read_csv(out / "trials.csv")
    for col in ("trial", "state", "depth", "width", "block", "skip", "params", "cv_mean",
                "cv_std"):
        assert col in trials.columns
    assert len(trials) == 2 and (trials["state"] == "COMPLETE").all()
    assert trials["cv_mean"].between(0.3, 1.0).all()
    # where the run's time went: the probes, diagnosis and report beside the training
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("Time: "))
    assert "training" in line and "probes" in line and "report" in line
    assert line.endswith("% of the run.")


def _one_clear_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_missing_study_file(tmp_path: Path) -> None:
    line = _one_clear_line(run_cli("run", "studies/nope.yaml", cwd=tmp_path))
    assert "studies/nope.yaml" in line and "does not exist" in line


def test_unknown_block_in_space(tmp_path: Path) -> None:
    space = {**TINY_SPACE, "block": {"type": "categorical", "choices": ["plain", "residul"]}}
    study = write_study(tmp_path, space=space)
    line = _one_clear_line(run_cli("run", str(study), cwd=tmp_path))
    assert "search_spaces/tiny.yaml" in line and "'block'" in line and "'residul'" in line
    assert "plain" in line and "Did you mean 'residual'?" in line


def test_folds_one(tmp_path: Path) -> None:
    study = write_study(tmp_path, cv={"folds": 1})
    line = _one_clear_line(run_cli("run", str(study), cwd=tmp_path))
    assert line.endswith(f"The 'folds' value in {study} must be an int >= 2. Got 1.")


def test_main_returns_2_in_process(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    study = write_study(tmp_path, training={"epochs": 0})
    assert main(["run", str(study)]) == 2
    assert "'epochs'" in capsys.readouterr().err
    assert yaml.safe_load(study.read_text())["training"]["epochs"] == 0


def test_the_summary_shows_the_searched_recipe(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """The "Top trials" table beside the architecture columns: what else was searched (here
    the learning rate), so the best row says how to reproduce it."""
    space = {**TINY_SPACE, "lr": {"type": "categorical", "choices": [0.003, 0.03]}}
    study = write_study(tmp_path, space=space, training={"epochs": 2, "batch_size": 64})
    assert main(["run", str(study), "--trials", "2", "--no-progress", "--no-report"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.strip().startswith("trial"))
    assert header.split()[:2] == ["trial", "depth"] and "lr" in header.split()
    assert "0.003" in out or "0.03" in out
