"""What a network's outputs are trained and scored against: one label column
(:class:`SingleTarget`) or several tasks at once (:class:`TaskTargets`, a multitask network's
``{task: logits}``).

The training loop (``fit.py``) owns the data and the epochs; a target owns the loss of a batch,
the running loss and hits of an epoch, the validation record of an epoch and the metric columns
of a fold's row. The single-task target hands each batch to :class:`TrainStep` as it is (its
loss, hits and auxiliary heads are the step's own); the task target computes the joint loss and
calls ``TrainStep.update``, so clipping, the optimizer, the schedule and the hooks' per-step
calls stay the one step's.

Multitask rows and epoch records (each task's columns prefixed with its name, the plain
columns their mean): :mod:`nasdepth.train.multitask`, ``docs/multitask.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.arch.multitask import joint_loss
from nasdepth.data import Dataset
from nasdepth.data.tasks import label_matrix
from nasdepth.train.loop import autocast
from nasdepth.train.metrics import METRICS, classification_metrics
from nasdepth.train.step import TrainStep, batch_loss

#: (split, labels, probabilities) of one scored part of a fold
Scores = Sequence[tuple[str, np.ndarray, Any]]


#: rows per evaluation chunk (per fold model). On the CPU each chunk's activations are fresh
#: allocations of up to several MB; depending on the process's allocation history glibc maps
#: and unmaps them every time, and each fresh 4 KB page costs a page fault. Chunks of 256 rows
#: keep that bounded (``benchmarks/bench_predict.py``, 2,000 rows: a small CNN 128 ms in chunks
#: of 256 against 246 ms with 54,000 page faults in chunks of 1,024; 3 stacked fold MLPs 42
#: against 97 ms when the 1,024-row chunks fault, 39 against 36 ms when they do not).
EVAL_ROWS = {"cpu": 256}
EVAL_ROWS_DEFAULT = 1024


def eval_rows(device: torch.device) -> int:
    return EVAL_ROWS.get(device.type, EVAL_ROWS_DEFAULT)


def predict_proba(model: nn.Module, x: torch.Tensor, batch_size: int | None = None,
                  precision: str = "fp32") -> torch.Tensor:
    """Class probabilities of a single-task network for rows ``x`` on its device."""
    return SINGLE.proba(model, x, precision, batch_size)


class SingleTarget:
    """One label column (``data.y``); the network gives ``(B, C)`` logits."""

    tasks: tuple[str, ...] = ()

    def labels(self, data: Dataset) -> torch.Tensor:
        return data.y

    def start_epoch(self, step: TrainStep) -> None:
        step.start_epoch()

    def train(self, step: TrainStep, x: torch.Tensor, y: torch.Tensor) -> None:
        step(x, y)

    def train_scores(self, step: TrainStep, seen: int) -> list[dict[str, float]]:
        """The epoch's training loss and accuracy: one row per fold of a fold stack, one row
        for a single model; one host sync per epoch."""
        loss = (step.total / seen).reshape(-1).tolist()
        acc = (step.correct.float() / seen).reshape(-1).tolist()
        return [{"train_loss": a, "train_accuracy": b} for a, b in zip(loss, acc, strict=True)]

    def softmax(self, out: torch.Tensor) -> torch.Tensor:
        """Logits as the network gives them -> probabilities (classes last)."""
        return torch.softmax(out.float(), dim=-1)

    @torch.no_grad()
    def proba(self, model: nn.Module, x: torch.Tensor, precision: str = "fp32",
              batch_size: int | None = None) -> torch.Tensor:
        """Probabilities for rows ``x`` (eval mode, in chunks of :func:`eval_rows`): ``(N,
        C)``, or every task's side by side, ``(N, sum of the tasks' classes)``."""
        model.eval()
        rows = batch_size or eval_rows(x.device)
        with autocast(x.device, precision):
            return torch.cat([self.softmax(model(x[i:i + rows])) for i in range(0, len(x), rows)])

    def val_scores(self, model: nn.Module, proba: torch.Tensor, y: torch.Tensor
                   ) -> dict[str, float]:
        # the mean negative log-likelihood of the probabilities
        return {"val_loss": float(F.nll_loss(torch.log(proba.clamp_min(1e-7)), y)),
                "val_accuracy": float((proba.argmax(1) == y).float().mean())}

    def metrics(self, scores: Scores, model: nn.Module, num_classes: int) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for split, y, proba in scores:
            row.update({f"{split}_{m}": v
                        for m, v in classification_metrics(y, proba, num_classes).items()})
        # ``gap_<m> = train_<m> - val_<m>``: the generalization gap, a first-class column
        row.update({f"gap_{m}": row[f"train_{m}"] - row[f"val_{m}"] for m in METRICS
                    if f"train_{m}" in row and f"val_{m}" in row})
        return row

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothing: float
             ) -> torch.Tensor:
        """A batch's loss outside the loop (the learning-rate range test)."""
        return F.cross_entropy(model(x).float(), y, label_smoothing=smoothing)


