"""Multitask studies: the objective for a study file with a ``tasks:`` section
(:mod:`nasdepth.study.tasks_file`).

Each trial samples an architecture from the space and the tasks' own settings (``branch_at``,
``head_depth``, ``head_width``, where searched), cross-validates the multitask network on the
study's splits (sequential engine, data on the device), scores each task, and records:

- ``TrialRecord.cv_folds``: the fold table (each task's columns and their mean);
- ``TrialRecord.multitask``: the multitask config trained (``MultitaskConfig.to_dict()``),
  the tasks, the objective, the per-task scores, and the per-task diagnosis
  (``MultitaskDiagnosis.to_dict()``: a verdict per task and the trunk's gradients);
- ``TrialRecord.diagnosis``: the verdict of the first objective's task (the mean objective:
  the first task), so single-task readers keep one verdict per trial.

After the search, :func:`study_baselines` trains the best trial's architecture on each task
alone, on the same folds, and stores the comparison in the study's user attribute
:data:`BASELINES_ATTR` (the report's "Multitask" section reads it).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import optuna

from nasdepth.arch import ArchConfig
from nasdepth.arch.multitask import MultitaskConfig, build_multitask
from nasdepth.data import Dataset
from nasdepth.data.tasks import check_task
from nasdepth.diagnosis import shallow_baseline
from nasdepth.diagnosis.multitask import diagnose_tasks
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.probes import MultitaskProbeHook
from nasdepth.study.objective import FoldProgress, HookFactory, Objective, epoch_key
from nasdepth.study.peers import task_controls
from nasdepth.study.probing import trace_summary
from nasdepth.study.record import TrialRecord, read_record
from nasdepth.study.study_file import StudyConfig
from nasdepth.study.tasks_file import SEARCHED, TASK_OBJECTIVES, TaskSettings
from nasdepth.train import TrainConfig, TrainHook
from nasdepth.train.cv import CVResult, FoldCallback, records
from nasdepth.train.sharing import single_task_baselines
from nasdepth.train.transfer import TransferConfig

log = logging.getLogger("nasdepth.study")

#: the study attribute holding the best trial's single-task baselines
BASELINES_ATTR = "multitask_baselines"
#: the study attribute holding each task's shallow baseline (once per study)
SHALLOW_ATTR = "shallow_baseline_tasks"
_MT_ATTR = "_nasdepth_multitask"
_HOOK_ATTR = "_nasdepth_multitask_probes"


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


class _TaskSpace:
    """The study's space, with the tasks' settings suggested after the architecture (so they
    are Optuna parameters of the trial before duplicates are looked for)."""

    def __init__(self, objective: MultitaskObjective) -> None:
        self._objective = objective
        self._space = objective.base_space

    def __getattr__(self, name: str) -> Any:
        return getattr(self._space, name)

    def training(self, values: Any, base: TrainConfig) -> TrainConfig:
        own = {k: v for k, v in dict(values).items() if k not in SEARCHED}
        return self._space.training(own, base)

    def suggest(self, trial: optuna.Trial) -> ArchConfig:
        arch = self._space.suggest(trial)
        o = self._objective
        assert o.cfg.tasks is not None
        setattr(trial, _MT_ATTR, multitask_config(o.cfg.tasks, o.tasks, arch, trial))
        return arch


class MultitaskObjective(Objective):
    """:class:`Objective` for a multitask study (same records, pruning and failure handling);
    ``extra_hooks`` is replaced by per-task probes where given."""

    def __init__(self, cfg: StudyConfig, data: Dataset, fold_progress: FoldProgress | None = None,
                 extra_hooks: HookFactory | None = None) -> None:
        self.tasks = study_tasks(cfg, data)
        self.base_space = cfg.space
        super().__init__(replace(cfg, space=_TaskSpace(self)),  # type: ignore[arg-type]
                         data, fold_progress,
                         extra_hooks=self._probes if extra_hooks is not None else None)
        self._current: MultitaskConfig | None = None

    def epoch_key(self, objective: str) -> str:
        """One task's objective (``parity.val_accuracy``) prunes on that task's per-epoch
        score; the mean on the mean."""
        if "." in objective:
            task, metric = objective.split(".", 1)
            return f"{task}.{epoch_key(metric)}"
        return epoch_key(objective)

    def _probes(self, trial: optuna.Trial, arch: ArchConfig) -> Sequence[TrainHook]:
        hook = MultitaskProbeHook()
        setattr(trial, _HOOK_ATTR, hook)
        return [hook]

    def _costs(self, trial: optuna.Trial, arch: ArchConfig) -> dict[str, float]:
        data = self.data
        mt: MultitaskConfig = getattr(trial, _MT_ATTR)
        self._current = mt
        num_classes = {t: (data.tasks or {})[t].num_classes for t in mt.tasks}
        return self._measure(trial, build_multitask(mt, data.input_shape, num_classes))

    def _cross_validate(self, arch: ArchConfig, on_fold: FoldCallback,
                        hooks: Sequence[TrainHook], training: TrainConfig | None = None,
                        transfer: TransferConfig | None = None) -> CVResult:
        from nasdepth.train.multitask import cross_validate_multitask

        if transfer is not None:  # the study file refuses transfer: with tasks:
            raise ConfigError(str(self.cfg.path), "transfer", transfer.to_dict(),
                              "absent in a multitask study")

        assert self._current is not None
        cfg = self.cfg
        return cross_validate_multitask(self._current, self.data, cv=self.splits,
                                        seed=cfg.cv_seed, training=training or cfg.training,
                                        on_fold=on_fold, hooks=hooks, source=str(cfg.path))

    def after_cv(self, trial: optuna.Trial, result: CVResult, record: TrialRecord) -> None:
        mt = self._current
        assert mt is not None and self.cfg.tasks is not None
        folds = result.folds
        scores = {t: {"mean": float(folds[f"{t}.{self.cfg.tasks.metric}"].mean()),
                      "std": float(folds[f"{t}.{self.cfg.tasks.metric}"].std(ddof=1))
                      if len(folds) > 1 else 0.0} for t in mt.tasks}
        record.multitask = {"config": mt.to_dict(), "tasks": list(mt.tasks),
                            "branch_at": mt.shared_blocks, "head_depth": len(mt.head_hidden),
                            "objective": self.cfg.tasks.objective,
                            "metric": self.cfg.tasks.metric, "scores": scores}
        record.summary.update({"branch_at": mt.shared_blocks,
                               "head_depth": len(mt.head_hidden)})
        hook = getattr(trial, _HOOK_ATTR, None)
        if hook is None:
            return
        try:
            record.probe_summary = hook.summary()
            first = hook.by_task().get(mt.tasks[0], [])
            record.trace_summary = trace_summary(first)
        except Exception as exc:  # a probe bug must not fail a finished candidate
            record.errors["probes"] = f"{type(exc).__name__}: {exc}"
        try:
            known = {}
            names: list[str] = []
            if self.cfg.diagnosis.baseline:
                known = self._shallow(trial.study)
                names = ["shallow"]
            d = diagnose_tasks(result, self.data, controls=names + ["reference"] * bool(names),
                               precomputed=task_controls(trial.study, self.splits, known,
                                                         exclude=trial.number))
            record.multitask["diagnosis"] = d.to_dict()
            lead = self.cfg.objectives[0].split(".", 1)[0] if "." in self.cfg.objectives[0] \
                else mt.tasks[0]
            record.diagnosis = d.tasks[lead].to_dict()
            record.splits = self.splits.to_dict()
        except Exception as exc:
            record.errors["diagnosis"] = f"{type(exc).__name__}: {exc}"

    def _shallow(self, study: optuna.Study) -> dict[str, Any]:
        """Each task's shallow baseline on the study's splits (computed once per study)."""
        from nasdepth.data.tasks import task_data

        stored = study.user_attrs.get(SHALLOW_ATTR)
        if isinstance(stored, dict) and all(
                isinstance(stored.get(t), dict) and stored[t].get("splits") == self.splits.digest
                for t in self.tasks):
            return stored
        out = {t: shallow_baseline(task_data(self.data, t), self.splits, seed=self.splits.seed)
               for t in self.tasks}
        study.set_user_attr(SHALLOW_ATTR, out)
        return out


def study_baselines(study: optuna.Study, cfg: StudyConfig, data: Dataset) -> dict[str, Any] | None:
    """The best complete trial's architecture trained on each task alone, on the study's
    splits with the study's recipe: stored as :data:`BASELINES_ATTR` and returned (None
    without a complete trial)."""
    best = None
    key = cfg.objectives[0]
    sign = -1.0 if cfg.directions[0] == "minimize" else 1.0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        rec = read_record(t)
        if not rec.cv_folds or not isinstance(rec.multitask, dict):
            continue
        vals = [float(r[key]) for r in rec.cv_folds if isinstance(r.get(key), (int, float))]
        if not vals:
            continue
        score = sign * sum(vals) / len(vals)
        if best is None or score > best[0]:
            best = (score, rec)
    if best is None:
        return None
    rec = best[1]
    assert isinstance(rec.multitask, dict)
    mt = MultitaskConfig.from_dict(rec.multitask["config"])
    training = TrainConfig.from_dict(rec.training) if rec.training else cfg.training
    splits = cfg.cv.resolve(data, str(cfg.path))
    stored = study.user_attrs.get(BASELINES_ATTR)
    if isinstance(stored, dict) and stored.get("trial") == rec.number and \
            stored.get("config") == mt.to_dict() and stored.get("splits") == splits.digest:
        return stored  # a rerun of a finished study: the same best trial, already trained alone
    table = single_task_baselines(mt, data, cv=splits, seed=cfg.cv_seed, training=training,
                                  multitask_folds=rec.cv_folds)
    out = {"trial": rec.number, "config": mt.to_dict(), "splits": splits.digest,
           "metric": cfg.tasks.metric if cfg.tasks is not None else "val_accuracy",
           "folds": records(table)}
    study.set_user_attr(BASELINES_ATTR, out)
    return out
