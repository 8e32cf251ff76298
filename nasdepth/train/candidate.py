"""What a trial trains, as one object: a :class:`Candidate`.

A candidate builds the network for the data and a seed, names its targets (one label column
or several tasks) and parameter groups, supplies its training hooks (gradual unfreezing is
one: ``on_epoch``), says which engines it supports beyond the sequential one (:data:`ENGINES`)
and describes itself as JSON (``to_dict``, one versioned field of the ``TrialRecord``;
:func:`candidate_from_dict` rebuilds it). ``cross_validate``, the study objective, export's
refit and ``diagnose --study`` all take one, so there is one CV driver
(:mod:`nasdepth.train.cv`) and one per-fold function (:func:`~nasdepth.train.fit.fit_fold`).
Single-task and multitask candidates take every engine; a transfer candidate wraps another
one (so multitask + transfer composes) and trains its folds sequentially, each fold a
loaded, partly frozen copy.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from nasdepth.arch import ArchConfig, build_model
from nasdepth.arch.adapt import SourceModel, read_source
from nasdepth.arch.build import input_rank
from nasdepth.arch.multitask import MultitaskConfig, MultitaskNetwork, block_ends, build_multitask
from nasdepth.data import Dataset, Standardizer
from nasdepth.data.resize import resized
from nasdepth.data.tasks import check_task
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.train.fit import FitOptions
from nasdepth.train.targets import SINGLE, SingleTarget, TaskTargets
from nasdepth.train.transfer import (
    PreparedModel,
    TransferConfig,
    adapt_data,
    body_features,
    lr_groups,
    needs_new_stem,
    prepare_model,
)

#: the engines beyond the sequential one with the data on the device (which every candidate
#: takes): the folds as one vectorized ensemble, data streamed from the host,
#: ``torch.compile``, the learning-rate range test (``lr: auto``)
ENGINES = ("parallel", "stream", "compile", "lr_find")
#: the version of ``Candidate.to_dict()`` (``TrialRecord.candidate``)
CANDIDATE_VERSION = 1
SOURCE = "the candidate"


@dataclass
class FoldModel:
    """One fold's network as its candidate prepared it, and what ``fit_fold`` trains it with:
    ``data`` (the rows as this network takes them: cached body features for feature
    extraction), ``options`` (targets, learning-rate groups, ``on_epoch``, standardization),
    ``row`` (columns added to the fold's row) and ``notes`` (what the run adds to
    ``CVResult.settings``: the blocks unfrozen so far, ...)."""

    model: nn.Module
    data: Dataset
    options: FitOptions = field(default_factory=FitOptions)
    row: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    #: the trained network as it is saved and predicted with (feature extraction: the whole
    #: network, whose head ``model`` is)
    whole: nn.Module | None = None


class Candidate:
    """Base class of what a trial trains. Subclasses set :attr:`kind` and :attr:`engines`
    and implement :meth:`build`, :meth:`to_dict` and :meth:`from_dict`."""

    kind: ClassVar[str] = ""
    #: engines of :data:`ENGINES` this candidate's networks take
    engines: ClassVar[frozenset[str]] = frozenset()
    arch: ArchConfig

    def prepare(self, data: Dataset, source: str = "the study") -> Dataset:
        """``data`` checked against the candidate and as its networks take it (once per run)."""
        return data

    def build(self, data: Dataset) -> nn.Module:
        """A fresh network for ``data`` (the caller seeds it), ready to train."""
        raise NotImplementedError

    def targets(self) -> SingleTarget:
        """The labels and loss its networks train on."""
        return SINGLE

    def fold(self, data: Dataset, train_idx: np.ndarray, seed: int,
             device: torch.device) -> FoldModel:
        """The network of one fold, initialized under ``seed``, with its training options."""
        torch.manual_seed(seed)  # fresh, reproducible initialization per fold
        model = self.build(data)
        return FoldModel(model, data, FitOptions(
            targets=self.targets(), aux_weight=float(getattr(self.arch, "aux_weight", 0.0)
                                                     or 0.0)))

    def settings(self, notes: list[dict[str, Any]]) -> dict[str, Any]:
        """What a run adds to ``CVResult.settings`` (``notes``: each fold's)."""
        return {}

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> Candidate:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """``to_dict()`` with the kind and version: ``TrialRecord.candidate``."""
        return {"kind": self.kind, "version": CANDIDATE_VERSION, **self.to_dict()}


CANDIDATES: dict[str, type[Candidate]] = {}


def register_candidate(cls: type[Candidate]) -> type[Candidate]:
    if cls.kind in CANDIDATES:
        raise ValueError(f"candidate kind {cls.kind!r} registered twice")
    CANDIDATES[cls.kind] = cls
    return cls


def candidate_from_dict(d: dict[str, Any], source: str = SOURCE) -> Candidate:
    """The candidate ``Candidate.describe()`` wrote."""
    if not isinstance(d, dict) or "kind" not in d:
        raise ConfigError(source, "candidate", d, "a mapping with 'kind'")
    kind = d["kind"]
    if kind not in CANDIDATES:
        raise UnknownNameError(source, "candidate.kind", kind, CANDIDATES)
    body = {k: v for k, v in d.items() if k not in ("kind", "version")}
    return CANDIDATES[kind].from_dict(body, source)


def check_one_label_column(data: Dataset, source: str = "the study") -> None:
    """Data with several label columns train as one multitask network or not at all: a
    single-task candidate on them would train the first column alone and say nothing, so it
    stops here with the section to add (``docs/multitask.md``: why it does not train them
    all by default: a multitask network is another candidate, with its own trunk, heads and
    loss weights, and a study's objective must say which task or mean it scores)."""
    names = data.task_names
    if len(names) < 2:
        return
    raise ConfigError(source, "tasks", None,
                      f"a tasks: section for data with {len(names)} label columns "
                      f"({', '.join(names)}): 'tasks: {{names: [{', '.join(names)}]}}' trains "
                      f"them together (a MultitaskConfig from Python); for one of them alone "
                      f"name it as the target (target: {names[0]})")


def as_candidate(what: Candidate | ArchConfig | MultitaskConfig) -> Candidate:
    """An architecture (or multitask config) as the candidate that trains it alone."""
    if isinstance(what, Candidate):
        return what
    if isinstance(what, MultitaskConfig):
        return MultitaskCandidate(what)
    if isinstance(what, ArchConfig):
        return SingleTaskCandidate(what)
    raise TypeError(f"a Candidate, ArchConfig or MultitaskConfig, not {type(what).__name__}")


@register_candidate
@dataclass(frozen=True)
class SingleTaskCandidate(Candidate):
    """One architecture trained on ``data.y``; ``resolution``: the input side its data are
    resized to (compound scaling's resolution, :mod:`nasdepth.space.scaling`; None: as
    they are), so CV, export's refit and the diagnosis all train at it."""

    arch: ArchConfig
    resolution: int | None = None
    kind: ClassVar[str] = "single"
    engines: ClassVar[frozenset[str]] = frozenset(ENGINES)

    def prepare(self, data: Dataset, source: str = "the study") -> Dataset:
        check_one_label_column(data, source)
        return data if self.resolution is None else resized(data, self.resolution)

    def build(self, data: Dataset) -> nn.Module:
        return build_model(self.arch, data.input_shape, data.num_classes)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"arch": self.arch.to_dict()}
        if self.resolution is not None:
            out["resolution"] = self.resolution
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> SingleTaskCandidate:
        side = d.get("resolution")
        if side is not None and (isinstance(side, bool) or not isinstance(side, int)
                                 or side < 1):
            raise ConfigError(source, "candidate.resolution", side, "an int >= 1 or absent")
        return cls(ArchConfig.from_dict(d["arch"], source), side)


