"""Transfer learning (the modes, gradual unfreezing and the input adaptation, for users:
``docs/transfer.md``): ``TransferConfig`` (a checkpoint, a mode, how many blocks train, the
pre-trained part's learning-rate factor, input adaptation), the pre-trained model of one fold
with its frozen parts and learning-rate groups, and the explicit adaptation of the data to
the checkpoint's input shape: data whose channels or size differ from the checkpoint's are
refused unless ``adapt`` says what to do (input shapes never adapt silently).

The classifier (the head's last linear layer) always starts from a fresh initialization: the
target's classes are not the checkpoint's. A frozen parameter has ``requires_grad`` False and
gets no optimizer state; a normalization layer whose parameters are all frozen stays in eval
mode (``loop.frozen_norms_eval``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.arch import ArchConfig, Network, build_model, load_weights
from nasdepth.arch.adapt import SourceModel, new_stem_conv
from nasdepth.data import Dataset, Splits
from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError, check_section
from nasdepth.train.config import TRANSFER_MODES
from nasdepth.train.step import LRGroups

MODES = TRANSFER_MODES
CHANNEL_ADAPTS = ("repeat", "new_stem")
SIZE_ADAPTS = ("resize", "keep")
SOURCE = "the transfer settings"


#: what each searched or fixed transfer setting may be (a study's section checks every value)
BLOCKS_ALLOWED = "an int >= 0 (the top blocks that train) or null (all)"
EVERY_ALLOWED = "an int >= 0 (epochs between unfreezing one more block; 0: off)"
FACTOR_ALLOWED = "a number in (0, 10] (the pre-trained part's learning rate over the head's)"


def check_count(value: Any, source: str, key: str, allowed: str, high: int | None = None,
                none_ok: bool = False) -> None:
    """A count of blocks or epochs: an int >= 0 (and <= ``high``; None where ``none_ok``)."""
    if value is None and none_ok:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 0 or (
            high is not None and value > high):
        raise ConfigError(source, key, value, allowed)


def check_factor(value: Any, source: str, key: str = "transfer.body_lr_factor") -> None:
    """The pre-trained part's learning-rate factor: a finite number in (0, 10]."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 10 \
            or not math.isfinite(value):
        raise ConfigError(source, key, value, FACTOR_ALLOWED)


@dataclass(frozen=True)
class AdaptConfig:
    """How data of another shape than the checkpoint's is fed to it (None: refused)."""

    channels: str | None = None  # repeat | new_stem
    size: str | None = None  # resize | keep

    def validate(self, source: str = SOURCE, key: str = "transfer.adapt") -> AdaptConfig:
        if self.channels is not None and self.channels not in CHANNEL_ADAPTS:
            raise UnknownNameError(source, f"{key}.channels", self.channels, CHANNEL_ADAPTS)
        if self.size is not None and self.size not in SIZE_ADAPTS:
            raise UnknownNameError(source, f"{key}.size", self.size, SIZE_ADAPTS)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any, source: str = SOURCE, key: str = "transfer.adapt"
                  ) -> AdaptConfig:
        if d is None:
            return cls()
        d = check_section(d, source, key, [f.name for f in fields(cls)],
                    "a mapping with 'channels' and/or 'size'")
        return cls(**d).validate(source, key)


@dataclass(frozen=True)
class TransferConfig:
    """One candidate's transfer settings (a study's ``transfer:`` with its searched values
    drawn). ``weights``: a local checkpoint (None only for ``scratch``);
    ``trainable_blocks``: ``fine_tune``: how many of the top blocks train (None: all, the
    stem too); ``body_lr_factor``: the learning rate of the pre-trained trainable part over
    the head's (``fine_tune``)."""

    weights: str | None = None
    mode: str = "fine_tune"
    trainable_blocks: int | None = None
    body_lr_factor: float = 1.0
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    unfreeze_every: int = 0

    def validate(self, source: str = SOURCE) -> TransferConfig:
        if self.mode not in MODES:
            raise UnknownNameError(source, "transfer.mode", self.mode, MODES)
        if self.mode != "scratch" and not isinstance(self.weights, str):
            raise ConfigError(source, "transfer.weights", self.weights,
                              f"the path of a local checkpoint (mode {self.mode} loads one)")
        check_count(self.trainable_blocks, source, "transfer.trainable_blocks", BLOCKS_ALLOWED,
                    none_ok=True)
        check_factor(self.body_lr_factor, source)
        u = self.unfreeze_every
        check_count(u, source, "transfer.unfreeze_every", EVERY_ALLOWED)
        if u and (self.mode != "fine_tune" or self.trainable_blocks is None):
            raise ConfigError(source, "transfer.unfreeze_every", u,
                              "0 unless the mode is fine_tune with a trainable_blocks count "
                              "(the blocks that train from the start)")
        self.adapt.validate(source)
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, d: dict[str, Any], source: str = SOURCE) -> TransferConfig:
        """The settings in a trial's ``TrialRecord.transfer`` (which adds what the run
        found: frozen units, adaptations, the learning curve)."""
        return cls.from_dict({k: v for k, v in d.items() if k in {f.name for f in fields(cls)}},
                             source)

    @classmethod
    def from_dict(cls, d: Any, source: str = SOURCE) -> TransferConfig:
        d = dict(check_section(d, source, "transfer", [f.name for f in fields(cls)],
                               "a mapping"))
        d["adapt"] = AdaptConfig.from_dict(d.get("adapt"), source)
        return cls(**d).validate(source)


