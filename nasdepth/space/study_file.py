"""``StudyConfig``: a study YAML (data, space, folds, budget, training, storage, seed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError
from nasdepth.space.space import SearchSpace, load_space
from nasdepth.train import METRICS, TrainConfig

STUDY_KEYS = {"name", "description", "data", "space", "cv", "training", "budget", "seed",
              "storage", "objective"}
CV_KEYS = {"folds", "seed"}
BUDGET_KEYS = {"trials", "timeout"}


@dataclass
class StudyConfig:
    name: str
    data: str
    space: SearchSpace
    path: Path
    folds: int = 3
    cv_seed: int = 0
    training: TrainConfig = field(default_factory=TrainConfig)
    trials: int = 10
    timeout: float | None = None
    seed: int = 0
    storage: str | None = None
    objective: str = "val_accuracy"

    @property
    def storage_url(self) -> str:
        """The storage given, else a journal file beside the study file (safe for several
        local processes)."""
        return self.storage or str(self.path.parent / f"{self.name}.journal")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "data": self.data, "space": self.space.source,
            "folds": self.folds, "cv_seed": self.cv_seed, "training": self.training.to_dict(),
            "trials": self.trials, "timeout": self.timeout, "seed": self.seed,
            "objective": self.objective,
        }


def _section(raw: dict[str, Any], key: str, valid: set[str], source: str) -> dict[str, Any]:
    section = raw.get(key) or {}
    if not isinstance(section, dict):
        raise ConfigError(source, key, section, "a mapping")
    for k in section:
        if k not in valid:
            raise UnknownNameError(source, f"{key}.{k}", k, valid)
    return section


def _resolve(path: str, study_path: Path) -> Path:
    """A space path as written, else relative to the study file, else to its parent folder."""
    for candidate in (Path(path), study_path.parent / path, study_path.parent.parent / path):
        if candidate.is_file():
            return candidate
    return Path(path)


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a study YAML file."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise NasdepthError(f"Study file {path} does not exist.")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise NasdepthError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "study", type(raw).__name__, "a mapping")
    for key in raw:
        if key not in STUDY_KEYS:
            raise UnknownNameError(source, "key", key, STUDY_KEYS)
    for key in ("data", "space"):
        if key not in raw:
            raise ConfigError(source, key, None, "set")
    space_spec = raw["space"]
    if isinstance(space_spec, dict):
        space = SearchSpace.from_dict(space_spec, f"{source} (space)")
    else:
        space = load_space(_resolve(str(space_spec), path))
    cv = _section(raw, "cv", CV_KEYS, source)
    budget = _section(raw, "budget", BUDGET_KEYS, source)
    training = TrainConfig.from_dict(_section(raw, "training", set(TrainConfig().to_dict()),
                                              source), source)
    folds = cv.get("folds", 3)
    if not isinstance(folds, int) or isinstance(folds, bool) or folds < 2:
        raise ConfigError(source, "folds", folds, "an int >= 2")
    trials = budget.get("trials", 10)
    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(source, "budget.trials", trials, "an int >= 1")
    objective = raw.get("objective", "val_accuracy")
    valid_objectives = [f"val_{m}" for m in METRICS]
    if objective not in valid_objectives:
        raise UnknownNameError(source, "objective", objective, valid_objectives)
    seed = raw.get("seed", 0)
    if not isinstance(seed, int):
        raise ConfigError(source, "seed", seed, "an int")
    return StudyConfig(
        name=str(raw.get("name", path.stem)), data=str(raw["data"]), space=space, path=path,
        folds=folds, cv_seed=int(cv.get("seed", seed)), training=training, trials=trials,
        timeout=budget.get("timeout"), seed=seed, storage=raw.get("storage"),
        objective=objective,
    )
