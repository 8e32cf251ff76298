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

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.data import Dataset
from nasdepth.study.distinct import claim_candidate
from nasdepth.study.identity import check_checkpoint
from nasdepth.study.measure import count_flops, measure_latency, versions, worker_info
from nasdepth.study.probing import linear_probe_hooks, record_diagnosis
from nasdepth.study.record import TrialRecord, read_record, write_record
from nasdepth.study.registry import pruner_granularity
from nasdepth.study.study_file import CONSTRAINTS, StudyConfig
from nasdepth.study.transfer import PREFIX, transfer_record
from nasdepth.train import NonFiniteLossError, TrainConfig, TrainHook, cross_validate
from nasdepth.train.cv import CVResult, FoldCallback, records
from nasdepth.train.transfer import TransferConfig
from nasdepth.train.transfer_cv import cross_validate_transfer

FoldProgress = Callable[[int, int], FoldCallback]
#: (trial, arch, model) -> extra hooks for cross_validate, e.g. probes
HookFactory = Callable[[optuna.Trial, ArchConfig], Sequence[TrainHook]]


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
    log loss each epoch; other metrics are tracked by accuracy)."""
    return "val_loss" if objective.endswith("log_loss") else "val_accuracy"


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
    """Callable objective; ``fold_progress(trial_number, folds)`` may return a fold callback,
    ``extra_hooks(trial, arch)`` extra training hooks (probes)."""

    def __init__(self, cfg: StudyConfig, data: Dataset, fold_progress: FoldProgress | None = None,
                 extra_hooks: HookFactory | None = None) -> None:
        if cfg.transfer is not None:  # the data as the checkpoint takes it, once for all trials
            data, _ = cfg.transfer.adapt_data(data, str(cfg.path))
        self.cfg, self.data = cfg, data
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
            if is_out_of_memory(exc):
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()  # leave memory for the next candidate
            raise
        bad = [v for v in (values if isinstance(values, Sequence) else [values])
               if not math.isfinite(float(v))]
        # Optuna fails a trial whose value is NaN or infinite: say so in its record
        rec.state, rec.reason = ("failed", f"non-finite objective value {bad[0]}") if bad else (
            "complete", None)
        write_record(trial, rec)
        return values

    def epoch_key(self, objective: str) -> str:
        """The per-epoch record value that epoch pruners read for ``objective``."""
        return epoch_key(objective)

    def _costs(self, trial: optuna.Trial, arch: ArchConfig) -> dict[str, float]:
        """Params (and FLOPs, latency where an objective or constraint needs them) of a
        freshly built candidate, stored and turned into constraints before any training."""
        data = self.data
        return self._measure(trial, build_model(arch, data.input_shape, data.num_classes))

    def _measure(self, trial: optuna.Trial, model: nn.Module) -> dict[str, float]:
        """The costs of ``model`` (one candidate, built), set as the trial's constraints."""
        cfg, data = self.cfg, self.data
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
        arch = cfg.space.suggest(trial)
        transfer = None
        if cfg.transfer is not None:  # the mode, blocks and rate factor; the file's architecture
            transfer = cfg.transfer.suggest(trial)
            check_checkpoint(cfg)  # replaced since the study started: this trial fails
            arch = cfg.transfer.architecture(self.data) or arch
            rec.transfer = transfer.to_dict()
        rec.params = dict(trial.params)
        # the study's training: with the space's sampled recipe (lr, weight decay ...) applied
        space_params = {k: v for k, v in trial.params.items() if not k.startswith(PREFIX)}
        training = cfg.space.training(space_params, cfg.training)
        rec.training = training.to_dict()
        claim_candidate(trial)  # another worker's running trial holds it: draw another
        twin = _completed_twin(trial)
        if twin is not None:
            # same candidate, same seeded folds: the CV would repeat the twin's scores
            # exactly; samplers on small categorical spaces propose repeats often
            _copy_twin(rec, read_record(twin))
            for key, bound in twin.constraints.items():
                trial.set_constraint(key, bound)
            rec.timings = {"wall_time": time.perf_counter() - start}
            return twin.values[0] if len(twin.values) == 1 else list(twin.values)
        rec.arch = arch.to_dict()
        rec.splits = self.splits.to_dict()  # what export refits on, probes or not
        write_record(trial, rec)  # what crashes while measuring stays inspectable
        costs = self._costs(trial, arch)
        rec.costs = {"params": float(costs["params"]), "flops": float(costs["flops"])}
        if "latency" in costs:
            rec.costs["latency_ms"] = float(costs["latency"])
        rec.summary = {**arch.summary(), "params": int(costs["params"]),
                       "flops": int(costs["flops"])}
        write_record(trial, rec)

        rows: list[dict[str, Any]] = []
        progress = None if self.fold_progress is None else self.fold_progress(
            trial.number, cfg.cv.n_splits)
        granularity = pruner_granularity(cfg.pruner) if cfg.pruner != "none" else "none"
        metric = cfg.objective

        def on_fold(k: int, row: dict[str, Any]) -> None:
            rows.append(row)
            rec.cv_folds = records_of(rows)
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
            hooks.append(EpochPruningHook(trial, training.epochs, self.epoch_key(metric), rec))
        if self.extra_hooks is not None:
            hooks += list(self.extra_hooks(trial, arch))
            hooks += linear_probe_hooks(trial, self.data, self.splits)
        try:
            result = self._cross_validate(arch, on_fold, hooks, training, transfer)
        finally:
            rec.timings = {"wall_time": time.perf_counter() - start}
        rec.cv_folds = records(result.folds)
        rec.device = str(result.settings.get("device", "cpu"))
        # the recipe it trained with (lr: auto resolved) and the range test's curve
        rec.training = dict(result.settings.get("training") or rec.training)
        rec.lr_find = result.settings.get("lr_find")
        if transfer is not None and self.cfg.transfer is not None:
            check_checkpoint(self.cfg)  # replaced while this trial trained
            rec.transfer = transfer_record(result, self.cfg.transfer, self.data, arch, transfer,
                                           self.splits, training)
        self.after_cv(trial, result, rec)
        values = [result.mean(o) if o not in costs else float(costs[o])
                  for o in cfg.objectives]
        return values[0] if len(values) == 1 else values

    def _cross_validate(self, arch: ArchConfig, on_fold: FoldCallback,
                        hooks: Sequence[TrainHook], training: TrainConfig | None = None,
                        transfer: TransferConfig | None = None) -> CVResult:
        cfg = self.cfg
        if transfer is not None and cfg.transfer is not None:  # sequential folds
            return cross_validate_transfer(
                arch, self.data, transfer, cv=self.splits, seed=cfg.cv_seed,
                training=training or cfg.training, on_fold=on_fold, hooks=hooks,
                source_model=cfg.transfer.source, source=str(cfg.path))
        return cross_validate(arch, self.data, cv=self.splits, seed=cfg.cv_seed,
                              training=training or cfg.training, on_fold=on_fold, hooks=hooks,
                              source=str(cfg.path))

    def after_cv(self, trial: optuna.Trial, result: CVResult, record: TrialRecord) -> None:
        """Add the probe summary and diagnosis to the record (see
        :mod:`nasdepth.study.probing`); the objective stores it."""
        record_diagnosis(trial, result, record, data=self.data, splits=self.splits,
                         settings=self.cfg.diagnosis)


def _completed_twin(trial: optuna.Trial) -> optuna.trial.FrozenTrial | None:
    """An earlier complete trial of this study with exactly this trial's parameters, trained
    under the same settings (``settings_id``: data, CV, recipe)."""
    params, settings = trial.params, read_record(trial).settings_id
    for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if t.params == params and t.values is not None and read_record(t).cv_folds and \
                read_record(t).settings_id == settings:
            return t
    return None


#: what a repeated candidate keeps of its own: who ran it, when, and why it runs
_OWN = ("number", "state", "reason", "timings", "seed", "versions", "worker", "retry_of",
        "errors", "version", "run_id")


def _copy_twin(rec: TrialRecord, twin: TrialRecord) -> None:
    """Fill ``rec`` with the twin's results (arch, costs, CV table, probes, diagnosis)."""
    for name, value in twin.to_dict().items():
        if name not in _OWN:
            setattr(rec, name, value)
    rec.duplicate_of = twin.number


def records_of(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in rows]