class TaskTargets(SingleTarget):
    """Several label columns (the tasks of multitask data, in ``tasks`` order); the network
    (:class:`~nasdepth.arch.MultitaskNetwork`) gives ``{task: logits}`` and weighs the tasks'
    losses into the joint loss that is differentiated."""

    def __init__(self, tasks: Sequence[str]) -> None:
        self.tasks = tuple(tasks)
        self.total: torch.Tensor | None = None
        self.correct: torch.Tensor | None = None

    def labels(self, data: Dataset) -> torch.Tensor:
        return label_matrix(data, self.tasks)

    def start_epoch(self, step: TrainStep) -> None:
        shape = (*step.total.shape, len(self.tasks))  # (T,), or (k, T) for a fold stack
        self.total = torch.zeros(shape, device=step.device)
        self.correct = torch.zeros(shape, device=step.device, dtype=torch.long)

    def _losses(self, out: dict[str, torch.Tensor], y: torch.Tensor, smoothing: float
                ) -> torch.Tensor:
        """``(T,)`` task losses of a batch, or ``(k, T)`` for a fold stack's."""
        return torch.stack([batch_loss(out[t], y[..., i], smoothing)
                            for i, t in enumerate(self.tasks)], dim=-1)

    def train(self, step: TrainStep, x: torch.Tensor, y: torch.Tensor) -> None:
        with autocast(step.device, step.precision):
            out, _ = step.outputs(x)
            losses = self._losses(out, y, step.smoothing)
            if step.folds is None:
                joint = step.model.joint_loss(losses)  # type: ignore[union-attr,operator]
            else:  # every fold's joint loss from its slice of the stacked weights
                joint = joint_loss(losses, step.folds.params.get("log_vars"),
                                   step.folds.buffers["fixed_weights"])
        step.update(joint, losses.detach())  # hooks see the task losses
        assert self.total is not None and self.correct is not None
        self.total.add_(losses.detach(), alpha=y.shape[-2])
        self.correct.add_(torch.stack([(out[t].detach().argmax(-1) == y[..., i]).sum(-1)
                                       for i, t in enumerate(self.tasks)], dim=-1))

    def train_scores(self, step: TrainStep, seen: int) -> list[dict[str, float]]:
        assert self.total is not None and self.correct is not None
        t_n = len(self.tasks)
        loss = (self.total / seen).reshape(-1, t_n).tolist()  # one host sync per epoch
        acc = (self.correct.float() / seen).reshape(-1, t_n).tolist()
        return [{"train_loss": float(np.mean(fl)), "train_accuracy": float(np.mean(fa)),
                 **{k: v for i, t in enumerate(self.tasks)
                    for k, v in ((f"{t}.train_loss", fl[i]), (f"{t}.train_accuracy", fa[i]))}}
                for fl, fa in zip(loss, acc, strict=True)]  # one row per fold

    def softmax(self, out: dict[str, torch.Tensor]) -> torch.Tensor:  # type: ignore[override]
        """Every task's probabilities side by side (classes last)."""
        return torch.cat([torch.softmax(out[t].float(), dim=-1) for t in self.tasks], dim=-1)

    def split(self, model: nn.Module, proba: torch.Tensor) -> dict[str, torch.Tensor]:
        """The side-by-side probabilities of :meth:`proba`, per task."""
        sizes = [int(model.num_classes[t]) for t in self.tasks]  # type: ignore[index]
        return dict(zip(self.tasks, torch.split(proba, sizes, dim=1), strict=True))

    def val_scores(self, model: nn.Module, proba: torch.Tensor, y: torch.Tensor
                   ) -> dict[str, float]:
        per = self.split(model, proba)
        out: dict[str, float] = {}
        for i, t in enumerate(self.tasks):
            own = SingleTarget.val_scores(self, model, per[t], y[:, i])
            out.update({f"{t}.{k}": v for k, v in own.items()})
        out.update(self.weights(model))
        # the mean of the tasks' validation losses: no task's weight (learned or fixed)
        # decides when every task stops
        out.update({k: float(np.mean([out[f"{t}.{k}"] for t in self.tasks]))
                    for k in ("val_loss", "val_accuracy")})
        return out

    def weights(self, model: nn.Module) -> dict[str, float]:
        """``{<task>.weight: w}``: each task's current weight in the joint loss."""
        weights = model.task_weights().tolist()  # type: ignore[operator]
        return {f"{t}.weight": float(w) for t, w in zip(self.tasks, weights, strict=True)}

    def metrics(self, scores: Scores, model: nn.Module, num_classes: int) -> dict[str, Any]:
        parts = [(s, y, self.split(model, torch.as_tensor(proba))) for s, y, proba in scores]
        per_task = {t: SingleTarget.metrics(self, [(s, y[:, i], per[t].numpy())
                                                   for s, y, per in parts],
                                            model, int(model.num_classes[t]))  # type: ignore[index]
                    for i, t in enumerate(self.tasks)}
        # the plain columns: the mean over tasks
        row: dict[str, Any] = {key: float(np.mean([per_task[t][key] for t in self.tasks]))
                               for key in per_task[self.tasks[0]]}
        weights = self.weights(model)
        for t in self.tasks:
            row.update({f"{t}.{k}": v for k, v in per_task[t].items()})
            row[f"{t}.weight"] = weights[f"{t}.weight"]
        return row

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, smoothing: float
             ) -> torch.Tensor:
        joint: Callable[[torch.Tensor], torch.Tensor] = model.joint_loss  # type: ignore[assignment]
        return joint(self._losses(model(x), y, smoothing))


SINGLE = SingleTarget()
