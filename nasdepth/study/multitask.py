"""Multitask studies: what the objective adds for a study file with a ``tasks:`` section
(:mod:`nasdepth.study.tasks_file`; for users: ``docs/multitask.md``).

Each trial cross-validates a :class:`~nasdepth.train.candidate.MultitaskCandidate` on the
study's splits and records the fold table (each task's columns and their mean) in
``TrialRecord.cv_folds``; the config, tasks, objective, per-task scores and per-task
diagnosis in ``TrialRecord.multitask``; the first objective task's verdict in
``TrialRecord.diagnosis``. After the search, :func:`study_baselines` trains the best trial's
architecture on each task alone, on the same folds, for the report's "Multitask" section.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna

from nasdepth.arch import ArchConfig
from nasdepth.arch.multitask import MultitaskConfig
from nasdepth.data import Dataset, Splits
from nasdepth.data.tasks import check_task
from nasdepth.diagnosis import shallow_baseline
from nasdepth.diagnosis.multitask import diagnose_tasks
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.study.peers import task_controls
from nasdepth.study.probing import trace_summary
from nasdepth.study.record import TrialRecord, read_record, store, stored
from nasdepth.study.study_file import StudyConfig
from nasdepth.study.tasks_file import TASK_OBJECTIVES, TaskSettings
from nasdepth.train import TrainConfig
from nasdepth.train.cv import CVResult, records
from nasdepth.train.sharing import single_task_baselines


def study_tasks(cfg: StudyConfig, data: Dataset) -> tuple[str, ...]:
    """The study's tasks, checked against the data (closest name for a typo)."""
    settings = cfg.tasks
    if settings is None:
        raise ConfigError(str(cfg.path), "tasks", None, "set for a multitask study")
    source = str(cfg.path)
    if not data.is_multitask:  # the error says how to load several tasks
        check_task(data, settings.names[0] if settings.names else None,  # type: ignore[arg-type]
                   source, "tasks")
    names = settings.names or tuple(data.task_names)
    for t in names:
        check_task(data, t, source, "tasks.names")
    if settings.objective not in TASK_OBJECTIVES and settings.objective not in names:
        raise UnknownNameError(source, "tasks.objective", settings.objective,
                               [*TASK_OBJECTIVES, *names])
    for t in settings.weights:
        check_task(data, t, source, "tasks.weights")
    return tuple(names)


def multitask_config(settings: TaskSettings, tasks: Sequence[str], arch: ArchConfig,
                     trial: Any) -> MultitaskConfig:
    """The trial's multitask network: ``arch`` and the tasks' settings (suggested where
    searched; ``branch_at`` clipped to the candidate's depth)."""
    branch = settings.branch_at.suggest(trial)
    head_depth = settings.head_depth.suggest(trial)
    head_width = settings.head_width.suggest(trial)
    if branch is not None:
        branch = min(int(branch), arch.depth)
    weights = tuple(settings.weights.get(t, 1.0) for t in tasks) if settings.weights else ()
    return MultitaskConfig(arch=arch, tasks=tuple(tasks), branch_at=branch,
                           head_depth=head_depth, head_width=int(head_width or 64),
                           weighting=settings.weighting, weights=weights).validate()


