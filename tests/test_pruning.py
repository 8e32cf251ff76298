"""Pruning across folds: poor candidates stop early, keep the folds they finished, and steps
follow ``fold * epochs + epoch`` (epoch pruners) or ``fold`` (Wilcoxon)."""

from __future__ import annotations

from pathlib import Path

from optuna.trial import TrialState

from nasdepth.study import open_study, run_study
from nasdepth.study.record import read_record
from nasdepth.study.study_file import load_study
from tests.conftest import write_study

SPACE = {
    "name": "prune", "stages": 1, "width": 16,
    "depth": {"type": "categorical", "choices": [1, 6]},
    "block": {"type": "categorical", "choices": ["plain", "residual"]},
    "activation": {"type": "categorical", "choices": ["relu", "sigmoid"]},
    "norm": {"type": "categorical", "choices": ["batch", "none"]},
    "skip": False,
}
GOOD = {"depth": 1, "block": "residual", "activation": "relu", "norm": "batch"}
GOOD2 = {**GOOD, "block": "plain"}  # not a repeat: a repeat reuses the first one's scores
# six plain sigmoid blocks without normalization or skips: near chance for several epochs
POOR = {"depth": 6, "block": "plain", "activation": "sigmoid", "norm": "none"}
EPOCHS, FOLDS = 3, 2


def study_with(tmp_path: Path, pruner: dict) -> Path:
    return write_study(tmp_path, name="prune", space=SPACE, pruner=pruner,
                       data={"source": "sklearn:digits", "limit": 400},
                       cv={"folds": FOLDS},
                       training={"epochs": EPOCHS, "batch_size": 32, "lr": 0.01})


def test_median_pruner_stops_poor_candidates_and_keeps_their_finished_folds(
        tmp_path: Path) -> None:
    # no pruning in fold 0 (warm-up = one fold): a pruned trial then has one finished fold
    path = study_with(tmp_path, {"name": "median", "startup_trials": 2,
                                 "warmup_steps": EPOCHS})
    study = open_study(load_study(path))
    for params in (GOOD, GOOD2, POOR, POOR):
        study.enqueue_trial(params)
    study = run_study(path, trials=4, progress=False, probes=False)
    good, poor = study.trials[:2], study.trials[2:]
    assert all(t.state == TrialState.COMPLETE for t in good)
    for t in good:  # every epoch of every fold reported at a unique, increasing step
        assert sorted(t.intermediate_values) == list(range(FOLDS * EPOCHS))
    for t in poor:
        rec = read_record(t)
        assert t.state == TrialState.PRUNED, rec
        assert rec.state == "pruned" and rec.reason == "pruned at fold 1, epoch 0"
        assert rec.pruned_at == {"fold": 1, "epoch": 0, "step": EPOCHS}
        assert max(t.intermediate_values) == EPOCHS < FOLDS * EPOCHS - 1
        assert [f["fold"] for f in rec.cv_folds] == [0]  # the finished fold kept


def test_wilcoxon_pruner_sees_one_score_per_fold(tmp_path: Path) -> None:
    path = study_with(tmp_path, {"name": "wilcoxon", "p_threshold": 0.1})
    study = open_study(load_study(path))
    study.enqueue_trial(GOOD)
    study = run_study(path, trials=1, progress=False, probes=False)
    t = study.trials[0]
    assert t.state == TrialState.COMPLETE
    scores = [f["val_accuracy"] for f in read_record(t).cv_folds]
    assert t.intermediate_values == dict(enumerate(scores))
