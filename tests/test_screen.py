"""Screening: a finite space's candidates trained briefly on one split, then queued best
first; when a study is screened and when not; the screen's own numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from nasdepth import TrainConfig, cross_validate, load_data
from nasdepth.cli import main
from nasdepth.cli.run import time_split
from nasdepth.errors import ConfigError
from nasdepth.study import run_study
from nasdepth.study.record import read_record
from nasdepth.study.screen import SCREEN_ATTR, screen_epochs, screen_plan
from nasdepth.study.study_file import load_study
from tests.conftest import write_study

DATA = {"source": "sklearn:digits", "limit": 600}
#: four candidates, two of them a network one unit wide: the screen must put those last
SPACE = {"name": "widths", "stages": 1, "depth": 1,
         "width": {"type": "categorical", "choices": [1, 32]},
         "block": {"type": "categorical", "choices": ["plain", "residual"]}, "skip": True}
TRAINING = {"epochs": 4, "batch_size": 32, "lr": 0.01}


def study(folder: Path, **overrides: object) -> Path:
    return write_study(folder, name="widths", space=SPACE,
                       **{"data": DATA, "training": TRAINING, "budget": {"trials": 4},
                          **overrides})


def test_screen_queues_every_candidate_once_best_first(tmp_path: Path) -> None:
    st = run_study(study(tmp_path), progress=False, probes=False)
    screen = st.user_attrs[SCREEN_ATTR]
    rows = sorted(screen["rows"], key=lambda r: r["rank"])
    assert screen["epochs"] == screen_epochs(4) == 2 and len(rows) == 4
    assert all(r["epochs"] == 2 and r["seconds"] > 0 for r in rows)
    scores = [r["score"] for r in rows]
    assert scores == sorted(scores, reverse=True)
    # the trials ran in the screen's order, each candidate once, every one fully
    trials = sorted(st.trials, key=lambda t: t.number)
    assert [t.params for t in trials] == [r["params"] for r in rows]
    assert all(len(read_record(t).cv_folds) == 2 for t in trials)
    assert all(read_record(t).duplicate_of is None for t in trials)
    # one unit wide learns least: both narrow networks come last
    assert [t.params["width"] for t in trials[:2]] == [32, 32]
    # the screen trained split 0 of the study's folds with the candidate's seed
    best = rows[0]["params"]
    cfg = load_study(study(tmp_path))
    arch = cfg.space.to_arch({**best, "stages": 1, "depth": 1, "skip": True},
                             input_shape=(1, 8, 8))
    splits = cfg.cv.resolve(load_data(DATA))
    one = splits.with_folds(splits.folds[:1])
    again = cross_validate(arch, load_data(DATA), cv=one, seed=cfg.cv_seed,
                           training=TrainConfig(**{**TRAINING, "epochs": 2}))
    assert again.mean() == pytest.approx(rows[0]["score"])


def test_a_resumed_study_is_not_screened_again(tmp_path: Path) -> None:
    path = study(tmp_path, screen="on", budget={"trials": 2})
    first = run_study(path, progress=False, probes=False)
    screen = first.user_attrs[SCREEN_ATTR]
    assert screen["queued"] == 2  # on: the best two of four, the rest to the sampler
    ranked = sorted(screen["rows"], key=lambda r: r["rank"])
    assert [t.params for t in first.trials] == [r["params"] for r in ranked[:2]]
    second = run_study(path, trials=4, progress=False, probes=False)
    assert second.user_attrs[SCREEN_ATTR] == screen
    assert len([t for t in second.trials if t.state.is_finished()]) == 4


@pytest.mark.parametrize("overrides,reason", [
    ({"sampler": "grid"}, "grid sampler enumerates"),
    ({"screen": "off"}, "screen: off"),
    ({"screen": False}, "screen: off"),  # YAML's off
    ({"training": {**TRAINING, "epochs": 2}}, "2 epochs leave no shorter screen"),
    ({"budget": {"trials": 3}}, "covers 3 of 4 candidates"),
    ({"objectives": ["val_accuracy", "params"]}, "several objectives"),
])
def test_screen_plan_says_why_a_study_is_not_screened(tmp_path: Path, overrides: dict,
                                                      reason: str) -> None:
    cfg = load_study(study(tmp_path, **overrides))
    grid, why = screen_plan(cfg, min(cfg.trials, 4))
    assert grid == [] and reason in why


def test_screen_on_screens_what_auto_leaves(tmp_path: Path) -> None:
    cfg = load_study(study(tmp_path, screen=True, sampler="grid", budget={"trials": 3}))
    grid, why = screen_plan(cfg, 3)
    assert why == "screened" and len(grid) == 4
    assert {(g["width"], g["block"]) for g in grid} == {
        (w, b) for w in (1, 32) for b in ("plain", "residual")}


def test_a_screen_dearer_than_the_study_is_refused(tmp_path: Path) -> None:
    # 4 candidates x 2 screen epochs = 8 fold-epochs: more than 1 trial of 2 folds x 3 epochs
    cfg = load_study(study(tmp_path, screen="on", budget={"trials": 1},
                           training={**TRAINING, "epochs": 3}))
    grid, why = screen_plan(cfg, 1)
    assert grid == [] and "would cost more than the study's 1 trials" in why


def test_a_timeout_stops_the_screen_not_the_study(tmp_path: Path) -> None:
    import time

    import optuna

    from nasdepth.study.runner import open_study
    from nasdepth.study.screen import run_screen

    cfg = load_study(study(tmp_path))
    data = load_data(DATA)
    st = open_study(cfg, data=data)
    # the deadline has passed: one candidate is screened and queued, the rest is the sampler's
    out = run_screen(st, cfg, data, cfg.cv.resolve(data), 4, deadline=time.monotonic())
    assert out is not None and len(out["rows"]) == 1 and out["candidates"] == 4
    waiting = st.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [out["rows"][0]["params"]]


def test_an_infinite_space_is_not_screened(tmp_path: Path) -> None:
    space = {**SPACE, "dropout": {"type": "float", "low": 0.0, "high": 0.5}}
    cfg = load_study(write_study(tmp_path, name="widths", space=space, data=DATA,
                                 training=TRAINING, budget={"trials": 50}))
    assert screen_plan(cfg, 50) == ([], "the space is infinite")


@pytest.mark.parametrize("value,expected", [
    ("of", "Did you mean 'off'?"), (3, "one of auto, on, off")])
def test_a_bad_screen_value_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              value: object, expected: str) -> None:
    with pytest.raises(ConfigError, match="screen"):
        load_study(study(tmp_path, screen=value))
    assert main(["run", str(study(tmp_path, screen=value)), "--no-progress"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and expected in err[0] and "widths.yaml" in err[0]


def test_the_time_line_counts_the_screen() -> None:
    trials = {"trials": 4.0, "training": 10.0, "probes": 1.0, "diagnosis": 0.5, "screen": 2.0}
    line = time_split(trials, 14.0, 1.0, True)
    assert "screen 2.0 s, training 9.0 s (4 trials)" in line
    assert "storage and the rest 0.5 s" in line
    assert "screen" not in time_split({**trials, "screen": 0.0}, 14.0, 1.0, True)


def test_the_report_compares_the_screen_with_the_cv(tmp_path: Path) -> None:
    from nasdepth.report.screening import screen_frame, screen_summary, screening_section

    st = run_study(study(tmp_path), progress=False, probes=False)
    frame = screen_frame(st)
    assert list(frame["screen rank"]) == [1, 2, 3, 4]
    assert list(frame["trial"]) == [0, 1, 2, 3]  # queued in that order
    by_trial = {t.number: t.value for t in st.trials}
    assert list(frame["cv score"]) == [by_trial[n] for n in range(4)]
    s = screen_summary(frame, st.user_attrs[SCREEN_ATTR])
    best = max(by_trial, key=lambda n: by_trial[n])
    assert s["best_screen_rank"] == best + 1 and s["compared"] == 4
    assert -1.0 <= s["spearman"] <= 1.0
    section = screening_section(st)
    assert section is not None and section.title == "Screening"
    (tmp_path / "off").mkdir()
    plain = run_study(study(tmp_path / "off", screen="off", budget={"trials": 1}),
                      progress=False, probes=False)
    assert screen_frame(plain).empty and screening_section(plain) is None


def test_the_command_says_what_the_screen_did(tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    assert main(["run", str(study(tmp_path)), "--no-progress", "--no-report",
                 "--no-probes"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("Screened "))
    assert "4 candidates on split 0 for 2 epochs" in line and "width=32" in line
    assert "Time: " in out and ": screen " in out
    # a second run resumes: nothing is screened again
    assert main(["run", str(study(tmp_path)), "--no-progress", "--no-report",
                 "--no-probes", "--trials", "5"]) == 0
    assert "Screened" not in capsys.readouterr().out
