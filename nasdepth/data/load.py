"""``load_data(spec)``: a data spec (a string or a mapping with options) -> :class:`Dataset`.

Strings: ``sklearn:digits``, ``synthetic:classification``, ``torchvision:MNIST``,
``imagefolder:PATH``, or a path ending in ``.npz``, ``.npy`` or ``.csv``. Mappings (a study
YAML's ``data:`` section): ``{source: <string>, <option>: <value>, ...}``, for example
``{source: synthetic:classification, n_samples: 600, label_noise: 0.2}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from os import PathLike, fspath
from pathlib import Path
from typing import Any

import numpy as np

from nasdepth.data.dataset import Dataset
from nasdepth.data.sources import SOURCES, Source, opt_int
from nasdepth.data.tasks import derive_tasks, with_stratify
from nasdepth.errors import ConfigError, UnknownNameError

#: options every source takes: ``limit`` keeps a stratified, seeded subsample of that many
#: samples (a data-limited version of a large set, e.g. 2,000 MNIST digits); ``stratify``
#: names the task the CV (and ``limit``) stratify on, for data with several tasks.
#: ``derive`` makes tasks from the labels of a single-task source (``nasdepth.data.tasks``:
#: ``{digit: label, parity: parity}``), ``derive_seed`` seeds its ``noise`` task.
COMMON_OPTIONS: dict[str, Any] = {"limit": None, "limit_seed": 0, "stratify": None,
                                  "derive": None, "derive_seed": 0}
FILE_KINDS = {".npz": "npz", ".npy": "npy", ".csv": "csv"}


def split_spec(spec: str, source: str) -> tuple[str, str]:
    """``'sklearn:digits'`` -> ``('sklearn', 'digits')``; ``'x.csv'`` -> ``('csv', 'x.csv')``."""
    kind, sep, rest = spec.partition(":")
    if (sep or kind == "mnist1d") and kind in SOURCES:  # 'mnist1d' needs no name
        return kind, rest
    suffix = Path(spec).suffix.lower()
    if suffix in FILE_KINDS:
        return FILE_KINDS[suffix], spec
    valid = [f"{k}:..." for k in SOURCES if k not in FILE_KINDS.values()]
    valid += [f"PATH{s}" for s in FILE_KINDS]
    raise UnknownNameError(source, "data", spec, valid)


def describe(spec: Any) -> str:
    if isinstance(spec, Mapping):
        return f"the data spec (source: {spec.get('source')})"
    return f"the data spec {spec!r}"


def load_data(spec: str | PathLike | Mapping[str, Any], *, source: str | None = None) -> Dataset:
    """Load ``spec`` into memory as tensors.

    ``source`` names where the spec came from (a study file) in error messages.
    """
    label = source or describe(spec)
    if isinstance(spec, Mapping):
        if "source" not in spec:
            raise ConfigError(label, "data.source", None,
                              "set (e.g. source: synthetic:classification)")
        options = {str(k): v for k, v in spec.items() if k != "source"}
        spec_str = spec["source"]
    else:
        options, spec_str = {}, spec
    if isinstance(spec_str, PathLike):
        spec_str = fspath(spec_str)
    if not isinstance(spec_str, str):
        raise ConfigError(label, "data", spec_str, "a string such as 'sklearn:digits'")
    kind, rest = split_spec(spec_str, label)
    src: Source = SOURCES[kind]
    valid = {**src.options, **COMMON_OPTIONS}
    for key in options:
        if key not in valid:
            raise UnknownNameError(label, f"data option of {kind}", key, valid)
    opts = {**valid, **options}
    data = src.load(rest, opts, label)
    if opts["derive"] is not None:
        data = derive_tasks(data, opts["derive"], opt_int(opts, "derive_seed", label, low=0),
                            label)
    if opts["stratify"] is not None:
        data = with_stratify(data, opts["stratify"], label)
    if opts["limit"] is not None:
        data = subsample(data, opt_int(opts, "limit", label, low=2),
                         opt_int(opts, "limit_seed", label, low=0), label)
    return data


def subsample(data: Dataset, n: int, seed: int, source: str) -> Dataset:
    """A stratified, seeded subsample of ``n`` samples (all of them when ``n >= len``)."""
    if n >= len(data):
        return data
    from sklearn.model_selection import train_test_split

    y = data.y_numpy
    try:
        keep, _ = train_test_split(np.arange(len(y)), train_size=n, stratify=y,
                                   random_state=seed)
    except ValueError as exc:
        raise ConfigError(source, "data.limit", n, f"large enough to keep every class ({exc})"
                          ) from None
    out = data.subset(np.sort(keep))
    out.name = f"{data.name}[{n}]"
    return out
