"""Pieces both training paths share (sequential folds in ``fit.py``, the vectorized fold
ensemble in ``parallel.py``) around the step itself (``step.py``): the batch plan, early
stopping, mixed precision and the error types a study records."""

from __future__ import annotations

import contextlib
import statistics

import torch
from torch import nn

from nasdepth.train.config import TrainConfig
from nasdepth.train.cpu_bf16 import cpu_bf16_fast, stacked_bf16_fast


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


class DeviceOutOfMemoryError(RuntimeError):
    """Training ran out of device (or host) memory; the message says what to reduce."""


def out_of_memory(exc: BaseException, device: torch.device, training: TrainConfig,
                  params: int, where: str) -> DeviceOutOfMemoryError:
    return DeviceOutOfMemoryError(
        f"out of memory on {device} {where} (batch_size {training.batch_size}, "
        f"{params} parameters): reduce batch_size or the model size, or set "
        f"parallel: off or data_placement: stream [{type(exc).__name__}]")


OOM_ERRORS: tuple[type[BaseException], ...] = (torch.cuda.OutOfMemoryError, MemoryError)


def batch_plan(n_used: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, stop) of each batch over ``n_used`` shuffled samples. A last batch of one
    sample breaks BatchNorm in training mode, so it is dropped."""
    plan = [(s, min(s + batch_size, n_used)) for s in range(0, n_used, batch_size)]
    if len(plan) > 1 and plan[-1][1] - plan[-1][0] < 2:
        plan.pop()
    return plan


def fold_perm(n_train: int, n_used: int, gen: torch.Generator) -> torch.Tensor:
    """This epoch's order of a fold's training samples, cut to ``n_used``: all folds of a CV
    then take the same steps (fold sizes differ by at most one), so sequential and
    fold-parallel training see identical batches."""
    return torch.randperm(n_train, generator=gen)[:n_used]


class EarlyStopper:
    """Stop when the validation loss has not improved by ``min_delta`` for ``patience``
    epochs (``patience`` 0: never)."""

    def __init__(self, patience: int, min_delta: float) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best = float("inf")
        self.bad_epochs = 0

    def step(self, val_loss: float) -> bool:
        """Record one epoch; True when training should stop now."""
        if val_loss < self.best - self.min_delta:
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1
        return self.patience > 0 and self.bad_epochs >= self.patience


def resolve_precision(precision: str, device: torch.device, model: nn.Module,
                      stacked: bool = False) -> str:
    """The precision ``precision`` trains ``model`` in on ``device``: ``auto`` is bf16
    autocast for a model with 2-D convolutions on a CPU where bf16 convolutions are faster
    (AMX: 1.7-1.9x on a CNN's CV; ``avx512_bf16`` without AMX: measured once,
    :mod:`nasdepth.train.cpu_bf16`), and for an MLP whose folds train ``stacked`` (two or
    more folds as the fold-parallel engine's ``bmm``) on a CPU where stacked layers of its
    width are faster under bf16 (measured once per width:
    :func:`~nasdepth.train.cpu_bf16.stacked_bf16_fast`); fp32
    elsewhere: MLPs trained one fold at a time (0.89-0.96x), 1-D CNNs (0.92-1.13x), CUDA (not
    yet measured, ``docs/gpu.md``). An explicit ``bf16`` is honoured on a CPU or CUDA;
    ``fp16`` is a CUDA setting (fp32 elsewhere, as is bf16 on MPS)."""
    if precision == "auto":
        if device.type != "cpu":
            return "fp32"
        if any(isinstance(m, nn.Conv2d) for m in model.modules()):
            return "bf16" if cpu_bf16_fast() else "fp32"
        widths = [m.out_features for m in model.modules() if isinstance(m, nn.Linear)]
        fast = stacked and bool(widths) and stacked_bf16_fast(int(statistics.median(widths)))
        return "bf16" if fast else "fp32"
    if precision == "fp16" and device.type != "cuda":
        return "fp32"
    return precision


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA and CPUs, fp16 on CUDA (a resolved ``precision``:
    :func:`resolve_precision`); fp32 otherwise."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    if precision == "fp16" and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def frozen_norms_eval(model: nn.Module) -> None:
    """Put every normalization layer whose parameters are all frozen (``requires_grad``
    False) in eval mode: a frozen pre-trained part keeps its running statistics instead of
    re-estimating them from the target's batches. Called after ``model.train()``; a model with
    no frozen parameter is left as it is."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._NormBase):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()
