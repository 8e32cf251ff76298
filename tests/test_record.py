"""The trial record: JSON round trip, records of earlier versions (a stored fixture of loose
user attributes written by the previous layout), the per-epoch trace summary the report draws,
and the objectives' names in the storage (what optuna-dashboard shows)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from nasdepth.data import load_data
from nasdepth.report import collect
from nasdepth.report import tables as T
from nasdepth.study import make_storage, run_study
from nasdepth.study.record import RECORD_KEY, RECORD_VERSION, TrialRecord, read_record
from nasdepth.study.study_file import load_study
from tests.conftest import write_study

FIXTURE = Path(__file__).parent / "fixtures" / "legacy_trials_v1.json"
SMALL = {"data": {"source": "sklearn:digits", "limit": 200},
         "training": {"epochs": 1, "batch_size": 64, "lr": 0.01}}


def _legacy_trials() -> list[dict[str, Any]]:
    return json.loads(FIXTURE.read_text())["trials"]


def _frozen(t: dict[str, Any]) -> optuna.trial.FrozenTrial:
    state = TrialState[t["state"]]
    return optuna.trial.create_trial(
        state=state, values=t["values"] if state == TrialState.COMPLETE else None,
        user_attrs=t["user_attrs"],
        intermediate_values={int(k): v for k, v in t["intermediate_values"].items()})


def test_record_round_trips_and_keeps_unknown_keys() -> None:
    rec = TrialRecord(number=3, state="pruned", reason="pruned after fold 1",
                      cv_folds=[{"fold": 0, "val_accuracy": 0.5}], costs={"params": 10.0},
                      pruned_at={"fold": 1, "step": 1})
    d = json.loads(json.dumps(rec.to_dict()))
    assert TrialRecord.from_dict(d) == rec
    newer = TrialRecord.from_dict({**d, "energy_joules": 1.5})  # a field of a later version
    assert newer.extras == {"energy_joules": 1.5} and newer.cv_folds == rec.cv_folds


def test_legacy_trials_load_as_records() -> None:
    """Trials written before the record (loose user attributes, version 1) read as records."""
    legacy = {("DUPLICATE" if "duplicate_of" in t["user_attrs"] else t["state"]): t
              for t in _legacy_trials()}
    assert set(legacy) == {"COMPLETE", "DUPLICATE", "PRUNED", "FAIL"}
    done = read_record(_frozen(legacy["COMPLETE"]))
    attrs = legacy["COMPLETE"]["user_attrs"]
    assert done.version == 1 and done.state == "complete" and done.reason is None
    assert done.arch == attrs["arch"] and done.summary["depth"] == attrs["summary"]["depth"]
    assert [f["fold"] for f in done.cv_folds] == [0, 1, 2]
    assert done.costs == {"params": attrs["summary"]["params"], "flops": attrs["flops"]}
    assert done.wall_time == attrs["wall_time"] and done.seed == 0 and done.worker["pid"] > 0
    assert done.verdict == attrs["diagnosis"]["verdict"]
    assert done.probe_summary == attrs["probe_summary"] and done.trace_summary is None

    dup = read_record(_frozen(legacy["DUPLICATE"]))
    assert dup.duplicate_of == legacy["DUPLICATE"]["user_attrs"]["duplicate_of"]

    pruned = read_record(_frozen(legacy["PRUNED"]))
    at = legacy["PRUNED"]["user_attrs"]["pruned_at"]
    assert pruned.state == "pruned" and pruned.pruned_at == at
    assert pruned.reason == f"pruned at fold {at['fold']}, epoch {at['epoch']}"
    assert len(pruned.cv_folds) == at["fold"]  # the folds it finished

    failed = read_record(_frozen(legacy["FAIL"]))
    assert failed.state == "failed"
    assert failed.reason == "non-finite loss at fold 0, epoch 1"
    assert "NonFiniteLossError" in failed.errors["traceback"]


def test_a_report_reads_legacy_trials() -> None:
    study = optuna.create_study(direction="maximize", storage=optuna.storages.InMemoryStorage())
    for t in _legacy_trials():
        study.add_trial(_frozen(t))
    st = collect(study)
    rows = st.trials.set_index("trial")
    assert list(st.trials["state"]) == ["COMPLETE", "COMPLETE", "PRUNED", "FAIL"]
    assert rows["folds_done"].tolist() == [3, 3, 1, 0]
    assert rows["flops"].notna().iloc[:3].all() and rows["verdict"].iloc[:2].notna().all()
    problems = T.problems_table(st.trials)
    assert problems["fail_reason"].tolist() == ["pruned at fold 1, epoch 1",
                                                "non-finite loss at fold 0, epoch 1"]
    assert len(st.diagnoses) == 2 and not st.traces  # the old layout had no per-epoch series


def test_trace_summary_combines_the_folds() -> None:
    """Geometric mean over folds per block and epoch (4 significant digits), median losses;
    long runs thinned to evenly spaced epochs."""
    from nasdepth import ArchConfig, cross_validate, load_data
    from nasdepth.probes import probe_hook
    from nasdepth.study import probing

    arch = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 3, "width": 8}]})
    hook = probe_hook()
    cross_validate(arch, load_data("sklearn:iris"), folds=3, epochs=5, seed=0, hooks=[hook])
    summary = probing.trace_summary(hook.traces)
    assert summary is not None and summary["folds"] == 3
    assert summary["blocks"] == hook.traces[0].blocks and len(summary["epochs"]) == 5
    for e, row in enumerate(summary["epochs"]):
        assert row["epoch"] == e + 1
        for i in range(len(summary["blocks"])):
            values = [t.epochs[e]["grad_rms"][i] for t in hook.traces]
            expected = math.prod(values) ** (1 / len(values))
            assert row["grad_rms"][i] == pytest.approx(expected, rel=1e-3)
        losses = sorted(t.epochs[e]["val_loss_norm"] for t in hook.traces)
        assert row["val_loss_norm"] == pytest.approx(losses[1], rel=1e-5)
    assert len(json.dumps(summary)) < 3000  # a few floats per epoch and block

    old = probing.MAX_SUMMARY_EPOCHS
    try:
        probing.MAX_SUMMARY_EPOCHS = 3
        thinned = probing.trace_summary(hook.traces)
    finally:
        probing.MAX_SUMMARY_EPOCHS = old
    assert thinned is not None
    assert [r["epoch"] for r in thinned["epochs"]] == [1, 3, 5]
    assert thinned["epochs"][2] == summary["epochs"][4]
    assert probing.trace_summary([]) is None


def test_the_storage_names_the_objectives(tmp_path: Path) -> None:
    """optuna-dashboard and Optuna's own tables show ``val_accuracy``, not "Objective 0"."""
    path = write_study(tmp_path, objectives=["val_accuracy", "params"], sampler="nsga2",
                       budget={"trials": 2}, **SMALL)
    run_study(path, progress=False, probes=False)
    cfg = load_study(path)
    stored = optuna.load_study(study_name="tiny", storage=make_storage(cfg.storage_url))
    assert stored.metric_names == ["val_accuracy", "params"]
    frame = stored.trials_dataframe()
    assert {"values_val_accuracy", "values_params"} <= set(frame.columns)
    for t in stored.trials:  # every trial's one record, beside a few flat dashboard columns
        assert read_record(t).version == RECORD_VERSION and RECORD_KEY in t.user_attrs
        assert t.values[1] == read_record(t).costs["params"]
        # the splits it trained on are recorded even without probes (export refits on them)
        splits = read_record(t).splits
        assert splits is not None and splits["digest"] == cfg.cv.resolve(
            load_data(cfg.data, source=str(cfg.path)), str(cfg.path)).digest


