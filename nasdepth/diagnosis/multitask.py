"""Diagnosis of a multitask run: one verdict per task (its head and the path that feeds it),
and the gradients of the shared trunk.

Each task is diagnosed as a single-task run of its own (:func:`nasdepth.train.multitask.
task_view`): its fold metrics, its losses, its probe traces, and controls on its own labels
(the shallow baseline of that task on the run's splits). A task whose labels carry no signal
is then a ``data_limited_plateau`` for that task only; a healthy task next to it keeps its own
verdict.

The trunk: the shared blocks' gradient RMS (the same in every task's trace: the joint loss's
gradients) and the ratio of the first shared block's to the last's, in decades; below the
vanishing threshold the trunk itself starves its first blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from nasdepth.data import Dataset, Splits
from nasdepth.data.tasks import task_data
from nasdepth.diagnosis.api import diagnose
from nasdepth.diagnosis.diagnosis import Diagnosis
from nasdepth.diagnosis.rules import THRESHOLDS
from nasdepth.errors import ConfigError
from nasdepth.train.cv import CVResult
from nasdepth.train.multitask import task_view


@dataclass
class MultitaskDiagnosis:
    """``tasks``: a :class:`Diagnosis` per task; ``trunk``: the shared blocks' gradients."""

    tasks: dict[str, Diagnosis]
    trunk: dict[str, Any] = field(default_factory=dict)

    @property
    def verdicts(self) -> dict[str, str]:
        return {t: d.verdict for t, d in self.tasks.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"tasks": {t: d.to_dict() for t, d in self.tasks.items()}, "trunk": self.trunk}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MultitaskDiagnosis:
        return cls(tasks={t: Diagnosis.from_dict(v) for t, v in d.get("tasks", {}).items()},
                   trunk=dict(d.get("trunk") or {}))

    def __str__(self) -> str:
        lines = [f"{t}: {d.verdict} (confidence {d.confidence:.2f})"
                 for t, d in self.tasks.items()]
        if self.trunk.get("blocks"):
            lines.append(f"trunk: {len(self.trunk['blocks'])} shared units, first/last "
                         f"gradient {self.trunk.get('grad_ratio_log10')} decades")
        return "\n".join(lines)


def result_tasks(result: CVResult) -> list[str]:
    mt = result.settings.get("multitask")
    if not isinstance(mt, dict) or not mt.get("tasks"):
        raise ConfigError("diagnose", "cv_result", "a single-task CVResult",
                          "a result of cross_validate of a multitask candidate")
    return [str(t) for t in mt["tasks"]]


def trunk_gradients(result: CVResult) -> dict[str, Any]:
    """Median gradient RMS of the shared units (stem and shared blocks) over folds and epochs,
    and log10 of first / last shared unit."""
    tasks = result_tasks(result)
    traces = [t for t in result.traces if t.get("task") == tasks[0]]
    if not traces:
        return {}
    blocks = [b for b in traces[0]["blocks"] if "/" not in b]
    series: list[list[float]] = [[] for _ in blocks]
    for tr in traces:
        for e in tr.get("epochs", []):
            g = e.get("grad_rms") or []
            for i in range(len(blocks)):
                if i < len(g) and isinstance(g[i], (int, float)) and g[i] > 0:
                    series[i].append(float(g[i]))
    med = [sorted(s)[len(s) // 2] if s else None for s in series]
    ratio = None
    hidden = [m for m in med[1:] if m] if len(med) > 2 else [m for m in med if m]
    if len(hidden) >= 2:
        ratio = round(math.log10(hidden[0] / hidden[-1]), 3)
    return {"blocks": blocks, "grad_rms": med, "grad_ratio_log10": ratio,
            "vanishing": ratio is not None and ratio < THRESHOLDS["grad_depth_log10"]}


def diagnose_tasks(result: CVResult, data: Dataset | None = None, *,
                   controls: str | list[str] | None = None,
                   precomputed: dict[str, dict[str, Any]] | None = None,
                   thresholds: dict[str, float] | None = None,
                   reference_budget: float | None = None) -> MultitaskDiagnosis:
    """A verdict per task of a multitask ``cross_validate`` run trained with a
    :class:`~nasdepth.probes.MultitaskProbeHook`. ``data`` (the multitask data set) lets the
    controls run on each task's labels (by default the shallow baseline); ``precomputed``
    maps a task to its control results computed once elsewhere (a study's);
    ``reference_budget``: as :func:`diagnose`'s, for each task's reference network."""
    tasks = result_tasks(result)
    stored = result.settings.get("splits")
    splits = None
    if data is not None and isinstance(stored, dict) and "folds" in stored:
        splits = Splits.from_dict(stored, source="diagnose")
    out: dict[str, Diagnosis] = {}
    for task in tasks:
        view = task_view(result, task)
        if not view.traces:
            raise ConfigError("diagnose", "cv_result", f"no traces of task {task!r}",
                              "trained with hooks=[MultitaskProbeHook()]")
        own = None if data is None else task_data(data, task, "diagnose")
        out[task] = diagnose(view, own, controls=controls, cv=splits,
                             precomputed=(precomputed or {}).get(task), thresholds=thresholds,
                             reference_budget=reference_budget)
    return MultitaskDiagnosis(tasks=out, trunk=trunk_gradients(result))
