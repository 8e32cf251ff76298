"""Create or resume a study and run it until its trial budget is spent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nasdepth.data import load_data
from nasdepth.space import StudyConfig, load_study
from nasdepth.study.objective import Objective
from nasdepth.study.storage import make_storage
from nasdepth.train import configure_threads

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def open_study(cfg: StudyConfig) -> optuna.Study:
    """Create the study in its storage, or load it where it exists (resume)."""
    study = optuna.create_study(
        study_name=cfg.name,
        storage=make_storage(cfg.storage_url),
        direction="maximize" if cfg.objective != "val_log_loss" else "minimize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed),
        load_if_exists=True,
    )
    study.set_user_attr("config", cfg.to_dict())
    return study


def run_study(
    study: str | Path | StudyConfig,
    *,
    trials: int | None = None,
    storage: str | None = None,
    progress: bool = True,
) -> optuna.Study:
    """Run ``study`` (a YAML path or a loaded config) until ``trials`` trials have finished in
    its storage (the budget counts the trials of earlier runs: a rerun resumes)."""
    cfg = study if isinstance(study, StudyConfig) else load_study(study)
    if trials is not None:
        cfg = replace(cfg, trials=trials)
    if storage is not None:
        cfg = replace(cfg, storage=storage)
    configure_threads(1)
    data = load_data(cfg.data)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    st = open_study(cfg)
    st.set_user_attr("data", data.to_dict())
    done = len(st.get_trials(deepcopy=False, states=FINISHED))
    remaining = max(0, cfg.trials - done)
    bar = tqdm(total=cfg.trials, initial=done, desc=f"{cfg.name} trials", unit="trial",
               disable=not progress, dynamic_ncols=True)

    def fold_progress(number: int, folds: int) -> Callable[[int, dict[str, Any]], None]:
        fold_bar = tqdm(total=folds, desc=f"  trial {number} folds", unit="fold",
                        leave=False, disable=not progress, dynamic_ncols=True)

        def on_fold(k: int, row: dict[str, Any]) -> None:
            fold_bar.update(1)
            fold_bar.set_postfix(acc=f"{row['val_accuracy']:.3f}")
            if k == folds - 1:
                fold_bar.close()

        return on_fold

    def after_trial(s: optuna.Study, t: optuna.trial.FrozenTrial) -> None:
        bar.update(1)
        completed = [x for x in s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
        if completed:
            bar.set_postfix(best=f"{s.best_value:.4f}")

    try:
        if remaining:
            st.optimize(Objective(cfg, data, fold_progress), n_trials=remaining,
                        timeout=cfg.timeout, callbacks=[after_trial], catch=(Exception,))
    finally:
        bar.close()
    return st