@register_candidate
@dataclass(frozen=True)
class MultitaskCandidate(Candidate):
    """A shared trunk with one branch and head per task (``config.tasks`` of the data)."""

    config: MultitaskConfig
    kind: ClassVar[str] = "multitask"
    engines: ClassVar[frozenset[str]] = frozenset(ENGINES)

    @property
    def arch(self) -> ArchConfig:  # type: ignore[override]
        return self.config.arch

    def prepare(self, data: Dataset, source: str = "the study") -> Dataset:
        self.config.validate(source)
        for t in self.config.tasks:
            check_task(data, t, source, "tasks")
        return data

    def build(self, data: Dataset) -> nn.Module:
        num_classes = {t: (data.tasks or {})[t].num_classes for t in self.config.tasks}
        return build_multitask(self.config, data.input_shape, num_classes)

    def targets(self) -> SingleTarget:
        return TaskTargets(self.config.tasks)

    def settings(self, notes: list[dict[str, Any]]) -> dict[str, Any]:
        return {"multitask": self.config.to_dict()}

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> MultitaskCandidate:
        return cls(MultitaskConfig.from_dict(d["config"], source))


def _graft(prepared: PreparedModel, net: MultitaskNetwork, cfg: MultitaskConfig,
           input_shape: tuple[int, ...], factor: float, fine_tune: bool) -> PreparedModel:
    """A multitask network whose stem and blocks are the pre-trained single network's (each
    branch a copy of the blocks after ``branch_at``) and whose heads are fresh."""
    single = prepared.model
    blocks = list(single.blocks)
    cut = block_ends(replace(cfg.arch, head_hidden=cfg.head_hidden),
                     input_rank(input_shape))[cfg.shared_blocks]
    net.stem = single.stem
    net.shared = nn.Sequential(*blocks[:cut])
    branches = {t: copy.deepcopy(nn.Sequential(*blocks[cut:])) for t in net.tasks}
    net.branches = nn.ModuleDict(branches)
    later: list[tuple[str, nn.Module]] = []
    for name, module in prepared.later:  # a block of every branch unfreezes together
        i = next(j for j, b in enumerate(blocks) if b is module)
        parts = [blocks[i]] if i < cut else [branches[t][i - cut] for t in net.tasks]
        later.append((name, nn.ModuleList(parts)))
    groups = None if not fine_tune else lr_groups(
        net, factor, tuple(net.get_submodule(n) for n in prepared.fresh),
        tuple(m for _, m in later))
    return PreparedModel(net, frozen=prepared.frozen,  # type: ignore[arg-type]
                         fresh=prepared.fresh, lr_groups=groups, later=later)


