"""Create or resume a study and run it until its trial budget is spent.

The budget counts *finished* trials (complete or pruned) in the storage, whoever ran them:
a rerun resumes, and several workers on one storage together stop at exactly the budget.
Before each trial a worker counts finished + running trials and waits instead of starting one
too many; a trial that still starts beyond the budget (two workers asked at the same moment)
gives up at once and is recorded failed with the reason ``budget reached``.

Before the first trial the study's name is checked, the data loaded and the settings checked
(:mod:`nasdepth.study.preflight`), and on a resume the study's identity is compared with the
stored one (:mod:`nasdepth.study.identity`). Every trial records ``settings_id`` (the identity
it was trained under) and ``run_id`` (the run that started it, for :func:`run_outcome`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import TrialState
from tqdm.auto import tqdm

from nasdepth.data import Dataset, load_data
from nasdepth.errors import NasdepthError
from nasdepth.study.distinct import is_yielded, use_worker_sampler, worker_alive
from nasdepth.study.identity import check_identity, settings_id, study_identity
from nasdepth.study.multitask import study_baselines, study_tasks
from nasdepth.study.names import check_name
from nasdepth.study.objective import Objective
from nasdepth.study.preflight import preflight
from nasdepth.study.probing import probe_hooks
from nasdepth.study.record import (
    RECORD_KEY,
    STUDY_ATTRS,
    STUDY_RECORD_VERSION,
    read_record,
    write_record,
)
from nasdepth.study.registry import SamplerContext, make_pruner, make_sampler
from nasdepth.study.screen import run_screen, screen_of_run
from nasdepth.study.storage import make_storage, redact, storage_kind
from nasdepth.study.study_file import StudyConfig
from nasdepth.train import configure_threads
from nasdepth.train.candidate import check_one_label_column

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
ACTIVE = (TrialState.RUNNING, TrialState.WAITING)
BUDGET_REACHED = "budget reached (other workers finished it)"
POLL_S = 0.5


class BudgetReached(Exception):
    """This trial started after the budget was already taken by other workers."""


def storage_for(cfg: StudyConfig) -> optuna.storages.BaseStorage:
    return make_storage(cfg.storage_url, heartbeat_interval=cfg.heartbeat_interval,
                        grace_period=cfg.grace_period, max_retry=cfg.max_retry)


def open_study(cfg: StudyConfig, storage: optuna.storages.BaseStorage | None = None, *,
               data: Dataset | None = None, allow_changes: bool = False) -> optuna.Study:
    """Create the study in its storage, or load it where it exists (resume).

    A study of the same name made from a different search space or objectives is refused:
    mixing them would corrupt both. With ``data`` the whole identity (data, CV, training
    recipe, space, objectives) is stored on creation and compared on resume; a change is
    refused unless ``allow_changes`` (space and objectives: always).
    """
    check_name(cfg.name, str(cfg.path))
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    storage = storage if storage is not None else storage_for(cfg)
    ctx = SamplerContext(seed=cfg.seed, space=cfg.space)
    source = str(cfg.path)
    sampler = make_sampler(cfg.sampler, cfg.sampler_options, ctx, source)
    pruner = make_pruner(cfg.pruner, cfg.pruner_options,
                         cfg.cv.n_splits * cfg.training.epochs, source)
    directions = [StudyDirection[d.upper()] for d in cfg.directions]
    try:  # load first: a create attempt on a journal appends a record even when refused
        study = optuna.load_study(study_name=cfg.name, storage=storage, sampler=sampler,
                                  pruner=pruner)
    except KeyError:
        study = optuna.create_study(study_name=cfg.name, storage=storage, sampler=sampler,
                                    pruner=pruner, directions=directions,
                                    load_if_exists=True)
    if list(study.directions) != directions:
        raise NasdepthError(f"The study '{cfg.name}' in {redact(cfg.storage_url)} exists with "
                            f"other objectives (directions "
                            f"{[d.name.lower() for d in study.directions]}, not "
                            f"{cfg.directions}). Start a new study: --name NEW_NAME (or "
                            "'name:' in the study file).")
    attrs = study.user_attrs
    stored = attrs.get("config")
    if stored is not None and "identity" not in attrs:
        _check_same_study(cfg, stored)  # a study stored before identities were
    if data is not None:
        _check_identity(study, cfg, data, allow_changes=allow_changes)
    elif "identity" in attrs:  # no data at hand: everything but the data
        mine = {**study_identity(cfg, None), "data": attrs["identity"].get("data")}
        check_identity(cfg, attrs["identity"], mine, allow_changes=allow_changes)
    if stored is None:
        study.set_user_attr("config", cfg.to_dict())
        study.set_user_attr(STUDY_ATTRS["version"], STUDY_RECORD_VERSION)
        for params in cfg.enqueue:  # a new study: its listed candidates run first, once
            study.enqueue_trial(params, skip_if_exists=True)
    names = metric_names(cfg)
    if study.metric_names != names:  # optuna-dashboard and plots show these, not "Objective 0"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(names)
    return study


def load_stored_study(cfg: StudyConfig, storage: str | None = None) -> optuna.Study:
    """The stored study a study file names, from ``storage`` (default: the file's own), for
    reading (export, report, ``diagnose --study``); a missing storage or study is one line
    saying what to run."""
    from nasdepth.study.storage import storage_url

    url = storage_url(storage or cfg.storage_url)  # libpq keywords: a URL, never a file name
    where = f"'{cfg.name}' ({cfg.path})"
    if "://" not in url and not Path(url).is_file():
        raise NasdepthError(f"No storage at {redact(url)} for study {where}: run "
                            f"`nasdepth run {cfg.path}` first, or pass --storage.")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        return optuna.load_study(study_name=cfg.name, storage=make_storage(url))
    except KeyError:
        raise NasdepthError(f"The storage {redact(url)} holds no study named '{cfg.name}' "
                            f"(from {cfg.path}).") from None


def _check_identity(study: optuna.Study, cfg: StudyConfig, data: Dataset, *,
                    allow_changes: bool) -> None:
    mine = study_identity(cfg, data)
    stored = study.user_attrs.get("identity")
    if stored is None:
        study.set_user_attr("identity", mine)
        study.set_user_attr("data", data.to_dict())
        return
    found = check_identity(cfg, stored, mine, allow_changes=allow_changes)
    if found:
        # accepted on purpose: the new settings become the study's, the old ones stay listed
        history = list(study.user_attrs.get("identity_changes", []))
        history.append({"from": settings_id(stored), "to": settings_id(mine),
                        "changes": found})
        study.set_user_attr("identity_changes", history)
        study.set_user_attr("identity", mine)
        study.set_user_attr("data", data.to_dict())
        study.set_user_attr("config", cfg.to_dict())
        print(f"nasdepth: warning: study '{cfg.name}' continues under changed settings "
              f"(--allow-changes): {'; '.join(found)}.", file=sys.stderr)


def metric_names(cfg: StudyConfig) -> list[str]:
    """The study's objectives as Optuna metric names (``latency`` with its unit)."""
    return ["latency_ms" if o == "latency" else o for o in cfg.objectives]


def _check_same_study(cfg: StudyConfig, stored: dict[str, Any]) -> None:
    mine = cfg.to_dict()
    where = f"The study '{cfg.name}' in {redact(cfg.storage_url)}"
    if "space_params" in stored and stored["space_params"] != mine["space_params"]:
        raise NasdepthError(f"{where} was made from another search space "
                            f"({stored.get('space')}). Start a new study: --name NEW_NAME (or "
                            "'name:' in the study file), or use another storage.")
    if stored.get("objectives", [stored.get("objective")]) != mine["objectives"]:
        raise NasdepthError(f"{where} has the objectives {stored.get('objectives')}, not "
                            f"{mine['objectives']}. Start a new study: --name NEW_NAME (or "
                            "'name:' in the study file).")


def count_trials(study: optuna.Study) -> tuple[int, int]:
    """(finished, active) trials in the storage, whoever runs them."""
    trials = study.get_trials(deepcopy=False, states=FINISHED + ACTIVE)
    finished = sum(t.state in FINISHED for t in trials)
    return finished, len(trials) - finished


def _fail_dead_local_trials(study: optuna.Study) -> None:
    """Storages without heartbeats (journal file, Redis): a RUNNING trial whose worker process
    on this machine is gone (SIGKILL, OOM killer) is failed and queued again."""
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if worker_alive(t):
            continue
        storage = study._storage
        try:
            # the reason first: a finished trial's attributes are read-only
            rec = read_record(t)
            rec.state, rec.reason = "failed", f"worker process {rec.worker['pid']} died"
            storage.set_trial_user_attr(t._trial_id, RECORD_KEY, rec.to_dict())
            if storage.set_trial_state_values(t._trial_id, TrialState.FAIL):
                study.enqueue_trial(t.params, user_attrs={"retry_of": t.number},
                                    skip_if_exists=False)
        except (RuntimeError, ValueError):
            continue  # another worker got there first


def _budget_guard(objective: Callable[[optuna.Trial], Any], budget: int, *,
                  settings: str | None, run_id: str) -> Callable[[optuna.Trial], Any]:
    """``objective``, giving up a trial that started beyond the budget."""
    from nasdepth.study.measure import worker_info

    def guarded(trial: optuna.Trial) -> Any:
        rec = read_record(trial)  # an enqueued retry carries its retry_of
        rec.worker = worker_info()
        # before the objective: duplicates match on the settings; a duplicate keeps its run
        rec.settings_id, rec.run_id = settings, run_id
        write_record(trial, rec)
        trials = trial.study.get_trials(deepcopy=False, states=FINISHED + ACTIVE)
        if sum(t.number < trial.number for t in trials) >= budget:
            rec.state, rec.reason = "failed", BUDGET_REACHED
            write_record(trial, rec)
            raise BudgetReached(BUDGET_REACHED)
        return objective(trial)

    return guarded


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
        if size is not None and cfg.transfer is not None:  # times the transfer candidates
            extra = cfg.transfer.size()
            size = None if extra is None else size * extra
        if size is not None and cfg.tasks is not None:  # times the tasks' searched settings
            size *= cfg.tasks.size()
        if size is not None:
            return min(cfg.trials, size)
    return cfg.trials


def prepare(cfg: StudyConfig) -> Dataset:
    """Everything checked before the first trial and before the storage is touched: the name,
    the data, the settings against the data and this machine."""
    check_name(cfg.name, str(cfg.path))
    data = load_data(cfg.data, source=str(cfg.path))
    preflight(cfg, data)
    if cfg.tasks is not None:  # task names checked against the data before any trial
        study_tasks(cfg, data)
    else:  # several label columns: a tasks: section says how, before any trial
        check_one_label_column(data, str(cfg.path))
    return data


def run_worker(cfg: StudyConfig, *, progress: bool = True, probes: bool = True,
               max_failures: int = 5, threads_for: int = 1, requeue: bool = True,
               allow_changes: bool = False, run_id: str | None = None) -> optuna.Study:
    """One worker: run trials of ``cfg`` until the storage holds the budget of finished
    trials, the timeout passes, or ``max_failures`` trials in a row failed."""
    configure_threads(threads_for, threads=env_threads())
    data = prepare(cfg)
    st = open_study(cfg, data=data, allow_changes=allow_changes)
    index = use_worker_sampler(st, cfg)  # a stream of its own per worker (docs/workers.md)
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

    # scaling spaces: each trial's data at its scaled input resolution
    objective = Objective(cfg, data, fold_progress if progress else None,
                          extra_hooks=probe_hooks if probes else None)
    run_id = run_id or uuid.uuid4().hex
    guarded = _budget_guard(objective, budget, settings=settings_id(st.user_attrs["identity"]),
                            run_id=run_id)
    deadline = None if cfg.timeout is None else time.monotonic() + cfg.timeout
    if index == 0:  # one screen per study, by its first worker, before its first trial
        _screen(st, cfg, data, objective, budget, progress, run_id, deadline)
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
            try:
                st.optimize(guarded, n_trials=1, catch=(Exception,))
            except ValueError as exc:
                if "Cannot tell a" not in str(exc):
                    raise
                # another worker failed this trial as stale (its heartbeat came late, e.g. on
                # a loaded machine) and queued it again: it is not ours to finish any more
                print(f"nasdepth: warning: a trial of this worker was taken over by another "
                      f"worker ({exc}); going on.", file=sys.stderr)
            last = _last_trial_of_this_worker(st)
            reason = None if last is None else read_record(last).reason
            if last is not None and last.state == TrialState.FAIL and \
                    reason != BUDGET_REACHED and not is_yielded(reason):
                failures += 1
                if failures >= max_failures:
                    print(f"nasdepth: {failures} trials in a row failed; last reason: "
                          f"{reason}. Stopping this worker.")
                    break
            elif last is not None and last.state in FINISHED:
                failures = 0
            if last is not None and last.state == TrialState.COMPLETE and progress:
                _show_best(st, bar)
    finally:
        bar.close()
    if cfg.tasks is not None and cfg.tasks.baselines and count_trials(st)[0] >= budget:
        # does sharing help? the best trial's architecture on each task alone, same folds
        study_baselines(st, cfg, data)
    return st


def _screen(st: optuna.Study, cfg: StudyConfig, data: Dataset, objective: Objective,
            budget: int, progress: bool, run_id: str, deadline: float | None) -> None:
    """Screen a fresh study's finite space and queue it best first (:mod:`.screen`), with a
    progress bar per candidate (made at the first one: a study not screened shows none)."""
    bars: list[tqdm] = []

    def step(i: int, n: int, score: float | None) -> None:
        if not bars:
            bars.append(tqdm(total=n, desc=f"{cfg.name} screen", unit="candidate",
                             leave=False, disable=not progress, dynamic_ncols=True))
        bars[0].update(1)
        if score is not None:
            bars[0].set_postfix(score=f"{score:.3f}")

    try:
        run_screen(st, cfg, data, objective.splits, budget, progress=step, run_id=run_id,
                   deadline=deadline)
    finally:
        for bar in bars:
            bar.close()


def run_outcome(study: optuna.Study, run_id: str) -> tuple[int, str | None]:
    """(exit status, message) of the run ``run_id``: 1 with a summary of the failure reasons
    where it started trials and none of them finished, else 0 and no message."""
    mine = [rec for rec in map(read_record, study.get_trials(deepcopy=False))
            if rec.run_id == run_id and rec.reason != BUDGET_REACHED
            and not is_yielded(rec.reason)]
    if not mine or any(rec.state in ("complete", "pruned") for rec in mine):
        return 0, None
    failed = [rec for rec in mine if rec.state == "failed"]
    if not failed:
        return 0, None
    reasons = Counter(str(rec.reason or "no reason recorded")[:160] for rec in failed)
    listed = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
    return 1, (f"No trial of this run completed: {len(failed)} failed ({listed}). The trials "
               f"and their tracebacks are stored; see `nasdepth report` or fix the setting and "
               "run again.")


def run_timings(study: optuna.Study, run_id: str) -> dict[str, float]:
    """Where the run ``run_id``'s trials spent their time, summed over them (seconds, from
    their records' ``timings``): ``training`` (the CVs, probes inside), ``probes`` (the
    probes' own calls), ``diagnosis`` (verdicts, baselines, controls) and ``trials``; and
    ``screen`` (:mod:`.screen`, where this run screened the study)."""
    mine = [rec for rec in map(read_record, study.get_trials(deepcopy=False))
            if rec.run_id == run_id]
    screen = screen_of_run(study, run_id)
    out = {"trials": float(len(mine)),
           "screen": 0.0 if screen is None else float(screen["seconds"])}
    for key, name in (("wall_time", "training"), ("probes", "probes"),
                      ("diagnosis", "diagnosis")):
        out[name] = float(sum(v for rec in mine
                              if isinstance(v := rec.timings.get(key), int | float)))
    return out


def _last_trial_of_this_worker(st: optuna.Study) -> optuna.trial.FrozenTrial | None:
    pid = os.getpid()
    mine = [t for t in st.get_trials(deepcopy=False)
            if (read_record(t).worker or {}).get("pid") == pid]
    return max(mine, key=lambda t: t.number) if mine else None


def _show_best(st: optuna.Study, bar: tqdm) -> None:
    post: dict[str, str] = {}
    if len(st.directions) == 1:
        with contextlib.suppress(ValueError):  # no complete trial yet
            post["best"] = f"{st.best_value:.4f}"
    # the cost of the study's opt-in diagnosis controls so far (docs/diagnose.md)
    spent = sum(float(read_record(t).timings.get("controls") or 0.0)
                for t in st.get_trials(deepcopy=False, states=FINISHED))
    if spent:
        post["controls"] = f"{spent:.0f}s"
    if post:
        bar.set_postfix(post)


def _requeue_interrupted(st: optuna.Study) -> None:
    """Trials failed by Ctrl-C are queued again (once), so a resumed study runs them."""
    trials = st.get_trials(deepcopy=False)
    retried = {read_record(t).retry_of for t in trials}
    for t in trials:
        reason = str(read_record(t).reason or "")
        if t.state == TrialState.FAIL and reason.startswith("interrupted") and \
                t.number not in retried and t.params:
            st.enqueue_trial(t.params, user_attrs={"retry_of": t.number}, skip_if_exists=False)
