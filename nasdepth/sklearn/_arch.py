"""``ArchClassifier``: one nasdepth architecture trained as a scikit-learn classifier.

The estimator is a thin face over the engine: ``fit`` turns ``(X, y)`` into a
:class:`~nasdepth.data.Dataset` (``from_arrays``), builds the network from an
:class:`~nasdepth.arch.ArchConfig` (the flat parameters go through the same
:class:`~nasdepth.space.SearchSpace` code a study's space does, so ``depth=6, stages=2`` splits
the blocks exactly as a study would) and trains it with ``fit_fold``, the engine's one-fold
path: the per-fit standardization, the recipe, seeds. The fitted network is kept as the
:class:`~nasdepth.export.ExportedModel` that ``nasdepth export`` writes and ``load_model`` reads,
so an estimator and a model file are two views of one object (:meth:`to_export`,
:meth:`from_export`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.arch.presets import PRESETS, preset
from nasdepth.data import Dataset, Standardizer, from_arrays
from nasdepth.diagnosis import Diagnosis, diagnose
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.export import ExportedModel, load_model, save_model
from nasdepth.export.model import read_model_file
from nasdepth.export.monitor import monitor_rows
from nasdepth.probes import ProbeHook
from nasdepth.space.space import SearchSpace
from nasdepth.train import TrainConfig, fit_fold, resolve_device
from nasdepth.train.candidate import as_candidate
from nasdepth.train.lr_find import candidate_range_test

__all__ = ["ArchClassifier", "ARCH_PARAMS", "RECIPE_PARAMS"]

#: the flat architecture parameters (the keys of a search space)
ARCH_PARAMS = ("depth", "width", "block", "skip", "norm", "activation", "stages", "dropout")
#: the training recipe (``TrainConfig`` fields)
RECIPE_PARAMS = ("epochs", "lr", "batch_size", "optimizer", "weight_decay", "patience")
#: metadata key of a model file where an estimator keeps its original labels
SKLEARN_KEY = "sklearn"
SOURCE = "ArchClassifier"


def _is_int(v: Any) -> TypeGuard[int]:  # numpy ints too
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class ArchClassifier(ClassifierMixin, BaseEstimator):
    """One nasdepth architecture, trained by nasdepth's engine, as a scikit-learn classifier.

    Architecture: the flat parameters ``depth`` (blocks over all stages), ``width`` (the first
    stage's; each later stage doubles it), ``block``, ``skip``, ``norm``, ``activation``,
    ``stages`` and ``dropout`` are those of a search space. ``arch`` overrides them all: a
    preset name (``"resnet18"``, sized to the input), an :class:`~nasdepth.arch.ArchConfig` or
    its dict (``ArchConfig.to_dict()``, the ``arch`` of a study trial).

    Recipe: ``epochs``, ``lr`` (a number or ``"auto"``: the engine's learning-rate range test
    on the training rows), ``batch_size``, ``optimizer``, ``weight_decay``, ``patience``
    (early stopping on the validation loss of a stratified ``validation_fraction`` of the
    rows, held out of training; 0: every row trains, for ``epochs`` epochs). ``training``: the
    rest of the recipe as a study file's ``training:`` section writes it (``schedule``,
    ``label_smoothing``, ``grad_clip``, ``augment`` ...; a dict of ``TrainConfig`` fields).

    Input: rows of features ``(N, F)``; images or sequences as ``(N, C, H, W)`` / ``(N, C, L)``
    arrays, or flat rows with ``input_shape=(C, H, W)`` / ``(C, L)``. ``device``: ``auto``
    (cuda, then mps, then cpu), ``cpu``, ``cuda`` ... ``random_state`` seeds the initial
    weights and batch order: an int is the engine's seed itself, so ``random_state=s`` trains
    as nasdepth does with seed ``s`` (None: a fresh seed per fit). ``probes=True`` records the
    probes during ``fit``; :meth:`diagnose` then gives the verdict of that run.

    ``sample_weight`` is not accepted: the engine's loss has no per-sample weights, and
    ``fit`` has no such parameter, so scikit-learn's meta-estimators know not to route one.

    Fitted attributes: ``classes_``, ``n_features_in_``, ``feature_names_in_`` (DataFrames),
    ``arch_`` (the ArchConfig), ``model_`` (the network with its standardization, an
    :class:`~nasdepth.export.ExportedModel`), ``history_`` (per-epoch losses and accuracies),
    ``n_iter_`` (epochs run), ``lr_`` (the rate used), ``input_shape_``, ``trace_`` (probes).
    """

    def __init__(self, depth: int = 2, width: int = 32, block: str = "plain", skip: bool = True,
                 norm: str = "batch", activation: str = "relu", stages: int = 1,
                 dropout: float = 0.0, arch: str | dict[str, Any] | ArchConfig | None = None, *,
                 epochs: int = 20, lr: float | str = 1e-3, batch_size: int = 64,
                 optimizer: str = "adamw", weight_decay: float = 1e-4, patience: int = 0,
                 validation_fraction: float = 0.1, training: dict[str, Any] | None = None,
                 input_shape: Sequence[int] | None = None, device: str = "auto",
                 probes: bool = False, random_state: int | np.random.RandomState | None = None
                 ) -> None:
        self.depth = depth
        self.width = width
        self.block = block
        self.skip = skip
        self.norm = norm
        self.activation = activation
        self.stages = stages
        self.dropout = dropout
        self.arch = arch
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.training = training
        self.input_shape = input_shape
        self.device = device
        self.probes = probes
        self.random_state = random_state

    # --- what the parameters mean -----------------------------------------------------
    # (scikit-learn's default tags are ours: dense input without NaN, one label per sample)

    def training_config(self) -> TrainConfig:
        """The recipe as the engine's :class:`~nasdepth.train.TrainConfig` (checked)."""
        extra = dict(self.training or {})
        for key in extra:
            if key in (*RECIPE_PARAMS, "device", "lr_auto"):
                raise ConfigError(SOURCE, f"training.{key}", extra[key],
                                  f"set as the parameter {key}= (not inside training=)")
        raw = {**extra, **{k: getattr(self, k) for k in RECIPE_PARAMS}, "device": self.device}
        for key in ("epochs", "batch_size", "patience"):  # numpy ints from a param grid
            if _is_int(raw[key]):
                raw[key] = int(raw[key])
        for key in ("lr", "weight_decay"):
            if isinstance(raw[key], (np.floating, np.integer)):
                raw[key] = float(raw[key])
        return TrainConfig.from_dict(raw, SOURCE)

    def arch_config(self, input_shape: Sequence[int] | None = None,
                    num_classes: int = 2) -> ArchConfig:
        """The architecture these parameters describe (``input_shape`` sizes a preset)."""
        if isinstance(self.arch, ArchConfig):
            return self.arch
        if isinstance(self.arch, dict):
            return ArchConfig.from_dict(copy.deepcopy(self.arch), f"{SOURCE} (arch)")
        if isinstance(self.arch, str):
            if self.arch not in PRESETS:
                raise UnknownNameError(SOURCE, "arch", self.arch, PRESETS)
            return preset(self.arch, tuple(input_shape or (3, 32, 32)), num_classes)
        if self.arch is not None:
            raise ConfigError(SOURCE, "arch", type(self.arch).__name__,
                              "None, a preset name, an ArchConfig or its dict")
        values = {k: getattr(self, k) for k in ARCH_PARAMS}
        for key in ("depth", "width", "stages"):
            if not _is_int(values[key]) or values[key] < 1:
                raise ConfigError(SOURCE, key, values[key], "an int >= 1")
            values[key] = int(values[key])
        values["dropout"] = float(values["dropout"])
        values["skip"] = bool(values["skip"])
        # the same code a study's space runs: one meaning for depth, width and stages
        return SearchSpace.from_dict(values, SOURCE).to_arch({})

    # --- data ---------------------------------------------------------------------------

    # --- fit and predict ----------------------------------------------------------------

    def fit(self, X: Any, y: Any) -> ArchClassifier:
        """Train a fresh network on ``(X, y)`` with nasdepth's engine."""
        X, y, given, classes, codes = fit_data(self, X, y, SOURCE)
        training = self.training_config()
        self.input_shape_ = sample_shape(self.input_shape, X.shape[1], given)
        data = from_arrays(X.reshape(len(X), *self.input_shape_), codes, name="fit",
                           class_names=[str(c) for c in classes], source=f"{SOURCE}.fit")
        arch = self.arch_config(self.input_shape_, len(classes))
        seed = engine_seed(self.random_state)
        device = resolve_device(training.device)
        train_idx, val_idx = self._split(codes, training, seed)
        if training.lr_auto:  # the range test on a throwaway copy, as cross_validate runs it
            found = candidate_range_test(as_candidate(arch), data, train_idx,
                                         training=training, seed=seed, device=device)
            training = replace(training, lr=found.lr)
        torch.manual_seed(seed)
        net = build_model(arch, data.input_shape, data.num_classes)
        hook = ProbeHook() if self.probes else None
        result = fit_fold(net, data, train_idx, val_idx, training=training, seed=seed,
                          device=device, hooks=[hook] if hook is not None else ())
        scaler = Standardizer.fit(data.x[torch.as_tensor(train_idx)])  # what fit_fold used
        net = net.to(memory_format=torch.contiguous_format).eval()
        self.classes_ = classes
        self.arch_ = arch
        self.lr_ = float(training.lr)
        self.n_iter_ = int(result.row["epochs"])
        self.history_ = [dict(h) for h in result.history]
        self.trace_ = hook.traces[0] if hook is not None and hook.traces else None
        meta = self._metadata(training, data, result.row, seed, len(train_idx))
        self.model_ = ExportedModel([net], [scaler.mean], [scaler.std], meta).to(device).eval()
        return self

    def _split(self, codes: np.ndarray, training: TrainConfig, seed: int
               ) -> tuple[np.ndarray, np.ndarray]:
        """(training rows, rows scored each epoch): with ``patience`` a stratified held-out
        part that early stopping reads; without, every row trains and a seeded sample of them
        fills the history (no decision depends on it)."""
        idx = np.arange(len(codes))
        if training.patience <= 0:
            return idx, monitor_rows(idx, idx[:0], seed)
        frac = self.validation_fraction
        if not isinstance(frac, (float, int)) or not 0 < frac < 1:
            raise ConfigError(SOURCE, "validation_fraction", frac,
                              "a fraction in (0, 1) (the rows early stopping reads)")
        try:
            tr, va = train_test_split(idx, test_size=frac, stratify=codes, random_state=seed)
        except ValueError:  # a class too small to stratify
            tr, va = train_test_split(idx, test_size=frac, random_state=seed)
        return np.sort(tr), np.sort(va)

    def _metadata(self, training: TrainConfig, data: Dataset, row: dict[str, Any], seed: int,
                  n_train: int) -> dict[str, Any]:
        """What a model file says about this fit (``nasdepth predict`` reads the same keys)."""
        arch = self.arch_
        return {
            "study": None, "trial": None, "objective": "val_accuracy",
            "arch": arch.to_dict(), "arch_summary": arch.summary(),
            "params": count_parameters(build_model(arch, data.input_shape, data.num_classes)),
            "training": training.to_dict(),
            "refit": {"kind": "sklearn", "members": 1, "epochs": int(row["epochs"]),
                      "seed": seed, "n_train": n_train},
            "input_shape": list(data.input_shape), "class_names": list(data.class_names),
            "num_classes": data.num_classes, "data": None, "data_info": data.to_dict(),
            "scores": {"train": {"accuracy": float(row.get("train_accuracy", float("nan")))}},
            SKLEARN_KEY: {"classes": [_plain(c) for c in self.classes_],
                          "feature_names_in": [str(f) for f in getattr(
                              self, "feature_names_in_", [])]},
        }

    def _check_X(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, as_rows(X)[0], reset=False, dtype=np.float32)
        return np.asarray(X, dtype=np.float32).reshape(len(X), *self.input_shape_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities ``(N, n_classes)``, columns in the order of ``classes_``."""
        x = self._check_X(X)
        proba = self.model_.predict_proba(torch.from_numpy(x)).cpu().numpy().astype(np.float64)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each sample (labels as given to ``fit``)."""
        proba = self.predict_proba(X)  # checks that the estimator is fitted first
        return self.classes_[proba.argmax(axis=1)]

    # --- diagnosis and model files --------------------------------------------------------

    def diagnose(self, X: Any = None, y: Any = None, *, controls: str | None = None
                 ) -> Diagnosis:
        """The verdict of the last ``fit`` (healthy, vanishing gradients, under-trained ...)
        from the probes it recorded (``probes=True``). With ``X, y`` (the training data) the
        shallow baseline runs beside it, which a plateau needs to be told apart from
        data that hold no signal; ``controls`` adds the costly ones (see ``diagnose``)."""
        check_is_fitted(self)
        if self.trace_ is None:
            raise ConfigError(SOURCE, "probes", self.probes,
                              "True during fit for diagnose() (ArchClassifier(probes=True))")
        data = None
        if X is not None:
            if y is None:
                raise ConfigError(f"{SOURCE}.diagnose", "y", None, "given with X")
            rows = self._check_X(X)
            codes = np.searchsorted(self.classes_, np.asarray(y))
            data = from_arrays(rows, codes, name="diagnose",
                               class_names=[str(c) for c in self.classes_])
        return diagnose([self.trace_], data, controls=controls)

    def to_export(self, path: str | Path) -> Path:
        """Save the fitted network as a ``nasdepth export`` model file (``nasdepth predict``
        and ``load_model`` read it; :meth:`from_export` makes an estimator of it again)."""
        check_is_fitted(self)
        model = self.model_
        members = list(model.members)
        stds = [(model.get_buffer(f"mean_{k}"), model.get_buffer(f"std_{k}"))
                for k in range(len(members))]
        meta = dict(model.metadata)
        meta.setdefault(SKLEARN_KEY, {})["classes"] = [_plain(c) for c in self.classes_]
        return save_model(path, members, stds, meta)

    @classmethod
    def from_export(cls, path: str | Path, device: str = "cpu") -> ArchClassifier:
        """A fitted estimator from a model file of ``nasdepth export`` (a refit trial) or of
        :meth:`to_export`: its architecture and recipe become the parameters (a ``clone``
        refits the same candidate), its network the fitted model."""
        meta, _ = read_model_file(path)
        training = meta.get("training") or {}
        recipe, extra = split_recipe(training)
        shape = tuple(int(s) for s in meta["input_shape"])
        seed = (meta.get("refit") or {}).get("seed")
        est = cls(arch=meta["arch"], input_shape=shape if len(shape) > 1 else None,
                  device=device, training=extra or None,
                  random_state=seed if _is_int(seed) else None, **recipe)
        est.model_ = load_model(path, device=device)
        est.arch_ = ArchConfig.from_dict(meta["arch"], f"{path} (arch)")
        extra = meta.get(SKLEARN_KEY) or {}
        est.classes_ = np.asarray(extra.get("classes") or _labels(meta["class_names"]))
        est.input_shape_ = shape
        est.n_features_in_ = math.prod(shape)
        if extra.get("feature_names_in"):
            est.feature_names_in_ = np.asarray(extra["feature_names_in"], dtype=object)
        est.lr_ = float(training.get("lr", float("nan")))
        est.n_iter_ = int((meta.get("refit") or {}).get("epochs", 0))
        est.history_ = list((meta.get("refit") or {}).get("history", []))
        est.trace_ = None
        return est


def as_rows(X: Any) -> tuple[Any, tuple[int, ...] | None]:
    """``X`` as 2-D rows for scikit-learn's checks: an N-D array flattened, with its sample
    shape (None for rows and DataFrames)."""
    if hasattr(X, "ndim") and getattr(X, "ndim", 2) > 2 and not hasattr(X, "columns"):
        arr = np.asarray(X)
        return arr.reshape(len(arr), -1), tuple(arr.shape[1:])
    return X, None


def fit_data(est: Any, X: Any, y: Any, source: str
             ) -> tuple[np.ndarray, np.ndarray, tuple[int, ...] | None, np.ndarray, np.ndarray]:
    """What ``fit`` of both estimators checks first: ``(X, y)`` validated as rows, the sample
    shape of N-D ``X``, the sorted classes (at least two) and each label's code."""
    X, shape = as_rows(X)
    X, y = validate_data(est, X, y, dtype=np.float32, ensure_min_samples=2)
    check_classification_targets(y)
    classes, codes = np.unique(y, return_inverse=True)
    if len(classes) < 2:
        raise ConfigError(f"{source}.fit", "y", f"one class ({classes[0]!r})",
                          "labels of at least 2 classes")
    return X, y, shape, classes, codes


def sample_shape(input_shape: Sequence[int] | None, n_features: int,
                 given: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of one sample: ``input_shape`` where set, else that of N-D ``X``
    (``given``), else flat rows; checked against the ``n_features`` each row holds."""
    shape = input_shape if input_shape is not None else given
    if shape is None:
        return (n_features,)
    shape = tuple(int(s) for s in shape)
    if math.prod(shape) != n_features or not all(s >= 1 for s in shape):
        raise ConfigError(SOURCE, "input_shape", shape,
                          f"a shape of {n_features} values per sample, such as "
                          f"({n_features},) or (C, H, W) with C*H*W = {n_features}")
    return shape


def engine_seed(random_state: Any) -> int:
    """The engine's seed for a ``random_state``: an int as it is (the seed nasdepth's own runs
    take), else a draw from the RandomState (None: a fresh one)."""
    if _is_int(random_state) and random_state >= 0:
        return int(random_state)
    return int(check_random_state(random_state).randint(2**31 - 1))


def split_recipe(training: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A stored ``TrainConfig`` dict as (the flat recipe parameters, the rest that differs
    from the defaults); ``lr_auto`` becomes ``lr="auto"``, the device is left out."""
    recipe = {k: training[k] for k in RECIPE_PARAMS if k in training}
    if training.get("lr_auto"):
        recipe["lr"] = "auto"
    defaults = TrainConfig().to_dict()
    extra = {k: v for k, v in training.items()
             if k not in (*RECIPE_PARAMS, "device", "lr_auto") and k in defaults
             and v != defaults[k]}
    return recipe, extra


def _plain(value: Any) -> Any:
    """A label as JSON holds it (numpy scalars to Python)."""
    return value.item() if hasattr(value, "item") else value


def _labels(names: Sequence[str]) -> list[Any]:
    """Class names of a model file as labels: integers where every name is one."""
    try:
        ints = [int(n) for n in names]
    except ValueError:
        return list(names)
    return ints if [str(i) for i in ints] == list(names) else list(names)
