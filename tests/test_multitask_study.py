"""Multitask studies: the ``tasks:`` section, the objective (mean, one task, all tasks), the
records, the single-task baselines after the search, the report's section, and bad input at
the command line (exit 2, one line, the closest task name)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nasdepth.errors import NasdepthError
from nasdepth.study.record import TrialRecord
from nasdepth.study.study_file import load_study, study_from_dict

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "studies" / "digits_multitask.yaml"
SPACE = {"name": "mt", "input_shape": [64], "stages": 1, "depth": 2, "width": 32,
         "block": "plain"}


def _study(tmp_path: Path, **tasks: object) -> Path:
    raw = {"name": "mt", "data": {"source": "sklearn:digits", "limit": 300,
                                  "derive": {"digit": "label", "parity": "parity"}},
           "space": SPACE, "cv": {"folds": 2}, "training": {"epochs": 2, "batch_size": 32},
           "budget": {"trials": 2}, "seed": 0, "tasks": {"branch_at": [0, 1, 2], **tasks}}
    path = tmp_path / "mt.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_tasks_section_sets_the_objectives(tmp_path: Path) -> None:
    assert load_study(_study(tmp_path)).objectives == ("val_accuracy",)
    one = load_study(_study(tmp_path, objective="parity", names=["digit", "parity"]))
    assert one.objectives == ("parity.val_accuracy",) and one.directions == ["maximize"]
    both = load_study(_study(tmp_path, objective="all", names=["digit", "parity"],
                             metric="val_log_loss"))
    assert both.objectives == ("digit.val_log_loss", "parity.val_log_loss")
    assert both.directions == ["minimize", "minimize"]
    with pytest.raises(NasdepthError, match="Did you mean 'parity'"):
        load_study(_study(tmp_path, objective="parrity", names=["digit", "parity"]))
    with pytest.raises(NasdepthError, match="tasks.names"):
        load_study(_study(tmp_path, objective="all"))
    with pytest.raises(NasdepthError, match="Did you mean 'uncertainty'"):
        load_study(_study(tmp_path, weighting="uncertanty"))
    raw = yaml.safe_load(_study(tmp_path).read_text())
    raw["enqueue"] = [{"branch_at": 0}]  # the tasks' own parameters can be enqueued
    assert study_from_dict(raw, tmp_path / "mt.yaml").enqueue == ({"branch_at": 0},)
    raw["tasks"]["branch_at"] = {"low": 2, "high": 1}
    with pytest.raises(NasdepthError, match="tasks.branch_at"):
        study_from_dict(raw, tmp_path / "mt.yaml")
    raw = yaml.safe_load(_study(tmp_path).read_text())
    raw["transfer"] = {"weights": "model.pt", "mode": "fine_tune"}
    # tasks: and transfer: combine: the transfer section is checked as in any study
    with pytest.raises(NasdepthError, match="'transfer.weights'.*existing local file"):
        study_from_dict(raw, tmp_path / "mt.yaml")


def test_multitask_study_records_tasks_and_baselines(tmp_path: Path) -> None:
    from nasdepth.report.content import build_report
    from nasdepth.report.tables import collect
    from nasdepth.study.record import read_record
    from nasdepth.study.runner import run_worker

    cfg = load_study(_study(tmp_path, objective="all", names=["digit", "parity"]))
    st = run_worker(cfg, progress=False)
    recs = [read_record(t) for t in st.trials]
    assert all(r.state == "complete" for r in recs), [r.reason for r in recs]
    for r, t in zip(recs, st.trials, strict=True):
        mt = r.multitask
        assert isinstance(mt, dict) and mt["tasks"] == ["digit", "parity"]
        assert mt["branch_at"] == t.params["branch_at"]
        assert set(mt["diagnosis"]["tasks"]) == {"digit", "parity"}
        assert len(t.values) == 2  # Pareto over the two tasks
        assert "parity.val_accuracy" in r.cv_folds[0]
    base = st.user_attrs["multitask_baselines"]
    assert {(row["task"], row["mode"]) for row in base["folds"]} == {
        ("digit", "multitask"), ("digit", "single"), ("parity", "multitask"),
        ("parity", "single")}
    report = build_report(st, collect(st), None)
    section = next(s for s in report.sections if s.title == "Multitask")
    assert section.blocks  # tables of sharing and branch_at


def test_epoch_pruning_reads_the_objectives_task(tmp_path: Path) -> None:
    from nasdepth.study.objective import epoch_key

    assert epoch_key("parity.val_accuracy") == "parity.val_accuracy"
    assert epoch_key("parity.val_log_loss") == "parity.val_loss"
    assert epoch_key("val_accuracy") == "val_accuracy"


def test_old_records_load_without_multitask() -> None:
    old = TrialRecord(number=3).to_dict()
    old.pop("multitask")
    old["version"] = 3
    rec = TrialRecord.from_dict(old)
    assert rec.multitask is None and rec.version == 3 and not rec.extras


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nasdepth", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_cli_unknown_task_name_exits_2(tmp_path: Path) -> None:
    path = _study(tmp_path, names=["digit", "parrity"])
    line = _one_line(_run("run", str(path), "--no-progress", cwd=tmp_path))
    assert "tasks.names" in line and "'parrity'" in line and "Did you mean 'parity'?" in line


def test_cli_labels_of_the_wrong_length_exit_2(tmp_path: Path) -> None:
    import numpy as np

    np.savez(tmp_path / "bad.npz", x=np.zeros((20, 4)), digit=np.arange(20) % 2,
             parity=np.arange(18) % 2)
    raw = yaml.safe_load(_study(tmp_path).read_text())
    raw["data"] = {"source": str(tmp_path / "bad.npz"), "y_key": ["digit", "parity"]}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    line = _one_line(_run("run", str(path), "--no-progress", cwd=tmp_path))
    assert "task 'parity'" in line and "18 labels for 20 samples" in line


def test_example_study_runs(tmp_path: Path) -> None:
    """studies/digits_multitask.yaml, on a small budget."""
    from nasdepth.study.record import read_record
    from nasdepth.study.runner import run_worker

    cfg = load_study(EXAMPLE, {"budget": {"trials": 1}, "training": {"epochs": 1},
                               "data": {"limit": 200}, "storage": str(tmp_path / "ex.journal"),
                               "tasks": {"baselines": False}})
    st = run_worker(cfg, progress=False)
    rec = read_record(st.trials[0])
    assert rec.state == "complete" and rec.multitask is not None
    assert set(rec.multitask["scores"]) == {"digit", "parity"}


def test_report_flags_the_noise_task_only(tmp_path: Path) -> None:
    """A study on digits with a task of random labels: the noise task is diagnosed
    data-limited and flagged by the report's Multitask section; the digit stays healthy. The
    noise task's reference network runs once for the study (within the study's budget), and
    the next trial's verdict reads it."""
    from nasdepth.report.content import build_report
    from nasdepth.report.document import Para
    from nasdepth.report.tables import collect
    from nasdepth.study.record import read_record
    from nasdepth.study.runner import run_worker

    raw = yaml.safe_load(_study(tmp_path).read_text())
    raw["data"] = {"source": "sklearn:digits", "limit": 600,
                   "derive": {"digit": "label", "noise": "noise"}}
    raw["training"] = {"epochs": 6, "batch_size": 32, "lr": 0.003}
    raw["budget"] = {"trials": 2}
    raw["sampler"] = "bruteforce"
    raw["tasks"] = {"branch_at": [1, 2], "baselines": False}
    raw["diagnosis"] = {"reference_budget": 120}
    path = tmp_path / "noise.yaml"
    path.write_text(yaml.safe_dump(raw))
    st = run_worker(load_study(path), progress=False)
    records = [read_record(t) for t in st.trials]
    for rec in records:
        assert rec.multitask is not None and rec.duplicate_of is None
        tasks = rec.multitask["diagnosis"]["tasks"]
        verdicts = {t: d["verdict"] for t, d in tasks.items()}
        assert verdicts == {"digit": "healthy", "noise": "data_limited_plateau"}
        assert tasks["noise"]["controls"]["reference"]["ran"]
    assert ["reference" in rec.timings for rec in records] == [True, False]
    assert set(st.user_attrs["reference_network_tasks"]) == {"noise"}
    section = next(s for s in build_report(st, collect(st), None).sections
                   if s.title == "Multitask")
    warnings = [b.text for b in section.blocks if isinstance(b, Para) and "no signal" in b.text]
    assert len(warnings) == 1 and "'noise'" in warnings[0]


