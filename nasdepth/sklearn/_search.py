"""``NASClassifier``: a depth/width search behind scikit-learn's ``*SearchCV`` interface.

``fit`` runs a real nasdepth study on ``(X, y)``: the search space and study settings become a
:class:`~nasdepth.study.StudyConfig` (the same validation a study file gets), the study is
opened in its storage (in memory by default) and trials run through the study's own
:class:`~nasdepth.study.objective.Objective` (k-fold CV on shared splits, pruning across folds,
probes, a verdict per trial), as ``nasdepth run`` runs them. The results are then read back
from the trial records into scikit-learn's ``cv_results_`` layout, and the best candidate is
refit on all of ``X`` as an :class:`~nasdepth.sklearn.ArchClassifier`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState
from scipy.stats import rankdata
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import check_cv
from sklearn.utils.validation import check_is_fitted

from nasdepth.data import Splits, from_arrays
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError
from nasdepth.export import refit_epochs
from nasdepth.report.writers import write_report
from nasdepth.sklearn._arch import (
    ARCH_PARAMS,
    ArchClassifier,
    _is_int,
    _plain,
    engine_seed,
    fit_data,
    sample_shape,
    split_recipe,
)
from nasdepth.study.distinct import is_yielded, use_worker_sampler
from nasdepth.study.objective import Objective
from nasdepth.study.preflight import preflight
from nasdepth.study.probing import probe_hooks
from nasdepth.study.record import TrialRecord, read_record
from nasdepth.study.runner import open_study, storage_for
from nasdepth.study.study_file import StudyConfig, study_from_dict
from nasdepth.train import TrainConfig
from nasdepth.yamlfile import read_yaml

__all__ = ["NASClassifier", "SCORING"]

SOURCE = "NASClassifier"
#: scikit-learn scorer name -> the CV metric a study records per fold (sign: +1 or -1)
SCORING = {"accuracy": ("val_accuracy", 1), "balanced_accuracy": ("val_balanced_accuracy", 1),
           "precision_macro": ("val_precision_macro", 1),
           "recall_macro": ("val_recall_macro", 1), "f1_macro": ("val_f1_macro", 1),
           "roc_auc": ("val_roc_auc", 1), "roc_auc_ovr": ("val_roc_auc", 1),
           "neg_log_loss": ("val_log_loss", -1)}
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
#: the recipe parameters a list or distribution searches (a single value: fixed)
SEARCHABLE_RECIPE = ("lr", "batch_size", "optimizer", "weight_decay")


def _spec(name: str, value: Any) -> Any:
    """A flat parameter as a search-space entry: a list (or tuple) is a categorical choice, an
    Optuna distribution a range, anything else a fixed value."""
    if isinstance(value, (list, tuple, CategoricalDistribution)):
        choices = value.choices if isinstance(value, CategoricalDistribution) else value
        if not choices:
            raise ConfigError(SOURCE, name, value, "a value, a non-empty list or a distribution")
        return {"type": "categorical", "choices": [_plain(v) for v in choices]}
    if isinstance(value, (IntDistribution, FloatDistribution)):  # a float's step: None or set
        return {"type": "int" if isinstance(value, IntDistribution) else "float",
                "low": value.low, "high": value.high, "log": value.log,
                **({} if value.step is None else {"step": value.step})}
    if isinstance(value, BaseDistribution):
        raise ConfigError(SOURCE, name, value, "an Int-, Float- or CategoricalDistribution")
    return _plain(value)


def _searched(value: Any) -> bool:
    return isinstance(value, (list, tuple, BaseDistribution))


class NASClassifier(ClassifierMixin, BaseEstimator):
    """Search depth and width (and any other space parameter) with a nasdepth study, then
    refit the best candidate: a ``DepthSearchCV`` in scikit-learn's ``*SearchCV`` layout.

    ``space``: a search-space YAML path, or its dict; the flat parameters (``depth``,
    ``width``, ``block``, ``skip``, ``norm``, ``activation``, ``stages``, ``dropout`` and the
    recipe's ``lr``, ``batch_size``, ``optimizer``, ``weight_decay``) add to it or override it:
    a list or an Optuna distribution is searched, a single value is fixed. ``epochs`` and
    ``patience`` are fixed for the study.

    ``cv``: an int (stratified k-fold shuffled with ``random_state``, exactly the splits a
    study file's ``cv: {folds: k, seed: random_state}`` makes; with ``groups``, group k-fold)
    or any scikit-learn splitter (``groups`` passed to its ``split``). ``n_trials``,
    ``timeout`` (seconds): the budget. ``sampler``, ``pruner``: a nasdepth name (``tpe``,
    ``random``, ``grid`` ...; ``median``, ``hyperband``, ``wilcoxon``, ``none`` ...) or an
    Optuna object. ``storage``: None (in memory) or any Optuna storage URL / journal path, which
    several processes can share (``study_name`` names the study there; a second ``fit`` on a
    persistent storage resumes it). ``scoring``: ``accuracy``, ``balanced_accuracy``,
    ``f1_macro``, ``neg_log_loss`` ... (:data:`SCORING`). ``refit``: refit the best candidate
    on all of ``X`` as ``best_estimator_``. ``probes``: record probes and a verdict per trial;
    ``baseline``: the shallow baseline each verdict weighs (seconds, once per study).

    Fitted: ``cv_results_`` (scikit-learn's keys, plus ``verdict``, ``state``,
    ``trial_number`` and ``n_params`` per candidate), ``best_index_``, ``best_params_``,
    ``best_score_``, ``best_estimator_``, ``study_`` (the Optuna study), ``classes_``,
    ``n_features_in_``; :meth:`report` writes the study's HTML report.
    """

    def __init__(self, space: str | Path | dict[str, Any] | None = None, *,
                 depth: Any = (1, 2, 4), width: Any = (16, 32, 64),
                 block: Any = ("plain", "residual"), skip: Any = None, norm: Any = None,
                 activation: Any = None, stages: Any = None, dropout: Any = None,
                 cv: int | Any = 3, n_trials: int = 10, timeout: float | None = None,
                 sampler: str | optuna.samplers.BaseSampler = "tpe",
                 pruner: str | optuna.pruners.BasePruner = "median",
                 storage: str | None = None, study_name: str = "nasclassifier",
                 scoring: str = "accuracy", refit: bool = True,
                 epochs: int = 10, lr: Any = 1e-3, batch_size: Any = 64,
                 optimizer: Any = "adamw", weight_decay: Any = 1e-4, patience: int = 0,
                 input_shape: Sequence[int] | None = None, device: str = "auto",
                 probes: bool = True, baseline: bool = True,
                 random_state: int | None = 0) -> None:
        self.space = space
        self.depth = depth
        self.width = width
        self.block = block
        self.skip = skip
        self.norm = norm
        self.activation = activation
        self.stages = stages
        self.dropout = dropout
        self.cv = cv
        self.n_trials = n_trials
        self.timeout = timeout
        self.sampler = sampler
        self.pruner = pruner
        self.storage = storage
        self.study_name = study_name
        self.scoring = scoring
        self.refit = refit
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.patience = patience
        self.input_shape = input_shape
        self.device = device
        self.probes = probes
        self.baseline = baseline
        self.random_state = random_state

    # --- the study these parameters describe ---------------------------------------------

    def _objective(self) -> tuple[str, int]:
        if self.scoring in SCORING:
            return SCORING[self.scoring]
        if isinstance(self.scoring, str) and self.scoring.startswith("val_"):
            return self.scoring, -1 if self.scoring == "val_log_loss" else 1
        raise UnknownNameError(SOURCE, "scoring", self.scoring, SCORING)

    def _space_dict(self) -> dict[str, Any]:
        if self.space is None:
            space: dict[str, Any] = {"name": self.study_name}
        elif isinstance(self.space, Mapping):
            space = dict(self.space)
        elif isinstance(self.space, (str, Path)):
            space = read_yaml(Path(self.space), "search space")
            if not isinstance(space, dict):
                raise ConfigError(str(self.space), "search space", type(space).__name__,
                                  "a mapping of parameters")
        else:
            raise ConfigError(SOURCE, "space", type(self.space).__name__,
                              "None, a search-space YAML path or its dict")
        for key in (*ARCH_PARAMS, *SEARCHABLE_RECIPE):
            value = getattr(self, key)
            if value is None or (key not in ARCH_PARAMS and not _searched(value)):
                continue  # unset, or a fixed recipe value (the study's training: section)
            space[key] = _spec(key, value)
        space.pop("input_shape", None)  # the data's shape decides
        return space

    def study_dict(self, folds: int = 3, seed: int = 0, groups: bool = False
                   ) -> dict[str, Any]:
        """The study file these parameters amount to (YAML's structure; ``data`` stands for
        the arrays ``fit`` receives)."""
        objective, _ = self._objective()
        cv: dict[str, Any] = {"folds": folds, "seed": seed}
        if groups:
            cv.update(kind="group", group="groups")
        raw: dict[str, Any] = {
            "name": self.study_name, "data": "arrays:NASClassifier.fit",
            "space": self._space_dict(), "cv": cv,
            "training": {"epochs": self.epochs, "patience": self.patience, "device": self.device,
                         **{k: _plain(getattr(self, k)) for k in SEARCHABLE_RECIPE
                            if not _searched(getattr(self, k))}},  # the fixed ones
            "budget": {"trials": self.n_trials} | (
                {} if self.timeout is None else {"timeout": self.timeout}),
            "sampler": self.sampler if isinstance(self.sampler, str) else "tpe",
            "pruner": self.pruner if isinstance(self.pruner, str) else "none",
            "objectives": [objective], "seed": seed,
            "diagnosis": {"baseline": bool(self.baseline)},
        }
        if self.storage is not None:
            raw["storage"] = str(self.storage)
        return raw

    # --- fit ---------------------------------------------------------------------------

    def fit(self, X: Any, y: Any, groups: Any = None) -> NASClassifier:
        """Run the study on ``(X, y)`` (``groups``: one group per sample, for group splits),
        then refit the best candidate on all of it."""
        X, y, given, classes, codes = fit_data(self, X, y, SOURCE)
        shape = sample_shape(self.input_shape, X.shape[1], given)
        rs = self.random_state
        seed = int(rs) if _is_int(rs) else engine_seed(rs)  # any int as it is (the study checks)
        if groups is not None:
            groups = np.asarray(groups)
        data = from_arrays(X.reshape(len(X), *shape), codes, name="arrays",
                           class_names=[str(c) for c in classes], groups=groups,
                           source=f"{SOURCE}.fit")
        splits = None
        if _is_int(self.cv):
            cfg = self._config(int(self.cv), seed, groups is not None)
        else:
            splitter = check_cv(self.cv, codes, classifier=True)
            folds = [(np.sort(tr), np.sort(va)) for tr, va in splitter.split(X, codes, groups)]
            # a splitter's folds are described as k-fold of its size; the folds themselves
            # are what every trial, baseline and control trains on
            cfg = self._config(len(folds), seed, False, kind="kfold")
            splits = Splits(cv=cfg.cv, folds=folds, test=np.arange(0), n_samples=len(X))
        preflight(cfg, data)
        storage = optuna.storages.InMemoryStorage() if self.storage is None else storage_for(cfg)
        study = open_study(cfg, storage, data=data)
        if isinstance(self.sampler, str):
            use_worker_sampler(study, cfg)  # processes sharing a storage: a stream each
        else:
            study.sampler = self.sampler
        if not isinstance(self.pruner, str):
            study.pruner = self.pruner
        # the runner's choice of objective (a scaling space trains each trial at its size)
        objective = Objective(cfg, data, None, extra_hooks=probe_hooks if self.probes else None)
        if splits is not None:
            objective.splits = splits
        done = len(study.get_trials(deepcopy=False, states=FINISHED))
        if done < cfg.trials:
            study.optimize(objective, n_trials=cfg.trials - done, timeout=self.timeout,
                           catch=(Exception,),
                           callbacks=[optuna.study.MaxTrialsCallback(cfg.trials, FINISHED)])
        self.study_ = study
        self.classes_ = classes
        self.input_shape_ = shape
        self.cv_results_, self.best_index_ = self._results(study)
        self.best_params_ = dict(self.cv_results_["params"][self.best_index_])
        self.best_score_ = float(self.cv_results_["mean_test_score"][self.best_index_])
        self.best_trial_ = study.trials[int(self.cv_results_["trial_number"][self.best_index_])]
        if self.refit:
            self.best_estimator_ = self._refit(read_record(self.best_trial_), cfg)
            self.best_estimator_.fit(X.reshape(len(X), *shape), y)
        return self

    def _config(self, folds: int, seed: int, groups: bool, kind: str | None = None
                ) -> StudyConfig:
        raw = self.study_dict(folds, seed, groups)
        if kind is not None:
            raw["cv"]["kind"] = kind
        return study_from_dict(raw, Path(f"{self.study_name}.yaml"), SOURCE)

    def _refit(self, record: TrialRecord, cfg: StudyConfig) -> ArchClassifier:
        """The best candidate as an unfitted ArchClassifier: its architecture and the recipe
        it trained with (with early stopping: the median epoch its folds stopped at)."""
        stored = record.training or cfg.training.to_dict()
        training = TrainConfig.from_dict(stored, SOURCE)
        epochs, _ = refit_epochs(record, training)
        _, extra = split_recipe(stored)
        # the seed export's refit takes: the same network as `nasdepth export` of this trial
        return ArchClassifier(arch=record.arch, epochs=epochs, lr=float(training.lr),
                              batch_size=training.batch_size, optimizer=training.optimizer,
                              weight_decay=training.weight_decay, patience=0,
                              training=extra or None, input_shape=self.input_shape_,
                              device=self.device,
                              random_state=cfg.cv_seed * 1000 + cfg.cv.n_splits)

    def _results(self, study: optuna.Study) -> tuple[dict[str, Any], int]:
        """``cv_results_`` from the stored trial records (one row per trial, in order)."""
        metric, sign = self._objective()
        trials = [t for t in study.get_trials(deepcopy=False)
                  if t.state in FINISHED or (t.state == TrialState.FAIL and not is_yielded(
                      read_record(t).reason))]  # not a candidate given up to its running twin
        records = [read_record(t) for t in trials]
        n_splits = max([len(r.cv_folds) for r in records] + [0])
        if not any(t.state == TrialState.COMPLETE for t in trials):
            reasons = sorted({str(r.reason) for r in records if r.reason})
            raise NasdepthError(f"{SOURCE}: none of the {len(trials)} trials completed "
                                f"(reasons: {'; '.join(reasons)[:600] or 'none recorded'}).")
        scores = np.full((len(trials), n_splits), np.nan)
        fit_time = np.full((len(trials), n_splits), np.nan)
        for i, rec in enumerate(records):
            for k, row in enumerate(rec.cv_folds):
                value = row.get(metric)
                if isinstance(value, (int, float)):
                    scores[i, k] = sign * float(value)
                fit_time[i, k] = float(row.get("seconds", np.nan))
        complete = np.array([t.state == TrialState.COMPLETE for t in trials])
        # scikit-learn's convention: a candidate that did not score every split has no mean
        means = _row_stat(np.mean, scores, complete & bool(n_splits))
        stds = _row_stat(np.std, scores, complete & bool(n_splits))
        timed = np.isfinite(fit_time).any(axis=1)
        results: dict[str, Any] = {"mean_fit_time": _row_stat(np.nanmean, fit_time, timed),
                                   "std_fit_time": _row_stat(np.nanstd, fit_time, timed)}
        for name in sorted({k for t in trials for k in t.params}):
            values = [t.params.get(name) for t in trials]
            results[f"param_{name}"] = np.ma.MaskedArray(
                np.array(values, dtype=object), mask=[name not in t.params for t in trials])
        results["params"] = [dict(t.params) for t in trials]
        results.update({f"split{k}_test_score": scores[:, k] for k in range(n_splits)})
        results["mean_test_score"] = means
        results["std_test_score"] = stds
        results["rank_test_score"] = _rank(means)
        results["trial_number"] = np.array([t.number for t in trials])
        results["state"] = np.array([t.state.name.lower() for t in trials], dtype=object)
        results["verdict"] = np.array([(r.diagnosis or {}).get("verdict") for r in records],
                                      dtype=object)
        results["n_params"] = np.array([r.costs.get("params", np.nan) for r in records])
        return results, int(np.argmin(results["rank_test_score"]))

    # --- use the best candidate ----------------------------------------------------------

    def _best(self) -> ArchClassifier:
        check_is_fitted(self)
        if not self.refit:
            raise AttributeError(f"{SOURCE} was fitted with refit=False: it has no "
                                 "best_estimator_ to predict with (see cv_results_, study_)")
        return self.best_estimator_

    def predict_proba(self, X: Any) -> np.ndarray:
        return self._best().predict_proba(X)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        return self._best().predict_log_proba(X)

    def predict(self, X: Any) -> np.ndarray:
        return self._best().predict(X)

    def diagnose(self, trial: int | None = None) -> dict[str, Any] | None:
        """The stored verdict of a trial (default: the best) with its evidence."""
        check_is_fitted(self)
        number = self.best_trial_.number if trial is None else int(trial)
        return read_record(self.study_.trials[number]).diagnosis

    def report(self, path: str | Path) -> Path:
        """Write the study's report (HTML, Markdown, CSV tables) into the folder ``path``;
        returns the path of its ``index.html``. The report's study-level baselines (majority
        class, logistic regression) are left out: they reload the data from a data spec, and
        arrays have none; each trial's verdict already weighed the shallow baseline."""
        check_is_fitted(self)
        return write_report(self.study_, path, baselines=False)


def _rank(means: np.ndarray) -> np.ndarray:
    """Rank 1 is the best mean, ties share the better rank; trials without a mean (pruned,
    failed) rank last."""
    filled = np.where(np.isfinite(means), means, -np.inf)
    return rankdata(-filled, method="min").astype(np.int32)


def _row_stat(stat: Any, a: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``stat`` of each row of ``a`` where ``keep`` is true, NaN elsewhere."""
    return np.array([stat(row) if k else np.nan for row, k in zip(a, keep, strict=True)])