# --- the data ---------------------------------------------------------------------------------

def adapt_data(data: Dataset, source: SourceModel, adapt: AdaptConfig,
               where: str = SOURCE) -> tuple[Dataset, list[str]]:
    """``data`` as the checkpoint takes it, and one note per adaptation made. A shape that
    differs without an ``adapt`` entry for it is a :class:`ConfigError`."""
    shape = tuple(data.input_shape)
    notes: list[str] = []
    want = source.input_shape
    if want is not None and len(want) != len(shape):
        raise NasdepthError(f"The data of {where} has samples of shape {list(shape)}; the "
                            f"checkpoint {source.path} was trained on {list(want)} (another "
                            "rank: no adaptation maps one to the other).")
    if len(shape) == 1:
        if want is not None and want != shape:
            raise NasdepthError(f"The data of {where} has {shape[0]} features; the checkpoint "
                                f"{source.path} was trained on {want[0]} (flat inputs are not "
                                "adapted).")
        return data, notes
    x = data.x
    channels = source.in_channels
    if channels is not None and channels != shape[0]:
        if adapt.channels is None:
            raise ConfigError(where, "transfer.adapt.channels", None,
                              f"repeat or new_stem: the data has {shape[0]} channels and the "
                              f"checkpoint {source.path} takes {channels}")
        if adapt.channels == "repeat":
            if channels % shape[0]:
                raise ConfigError(where, "transfer.adapt.channels", "repeat",
                                  f"new_stem: {channels} channels are no multiple of the "
                                  f"data's {shape[0]}")
            reps = channels // shape[0]
            x = x.repeat(1, reps, *([1] * (x.dim() - 2)))
            notes.append(f"channels repeated {reps}x: {shape[0]} -> {channels}")
        else:
            notes.append(f"new stem convolution: {shape[0]} input channels instead of "
                         f"{channels} (fresh weights, trained)")
    if want is not None and tuple(want[1:]) != tuple(shape[1:]):
        if adapt.size is None:
            raise ConfigError(where, "transfer.adapt.size", None,
                              f"resize or keep: the data's samples are {list(shape[1:])} and "
                              f"the checkpoint {source.path} was trained on {list(want[1:])}")
        if adapt.size == "resize":
            mode = "linear" if len(shape) == 2 else "bilinear"
            x = F.interpolate(x, size=tuple(want[1:]), mode=mode, align_corners=False)
            notes.append(f"resized {list(shape[1:])} -> {list(want[1:])} ({mode})")
        else:
            notes.append(f"size kept: {list(shape[1:])} (checkpoint: {list(want[1:])})")
    if x is data.x:
        return data, notes
    return replace(data, x=x.contiguous()), notes  # the labels (every task's) as they are


