"""Cross-validation splits, fixed by a seed so that every candidate sees the same folds.

Same folds for every trial make candidate comparisons paired (fold k of trial A against
fold k of trial B), which removes the split-to-split noise from the comparison.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)

from nasdepth.errors import ConfigError, UnknownNameError

CV_KINDS = ("stratified", "kfold", "group", "repeated_stratified")
Split = tuple[np.ndarray, np.ndarray]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class CVConfig:
    """How samples are split: a study YAML's ``cv:`` section.

    ``kind``: ``stratified`` (default), ``kfold``, ``group`` (samples of one group never
    straddle train and validation; needs ``group``, the data's group column) or
    ``repeated_stratified`` (``folds`` x ``repeats`` splits). ``test_size`` (a fraction in
    (0, 1) or a count) sets a stratified held-out test part aside before CV: no fold ever
    trains or validates on it; it is scored only for reports.
    """

    folds: int = 5
    seed: int = 0
    kind: str = "stratified"
    repeats: int = 1
    group: str | None = None
    test_size: float = 0.0

    @property
    def n_splits(self) -> int:
        return self.folds * (self.repeats if self.kind == "repeated_stratified" else 1)

    def validate(self, source: str = "the cv settings") -> CVConfig:
        if not _is_int(self.folds) or self.folds < 2:
            raise ConfigError(source, "folds", self.folds, "an int >= 2")
        if not _is_int(self.seed):
            raise ConfigError(source, "cv.seed", self.seed, "an int")
        if self.kind not in CV_KINDS:
            raise UnknownNameError(source, "cv.kind", self.kind, CV_KINDS)
        if not _is_int(self.repeats) or self.repeats < 1:
            raise ConfigError(source, "cv.repeats", self.repeats, "an int >= 1")
        if self.repeats > 1 and self.kind != "repeated_stratified":
            raise ConfigError(source, "cv.repeats", self.repeats,
                              "1 unless kind is repeated_stratified")
        if self.kind == "group" and not isinstance(self.group, str):
            raise ConfigError(source, "cv.group", self.group,
                              "the name of the group column for kind: group")
        t = self.test_size
        if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 0 or (
                isinstance(t, float) and t >= 1):
            raise ConfigError(source, "cv.test_size", t,
                              "0 (none), a fraction in (0, 1) or a sample count")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None, source: str = "the cv settings") -> CVConfig:
        d = dict(d or {})
        valid = {f.name for f in fields(cls)}
        for key in d:
            if key not in valid:
                raise UnknownNameError(source, "cv key", key, valid)
        return cls(**d).validate(source)


def _check_smallest_class(y: np.ndarray, folds: int, source: str,
                          class_names: list[str] | None) -> None:
    counts = np.bincount(y)
    present = np.flatnonzero(counts)
    smallest = int(present[np.argmin(counts[present])])
    if counts[smallest] < folds:
        name = class_names[smallest] if class_names else str(smallest)
        raise ConfigError(source, "folds", folds,
                          f"at most {int(counts[smallest])} (class {name!r} has only "
                          f"{int(counts[smallest])} samples)")


def make_splits(y: np.ndarray, cv: CVConfig, *, groups: np.ndarray | None = None,
                source: str = "the study", class_names: list[str] | None = None
                ) -> list[Split]:
    """(train index, validation index) pairs for ``cv``, the same for the same seed."""
    cv.validate(source)
    y = np.asarray(y)
    n = len(y)
    if cv.folds > n:
        raise ConfigError(source, "folds", cv.folds, f"at most the {n} samples")
    if cv.kind in ("stratified", "repeated_stratified"):
        _check_smallest_class(y, cv.folds, source, class_names)
    dummy = np.zeros(n)
    if cv.kind == "stratified":
        it = StratifiedKFold(cv.folds, shuffle=True, random_state=cv.seed).split(dummy, y)
    elif cv.kind == "repeated_stratified":
        it = RepeatedStratifiedKFold(n_splits=cv.folds, n_repeats=cv.repeats,
                                     random_state=cv.seed).split(dummy, y)
    elif cv.kind == "kfold":
        it = KFold(cv.folds, shuffle=True, random_state=cv.seed).split(dummy)
    else:
        if groups is None:
            raise ConfigError(source, "cv.group", cv.group,
                              "a column of the data (load it with the data option "
                              f"group: {cv.group})")
        n_groups = len(np.unique(groups))
        if n_groups < cv.folds:
            raise ConfigError(source, "folds", cv.folds,
                              f"at most the {n_groups} groups in column {cv.group!r}")
        it = GroupKFold(cv.folds, shuffle=True, random_state=cv.seed).split(dummy, y, groups)
    return [(np.sort(tr), np.sort(va)) for tr, va in it]


def make_folds(y: np.ndarray, folds: int, seed: int, source: str = "the study"
               ) -> list[Split]:
    """Stratified k-fold (train index, validation index) pairs, shuffled with ``seed``."""
    return make_splits(y, CVConfig(folds=folds, seed=seed), source=source)


def holdout_split(y: np.ndarray, test_size: float, seed: int, source: str = "the study"
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(CV index, test index): a stratified held-out part fixed by ``seed``."""
    idx = np.arange(len(y))
    if not test_size:
        return idx, idx[:0]
    try:
        rest, test = train_test_split(idx, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise ConfigError(source, "cv.test_size", test_size,
                          f"a size that leaves every class in both parts ({exc})") from None
    return np.sort(rest), np.sort(test)
