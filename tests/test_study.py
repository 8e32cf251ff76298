"""Studies: resume, trial attributes, samplers' reproducibility, multi-objective, constraints,
crash safety (NaN, OOM-like, exceptions, Ctrl-C) and answers to bad input."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import nasdepth.study.objective as objective_module
from nasdepth.cli import main
from nasdepth.study import make_storage, run_study
from nasdepth.study.record import (
    RECORD_KEY,
    RECORD_VERSION,
    TrialRecord,
    read_record,
    read_study_record,
)
from nasdepth.study.study_file import load_study
from nasdepth.train.cpu_bf16 import cpu_bf16_fast
from tests.conftest import TINY_SPACE, write_study

#: 200 digits, 1 epoch, 2 folds: a trial is a fraction of a second
SMALL_DATA = {"source": "sklearn:digits", "limit": 200}
FAST = {"epochs": 1, "batch_size": 64, "lr": 0.01}


def small_study(folder: Path, **overrides: object) -> Path:
    return write_study(folder, **{"data": SMALL_DATA, "training": FAST, **overrides})


def test_second_run_resumes_and_keeps_trials(tiny_study: Path) -> None:
    first = run_study(tiny_study, trials=2, progress=False)
    before = {t.number: (t.value, read_record(t).arch) for t in first.trials}
    assert len(before) == 2
    second = run_study(tiny_study, trials=3, progress=False)
    after = {t.number: (t.value, read_record(t).arch) for t in second.trials}
    assert len(after) == 3
    assert all(after[n] == before[n] for n in before)  # nothing of the first run is lost
    cfg = load_study(tiny_study)
    stored = optuna.load_study(study_name="tiny", storage=make_storage(cfg.storage_url))
    assert len(stored.trials) == 3


def test_trial_attributes_rebuild_the_candidate(tiny_study: Path) -> None:
    study = run_study(tiny_study, trials=1, progress=False)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE
    rec = read_record(t)
    assert rec.state == "complete" and rec.reason is None and rec.version == RECORD_VERSION
    folds = rec.cv_folds
    assert [f["fold"] for f in folds] == [0, 1]
    assert abs(t.value - sum(f["val_accuracy"] for f in folds) / 2) < 1e-12
    assert rec.summary["depth"] in (1, 2)
    assert rec.params == t.params and rec.arch["stages"][0]["width"] == 8
    assert rec.training["epochs"] == 2 and rec.seed == 0
    assert set(rec.versions) >= {"torch", "optuna", "sklearn"}
    assert rec.wall_time is not None and rec.wall_time > 0
    # the probes' own calls (inside the CV's wall time) and the diagnosis after it
    assert 0 < rec.timings["probes"] < rec.wall_time and rec.timings["diagnosis"] > 0
    assert rec.device == "cpu" and rec.worker["pid"] > 0
    # a CNN on digits: bf16 autocast where the CPU runs bf16 convolutions faster
    # (``precision: auto``), else fp32
    assert rec.training["precision"] == "auto"
    assert rec.precision == ("bf16" if cpu_bf16_fast() else "fp32")
    assert rec.costs["flops"] > rec.costs["params"] == rec.summary["params"] > 0
    assert rec.probe_summary and {"verdict", "confidence", "evidence"} <= set(rec.diagnosis)
    # the per-epoch series the report's evidence figure draws: a few floats per epoch/block
    trace = rec.trace_summary
    assert trace is not None and trace["folds"] == 2 and len(trace["epochs"]) == 2
    assert all(len(e["grad_rms"]) == len(trace["blocks"]) for e in trace["epochs"])
    assert all(v is None or v > 0 for e in trace["epochs"] for v in e["grad_rms"])
    # one record round-trips through JSON; the few flat attributes are for the dashboard
    assert TrialRecord.from_dict(t.user_attrs[RECORD_KEY]) == rec
    assert set(t.user_attrs) <= {RECORD_KEY, "reason", "verdict", "duplicate_of", "retry_of"}


def test_flops_agree_with_the_arch_package() -> None:
    from nasdepth.arch import build_model, complexity
    from nasdepth.space import SearchSpace
    from nasdepth.study.measure import count_flops

    space = SearchSpace.from_dict({**TINY_SPACE, "stages": 2}, "test")
    for block in ("plain", "residual"):
        arch = space.to_arch({"depth": 3, "block": block, "skip": True})
        model = build_model(arch, (1, 8, 8), 10)
        assert count_flops(model, (1, 8, 8)) == complexity(model, (1, 8, 8))["flops"]


@pytest.mark.parametrize("sampler", ["tpe", "random", "gp", "nsga2", "grid", "bruteforce"])
def test_same_seed_same_trials_same_scores(tmp_path: Path, sampler: str) -> None:
    runs = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        study = run_study(small_study(folder, sampler=sampler), trials=3, progress=False,
                          probes=False)
        runs.append([(t.params, t.value) for t in study.trials])
    assert len(runs[0]) == 3
    assert runs[0] == runs[1]


def test_multi_objective_study_has_a_pareto_front(tmp_path: Path) -> None:
    path = small_study(tmp_path, objectives=["val_accuracy", "params", "flops"],
                       sampler="nsga2")
    study = run_study(path, trials=4, progress=False, probes=False)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE", "MINIMIZE"]
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(done) == 4
    for t in done:
        assert t.values[1] == read_record(t).summary["params"]
        assert t.values[2] == read_record(t).costs["flops"]
    front = study.best_trials
    assert front
    # nothing on the front is dominated by any trial
    for f in front:
        assert not any(t.values[0] >= f.values[0] and t.values[1] <= f.values[1]
                       and t.values[2] <= f.values[2] and t.values != f.values for t in done)


def test_constraints_are_recorded_for_the_sampler(tmp_path: Path) -> None:
    path = small_study(tmp_path, constraints={"max_params": 1500})
    study = run_study(path, trials=3, progress=False, probes=False)
    for t in study.trials:
        params = read_record(t).summary["params"]
        assert t.constraints == {"max_params": params - 1500}


def test_nan_loss_is_recorded_as_failed_with_its_reason(tmp_path: Path) -> None:
    path = small_study(tmp_path, training={**FAST, "epochs": 3, "lr": 1e6, "schedule": "none"},
                       space={**TINY_SPACE, "norm": "none", "block": "plain"})
    study = run_study(path, trials=1, progress=False, probes=False, max_failures=2)
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 2  # stopped after 2 in a row
    for t in study.trials:
        rec = read_record(t)
        assert rec.state == "failed" and "non-finite" in str(rec.reason), rec.reason
        assert "NonFiniteLossError" in rec.errors["traceback"]


@pytest.mark.parametrize("error,reason", [
    (MemoryError("cannot allocate 80 GiB"), "out of memory"),
    (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), "out of memory"),
    (ValueError("a bug in a block"), "ValueError: a bug in a block"),
])
def test_crashing_trial_is_failed_and_the_study_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, reason: str) -> None:
    real = objective_module.cross_validate
    calls = []

    def first_call_crashes(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise error
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(objective_module, "cross_validate", first_call_crashes)
    study = run_study(small_study(tmp_path), trials=2, progress=False, probes=False)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert reason in str(read_record(study.trials[0]).reason)
    assert read_record(study.trials[0]).arch  # what crashed stays inspectable


def test_ctrl_c_records_the_trial_and_the_study_resumes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    path = small_study(tmp_path)
    real = objective_module.cross_validate
    calls = []

    def second_call_interrupted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(objective_module, "cross_validate", second_call_interrupted)
    code = main(["run", str(path), "--trials", "3", "--no-progress", "--no-report",
                 "--no-probes"])
    assert code == 130
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "interrupted" in err[0]
    cfg = load_study(path)
    stored = optuna.load_study(study_name="tiny", storage=make_storage(cfg.storage_url))
    assert [t.state for t in stored.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    interrupted = stored.trials[1]
    assert str(read_record(interrupted).reason).startswith("interrupted")

    study = run_study(path, trials=3, progress=False, probes=False)  # resume
    finished = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(finished) == 3
    retry = [t for t in study.trials if read_record(t).retry_of == interrupted.number]
    assert len(retry) == 1 and retry[0].params == interrupted.params
    assert retry[0].state == TrialState.COMPLETE


def _error_line(capsys: pytest.CaptureFixture, code: int) -> str:
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("flag,value,expected", [
    ("--sampler", "tpee", "Did you mean 'tpe'?"),
    ("--pruner", "medain", "Did you mean 'median'?"),
    ("--objectives", "val_acuracy", "Did you mean 'val_accuracy'?"),
    ("--storage", "postgresql://ann:s3cret@db.example:notaport/test", "well-formed URL"),
    ("--storage", "postgresql://ann:s3cret@127.0.0.1:9/test", "Cannot open the storage"),
    ("--storage", "redis://:s3cret@127.0.0.1:9/0", "Cannot open the storage"),
    ("--storage", "ftp://ann:s3cret@host/x", "postgresql://"),
    ("--workers", "0", "--workers"),
])
def test_bad_input_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                     flag: str, value: str, expected: str) -> None:
    path = small_study(tmp_path)
    line = _error_line(capsys, main(["run", str(path), flag, value, "--no-progress"]))
    assert expected in line
    assert "s3cret" not in line


def test_study_name_clash_with_another_space(tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    run_study(small_study(tmp_path), trials=1, progress=False, probes=False)
    other = small_study(tmp_path, space={**TINY_SPACE, "width": 16})  # same name, new space
    line = _error_line(capsys, main(["run", str(other), "--no-progress", "--no-report"]))
    assert "another search space" in line and "'tiny'" in line


def test_cli_flags_override_the_study_file(tmp_path: Path) -> None:
    path = small_study(tmp_path)
    cfg = load_study(path, {"sampler": "random", "pruner": "median",
                            "budget": {"trials": 7}, "cv": {"folds": 3},
                            "training": {"epochs": 4}})
    assert (cfg.sampler, cfg.pruner, cfg.trials, cfg.cv.folds, cfg.training.epochs) == (
        "random", "median", 7, 3, 4)
    assert cfg.training.lr == FAST["lr"]  # what no flag names stays as the file says


def test_sweep_runs_every_grid_point_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["sweep", "--data", "sklearn:iris", "--depth", "1,2", "--block",
                 "plain,residual", "--skip", "on", "--width", "8", "--folds", "2",
                 "--epochs", "1", "--no-progress", "--no-report", "--no-probes"])
    assert code == 0
    storage = make_storage(str(tmp_path / "studies" / "sweep-sklearn-iris.journal"))
    study = optuna.load_study(study_name="sweep-sklearn-iris", storage=storage)
    points = sorted((t.params["depth"], t.params["block"]) for t in study.trials)
    assert points == [(1, "plain"), (1, "residual"), (2, "plain"), (2, "residual")]
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # the budget the study records (and its report prints) is the grid's size
    assert read_study_record(study).settings["trials"] == 4
    # the sweep's study file: what report, export and diagnose --study take
    path = tmp_path / "studies" / "sweep-sklearn-iris.yaml"
    assert load_study(path).name == "sweep-sklearn-iris" and load_study(path).trials == 4
    assert main(["export", str(path), "--out", str(tmp_path / "m.pt")]) == 0
    assert (tmp_path / "m.pt").is_file()


def test_a_repeated_candidate_reuses_its_twin_scores(tmp_path: Path) -> None:
    from nasdepth.study import open_study
    from nasdepth.study.study_file import load_study as load

    path = small_study(tmp_path)
    study = open_study(load(path))
    params = {"depth": 1, "block": "plain", "skip": True}
    study.enqueue_trial(params)
    study.enqueue_trial(params)
    study = run_study(path, trials=2, progress=False, probes=False)
    first, second = study.trials
    a, b = read_record(first), read_record(second)
    assert b.duplicate_of == first.number and a.duplicate_of is None
    assert second.value == first.value
    assert b.cv_folds == a.cv_folds and b.arch == a.arch and b.costs == a.costs
    assert b.state == "complete" and b.number == second.number
    # the best trials list the candidate once, as the trial that trained it
    from nasdepth.report import top_trials, trials_frame

    frame = trials_frame(study)
    assert list(frame["duplicate_of"].fillna(-1)) == [-1, first.number]
    assert list(top_trials(frame)["trial"]) == [first.number]


def test_a_sweep_file_keeps_secrets_and_users_files_off(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """The study file a sweep writes leaves out a storage URL with a password (the commands
    that read it take --storage), and never replaces a file no sweep wrote."""
    from nasdepth.cli.sweep import HEADER, write_study_file

    path = tmp_path / "studies" / "s.yaml"
    assert write_study_file({"name": "s", "storage": "postgresql://ann:Top9@host/db"}, path)
    text = path.read_text()
    assert text.startswith(HEADER) and "Top9" not in text and "storage" not in text
    assert "ann:***@host" in capsys.readouterr().err
    own = tmp_path / "studies" / "mine.yaml"
    own.write_text("name: mine\n")
    assert not write_study_file({"name": "mine"}, own)
    assert own.read_text() == "name: mine\n" and "kept" in capsys.readouterr().err