def subsample(train_idx: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A seeded, stratified ``fraction`` of a training part (at least 2 samples per class
    present, in the original order): the training subsets of a learning curve."""
    if not 0 < fraction <= 1:
        raise ConfigError("the learning curve", "fraction", fraction, "a number in (0, 1]")
    if fraction == 1:
        return train_idx
    rng = np.random.default_rng(seed)
    keep = []
    labels = y[train_idx]
    for c in np.unique(labels):
        members = train_idx[labels == c]
        n = min(len(members), max(2, int(round(fraction * len(members)))))
        keep.append(rng.choice(members, size=n, replace=False))
    return np.sort(np.concatenate(keep))



def subsampled(splits: Splits, y: np.ndarray, fraction: float, seed: int) -> Splits:
    """``splits`` whose training parts keep a stratified ``fraction`` (fold ``k`` seeded
    ``seed * 1000 + k``, as the fold's model); validation parts and the test part stay whole."""
    folds = [(subsample(tr, y, fraction, seed * 1000 + k), va)
             for k, (tr, va) in enumerate(splits)]
    return splits.with_folds(folds)


# --- the model --------------------------------------------------------------------------------

@dataclass
class PreparedModel:
    """A fold's network with its transfer applied: which units are frozen, which parameters
    are new (trained at the head's rate), and the optimizer's learning-rate groups."""

    model: Network
    frozen: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    lr_groups: LRGroups | None = None
    #: gradual unfreezing: the frozen blocks, next to unfreeze first (top down)
    later: list[tuple[str, nn.Module]] = field(default_factory=list)


def freeze(model: Network, mode: str, trainable_blocks: int | None,
           keep: tuple[nn.Module, ...] = ()) -> list[str]:
    """Set ``requires_grad`` False on the frozen units of ``model`` (``named_blocks`` names
    returned); modules in ``keep`` (a new stem convolution) stay trainable."""
    units = model.named_blocks()  # stem, blocks..., head
    body = units[:-1]
    if mode == "feature_extraction":
        frozen = body
    elif mode == "fine_tune" and trainable_blocks is not None:
        n_blocks = len(body) - 1
        if trainable_blocks > n_blocks:
            raise ConfigError(SOURCE, "transfer.trainable_blocks", trainable_blocks,
                              f"at most {n_blocks} (this network has {n_blocks} blocks), or "
                              "null for all")
        frozen = body[:len(body) - trainable_blocks]
    else:
        frozen = []
    kept = {id(p) for m in keep for p in m.parameters()}
    for _, module in frozen:
        for p in module.parameters():
            if id(p) not in kept:
                p.requires_grad_(False)
    return [name for name, _ in frozen]


def lr_groups(model: nn.Module, factor: float, fresh: tuple[nn.Module, ...] = (),
              later: tuple[nn.Module, ...] = ()) -> LRGroups:
    """Head(s) and new modules at the full rate (first group), the trainable rest at
    ``factor``; frozen parameters are left out, except those of ``later`` (blocks unfrozen
    during the training, listed from the start: they get optimizer state once they get
    gradients). A multitask network's heads and learned loss weights are new."""
    heads: Any = getattr(model, "heads", None)
    new = {id(p) for m in ([model.head] if heads is None else [*heads.values()]) + [*fresh]
           for p in m.parameters()}  # type: ignore[union-attr]
    if getattr(model, "log_vars", None) is not None:
        new.add(id(model.log_vars))
    soon = {id(p) for m in later for p in m.parameters()}
    full = [p for p in model.parameters() if id(p) in new]
    body = [p for p in model.parameters() if id(p) not in new
            and (p.requires_grad or id(p) in soon)]
    return [(full, 1.0), (body, float(factor))]


def needs_new_stem(transfer: TransferConfig, source: SourceModel | None,
                   input_shape: tuple[int, ...]) -> bool:
    """Does the network get a fresh first convolution for the data's channel count?"""
    return (transfer.adapt.channels == "new_stem" and source is not None
            and source.in_channels is not None and len(input_shape) > 1
            and source.in_channels != input_shape[0])


def prepare_model(arch: ArchConfig, input_shape: tuple[int, ...], num_classes: int,
                  transfer: TransferConfig, source: SourceModel | None) -> PreparedModel:
    """Build ``arch`` for ``input_shape`` (the adapted data's), load the checkpoint (not for
    ``scratch``), give it a new stem convolution where ``adapt.channels`` says so, and freeze
    what the mode freezes. Call under the fold's seed: fresh parts are initialized here."""
    if transfer.mode == "scratch" or source is None:
        return PreparedModel(build_model(arch, input_shape, num_classes))
    shape = tuple(input_shape)
    new_stem = needs_new_stem(transfer, source, shape)
    build_shape = (int(source.in_channels or shape[0]), *shape[1:]) if new_stem else shape
    model = build_model(arch, build_shape, num_classes)
    classifier = _classifier(model)
    fresh_state = {k: v.clone() for k, v in classifier.state_dict().items()}
    load_weights(model, str(transfer.weights))
    # the target's classes are not the source's: the classifier always starts fresh (the
    # fold's own initialization), even where the class counts agree
    classifier.load_state_dict(fresh_state)
    fresh: list[str] = []
    keep: tuple[nn.Module, ...] = ()
    if new_stem:
        name = new_stem_conv(model, shape[0])
        fresh.append(name)
        keep = (model.get_submodule(name),)
    frozen = freeze(model, transfer.mode, transfer.trainable_blocks, keep)
    units = dict(model.named_blocks())
    later = ([(n, units[n]) for n in reversed(frozen) if n != "stem"]
             if transfer.unfreeze_every else [])
    groups = (lr_groups(model, transfer.body_lr_factor, keep, tuple(m for _, m in later))
              if transfer.mode == "fine_tune" else None)
    return PreparedModel(model, frozen=frozen, fresh=fresh, lr_groups=groups, later=later)


def _classifier(model: Network) -> nn.Linear:
    """The head's last linear layer."""
    linears = [m for m in model.head.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise NasdepthError("This network's head has no linear classifier to train.")
    return linears[-1]


@torch.no_grad()
def body_features(model: Network, x: torch.Tensor, device: torch.device,
                  rows: int = 256) -> torch.Tensor:
    """The outputs of ``model``'s body (stem + blocks, put in eval mode) for ``x`` (already
    standardized), in chunks, on the host."""
    body = nn.Sequential(model.stem, model.blocks).to(device).eval()
    out = [body(x[i:i + rows].to(device)).float().cpu() for i in range(0, len(x), rows)]
    return torch.cat(out)
