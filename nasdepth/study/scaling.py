"""Studies of a compound-scaling space: each trial trains on the data at its own input
resolution (``scaling:`` in the space, :mod:`nasdepth.space.scaling`).

``ScalingObjective`` is the study's objective with one difference: before a trial runs, it
samples the trial's φ and rule (Optuna returns the same values when the objective asks again),
and the trial sees the data resized to the side they give. Costs (FLOPs) are then measured at
that side, and the folds stay the study's (resizing keeps every sample in place). Resized data
sets are kept per side: a study visits a handful.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nasdepth.data import Dataset
from nasdepth.data.resize import resized
from nasdepth.errors import ConfigError
from nasdepth.study.objective import Objective
from nasdepth.study.record import TrialRecord
from nasdepth.study.study_file import StudyConfig

if TYPE_CHECKING:
    import optuna


class ScalingObjective(Objective):
    """The objective of a study whose space scales the input resolution. Single-task
    candidates trained from scratch only: a transfer source fixes the network and a multitask
    study its own objective, so neither combines with a ``scaling:`` space."""

    def __init__(self, cfg: StudyConfig, data: Dataset, *args: Any, **kwargs: Any) -> None:
        for key in ("transfer", "tasks"):
            if getattr(cfg, key, None) is not None:
                raise ConfigError(str(cfg.path), key, f"a {key}: section",
                                  f"absent when the space ({cfg.space.source}) has a scaling: "
                                  "section (scaling studies train single-task networks from "
                                  "scratch)")
        super().__init__(cfg, data, *args, **kwargs)

    def _run(self, trial: optuna.Trial, rec: TrialRecord) -> float | Sequence[float]:
        space = self.cfg.space
        data = self.data
        space.suggest(trial)  # the same values the objective will get
        side = space.resolution(trial.params)
        if side is not None and space.scaling is not None:
            self.data = self._at(side)
            trial.set_user_attr("resolution", side)
            shared, _ = space.scopes(trial.params)
            phi, rule = space.scaling.values(shared)  # a fixed phi is no Optuna parameter
            trial.set_user_attr("scaling", {"scaling.phi": phi, "scaling.rule": rule.name,
                                            "matched_phi": space.scaled(trial.params)[0]})
        try:
            return super()._run(trial, rec)
        finally:
            self.data = data

    def _at(self, side: int) -> Dataset:
        cache: dict[int, Dataset] = self.__dict__.setdefault("_resized", {})
        if side not in cache:
            cache[side] = resized(self.data, side)
        return cache[side]