def record_tasks(cfg: StudyConfig, study: optuna.Study, result: CVResult, record: TrialRecord,
                 probes: Any, data: Dataset, splits: Splits, tasks: Sequence[str]) -> None:
    """A multitask trial's record: ``record.multitask`` (config, tasks, per-task scores and
    per-task diagnosis), the lead task's probe summary and verdict in the single-task
    fields. ``probes``: the trial's multitask probe hook (None: no probes ran)."""
    mt = MultitaskConfig.from_dict(result.settings["multitask"])
    assert cfg.tasks is not None
    folds = result.folds
    metric = cfg.tasks.metric
    scores = {t: {"mean": float(folds[f"{t}.{metric}"].mean()),
                  "std": float(folds[f"{t}.{metric}"].std(ddof=1))
                  if len(folds) > 1 else 0.0} for t in mt.tasks}
    record.multitask = {"config": mt.to_dict(), "tasks": list(mt.tasks),
                        "branch_at": mt.shared_blocks, "head_depth": len(mt.head_hidden),
                        "objective": cfg.tasks.objective, "metric": metric, "scores": scores}
    record.summary.update({"branch_at": mt.shared_blocks, "head_depth": len(mt.head_hidden)})
    if probes is None:
        return
    try:
        record.probe_summary = probes.summary()
        record.trace_summary = trace_summary(probes.by_task().get(mt.tasks[0], []))
    except Exception as exc:  # a probe bug must not fail a finished candidate
        record.errors["probes"] = f"{type(exc).__name__}: {exc}"
    try:
        names = ["shallow"] if cfg.diagnosis.baseline else []
        known = _shallow(study, data, splits, tasks) if names else {}
        known_tasks = task_controls(study, splits, known, exclude=record.number)
        earlier = dict(stored(study, "reference_tasks") or {})
        for task, ref in earlier.items():  # a reference an earlier trial ran for this task
            if task in known_tasks and isinstance(ref, dict) and \
                    ref.get("splits") == splits.digest:
                known_tasks[task]["reference"] = ref
        budget = cfg.diagnosis.reference_budget if cfg.diagnosis.reference else 0.0
        d = diagnose_tasks(result, data, controls=names + ["reference"] * bool(names),
                           precomputed=known_tasks, reference_budget=budget)
        ran = {t: ref for t, v in d.tasks.items()
               for ref in [(v.controls or {}).get("reference")]
               if isinstance(ref, dict) and (ref.get("ran") or (ref.get("seconds") or 0) > 0)
               and earlier.get(t) != ref}
        if ran:  # once per task and study: later trials read it (a run out of budget too)
            store(study, "reference_tasks", {**earlier, **ran})
            record.timings["reference"] = float(sum(r.get("seconds") or 0.0
                                                    for r in ran.values()))
        record.multitask["diagnosis"] = d.to_dict()
        lead = cfg.objectives[0].split(".", 1)[0] if "." in cfg.objectives[0] else mt.tasks[0]
        record.diagnosis = d.tasks[lead].to_dict()
    except Exception as exc:
        record.errors["diagnosis"] = f"{type(exc).__name__}: {exc}"


def _shallow(study: optuna.Study, data: Dataset, splits: Splits, tasks: Sequence[str]
             ) -> dict[str, Any]:
    """Each task's shallow baseline on the study's splits (computed once per study)."""
    from nasdepth.data.tasks import task_data

    known = stored(study, "shallow_tasks")
    if known is not None and all(isinstance(known.get(t), dict) and
                                 known[t].get("splits") == splits.digest for t in tasks):
        return known
    out = {t: shallow_baseline(task_data(data, t), splits, seed=splits.seed) for t in tasks}
    store(study, "shallow_tasks", out)
    return out


def study_baselines(study: optuna.Study, cfg: StudyConfig, data: Dataset) -> dict[str, Any] | None:
    """The best complete trial's architecture trained on each task alone, on the study's
    splits with the study's recipe: stored as the study record's ``multitask_baselines``
    and returned (None without a complete trial)."""
    key = cfg.objectives[0]
    sign = -1.0 if cfg.directions[0] == "minimize" else 1.0
    scored = []
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rec = read_record(t)
        vals = [float(r[key]) for r in rec.cv_folds or [] if isinstance(r.get(key), (int, float))]
        if vals and isinstance(rec.multitask, dict):
            scored.append((sign * sum(vals) / len(vals), rec))
    if not scored:
        return None
    rec = max(scored, key=lambda s: s[0])[1]  # the first of equal scores
    assert isinstance(rec.multitask, dict)
    mt = MultitaskConfig.from_dict(rec.multitask["config"])
    training = TrainConfig.from_dict(rec.training) if rec.training else cfg.training
    splits = cfg.cv.resolve(data, str(cfg.path))
    known = stored(study, "multitask_baselines", splits.digest)
    if known is not None and known.get("trial") == rec.number and \
            known.get("config") == mt.to_dict():
        return known  # a rerun of a finished study: the same best trial, already trained alone
    table = single_task_baselines(mt, data, cv=splits, seed=cfg.cv_seed, training=training,
                                  multitask_folds=rec.cv_folds)
    out = {"trial": rec.number, "config": mt.to_dict(), "splits": splits.digest,
           "metric": cfg.tasks.metric if cfg.tasks is not None else "val_accuracy",
           "folds": records(table)}
    store(study, "multitask_baselines", out)
    return out
