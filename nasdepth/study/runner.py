"""Create or resume a study and run it until its trial budget is spent.

The budget counts *finished* trials (complete or pruned) in the storage, whoever ran them:
a rerun resumes, and several workers on one storage together stop at exactly the budget.
Before each trial a worker counts finished + running trials and waits instead of starting one
too many; a trial that still starts beyond the budget (two workers asked at the same moment)
gives up at once and is recorded failed with the reason ``budget reached``.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nasdepth.data import load_data
from nasdepth.errors import NasdepthError
from nasdepth.study.objective import Objective
from nasdepth.study.probing import probe_hooks
from nasdepth.study.registry import SamplerContext, make_pruner, make_sampler
from nasdepth.study.storage import make_storage, redact, storage_kind
from nasdepth.study.study_file import StudyConfig
from nasdepth.train import configure_threads

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ACTIVE = (TrialState.RUNNING, TrialState.WAITING)
BUDGET_REACHED = "budget reached (other workers finished it)"
POLL_S = 0.5


class BudgetReached(Exception):
    """This trial started after the budget was already taken by other workers."""


def storage_for(cfg: StudyConfig) -> optuna.storages.BaseStorage:
    return make_storage(cfg.storage_url, heartbeat_interval=cfg.heartbeat_interval,
                        grace_period=cfg.grace_period, max_retry=cfg.max_retry)


def open_study(cfg: StudyConfig, storage: optuna.storages.BaseStorage | None = None
               ) -> optuna.Study:
    """Create the study in its storage, or load it where it exists (resume).

    A study of the same name made from a different search space or objectives is refused:
    mixing them would corrupt both.
    """
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = storage if storage is not None else storage_for(cfg)
    ctx = SamplerContext(seed=cfg.seed, space=cfg.space, multi_objective=len(cfg.objectives) > 1)
    source = str(cfg.path)
    sampler = make_sampler(cfg.sampler, cfg.sampler_options, ctx, source)
    pruner = make_pruner(cfg.pruner, cfg.pruner_options,
                         cfg.cv.n_splits * cfg.training.epochs, source)
    try:
        study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=sampler,
                                    pruner=pruner,
                                    directions=[StudyDirection[d.upper()]
                                                for d in cfg.directions],
                                    load_if_exists=True)
    except ValueError as exc:  # Optuna: directions differ from the stored study's
        raise NasdepthError(f"The study '{cfg.name}' in {redact(cfg.storage_url)} exists with "
                            f"other objectives: {exc}. Use another 'name'.") from None
    stored = study.user_attrs.get("config")
    if stored is not None:
        _check_same_study(cfg, stored)
    else:
        study.set_user_attr("config", cfg.to_dict())
    return study


def _check_same_study(cfg: StudyConfig, stored: dict[str, Any]) -> None:
    mine = cfg.to_dict()
    where = f"The study '{cfg.name}' in {redact(cfg.storage_url)}"
    if "space_params" in stored and stored["space_params"] != mine["space_params"]:
        raise NasdepthError(f"{where} was made from another search space "
                            f"({stored.get('space')}); give this study another 'name' or "
                            "another storage.")
    if stored.get("objectives", [stored.get("objective")]) != mine["objectives"]:
        raise NasdepthError(f"{where} has the objectives {stored.get('objectives')}, not "
                            f"{mine['objectives']}; give this study another 'name'.")


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, active) trials in the storage, whoever runs them."""
    trials = study.get_trials(deepcopy=False, states=FINISHED + ACTIVE)
    finished = sum(t.state in FINISHED for t in trials)
    return finished, len(trials) - finished


def _fail_dead_local_trials(study: optuna.Study) -> None:
    """Storages without heartbeats (journal file, Redis): a RUNNING trial whose worker process
    on this machine is gone (SIGKILL, OOM killer) is failed and queued again."""
    from nasdepth.study.measure import worker_info

    me = worker_info()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        w = t.user_attrs.get("worker") or {}
        if w.get("host") != me["host"] or not isinstance(w.get("pid"), int) or w["pid"] == me[
                "pid"]:
            continue
        try:
            os.kill(w["pid"], 0)
            continue  # alive
        except ProcessLookupError:
            pass
        except PermissionError:
            continue  # alive, another user's
        storage = study._storage
        try:
            # the reason first: a finished trial's attributes are read-only
            storage.set_trial_user_attr(t._trial_id, "fail_reason",
                                        f"worker process {w['pid']} died")
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number},
                                    skip_if_exists=False)
        except (RuntimeError, ValueError):
            continue  # another worker got there first


