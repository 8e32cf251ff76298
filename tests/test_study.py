"""Studies: created in a journal file beside the study, resumed by a second run."""

from __future__ import annotations

from pathlib import Path

import optuna

from nasdepth.space import load_study
from nasdepth.study import make_storage, run_study


def test_second_run_resumes_and_keeps_trials(tiny_study: Path) -> None:
    first = run_study(tiny_study, trials=2, progress=False)
    before = {t.number: (t.value, t.user_attrs["arch"]) for t in first.trials}
    assert len(before) == 2
    second = run_study(tiny_study, trials=3, progress=False)
    after = {t.number: (t.value, t.user_attrs["arch"]) for t in second.trials}
    assert len(after) == 3
    assert all(after[n] == before[n] for n in before)  # nothing of the first run is lost
    cfg = load_study(tiny_study)
    stored = optuna.load_study(study_name="tiny", storage=make_storage(cfg.storage_url))
    assert len(stored.trials) == 3


def test_trial_attributes_rebuild_the_candidate(tiny_study: Path) -> None:
    study = run_study(tiny_study, trials=1, progress=False)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE
    folds = t.user_attrs["cv_folds"]
    assert [f["fold"] for f in folds] == [0, 1]
    assert abs(t.value - sum(f["val_accuracy"] for f in folds) / 2) < 1e-12
    assert t.user_attrs["summary"]["depth"] in (1, 2)
    assert set(t.user_attrs["versions"]) >= {"torch", "optuna", "sklearn"}