def test_sharing_table_reads_paired_folds() -> None:
    from nasdepth.report.tasks_tables import branch_table, sharing_table

    rows = []
    for fold in range(5):
        for task, mt, single in (("a", 0.90 + 0.01 * fold, 0.80 + 0.01 * fold),
                                 ("b", 0.70, 0.70)):
            for mode, v in (("multitask", mt), ("single", single)):
                rows.append({"task": task, "mode": mode, "fold": fold, "n_train": 800,
                             "n_val": 200, "val_accuracy": v})
    tab = sharing_table({"folds": rows}).set_index("task")
    assert tab.loc["a", "reading"] == "sharing helps" and tab.loc["a", "difference"] == 0.1
    assert tab.loc["b", "reading"] == "no clear difference" and tab.loc["b", "difference"] == 0
    flipped = [{**r, "mode": {"multitask": "single", "single": "multitask"}[r["mode"]]}
               for r in rows]
    assert sharing_table({"folds": flipped}).set_index("task").loc["a", "reading"] == \
        "negative transfer"
    assert sharing_table(None).empty
    import pandas as pd

    scores = pd.DataFrame({"trial": [0, 1, 2], "branch_at": [0, 0, 2], "head_depth": 0,
                           "task": "a", "mean": [0.5, 0.7, 0.6], "std": 0.0, "verdict": None})
    bt = branch_table(scores)
    assert bt["best"].tolist() == [0.7, 0.6] and bt["trials"].tolist() == [2, 1]


