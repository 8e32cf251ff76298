"""Hook points of the training loop: probes and per-epoch pruning attach here.

The loop calls every hook at fixed points; the defaults do nothing, so a hook overrides only
what it needs. Hooks must not change the training result (no extra RNG draws, no parameter
changes) and should keep their statistics on the device (no host sync per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import torch
from torch import nn

if TYPE_CHECKING:
    from nasdepth.train.stacked import FoldStack


T = TypeVar("T")


class TrainHook:
    """Base class: override the calls you need. One hook object sees every fold in turn."""

    #: wall seconds of this hook's calls so far, added by the engine around each call
    #: (:func:`timed`): what the probes cost a trial. On a GPU it is the time to queue the
    #: hook's work (its kernels run asynchronously), so it reads low there.
    seconds: float = 0.0

    #: True where the hook needs each fold's own model every step (per-step probes); the
    #: engine then trains such folds sequentially rather than as a vectorized ensemble.
    needs_per_fold_model = False

    #: True where the per-step calls may come for every fold's model in turn within one step
    #: (the hook keeps its state per fold or per model): the fold-parallel engine then calls
    #: ``after_backward``/``after_step`` with each fold's model, whose parameters and
    #: gradients are live views of the ensemble's. Hooks with per-step calls that leave it
    #: False make the engine train folds sequentially.
    steps_in_parallel = False

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        """Before the first step of a fold (data already standardized; on the device, or on
        the host when the fold is streamed: move what you keep to the model's device)."""

    def reads_grads(self, model: nn.Module) -> bool:
        """Will the coming ``after_backward`` call for ``model`` read its ``.grad``? Asked
        after each backward by the fold-parallel engine, which hands the fold models their
        gradients (views of the stacked ones) only on steps where some hook says so (what that
        saves: ``docs/data_and_training.md``, "Fold-parallel training"). Default: every step.
        On other steps a fold model's ``.grad`` is None."""
        return True

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        """After ``loss.backward()``, before the optimizer step: gradients are available
        (on the fold-parallel engine: on the steps where ``reads_grads`` said so)."""

    def after_step(self, model: nn.Module) -> None:
        """After the optimizer step: parameters are updated."""

    def after_backward_folds(self, folds: FoldStack, losses: torch.Tensor) -> None:
        """The fold-parallel engine's ``after_backward``: all k folds of one step at once,
        ``losses`` their ``(k,)`` losses. ``folds.params`` holds the stacked parameters (fold
        ``f``'s slice first), whose ``.grad`` are the stacked gradients: a hook that works on
        those covers every fold with one set of ops (the probes do). Default: gives the fold
        models their gradient views when ``reads_grads`` asks for them, then calls
        ``after_backward`` for each fold's model."""
        models = folds.models
        bind = any(self.reads_grads(m) for m in models)
        if bind:
            folds.bind_grads()
        for model, loss in zip(models, losses.unbind(0), strict=True):
            self.after_backward(model, loss)
        if bind:
            folds.unbind_grads()

    def after_step_folds(self, folds: FoldStack) -> None:
        """The fold-parallel engine's ``after_step``. Default: ``after_step`` per fold."""
        for model in folds.models:
            self.after_step(model)

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        """After each epoch with ``record`` (epoch, train_loss, val_loss, val_accuracy).

        May raise ``optuna.TrialPruned`` (the study's per-epoch pruning)."""

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        """After the last epoch; a returned dict becomes this fold's entry in
        ``CVResult.traces``."""
        return None


def timed(hook: TrainHook, call: Callable[..., T], *args: Any) -> T:
    """``call(*args)`` (one of ``hook``'s methods), its wall time added to ``hook.seconds``
    (also when it raises: a pruning hook's last call counts)."""
    start = time.perf_counter()
    try:
        return call(*args)
    finally:
        hook.seconds += time.perf_counter() - start


def steps_each_fold(hook: TrainHook) -> bool:
    """Does ``hook`` override the per-step calls (``after_backward``/``after_step``, or their
    fold-parallel forms)?"""
    return any(getattr(type(hook), name) is not getattr(TrainHook, name)
               for name in ("after_backward", "after_step", "after_backward_folds",
                            "after_step_folds"))