class _BudgetGuard:
    """Wraps the objective: gives up a trial that started beyond the budget."""

    def __init__(self, objective: Callable[[optuna.Trial], Any], budget: int) -> None:
        self.objective, self.budget = objective, budget

    def __call__(self, trial: optuna.Trial) -> Any:
        from nasdepth.study.measure import worker_info

        trial.set_user_attr("worker", worker_info())
        trials = trial.study.get_trials(deepcopy=False, states=FINISHED + ACTIVE)
        earlier = sum(t.number < trial.number for t in trials)
        if earlier >= self.budget:
            trial.set_user_attr("fail_reason", BUDGET_REACHED)
            raise BudgetReached(BUDGET_REACHED)
        return self.objective(trial)


def env_threads() -> int | None:
    """``OMP_NUM_THREADS`` where the user set it: the caller knows the machine's load."""
    try:
        return int(os.environ["OMP_NUM_THREADS"])
    except (KeyError, ValueError):
        return None


def effective_budget(cfg: StudyConfig) -> int:
    """The trial budget, capped at the number of grid points for exhaustive samplers."""
    if cfg.sampler in ("grid", "bruteforce"):
        size = cfg.space.size()
        if size is not None:
            return min(cfg.trials, size)
    return cfg.trials


def run_worker(cfg: StudyConfig, *, progress: bool = True, probes: bool = True,
               max_failures: int = 5, threads_for: int = 1, requeue: bool = True
               ) -> optuna.Study:
    """One worker: run trials of ``cfg`` until the storage holds the budget of finished
    trials, the timeout passes, or ``max_failures`` trials in a row failed."""
    configure_threads(threads_for, threads=env_threads())
    data = load_data(cfg.data, source=str(cfg.path))
    st = open_study(cfg)
    st.set_user_attr("data", data.to_dict())
    heartbeat = storage_kind(cfg.storage_url) == "rdb" and cfg.storage_url.startswith(
        ("postgres", "mysql"))
    if requeue:
        _requeue_interrupted(st)
    budget = effective_budget(cfg)
    done, _ = count_trials(st)
    bar = tqdm(total=budget, initial=min(done, budget), desc=f"{cfg.name} trials",
               unit="trial", disable=not progress, dynamic_ncols=True)

    def fold_progress(number: int, folds: int) -> Callable[[int, dict[str, Any]], None]:
        fold_bar = tqdm(total=folds, desc=f"  trial {number} folds", unit="fold",
                        leave=False, disable=not progress, dynamic_ncols=True)

        def on_fold(k: int, row: dict[str, Any]) -> None:
            fold_bar.update(1)
            fold_bar.set_postfix(acc=f"{row['val_accuracy']:.3f}")
            if k == folds - 1:
                fold_bar.close()

        return on_fold

    objective = _BudgetGuard(Objective(cfg, data, fold_progress if progress else None,
                                       extra_hooks=probe_hooks if probes else None), budget)
    deadline = None if cfg.timeout is None else time.monotonic() + cfg.timeout
    failures = 0
    try:
        while deadline is None or time.monotonic() < deadline:
            finished, active = count_trials(st)
            bar.n = min(finished, budget)
            bar.refresh()
            if finished >= budget:
                break
            if finished + active >= budget:
                # the rest of the budget is running elsewhere: wait, and take over the trials
                # of workers that died
                if heartbeat:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                        optuna.storages.fail_stale_trials(st)
                else:
                    _fail_dead_local_trials(st)
                waiting = st.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if not waiting:
                    time.sleep(POLL_S)
                    continue
            st.optimize(objective, n_trials=1, catch=(Exception,))
            last = _last_trial_of_this_worker(st)
            if last is not None and last.state == TrialState.FAIL and last.user_attrs.get(
                    "fail_reason") != BUDGET_REACHED:
                failures += 1
                if failures >= max_failures:
                    print(f"nasdepth: {failures} trials in a row failed; last reason: "
                          f"{last.user_attrs.get('fail_reason')}. Stopping this worker.")
                    break
            elif last is not None and last.state in FINISHED:
                failures = 0
            if last is not None and last.state == TrialState.COMPLETE and progress:
                _show_best(st, bar)
    finally:
        bar.close()
    return st


def _last_trial_of_this_worker(st: optuna.Study) -> optuna.trial.FrozenTrial | None:
    pid = os.getpid()
    mine = [t for t in st.get_trials(deepcopy=False)
            if (t.user_attrs.get("worker") or {}).get("pid") == pid]
    return max(mine, key=lambda t: t.number) if mine else None


def _show_best(st: optuna.Study, bar: tqdm) -> None:
    if len(st.directions) == 1:
        try:
            bar.set_postfix(best=f"{st.best_value:.4f}")
        except ValueError:
            pass


def _requeue_interrupted(st: optuna.Study) -> None:
    """Trials failed by Ctrl-C are queued again (once), so a resumed study runs them."""
    trials = st.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        reason = str(t.user_attrs.get("fail_reason", ""))
        if t.state == TrialState.FAIL and reason.startswith("interrupted") and \
                t.number not in retried and t.params:
            st.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
