"""Training-recipe parameters in a search space: the learning rate, weight decay, optimizer and
the rest of ``TrainConfig``, sampled together with the architecture.

A deep plain network and a shallow residual one rarely share their best learning rate; with a
fixed recipe a depth study partly measures the recipe. These keys take the same YAML vocabulary,
conditions and error messages as architecture keys (``lr: {type: float, low: 1e-4, high: 0.1,
log: true}``); each value is checked by ``TrainConfig`` itself, so the rules stay the training
engine's own. Augmentation strengths are ``augment.flip``, ``augment.crop_padding`` ... (a nested
``augment:`` mapping in the YAML). ``lr: auto`` runs a learning-rate range test per candidate
(:mod:`nasdepth.train.lr_find`).

``momentum`` applies to SGD only: where ``optimizer`` is sampled and ``momentum`` has no
``when``, the space adds ``when: {optimizer: [sgd]}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.space.params import Param
from nasdepth.train.config import LR_AUTO, TrainConfig

#: recipe keys a space may search, as they appear in ``TrainConfig``
RECIPE_KEYS: dict[str, Any] = {
    "lr": float, "weight_decay": float, "optimizer": str, "momentum": float,
    "batch_size": int, "schedule": str, "label_smoothing": float, "epochs": int,
    "patience": int, "min_delta": float, "grad_clip": float,
}
#: augmentation strengths (``augment.<key>`` in Optuna and in the report)
AUGMENT_KEYS: dict[str, Any] = {"augment.flip": float, "augment.crop_padding": int,
                                "augment.rotation": float, "augment.color_jitter": float}
ALL_KEYS: dict[str, Any] = {**RECIPE_KEYS, **AUGMENT_KEYS}


def is_recipe(name: str) -> bool:
    return name in ALL_KEYS


def flatten(spec: Mapping[str, Any]) -> dict[str, Any]:
    """A space mapping with its nested ``augment:`` mapping spread into ``augment.<key>``
    entries (other keys unchanged)."""
    out: dict[str, Any] = {}
    for key, value in spec.items():
        if key == "augment" and isinstance(value, dict):
            out.update({f"augment.{sub}": inner for sub, inner in value.items()})
        else:
            out[key] = value
    return out


def check_recipe_value(name: str, label: str, value: Any, source: str) -> None:
    """Raise a :class:`ConfigError` naming ``source`` and ``label`` if ``TrainConfig`` refuses
    ``value`` for ``name``."""
    if name == "lr" and value == LR_AUTO:
        return
    trial: dict[str, Any] = {name: value}
    if name.startswith("augment."):
        trial = {"augment": {name.split(".", 1)[1]: value}}
    try:
        TrainConfig.from_dict(trial, source)
    except UnknownNameError as exc:
        raise UnknownNameError(source, label, value, exc.valid) from None
    except ConfigError as exc:
        raise ConfigError(source, label, value, exc.allowed) from None


def checked(p: Param, source: str) -> Param:
    """Check every value a recipe parameter can take (bounds of a distribution, choices)."""
    hint = ALL_KEYS[p.name]
    if p.kind in ("int", "float"):
        if hint is str:
            raise ConfigError(source, f"{p.key}.type", p.kind,
                              f"categorical or a fixed value ('{p.name}' is a name)")
        if hint is int and p.kind == "float":
            raise ConfigError(source, f"{p.key}.type", p.kind,
                              f"int, categorical or a fixed value ('{p.name}' takes an int)")
        for which, bound in (("low", p.low), ("high", p.high)):
            check_recipe_value(p.name, f"{p.key}.{which}", bound, source)
    else:
        for value in p.values() or []:
            check_recipe_value(p.name, p.key, value, source)
    return p


def link_momentum(params: list[Param], source: str) -> list[Param]:
    """``momentum`` only where the optimizer is SGD: add ``when: {optimizer: [sgd]}`` where
    ``optimizer`` is sampled; refuse a momentum the space's optimizer never uses."""
    opt = next((p for p in params if p.name == "optimizer"), None)
    out = []
    for p in params:
        if p.name != "momentum" or opt is None:
            out.append(p)
            continue
        choices = opt.values() or []
        if "sgd" not in choices:
            raise ConfigError(source, "momentum", p.value if p.kind == "fixed" else p.describe(),
                              f"absent: the space's optimizer ({opt.describe()}) is never sgd, "
                              "and only sgd has momentum")
        if "optimizer" in p.when:
            bad = [v for v in p.when["optimizer"] if v != "sgd"]
            if bad:
                raise ConfigError(source, f"{p.key}.when.optimizer", bad[0],
                                  "sgd (only sgd has momentum)")
            out.append(p)
        elif opt.kind == "fixed":
            out.append(p)
        else:
            out.append(replace(p, when={**p.when, "optimizer": ("sgd",)}))
    return out


def recipe_values(shared: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe part of a space's shared values (keys as in :data:`ALL_KEYS`)."""
    return {k: v for k, v in shared.items() if k in ALL_KEYS}


def apply_recipe(base: TrainConfig, values: Mapping[str, Any],
                 source: str = "the search space") -> TrainConfig:
    """``base`` with the sampled recipe ``values`` applied (and validated)."""
    plain = {k: v for k, v in values.items() if not k.startswith("augment.")}
    aug = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("augment.")}
    if plain.get("lr") == LR_AUTO:
        plain["lr"], plain["lr_auto"] = base.lr, True
    elif "lr" in plain:
        plain["lr_auto"] = False
    out = replace(base, **plain)
    if aug:
        out = replace(out, augment=replace(base.augment, **aug))
    return out.validate(source)


def training_conflicts(searched: Mapping[str, Param], training: Mapping[str, Any],
                       source: str, space_source: str) -> None:
    """A recipe key fixed under a study's ``training:`` and also searched by its space."""
    for key, value in flatten(training).items():
        if key in searched:
            raise ConfigError(source, f"training.{key}", value,
                              f"absent: the space ({space_source}) searches '{key}' "
                              f"({searched[key].describe()}); fix it under training: or "
                              "search it in the space, not both")


def momentum_conflict(searched: Mapping[str, Param], training: TrainConfig,
                      source: str) -> None:
    """A searched momentum with a study optimizer that has none."""
    if "momentum" in searched and "optimizer" not in searched and training.optimizer != "sgd":
        raise ConfigError(source, "training.optimizer", training.optimizer,
                          "sgd when the space searches 'momentum' (only sgd has momentum)")