def test_the_study_record_is_read_once_and_typed(tmp_path: Path) -> None:
    """The study's settings, data and candidate record: one typed, versioned object the
    report reads (``StudyTables.study``); loose attributes of older studies read the same, a
    damaged one reads as missing."""
    from nasdepth.study.record import STUDY_RECORD_VERSION, StudyRecord, read_study_record

    path = write_study(tmp_path, budget={"trials": 1}, **SMALL)
    study = run_study(path, progress=False, probes=False)
    rec = read_study_record(study)
    assert rec.version == STUDY_RECORD_VERSION and rec.name == "tiny"
    assert rec.directions == ["maximize"] and rec.metric_names == ["val_accuracy"]
    assert rec.settings["name"] == "tiny" and rec.data["n_samples"] > 0
    assert rec.identity is not None and rec.maximize
    st = collect(study)
    assert st.study == rec and st.config == rec.settings and st.data == rec.data
    candidate = read_record(study.trials[0]).candidate
    assert candidate is not None and candidate["kind"] == "single" and candidate["version"] == 1
    old = StudyRecord.from_attrs({"config": {"name": "old"}, "data": "damaged",
                                  "multitask_baselines": {"trial": 3}})
    assert old.version == 0 and old.settings == {"name": "old"} and old.data == {}
    assert old.multitask_baselines == {"trial": 3}
    assert StudyRecord.from_dict(rec.to_dict()) == rec


def test_a_study_made_before_the_names_gets_them_on_resume(tmp_path: Path) -> None:
    path = write_study(tmp_path, budget={"trials": 1}, **SMALL)
    cfg = load_study(path)
    optuna.create_study(study_name="tiny", storage=make_storage(cfg.storage_url),
                        direction="maximize")
    study = run_study(path, progress=False, probes=False)
    assert study.metric_names == ["val_accuracy"]


def test_a_failed_trial_keeps_its_finished_folds_and_reason(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The record is stored after every fold: a trial that crashes after its first fold keeps
    that fold, its state and its reason (also as the flat ``reason`` the dashboard shows)."""
    import nasdepth.study.objective as objective_module

    real = objective_module.cross_validate

    def crash_after_fold_0(*args: Any, on_fold: Any, **kwargs: Any) -> Any:
        def wrapped(k: int, row: dict[str, Any]) -> None:
            on_fold(k, row)
            raise MemoryError("cannot allocate 80 GiB")
        return real(*args, on_fold=wrapped, **kwargs)

    monkeypatch.setattr(objective_module, "cross_validate", crash_after_fold_0)
    path = write_study(tmp_path, budget={"trials": 1}, **SMALL)
    study = run_study(path, progress=False, probes=False, max_failures=1)
    t = study.trials[0]
    rec = read_record(t)
    assert t.state == TrialState.FAIL and rec.state == "failed"
    assert rec.reason is not None and rec.reason.startswith("out of memory (")
    assert [f["fold"] for f in rec.cv_folds] == [0] and rec.cv_folds[0]["val_accuracy"] > 0
    assert rec.arch and rec.costs["flops"] > 0 and "OutOfMemory" in rec.errors["traceback"]
    assert t.user_attrs["reason"] == rec.reason
    problems = T.problems_table(collect(study).trials)
    assert problems["folds_done"].tolist() == [1]
