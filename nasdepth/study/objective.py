"""The Optuna objective: sample an architecture, cross-validate it with pruning across folds,
store everything as one :class:`~nasdepth.study.record.TrialRecord`, and turn any crash into a
recorded reason.

Pruning steps (see ``docs/studies.md``): ``epoch`` pruners get the validation score of every
epoch of every fold at ``step = fold * epochs + epoch`` (unique and increasing, so Optuna never
drops a repeated step, and every trial is compared with others on the same fold and epoch);
``fold`` pruners (Wilcoxon) get one score per fold at ``step = fold``. The folds a trial
finished are stored before it is pruned.

The record is rewritten whenever something is known: after the costs, after every fold, at
the end, and with the state and reason when the trial is pruned or fails.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any

import optuna
import torch
from torch import nn

from nasdepth.arch import count_parameters
from nasdepth.data import Dataset
from nasdepth.errors import ConfigError
from nasdepth.study.candidates import recipe_params, suggest_candidate
from nasdepth.study.distinct import claim_candidate, same_candidate
from nasdepth.study.identity import check_checkpoint
from nasdepth.study.measure import count_flops, measure_latency, versions, worker_info
from nasdepth.study.multitask import record_tasks, study_tasks
from nasdepth.study.probing import linear_probe_hooks, record_diagnosis
from nasdepth.study.record import TrialRecord, read_record, write_record
from nasdepth.study.registry import pruner_granularity
from nasdepth.study.study_file import CONSTRAINTS, StudyConfig
from nasdepth.study.transfer import transfer_record
from nasdepth.train import LOWER_IS_BETTER, NonFiniteLossError, TrainHook, cross_validate
from nasdepth.train.candidate import Candidate, TransferCandidate
from nasdepth.train.cv import FoldCallback, records

FoldProgress = Callable[[int, int], FoldCallback]
#: (trial, candidate) -> extra hooks for cross_validate, e.g. probes (a hook with
#: ``summary()``: the probes whose summary and traces the record keeps)
HookFactory = Callable[[optuna.Trial, Candidate], Sequence[TrainHook]]


class EpochPruningHook(TrainHook):
    """Reports every epoch's score at ``step = fold * epochs + epoch`` and prunes."""

    #: pruning across folds only saves time when folds train one after another
    needs_per_fold_model = True

    def __init__(self, trial: optuna.Trial, epochs: int, key: str,
                 record: TrialRecord | None = None) -> None:
        self.trial, self.epochs, self.key, self.record = trial, epochs, key, record

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        value = float(record[self.key])
        if not math.isfinite(value):
            return
        step = fold * self.epochs + int(record["epoch"])
        self.trial.report(value, step)
        if self.trial.should_prune():
            if self.record is not None:  # stored by the objective with the state
                self.record.pruned_at = {"fold": fold, "epoch": int(record["epoch"]),
                                         "step": step}
            raise optuna.TrialPruned(f"pruned at fold {fold}, epoch {record['epoch']}")


def epoch_key(objective: str) -> str:
    """The per-epoch record value that tracks ``objective`` (the engine records accuracy and
    log loss each epoch; other metrics are tracked by accuracy). One task's objective
    (``parity.val_accuracy``) prunes on that task's per-epoch score, others on the mean."""
    if "." in objective:
        task, metric = objective.split(".", 1)
        return f"{task}.{epoch_key(metric)}"
    return "val_loss" if objective.endswith(LOWER_IS_BETTER) else "val_accuracy"


def is_out_of_memory(exc: BaseException) -> bool:
    """``MemoryError``, CUDA's ``OutOfMemoryError``, the engine's ``DeviceOutOfMemoryError``."""
    return isinstance(exc, MemoryError) or "OutOfMemory" in type(exc).__name__ or (
        isinstance(exc, RuntimeError) and any(
            s in str(exc).lower() for s in ("out of memory", "can't allocate memory",
                                            "cannot allocate memory")))  # CPU allocator


def fail_reason(exc: BaseException) -> str:
    if isinstance(exc, NonFiniteLossError):
        return str(exc)
    if is_out_of_memory(exc):
        return f"out of memory ({type(exc).__name__}: {str(exc)[:200]})"
    if isinstance(exc, ValueError) and ("NaN" in str(exc) or "infinity" in str(exc)):
        # weights that blew up in the last steps give NaN predictions before a NaN loss
        return f"non-finite predictions ({type(exc).__name__}: {str(exc)[:200]})"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted (Ctrl-C); the trial is retried when the study resumes"
    return f"{type(exc).__name__}: {str(exc)[:300]}"