def test_two_label_columns_without_tasks_stop_naming_the_section(tmp_path: Path) -> None:
    """A CSV whose ``target`` names two columns, in a study without ``tasks:``: the run stops
    before any trial (exit 2, one line) and names the section to add; ``cross_validate`` of
    an architecture on such data says the same. With the section it trains both."""
    import numpy as np
    import pandas as pd

    from nasdepth.arch import ArchConfig, StageConfig
    from nasdepth.data import load_data
    from nasdepth.errors import ConfigError
    from nasdepth.train import cross_validate

    rng = np.random.default_rng(0)
    digit = rng.integers(0, 4, 80)
    df = pd.DataFrame(rng.normal(size=(80, 5)), columns=[f"f{i}" for i in range(5)])
    df["digit"], df["parity"] = digit, digit % 2
    df.to_csv(tmp_path / "table.csv", index=False)
    spec = {"source": str(tmp_path / "table.csv"), "target": ["digit", "parity"]}
    raw = yaml.safe_load(_study(tmp_path).read_text())
    raw.pop("tasks")
    raw["data"] = spec
    path = tmp_path / "two.yaml"
    path.write_text(yaml.safe_dump(raw))
    line = _one_line(_run("run", str(path), "--no-progress", cwd=tmp_path))
    assert "'tasks' value" in line and "tasks: {names: [digit, parity]}" in line
    data = load_data(spec)
    with pytest.raises(ConfigError, match="2 label columns"):
        cross_validate(ArchConfig(stages=(StageConfig(block="plain", depth=1, width=8),)), data,
                       folds=2, epochs=1)