@register_candidate
@dataclass(frozen=True)
class TransferCandidate(Candidate):
    """``inner`` started from the checkpoint of ``transfer`` (``scratch``: a fresh
    initialization of the same network): the mode's frozen parts and learning-rate groups,
    gradual unfreezing as an ``on_epoch`` hook, the data adapted to the checkpoint's input
    (``transfer.adapt``, for every mode, so that all modes see the same inputs).
    ``source``: the checkpoint's description, read once (None: read from
    ``transfer.weights``)."""

    inner: Candidate
    transfer: TransferConfig
    source: SourceModel | None = None
    kind: ClassVar[str] = "transfer"
    engines: ClassVar[frozenset[str]] = frozenset({"stream", "compile", "lr_find"})

    def __post_init__(self) -> None:
        self.transfer.validate()
        if self.source is None and self.transfer.weights is not None:
            object.__setattr__(self, "source", read_source(self.transfer.weights))

    @property
    def arch(self) -> ArchConfig:  # type: ignore[override]
        return self.inner.arch

    @property
    def multitask(self) -> MultitaskConfig | None:
        return self.inner.config if isinstance(self.inner, MultitaskCandidate) else None

    def prepare(self, data: Dataset, source: str = "the study") -> Dataset:
        t, src = self.transfer, self.source
        if isinstance(self.inner, TransferCandidate):
            raise ConfigError(source, "transfer", t.to_dict(), "one checkpoint per candidate")
        notes: list[str] = []
        if src is not None:
            data, notes = adapt_data(data, src, t.adapt, source)
        object.__setattr__(self, "_adapted", notes)
        if t.mode == "feature_extraction":
            if needs_new_stem(t, src, tuple(data.input_shape)):
                raise ConfigError(source, "transfer.adapt.channels", "new_stem",
                                  "repeat with mode feature_extraction (its body's features "
                                  "are computed once: a new stem convolution would never "
                                  "train), or mode fine_tune")
            if self.multitask is not None:
                raise ConfigError(source, "transfer.mode", t.mode,
                                  "fine_tune or scratch with a tasks: section (feature "
                                  "extraction trains one head on cached features)")
        return self.inner.prepare(data, source)

    def _prepared(self, data: Dataset) -> tuple[PreparedModel, int]:
        """The fold's network (under the caller's seed) and the checkpoint network's block
        count."""
        t, src = self.transfer, self.source
        mt = self.multitask
        num_classes = data.num_classes if mt is None else (data.tasks or {})[mt.tasks[0]] \
            .num_classes
        prepared = prepare_model(self.arch if mt is None else replace(
            self.arch, head_hidden=mt.head_hidden), data.input_shape, num_classes, t, src)
        n_blocks = len(prepared.model.blocks)
        if mt is None:
            return prepared, n_blocks
        net = self.inner.build(data)
        assert isinstance(net, MultitaskNetwork)
        return _graft(prepared, net, mt, tuple(data.input_shape), t.body_lr_factor,
                      t.mode == "fine_tune" and src is not None), n_blocks

    def build(self, data: Dataset) -> nn.Module:
        return self._prepared(data)[0].model

    def targets(self) -> SingleTarget:
        return self.inner.targets()

    def fold(self, data: Dataset, train_idx: np.ndarray, seed: int,
             device: torch.device) -> FoldModel:
        torch.manual_seed(seed)  # the fold's fresh parts (head, new stem, scratch)
        prepared, n_blocks = self._prepared(data)
        notes: dict[str, Any] = {"frozen": prepared.frozen, "fresh": prepared.fresh,
                                 "n_blocks": n_blocks}
        base = FitOptions(targets=self.targets())
        if self.transfer.mode == "feature_extraction":
            return self._features(prepared, data, train_idx, device, base, notes)
        on_epoch, unfrozen = unfreezer(prepared.later, self.transfer.unfreeze_every)
        notes["unfrozen"] = unfrozen
        return FoldModel(prepared.model, data, replace(
            base, lr_groups=prepared.lr_groups, on_epoch=on_epoch),
            row={"mode": self.transfer.mode}, notes=notes)

    def _features(self, prepared: PreparedModel, data: Dataset, train_idx: np.ndarray,
                  device: torch.device, base: FitOptions, notes: dict[str, Any]) -> FoldModel:
        """``feature_extraction``: the frozen body (eval mode) turns every sample,
        standardized with the training part's statistics, into features once; the head then
        trains on those cached features as they are (no second standardization: the network
        stays one function of its input, the same as ``fine_tune`` with ``trainable_blocks:
        0`` computes it every step). The row's ``feature_seconds`` is the body's share of
        ``seconds``."""
        start = time.perf_counter()
        scaler = Standardizer.fit(data.x[torch.as_tensor(train_idx)])
        feats = body_features(prepared.model, scaler(data.x), device)
        features = replace(data, x=feats)
        spent = time.perf_counter() - start
        return FoldModel(prepared.model.head, features,
                         replace(base, standardize=False, placement="device"),
                         row={"mode": self.transfer.mode, "feature_seconds": spent},
                         notes={**notes, "unfrozen": []}, whole=prepared.model)

    def settings(self, notes: list[dict[str, Any]]) -> dict[str, Any]:
        last = notes[-1] if notes else {}
        out = {"transfer": {**self.transfer.to_dict(), "frozen": last.get("frozen", []),
                            "fresh": last.get("fresh", []),
                            "adapted": list(getattr(self, "_adapted", [])),
                            "unfrozen": last.get("unfrozen", []),
                            "n_blocks": last.get("n_blocks")}}
        return {**self.inner.settings(notes), **out}

    def to_dict(self) -> dict[str, Any]:
        return {"transfer": self.transfer.to_dict(), "inner": self.inner.describe()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> TransferCandidate:
        return cls(candidate_from_dict(d["inner"], source),
                   TransferConfig.from_record(d["transfer"], source))


def unfreezer(later: list[tuple[str, nn.Module]], every: int
              ) -> tuple[Callable[[int], None] | None, list[dict[str, Any]]]:
    """Gradual unfreezing as a training hook: ``on_epoch`` for ``fit_fold`` that, before
    epochs ``every``, ``2 * every``, ..., lets the next frozen block of ``later`` train; the
    list records ``{epoch, block}`` as it goes. None where nothing unfreezes."""
    queue: list[tuple[str, nn.Module]] = list(later)
    done: list[dict[str, Any]] = []
    if not every or not queue:
        return None, done

    def on_epoch(epoch: int) -> None:
        if epoch and epoch % every == 0 and queue:
            name, module = queue.pop(0)
            module.requires_grad_(True)
            done.append({"epoch": epoch, "block": name})

    return on_epoch, done


def transfer_candidate(transfer: TransferConfig, arch: ArchConfig | Candidate | None = None,
                       source_model: SourceModel | None = None,
                       source: str = "the study") -> TransferCandidate:
    """A transfer candidate of ``arch`` (a single-task architecture or any candidate; None:
    the checkpoint's own architecture, which a nasdepth model file names)."""
    transfer.validate(source)
    src = source_model or (None if transfer.weights is None else read_source(transfer.weights))
    if arch is None:
        if src is None or src.arch is None:
            raise ConfigError(source, "transfer.weights", transfer.weights,
                              "a nasdepth model file (it names its architecture) when no "
                              "architecture is given")
        arch = src.arch
    return TransferCandidate(as_candidate(arch), transfer, src)
