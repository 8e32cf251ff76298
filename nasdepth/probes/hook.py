"""``ProbeHook``: a :class:`~nasdepth.train.TrainHook` that probes every fold of
``cross_validate`` and hands each fold's :class:`Trace` to ``CVResult.traces``."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasdepth.probes.probe import Probe, spaced_rows
from nasdepth.probes.steps import StepStats
from nasdepth.probes.summary import summarize
from nasdepth.probes.trace import Trace
from nasdepth.train.hooks import TrainHook
from nasdepth.train.stacked import FoldStack

PROBE_BATCH = 256  # most samples in the fixed probe batch (activation statistics)


def probe_rows(n: int, probe_size: int) -> torch.Tensor:
    """The probe batch's rows of a fold of ``n`` training rows: at most 1/64 of them (at least
    32), evenly spaced. One probe forward per epoch must stay cheap next to the epoch's training
    steps (bench_probes: with 16 steps of 256 per epoch, the forward of 1/32 of the fold cost
    ~1% of the run by itself); 32 inputs of an 8x8 CNN already show every channel over 2,000
    outputs."""
    return spaced_rows(n, min(probe_size, max(32, n // 64)))


class ProbeHook(TrainHook):
    """Probes for ``cross_validate(..., hooks=[ProbeHook()])``.

    The probe batch is ``probe_size`` (at most 1/64 of the fold, at least 32) evenly spaced
    training samples of each fold (:func:`probe_rows`). After the run, ``traces`` holds one
    :class:`Trace` per fold (also the partial trace of a fold that stopped on a non-finite loss)
    and ``summary()`` a compact JSON summary for storing with a trial.
    """

    # one Probe per fold, found by the model it watches: the fold-parallel engine may call the
    # per-step methods for every fold's model in turn within one step
    steps_in_parallel = True

    def __init__(self, *, probe_size: int = PROBE_BATCH, update_every: int = 10,
                 snr_chunks: int = 0) -> None:
        self.probe_size, self.update_every, self.snr_chunks = probe_size, update_every, snr_chunks
        self.traces: list[Trace] = []
        self._open: dict[int, tuple[int, Probe]] = {}  # id(model) -> (fold, its probe)
        # folds trained together: one StepStats over the stacked tensors, by id of the stack
        self._shared: dict[int, StepStats | None] = {}

    def _probe(self, model: nn.Module) -> Probe | None:
        entry = self._open.get(id(model))
        return None if entry is None else entry[1]

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        # folds start in increasing order (all before the first step when they train
        # together): a probe still open at this fold or a later one is left from a run that
        # failed midway
        self._close_where(lambda f: f >= fold, "stopped before its last epoch")
        idx = probe_rows(len(x_train), self.probe_size).to(x_train.device)
        num_classes = int(y_train.max()) + 1
        out = getattr(model, "head", None)
        last = [m for m in (out.modules() if out is not None else ()) if isinstance(m, nn.Linear)]
        if last:  # the head knows the number of classes even if a fold lacks the last one
            num_classes = max(num_classes, last[-1].out_features)
        # a streamed fold hands its rows over on the host: the probe batch goes to the model
        dev = next(model.parameters()).device
        probe = Probe(model, probe_batch=(x_train[idx].to(dev), y_train[idx].to(dev)),
                      labels=y_train, num_classes=num_classes, update_every=self.update_every,
                      snr_chunks=self.snr_chunks, fold=fold)
        self._open[id(model)] = (fold, probe)

    def reads_grads(self, model: nn.Module) -> bool:
        probe = self._probe(model)
        return probe is not None and probe.reads_grads()

    def after_backward(self, model: nn.Module, loss: torch.Tensor) -> None:
        probe = self._probe(model)
        if probe is not None:
            probe.after_backward(loss)

    def after_step(self, model: nn.Module) -> None:
        probe = self._probe(model)
        if probe is not None:
            probe.after_step()

    def after_backward_folds(self, folds: FoldStack, losses: torch.Tensor) -> None:
        stats = self._shared_steps(folds)
        if stats is None:
            super().after_backward_folds(folds, losses)
        else:
            stats.after_backward(losses)

    def after_step_folds(self, folds: FoldStack) -> None:
        stats = self._shared_steps(folds)
        if stats is None:
            super().after_step_folds(folds)
        else:
            stats.after_step()

    def _shared_steps(self, folds: FoldStack) -> StepStats | None:
        """One ``StepStats`` over the stacked parameters for all folds' probes (None where a
        fold has no open probe: then each fold's probe is called on its own)."""
        key = id(folds)
        if key not in self._shared:
            probes = [p for p in map(self._probe, folds.models) if p is not None]
            stats = None
            if len(probes) == len(folds.models):
                own = probes[0].step_stats  # the same schedule and statistics, for every fold
                stats = StepStats(folds.stacked_params(probes[0].params), own.block_sizes,
                                  k=len(probes), stacked=True, update_every=own.update_every,
                                  grad_every=own.grad_every, snr=own.snr)
                for f, probe in enumerate(probes):
                    probe.share_steps(stats, f)
            self._shared[key] = stats
        return self._shared[key]

    def on_epoch_end(self, model: nn.Module, fold: int, record: dict[str, Any]) -> None:
        probe = self._probe(model)
        if probe is not None:
            probe.epoch_end(train_loss=record.get("train_loss"),
                            val_loss=record.get("val_loss"),
                            val_accuracy=record.get("val_accuracy"),
                            epoch=record.get("epoch"))

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        entry = self._open.pop(id(model), None)
        if not self._open:
            self._shared.clear()  # the stacked tensors go with the run
        if entry is None:
            return None
        trace = entry[1].trace
        self.traces.append(trace)
        return trace.to_dict()

    def close(self, reason: str) -> Trace | None:
        """Keep the partial traces of folds that ended without ``on_fit_end`` (the engine
        raised, e.g. ``NonFiniteLossError``; with folds trained together, every open fold);
        returns the last of them."""
        return self._close_where(lambda f: True, reason)

    def _close_where(self, which: Any, reason: str) -> Trace | None:
        trace = None
        for key, (fold, probe) in sorted(self._open.items(), key=lambda kv: kv[1][0]):
            if which(fold):
                trace = probe.stop(reason)
                self.traces.append(trace)
                del self._open[key]
        if not self._open:
            self._shared.clear()
        return trace

    def trace_dicts(self) -> list[dict[str, Any]]:
        """Every fold's trace so far as dicts (after a failure too: call ``close`` first)."""
        return [t.to_dict() for t in self.traces]

    def summary(self) -> dict[str, Any]:
        """Compact JSON summary over folds: the ``probe_summary`` stored with a trial."""
        return summarize(self.traces)


def probe_hook(*, probe_size: int = PROBE_BATCH, update_every: int = 10) -> ProbeHook:
    """A fresh hook for one ``cross_validate`` call (the studies' factory)."""
    return ProbeHook(probe_size=probe_size, update_every=update_every)
