"""``MultitaskProbeHook``: probes for a multitask candidate's CV, one :class:`Probe` per task
and fold, each on the task's path (stem -> shared blocks -> its branch -> its head).

A task's trace is a single-task trace: its label entropy and chance level are the task's, its
losses and accuracies the task's, its probe accuracy that of its head. The shared blocks
appear in every task's trace with the same gradients (those of the joint loss, the ones the
optimizer applies); a branch or head shows only its own task's. Each trace dict carries a
``task`` key (``Trace.from_dict`` ignores it).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasdepth.probes.hook import PROBE_BATCH, probe_rows
from nasdepth.probes.probe import Probe
from nasdepth.probes.summary import summarize
from nasdepth.probes.trace import Trace
from nasdepth.train.hooks import TrainHook


class MultitaskProbeHook(TrainHook):
    """Per-task probes; ``traces`` holds every fold's traces (each task's), ``by_task()`` them
    grouped by task."""

    needs_per_fold_model = True

    def __init__(self, *, probe_size: int = PROBE_BATCH, update_every: int = 10) -> None:
        self.probe_size, self.update_every = probe_size, update_every
        self.traces: list[Trace] = []
        self.tasks_of: list[str] = []  # the task of each trace
        self._open: dict[str, Probe] = {}

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        self.close("stopped before its last epoch")
        tasks = list(getattr(model, "tasks", ()))
        idx = probe_rows(len(x_train), self.probe_size).to(x_train.device)
        for i, task in enumerate(tasks):
            y = y_train[:, i]
            path = model.path(task)  # type: ignore[operator]
            self._open[task] = Probe(
                path, probe_batch=(x_train[idx], y[idx]), labels=y,
                num_classes=int(model.num_classes[task]),  # type: ignore[index]
                update_every=self.update_every, fold=fold)

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        for i, probe in enumerate(self._open.values()):
            probe.after_backward(loss[i] if loss.dim() else loss)

    def after_step(self, model: nn.Module) -> None:
        for probe in self._open.values():
            probe.after_step()

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        for task, probe in self._open.items():
            probe.epoch_end(train_loss=record.get(f"{task}.train_loss"),
                            val_loss=record.get(f"{task}.val_loss"),
                            val_accuracy=record.get(f"{task}.val_accuracy"),
                            epoch=record.get("epoch"))

    def on_fit_end(self, model: nn.Module, fold: int) -> list[dict[str, Any]]:  # type: ignore[override]
        out = []
        for task, probe in self._open.items():
            self.traces.append(probe.trace)
            self.tasks_of.append(task)
            out.append({**probe.trace.to_dict(), "task": task})
        self._open.clear()
        return out

    def close(self, reason: str) -> None:
        """Keep the partial traces of a fold that ended without ``on_fit_end``."""
        for task, probe in self._open.items():
            self.traces.append(probe.stop(reason))
            self.tasks_of.append(task)
        self._open.clear()

    def by_task(self) -> dict[str, list[Trace]]:
        out: dict[str, list[Trace]] = {}
        for task, trace in zip(self.tasks_of, self.traces, strict=True):
            out.setdefault(task, []).append(trace)
        return out

    def summary(self) -> dict[str, Any]:
        """``{task: ProbeHook-style summary}``: the probe summary stored with a trial."""
        return {task: summarize(traces) for task, traces in self.by_task().items()}
