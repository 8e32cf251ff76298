"""A study's ``transfer:`` section, validated when the study file loads: the checkpoint, the
searched mode, blocks, learning-rate factor and unfreezing interval (Optuna names them
``transfer.<key>``), the input adaptation and the learning curve. The keys, which apply to
which mode, and how a model file or a ``preset`` fixes the architecture (then the space may
search training-recipe keys only): ``docs/transfer.md``, "In a study: the two steps".
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from nasdepth.arch import PRESETS, ArchConfig, preset
from nasdepth.arch.adapt import SourceModel, read_source
from nasdepth.data import Dataset, Splits
from nasdepth.errors import ConfigError, UnknownNameError, check_section
from nasdepth.outpath import resolve_path
from nasdepth.space.params import Param
from nasdepth.space.recipe import is_recipe
from nasdepth.space.space import SearchSpace
from nasdepth.train import TrainConfig
from nasdepth.train.candidate import TransferCandidate
from nasdepth.train.cv import CVResult, cross_validate, records
from nasdepth.train.transfer import (
    EVERY_ALLOWED,
    MODES,
    AdaptConfig,
    TransferConfig,
    adapt_data,
    check_count,
    check_factor,
    subsampled,
)

TRANSFER_KEYS = ("weights", "preset", "mode", "trainable_blocks", "body_lr_factor",
                 "unfreeze_every", "adapt", "learning_curve")
#: the prefix of the searched keys' Optuna names
PREFIX = "transfer."


@dataclass(frozen=True)
class TransferSection:
    """A validated ``transfer:`` section: ``params`` are the searched (or fixed) keys,
    ``source`` the checkpoint's description, ``arch`` its architecture where the file names
    one (else None: the space's)."""

    weights: str
    params: tuple[Param, ...]
    source: SourceModel
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    learning_curve: tuple[float, ...] = ()
    #: ``weights`` as the study file spells it (the study's identity: the same study run from
    #: another folder resolves it to another path)
    spelled: str = ""
    #: the preset a ``state_dict`` checkpoint belongs to (None: a model file, or the space's)
    preset: str | None = None
    #: a digest of the checkpoint file's bytes: a resume notices another file under the name
    digest: str = ""

    @property
    def arch(self) -> ArchConfig | None:
        return self.source.arch

    def architecture(self, data: Dataset) -> ArchConfig | None:
        """Every candidate's architecture on ``data`` (after the input adaptation): the model
        file's, the preset's in torchvision's layout, or None (the space samples it)."""
        if self.source.arch is not None or self.preset is None:
            return self.source.arch
        return preset(self.preset, data.input_shape, data.num_classes, small=False)

    def _param(self, name: str) -> Param | None:
        return next((p for p in self.params if p.name == name), None)

    def _suggest(self, name: str, trial: Any, default: Any) -> Any:
        p = self._param(name)
        return default if p is None else p.suggest(trial)

    def suggest(self, trial: optuna.Trial | optuna.trial.FixedTrial) -> TransferConfig:
        """One candidate's transfer settings (blocks and factor only for ``fine_tune``)."""
        mode = self._suggest("mode", trial, "fine_tune")
        blocks, factor, every = None, 1.0, 0
        if mode == "fine_tune":
            blocks = self._suggest("trainable_blocks", trial, None)
            factor = float(self._suggest("body_lr_factor", trial, 1.0))
            if blocks is not None:
                every = int(self._suggest("unfreeze_every", trial, 0))
        return TransferConfig(weights=self.weights, mode=str(mode), trainable_blocks=blocks,
                              body_lr_factor=factor, adapt=self.adapt,
                              unfreeze_every=every).validate()

    def size(self) -> int | None:
        """Distinct transfer candidates (None where a searched value is continuous)."""
        mode = self._param("mode")
        modes = ["fine_tune"] if mode is None else mode.values() or []
        tuned = 1
        for name in ("trainable_blocks", "body_lr_factor", "unfreeze_every"):
            p = self._param(name)
            values = [None] if p is None else p.values()
            if values is None:
                return None
            tuned *= len(values)
        return sum(tuned if m == "fine_tune" else 1 for m in modes)

    def adapt_data(self, data: Dataset, where: str) -> tuple[Dataset, list[str]]:
        return adapt_data(data, self.source, self.adapt, where)

    def to_dict(self) -> dict[str, Any]:
        return {"weights": self.spelled or self.weights, "digest": self.digest,
                "preset": self.preset,
                "adapt": self.adapt.to_dict(),
                "learning_curve": list(self.learning_curve),
                "params": [{"name": p.key, "kind": p.kind, "value": p.value, "low": p.low,
                            "high": p.high, "log": p.log, "choices": list(p.choices)}
                           for p in self.params]}


def file_digest(path: Path) -> str:
    """blake2b of the file's bytes, read in 1 MiB chunks (a ResNet-50 checkpoint: ~0.2 s)."""
    h = hashlib.blake2b(digest_size=12)
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _mode_param(spec: Any, source: str) -> Param:
    p = Param.parse("mode", spec, source, f"{PREFIX}mode")
    if p.kind in ("int", "float"):
        raise ConfigError(source, f"{PREFIX}mode.type", p.kind,
                          "categorical or a fixed value (the mode is a name)")
    for value in p.values() or []:
        if value not in MODES:
            raise UnknownNameError(source, f"{PREFIX}mode", value, MODES)
    return p


def _count_param(name: str, spec: Any, source: str, allowed: str, high: int | None = None,
                 none_ok: bool = False) -> Param:
    """A searched or fixed count: ints >= 0 (and <= ``high``; None where ``none_ok``)."""
    key = f"{PREFIX}{name}"
    p = Param.parse(name, spec, source, key)
    if p.kind == "float":
        raise ConfigError(source, f"{key}.type", p.kind, "int, categorical or a fixed int")
    for value in (p.values() if p.kind != "int" else [int(p.low), int(p.high)]) or []:
        check_count(value, source, key, allowed, high, none_ok)
    return p


def _factor_param(spec: Any, source: str) -> Param:
    p = Param.parse("body_lr_factor", spec, source, f"{PREFIX}body_lr_factor")
    for value in [p.low, p.high] if p.kind in ("int", "float") else p.values() or []:
        check_factor(value, source)
    return p


def _fractions(spec: Any, source: str) -> tuple[float, ...]:
    key = f"{PREFIX}learning_curve"
    if spec is None:
        return ()
    if not isinstance(spec, list):
        raise ConfigError(source, key, spec, "a list of fractions in (0, 1), e.g. [0.25, 0.5]")
    for f in spec:
        if not isinstance(f, (int, float)) or isinstance(f, bool) or not 0 < f < 1:
            raise ConfigError(source, key, f, "fractions in (0, 1) (1: the trial's own CV)")
    return tuple(sorted({float(f) for f in spec}))


def _preset_name(spec: Any, src: SourceModel, weights: str, source: str) -> str | None:
    if spec is None:
        return None
    if not isinstance(spec, str) or spec not in PRESETS:
        raise UnknownNameError(source, f"{PREFIX}preset", spec, PRESETS)
    if src.arch is not None:
        raise ConfigError(source, f"{PREFIX}preset", spec,
                          f"absent: the model file {weights} names its own architecture")
    return spec


def parse_transfer(raw: Any, study_path: Path, source: str, space: SearchSpace,
                   sampler: str = "tpe", diagnosis: Any = None) -> TransferSection | None:
    """The study's ``transfer:`` section, checked (None when the study has none);
    ``diagnosis``: the study's ``diagnosis:`` mapping (its costly controls retrain from
    scratch, so a transfer study may not ask for them)."""
    if raw is None:
        return None
    controls = diagnosis.get("controls") if isinstance(diagnosis, dict) else None
    if controls:
        raise ConfigError(source, "diagnosis.controls", controls,
                          "absent in a study with a transfer: section (the controls retrain "
                          "the architecture from scratch; the shallow baseline still runs)")
    raw = check_section(raw, source, "transfer", TRANSFER_KEYS,
                        "a mapping with at least 'weights'")
    weights = raw.get("weights")
    if not isinstance(weights, str) or not weights:
        raise ConfigError(source, f"{PREFIX}weights", weights,
                          "the path of a local checkpoint (a nasdepth model file from "
                          "`nasdepth export`, or a state_dict)")
    path = resolve_path(weights, study_path)
    if not path.is_file():
        raise ConfigError(source, f"{PREFIX}weights", weights,
                          "an existing local file (relative paths: to the study file's folder "
                          "or its parent)")
    src = read_source(path)
    n_blocks = None
    name = _preset_name(raw.get("preset"), src, weights, source)
    if src.arch is not None or name is not None:
        sampled = [p for p in space.params if not is_recipe(p.name)]
        if sampled:
            origin = f"the model file {weights}" if name is None else f"the preset {name}"
            raise ConfigError(source, "space", sampled[0].key,
                              f"training-recipe keys only: the architecture comes from "
                              f"{origin}")
        import torch

        from nasdepth.arch import build_model

        with torch.device("meta"):  # shapes only: the block count
            if src.arch is not None:
                n_blocks = len(build_model(src.arch, src.input_shape or (),
                                           src.num_classes or 2).blocks)
            else:
                shape = (src.in_channels or 3, 224, 224)
                n_blocks = len(build_model(preset(str(name), shape, 10, small=False), shape,
                                           10).blocks)
    params = [_mode_param(raw.get("mode", "fine_tune"), source)]
    modes = set(params[0].values() or [])
    top = "" if n_blocks is None else f" and <= {n_blocks} (the checkpoint's blocks)"
    for key, parse in (
            ("trainable_blocks", lambda s: _count_param(
                "trainable_blocks", s, source, f"an int >= 0{top}, or null (all)", n_blocks,
                none_ok=True)),
            ("body_lr_factor", lambda s: _factor_param(s, source)),
            ("unfreeze_every", lambda s: _count_param("unfreeze_every", s, source,
                                                      EVERY_ALLOWED))):
        if key not in raw:
            continue
        if "fine_tune" not in modes:
            raise ConfigError(source, f"{PREFIX}{key}", raw[key],
                              "absent: only the fine_tune mode uses it and the study's modes "
                              f"are {', '.join(sorted(modes))}")
        params.append(parse(raw[key]))
    if "unfreeze_every" in raw and raw.get("trainable_blocks") is None:
        raise ConfigError(source, f"{PREFIX}unfreeze_every", raw["unfreeze_every"],
                          "absent without a trainable_blocks count (gradual unfreezing starts "
                          "from the top trainable_blocks and unfreezes one more every N "
                          "epochs)")
    adapt = AdaptConfig.from_dict(raw.get("adapt"), source)
    if adapt.channels == "new_stem" and "feature_extraction" in modes:
        raise ConfigError(source, "transfer.adapt.channels", "new_stem",
                          "repeat when the modes include feature_extraction (its features are "
                          "computed once: a new stem convolution would never train)")
    section = TransferSection(weights=str(path.resolve()), params=tuple(params), source=src,
                              spelled=weights, preset=name, digest=file_digest(path),
                              adapt=adapt,
                              learning_curve=_fractions(raw.get("learning_curve"), source))
    if sampler == "grid" and any(p.kind != "fixed" for p in section.params):
        raise ConfigError(source, "sampler", sampler,
                          "bruteforce, tpe or random with a searched transfer: section (the "
                          "grid lists the space's parameters only)")
    return section


def transfer_record(result: CVResult, section: TransferSection, data: Dataset,
                    candidate: TransferCandidate, splits: Splits,
                    training: TrainConfig) -> dict[str, Any]:
    """A trial's ``TrialRecord.transfer``: its settings (frozen units, adaptations) and, where
    the study asks for a learning curve, one row per fold and fraction of the training
    folds (validation scores; the trial's own CV is the curve's 100% point). The curve's
    runs reuse the trial's candidate, splits (their training parts subsampled) and recipe."""
    out = dict(result.settings.get("transfer") or candidate.transfer.to_dict())
    rows: list[dict[str, Any]] = []
    seed = int(result.settings.get("seed", 0))
    for fraction in section.learning_curve:
        part = cross_validate(candidate, data, cv=subsampled(splits, data.y_numpy, fraction,
                                                             seed),
                              seed=seed, training=training)
        for row in records(part.folds):
            rows.append({"fraction": fraction, **{k: v for k, v in row.items() if k in (
                "fold", "n_train", "seconds") or k.startswith("val_")}})
    out["learning_curve"] = rows
    return out