class Objective:
    """Callable objective for every study: each trial samples a
    :class:`~nasdepth.train.candidate.Candidate` (:func:`suggest_candidate`: single-task,
    multitask, transfer or multitask + transfer) and cross-validates it with the one driver.
    ``fold_progress(trial_number, folds)`` may return a fold callback,
    ``extra_hooks(trial, candidate)`` extra training hooks (probes)."""

    def __init__(self, cfg: StudyConfig, data: Dataset, fold_progress: FoldProgress | None = None,
                 extra_hooks: HookFactory | None = None) -> None:
        for key in ("transfer", "tasks"):
            if cfg.space.scaling is not None and getattr(cfg, key, None) is not None:
                raise ConfigError(str(cfg.path), key, f"a {key}: section",
                                  f"absent when the space ({cfg.space.source}) has a scaling: "
                                  "section (scaling studies train single-task networks from "
                                  "scratch, each at its own input resolution)")
        self.tasks = study_tasks(cfg, data) if cfg.tasks is not None else ()
        # ``data`` is what each candidate prepares (adapts) itself; ``view``: as the
        # checkpoint takes it, once, for the baselines, the costs and the diagnosis
        self.cfg, self.data = cfg, data
        self.view = data if cfg.transfer is None else cfg.transfer.adapt_data(
            data, str(cfg.path))[0]
        self.fold_progress, self.extra_hooks = fold_progress, extra_hooks
        # the CV resolved once: every trial, the baselines and the controls share these splits
        self.splits = cfg.cv.resolve(data, str(cfg.path))

    def __call__(self, trial: optuna.Trial) -> float | Sequence[float]:
        # a record the runner started (worker) or an enqueued retry's ``retry_of`` carry on
        rec = read_record(trial)
        rec.state, rec.reason = "running", None
        try:
            values = self._run(trial, rec)
        except optuna.TrialPruned as exc:
            rec.state, rec.reason = "pruned", str(exc) or None
            write_record(trial, rec)
            raise
        except (Exception, KeyboardInterrupt) as exc:  # recorded; the study goes on
            tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
            rec.state, rec.reason = "failed", fail_reason(exc)
            rec.errors["traceback"] = "".join(tb[-3:])[-2000:]
            write_record(trial, rec)
            if is_out_of_memory(exc) and torch.cuda.is_available():
                torch.cuda.empty_cache()  # leave memory for the next candidate
            raise
        bad = [v for v in (values if isinstance(values, Sequence) else [values])
               if not math.isfinite(float(v))]
        # Optuna fails a trial whose value is NaN or infinite: say so in its record
        rec.state, rec.reason = ("failed", f"non-finite objective value {bad[0]}") if bad else (
            "complete", None)
        write_record(trial, rec)
        return values

    def _measure(self, trial: optuna.Trial, model: nn.Module, data: Dataset
                 ) -> dict[str, float]:
        """The costs of ``model`` (one candidate, built for ``data``), set as the trial's
        constraints."""
        cfg = self.cfg
        costs: dict[str, float] = {"params": count_parameters(model)}
        costs["flops"] = count_flops(model, data.input_shape)
        wanted = set(cfg.objectives) | {CONSTRAINTS[c] for c in cfg.constraints}
        if "latency" in wanted:
            costs["latency"] = measure_latency(model, data.input_shape)
        for key, bound in cfg.constraints.items():
            # Optuna: feasible when every constraint value is <= 0
            trial.set_constraint(key, costs[CONSTRAINTS[key]] - bound)
        return costs

    def _run(self, trial: optuna.Trial, rec: TrialRecord) -> float | Sequence[float]:
        cfg = self.cfg
        start = time.perf_counter()
        rec.seed, rec.versions, rec.worker = cfg.seed, versions(), worker_info()
        cand = suggest_candidate(cfg, trial, self.view, self.tasks)
        arch = cand.arch
        if isinstance(cand, TransferCandidate):
            check_checkpoint(cfg)  # replaced since the study started: this trial fails
            rec.transfer = cand.transfer.to_dict()
        rec.params = dict(trial.params)
        # the study's training: with the space's sampled recipe (lr, weight decay ...) applied
        training = cfg.space.training(recipe_params(cfg, trial.params), cfg.training)
        rec.training = training.to_dict()
        claim_candidate(trial)  # another worker's running trial holds it: draw another
        twin = same_candidate(trial, optuna.trial.TrialState.COMPLETE,
                              lambda t: t.values is not None and bool(read_record(t).cv_folds))
        if twin is not None:
            # same candidate, same seeded folds: the CV would repeat the twin's scores
            # exactly; samplers on small categorical spaces propose repeats often
            _copy_twin(rec, read_record(twin))
            for key, bound in twin.constraints.items():
                trial.set_constraint(key, bound)
            rec.timings = {"wall_time": time.perf_counter() - start}
            return twin.values[0] if len(twin.values) == 1 else list(twin.values)
        rec.arch = arch.to_dict()
        rec.candidate = cand.describe()
        rec.splits = self.splits.to_dict()  # what export refits on, probes or not
        write_record(trial, rec)  # what crashes while measuring stays inspectable
        # the data as this candidate's networks take them (adapted to a checkpoint, resized
        # to its resolution): costs, probes and diagnosis read these
        view = cand.prepare(self.data, str(cfg.path))
        costs = self._measure(trial, cand.build(view), view)
        rec.costs = {"latency_ms" if k == "latency" else k: float(v) for k, v in costs.items()}
        rec.summary = {**arch.summary(), "params": int(costs["params"]),
                       "flops": int(costs["flops"]), **_scaling(cfg, cand, trial.params)}
        write_record(trial, rec)

        rows: list[dict[str, Any]] = []
        progress = None if self.fold_progress is None else self.fold_progress(
            trial.number, cfg.cv.n_splits)
        granularity = pruner_granularity(cfg.pruner) if cfg.pruner != "none" else "none"
        metric = cfg.objective

        def on_fold(k: int, row: dict[str, Any]) -> None:
            rows.append(row)
            rec.cv_folds = records(rows)
            rec.timings = {"wall_time": time.perf_counter() - start}
            write_record(trial, rec)  # kept if pruned or failed later
            if progress is not None:
                progress(k, row)
            if granularity == "fold":
                trial.report(float(row[metric]), k)
                if trial.should_prune():
                    rec.pruned_at = {"fold": k, "step": k}
                    raise optuna.TrialPruned(f"pruned after fold {k}")

        hooks: list[TrainHook] = []
        if granularity == "epoch":
            hooks.append(EpochPruningHook(trial, training.epochs, epoch_key(metric), rec))
        probes: list[TrainHook] = []
        if self.extra_hooks is not None:
            probes = list(self.extra_hooks(trial, cand))
            probes += linear_probe_hooks(cand, view, self.splits)
        try:
            result = cross_validate(cand, self.data, cv=self.splits, seed=cfg.cv_seed,
                                    training=training, on_fold=on_fold, hooks=hooks + probes,
                                    source=str(cfg.path))
        finally:
            # wall_time: the CV (training and the probes in it); probes: the probes' own calls
            rec.timings = {"wall_time": time.perf_counter() - start,
                           "probes": sum(h.seconds for h in probes)}
        rec.cv_folds = records(result.folds)
        rec.device = str(result.settings.get("device", "cpu"))
        rec.precision = result.settings.get("precision")
        rec.parallel = bool(result.settings.get("parallel"))
        # the recipe it trained with (lr: auto resolved) and the range test's curve
        rec.training = dict(result.settings.get("training") or rec.training)
        rec.lr_find = result.settings.get("lr_find")
        if isinstance(cand, TransferCandidate) and self.cfg.transfer is not None:
            check_checkpoint(self.cfg)  # replaced while this trial trained
            rec.transfer = transfer_record(result, self.cfg.transfer, self.data, cand,
                                           self.splits, training)
        diagnosed = time.perf_counter()
        if cfg.tasks is not None:
            record_tasks(cfg, trial.study, result, rec, probes[0] if probes else None,
                         view, self.splits, self.tasks)
        else:
            record_diagnosis(trial, result, rec, data=view, splits=self.splits,
                             settings=self.cfg.diagnosis, probes=probes)
        # the verdict with its baselines (and controls or a reference network, where they ran:
        # their own seconds are under those names too)
        rec.timings["diagnosis"] = time.perf_counter() - diagnosed
        values = [result.mean(o) if o not in costs else float(costs[o])
                  for o in cfg.objectives]
        return values[0] if len(values) == 1 else values


def _scaling(cfg: StudyConfig, cand: Candidate, params: dict[str, Any]) -> dict[str, Any]:
    """A scaled trial's input side, φ and rule for its record's summary (the report's scaling
    section reads them; a fixed φ is no Optuna parameter); empty for other trials."""
    side = getattr(cand, "resolution", None)
    if side is None or cfg.space.scaling is None:
        return {}
    shared, _ = cfg.space.scopes(params)
    phi, rule = cfg.space.scaling.values(shared)
    return {"resolution": side, "scaling.phi": phi, "scaling.rule": rule.name,
            "matched_phi": cfg.space.scaled(params)[0]}


#: what a repeated candidate keeps of its own: who ran it, when, and why it runs
_OWN = ("number", "state", "reason", "timings", "seed", "versions", "worker", "retry_of",
        "errors", "version", "run_id")


def _copy_twin(rec: TrialRecord, twin: TrialRecord) -> None:
    """Fill ``rec`` with the twin's results (arch, costs, CV table, probes, diagnosis)."""
    for name, value in twin.to_dict().items():
        if name not in _OWN:
            setattr(rec, name, value)
    rec.duplicate_of = twin.number
