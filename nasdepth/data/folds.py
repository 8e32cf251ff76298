"""Cross-validation splits, fixed by a seed so that every candidate sees the same folds.

Same folds for every trial make candidate comparisons paired (fold k of trial A against
fold k of trial B), which removes the split-to-split noise from the comparison.

One object describes the CV (:class:`CVConfig`: splitter kind, folds, repeats, seed, groups,
held-out test part) and is resolved once on a data set into concrete :class:`Splits`, which
training, the report's baselines and the diagnosis controls all take (as scikit-learn passes
a ``cv=`` splitter)::

    splits = CVConfig(folds=5, kind="group", group="patient").resolve(data)
    cross_validate(arch, data, cv=splits)   # and baseline_folds(data, splits), diagnose(...)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import (
    GroupKFold,
    KFold,
    RepeatedStratifiedKFold,
    StratifiedKFold,
    train_test_split,
)

from nasdepth.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from nasdepth.data.dataset import Dataset

CV_KINDS = ("stratified", "kfold", "group", "repeated_stratified", "holdout")
Split = tuple[np.ndarray, np.ndarray]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class CVConfig:
    """How samples are split: a study YAML's ``cv:`` section.

    ``kind``: ``stratified`` (default), ``kfold``, ``group`` (samples of one group never
    straddle train and validation; needs ``group``, the data's group column) or
    ``repeated_stratified`` (``folds`` x ``repeats`` splits) or ``holdout``: one split in the
    data's own order, the last ``1 / folds`` of the rows validate and the rest train (a source
    that lists its published training rows first keeps its published split: ``mnist1d`` with
    ``split: all`` and ``folds: 5`` trains on its 4,000 training and scores its 1,000 test
    samples, the paper's protocol). ``test_size`` (a fraction in
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
        if self.kind == "holdout":
            return 1
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

    def resolve(self, data: Dataset, source: str = "the study") -> Splits:
        """The concrete splits of ``data``: the held-out test part set aside first (stratified,
        fixed by ``seed``), then the CV splits of the rest, as positions into ``data``."""
        self.validate(source)
        y = data.y_numpy
        cv_idx, test_idx = holdout_split(y, self.test_size, self.seed, source)
        groups = None if data.groups is None else np.asarray(data.groups)[cv_idx]
        folds = tuple((cv_idx[tr], cv_idx[va])
                      for tr, va in make_splits(y[cv_idx], self, groups=groups, source=source,
                                                class_names=data.class_names))
        return Splits(cv=self, folds=folds, test=test_idx, n_samples=len(y))


class Splits:
    """A CV resolved on one data set: the (train index, validation index) pair of every split,
    the held-out test index (empty when none) and the :class:`CVConfig` that made them.

    Iterating gives the (train, validation) pairs in the engine's order (split ``k`` of a
    repeated k-fold belongs to repeat ``k // folds``). ``to_dict()`` holds the description and a
    digest of the indices (``indices=True`` adds the indices themselves); :meth:`from_dict`
    rebuilds from the indices, or re-resolves the description on ``data`` and checks the
    digest, so a stored run's splits are recovered exactly or refused.
    """

    def __init__(self, *, cv: CVConfig, folds: tuple[Split, ...] | list[Split],
                 test: np.ndarray, n_samples: int) -> None:
        self.cv = cv
        self.folds = tuple((np.asarray(tr, dtype=np.int64), np.asarray(va, dtype=np.int64))
                           for tr, va in folds)
        self.test = np.asarray(test, dtype=np.int64)
        self.n_samples = int(n_samples)

    def __len__(self) -> int:
        return len(self.folds)

    def with_folds(self, folds: Sequence[Split]) -> Splits:
        """The same CV (description, test part, samples) over other ``(train, val)`` pairs:
        a subset of the folds, or folds whose training parts were subsampled."""
        return Splits(cv=self.cv, folds=list(folds), test=self.test, n_samples=self.n_samples)

    def __iter__(self) -> Iterator[Split]:
        return iter(self.folds)

    def __getitem__(self, k: int) -> Split:
        return self.folds[k]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Splits) and self.cv == other.cv \
            and self.n_samples == other.n_samples and self.digest == other.digest

    def __hash__(self) -> int:
        return hash(self.digest)

    def __repr__(self) -> str:
        return (f"Splits({self.cv.kind}, {len(self)} splits of {self.n_samples} samples, "
                f"test {len(self.test)}, seed {self.cv.seed})")

    @property
    def kind(self) -> str:
        return self.cv.kind

    @property
    def seed(self) -> int:
        return self.cv.seed

    @property
    def n_splits(self) -> int:
        return len(self.folds)

    def repeat_of(self, k: int) -> int:
        """The repeat split ``k`` belongs to (0 unless the CV is repeated)."""
        return k // self.cv.folds if self.cv.kind == "repeated_stratified" else 0

    @property
    def digest(self) -> str:
        """A short fingerprint of every index (two runs had the same splits when it matches)."""
        h = hashlib.sha1()
        for tr, va in self.folds:
            h.update(tr.tobytes())
            h.update(b"|")
            h.update(va.tobytes())
            h.update(b"#")
        h.update(self.test.tobytes())
        return h.hexdigest()[:16]

    def to_dict(self, indices: bool = False) -> dict[str, Any]:
        d: dict[str, Any] = {"cv": self.cv.to_dict(), "n_samples": self.n_samples,
                             "n_splits": self.n_splits, "n_test": int(len(self.test)),
                             "digest": self.digest}
        if indices:
            d["folds"] = [[tr.tolist(), va.tolist()] for tr, va in self.folds]
            d["test"] = self.test.tolist()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], data: Dataset | None = None,
                  source: str = "the stored splits") -> Splits:
        cv = CVConfig.from_dict(d.get("cv"), source)
        if "folds" in d:
            out = cls(cv=cv, folds=[(np.asarray(tr), np.asarray(va)) for tr, va in d["folds"]],
                      test=np.asarray(d.get("test", []), dtype=np.int64),
                      n_samples=int(d.get("n_samples", 0)))
        elif data is not None:
            out = cv.resolve(data, source)
        else:
            raise ConfigError(source, "splits", "a description without indices",
                              "indices, or the data set to resolve the description on")
        if d.get("digest") and d["digest"] != out.digest:
            raise ConfigError(source, "splits", f"digest {out.digest} on this data",
                              f"the run's splits (digest {d['digest']}): the data differ from "
                              "the data the run was trained on")
        return out


def resolve_cv(cv: CVConfig | Splits | None, data: Dataset, *, folds: int = 5, seed: int = 0,
               source: str = "the study") -> Splits:
    """``Splits`` as given, a ``CVConfig`` resolved on ``data``, or stratified ``folds``-fold
    CV shuffled with ``seed`` when ``cv`` is None. Splits resolved on other data are refused."""
    if isinstance(cv, Splits):
        if cv.n_samples != len(data):
            raise ConfigError(source, "cv", f"splits of {cv.n_samples} samples",
                              f"splits of this data set's {len(data)} samples")
        return cv
    return (cv or CVConfig(folds=folds, seed=seed)).resolve(data, source)


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
    elif cv.kind == "holdout":  # the data's order: the last 1 / folds validates
        cut = n - n // cv.folds
        return [(np.arange(cut), np.arange(cut, n))]
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
