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
import torch

from nasdepth.data.dataset import Dataset
from nasdepth.data.sources import SOURCES, Source, opt_int
from nasdepth.data.tasks import derive_tasks, with_stratify
from nasdepth.errors import ConfigError, UnknownNameError

#: options every source takes: ``limit`` keeps a stratified, seeded subsample of that many
#: samples (a data-limited version of a large set, e.g. 2,000 MNIST digits); ``classes`` keeps
#: the samples of the listed classes (by name), relabelled in that order (a source task of
#: digits 0-4 and a target task of digits 5-9 from one set), before ``limit`` applies;
#: ``stratify`` names the task the CV (and ``limit``) stratify on, for data with several tasks.
#: ``derive`` makes tasks from the labels of a single-task source (``nasdepth.data.tasks``:
#: ``{digit: label, parity: parity}``), ``derive_seed`` seeds its ``noise`` task.
COMMON_OPTIONS: dict[str, Any] = {"limit": None, "limit_seed": 0, "classes": None,
                                  "stratify": None, "derive": None, "derive_seed": 0}
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


def spec_parts(spec: Any) -> tuple[Any, dict[str, Any]]:
    """(source, options) of a data spec: a string or path and no options, or a mapping's
    ``source`` (None where it has none) and its other keys. Paths become strings."""
    src, options = spec, {}
    if isinstance(spec, Mapping):
        src = spec.get("source")
        options = {str(k): v for k, v in spec.items() if k != "source"}
    return (fspath(src) if isinstance(src, PathLike) else src), options


def load_data(spec: str | PathLike | Mapping[str, Any], *, source: str | None = None) -> Dataset:
    """Load ``spec`` into memory as tensors.

    ``source`` names where the spec came from (a study file) in error messages.
    """
    label = source or describe(spec)
    if isinstance(spec, Mapping) and "source" not in spec:
        raise ConfigError(label, "data.source", None,
                          "set (e.g. source: synthetic:classification)")
    spec_str, options = spec_parts(spec)
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
    if opts["classes"] is not None:
        data = keep_classes(data, opts["classes"], label)
    if opts["derive"] is not None:
        data = derive_tasks(data, opts["derive"], opt_int(opts, "derive_seed", label, low=0),
                            label)
    if opts["stratify"] is not None:
        data = with_stratify(data, opts["stratify"], label)
    if opts["limit"] is not None:
        data = subsample(data, opt_int(opts, "limit", label, low=2),
                         opt_int(opts, "limit_seed", label, low=0), label)
    return data


def keep_classes(data: Dataset, classes: Any, source: str) -> Dataset:
    """The samples of ``classes`` (class names, or their ints), labelled 0..n-1 in that
    order."""
    names = [str(c) for c in data.class_names] or [str(i) for i in range(data.num_classes)]
    if not isinstance(classes, list) or len(classes) < 2:
        raise ConfigError(source, "data.classes", classes,
                          "a list of at least two class names, e.g. [5, 6, 7, 8, 9]")
    index = []
    for c in classes:
        if str(c) not in names:
            raise UnknownNameError(source, "data.classes", c, names)
        index.append(names.index(str(c)))
    if len(set(index)) != len(index):
        raise ConfigError(source, "data.classes", classes, "a list without repeats")
    new = torch.full((data.num_classes,), -1, dtype=torch.long)
    new[torch.tensor(index)] = torch.arange(len(index))
    keep = np.where(np.isin(data.y_numpy, index))[0]
    out = data.subset(keep)
    out.y = new[out.y.long()].to(data.y.dtype)
    out.num_classes, out.class_names = len(index), [names[i] for i in index]
    out.name = f"{data.name}[classes {','.join(map(str, classes))}]"
    return out


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
