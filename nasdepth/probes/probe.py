"""``Probe``: per-block training statistics, cheap enough to leave on.

The per-step statistics (gradient norms per block, update ratios, the gradient
signal-to-noise ratio of the sampled mini-batches) live in
:class:`~nasdepth.probes.steps.StepStats`, with their cost model: every 10th step a few
batched ops, one host sync per epoch. Once per epoch a small fixed probe batch
(``ProbeHook``: 1/64 of the fold, 32 to 256 samples) runs through the model in eval mode
with forward hooks that only launch one reduction each, for activation RMS, dead ReLU and
saturated sigmoid/tanh units and the probe accuracy. Where folds train together, one
``StepStats`` covers all of them (``Probe.share_steps``).

Measured with ``ProbeHook`` defaults: see ``benchmarks/bench_probes.py`` and
``docs/diagnose.md`` (what the probes cost).

Eval mode and no RNG draws keep BatchNorm running statistics and dropout masks of training
unchanged: the probe does not change the training result.

Use it in your own loop::

    probe = Probe(model, probe_batch=(x_train[:256], y_train[:256]))
    for epoch in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(); loss.backward()
            probe.step(loss)           # after backward(), before or after opt.step()
            opt.step()
        probe.epoch_end(val_loss=..., val_accuracy=...)
    print(nasdepth.diagnose(probe).verdict)   # the verdict from this probe's trace
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.errors import ConfigError
from nasdepth.probes.steps import StepStats
from nasdepth.probes.time import time_profile, time_units
from nasdepth.probes.trace import Trace, finite_or_none

RELU_LIKE = (nn.ReLU, nn.ReLU6)
SQUASHING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh)
SATURATION = 0.99  # |tanh| or 1 - sigmoid beyond this: a saturated unit (gradient < 2%)
#: the dimensions a ReLU output is reduced over per channel (dim 1), by rank
REDUCE_DIMS = {r: tuple(d for d in range(r) if d != 1) for r in range(2, 9)}


def probe_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The units the probe profiles, in forward order: ``named_blocks()`` where the model has
    it (our ``Network``), else every leaf module that owns parameters (registration order)."""
    named_blocks = getattr(model, "named_blocks", None)
    if callable(named_blocks):
        units = [(n, m) for n, m in named_blocks()
                 if any(p.requires_grad for p in m.parameters())]
    else:
        units = [(n or type(m).__name__, m) for n, m in model.named_modules()
                 if any(p.requires_grad for p in m.parameters(recurse=False))]
    if not units:
        raise ConfigError("the model", "parameters", f"{type(model).__name__} with none",
                          "a model with trainable parameters (the probe profiles gradients)")
    return units


def spaced_rows(n: int, most: int) -> torch.Tensor:
    """At most ``most`` evenly spaced row indices of ``0 .. n - 1`` (no random draws, so the
    training RNG stream is untouched)."""
    return torch.linspace(0, n - 1, min(n, most)).round().long()


def label_entropy(y: torch.Tensor, num_classes: int) -> tuple[float, float]:
    """Entropy of the class frequencies (nats; the loss of predicting them) and the majority
    class rate (the accuracy of always predicting it)."""
    freq = torch.bincount(y.flatten().long().cpu(), minlength=num_classes).double()
    freq = freq / freq.sum().clamp_min(1)
    nz = freq[freq > 0]
    return float(-(nz * nz.log()).sum()), float(freq.max())


class Probe:
    """Per-block gradient, update and activation statistics of ``model``, one row per epoch.

    ``probe_batch=(x, y)``: a fixed batch for the activation statistics and the probe accuracy
    (skipped without one). The gradient signal-to-noise ratio treats the epoch's training
    mini-batches as the chunks (one batched add per step); ``snr_chunks=K`` (K >= 2) takes it
    instead from K chunks of the probe batch at the epoch's end (K extra backward passes).
    ``labels``/``num_classes`` set the label entropy that normalizes the losses (taken from
    ``probe_batch`` when omitted). ``update_every``: the period of the sampled steps (update
    ratio, SNR, gradient norms); ``grad_every``: a shorter period for the gradient norms alone
    (None: the same steps).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        probe_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        num_classes: int | None = None,
        update_every: int = 10,
        grad_every: int | None = None,
        snr_chunks: int = 0,
        fold: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError("Probe", "model", type(model).__name__, "a torch.nn.Module")
        if update_every < 1:
            raise ConfigError("Probe", "update_every", update_every, "an int >= 1")
        if grad_every is None:
            grad_every = update_every
        if grad_every < 1:
            raise ConfigError("Probe", "grad_every", grad_every, "an int >= 1 (or None)")
        self.model = model
        self.units = probe_units(model)
        self.params: list[torch.Tensor] = []
        unit_of: list[int] = []
        seen: set[int] = set()
        for u, (_, module) in enumerate(self.units):
            for p in module.parameters():
                if p.requires_grad and id(p) not in seen:
                    seen.add(id(p))
                    self.params.append(p)
                    unit_of.append(u)
        device = self.params[0].device
        self.device = device
        # parameters are listed unit by unit, so each unit is one contiguous segment of the
        # flattened parameters (and gradients): its norms are those of one slice
        self._unit_sizes = [0] * len(self.units)
        for u, param in zip(unit_of, self.params, strict=True):
            self._unit_sizes[u] += param.numel()
        self._unit_of = torch.tensor(unit_of, device=device)  # for the snr_chunks path
        self.update_every, self.snr_chunks = int(update_every), int(snr_chunks)
        # gradient norms on the sampled steps and on every grad_every-th step (by default the
        # same steps): a per-epoch RMS needs a sample of the steps, not all of them, and
        # skipping steps keeps the probe's cost within budget
        self.grad_every = int(grad_every)
        #: the per-step statistics: this model's own, or its row of the folds' shared ones
        self.step_stats = StepStats(self.params, self._unit_sizes, update_every=update_every,
                                    grad_every=grad_every, snr=not snr_chunks)
        self._row = 0
        self.probe_batch = probe_batch
        if labels is None and probe_batch is not None:
            labels = probe_batch[1]
        if num_classes is None and labels is not None:
            num_classes = int(labels.max()) + 1
        self.num_classes = int(num_classes or 0)
        entropy, chance = (label_entropy(labels, self.num_classes) if labels is not None
                           else (math.log(self.num_classes) if self.num_classes > 1 else 0.0,
                                 1.0 / self.num_classes if self.num_classes else 0.0))
        self.trace = Trace(
            blocks=[n for n, _ in self.units],
            block_params=[sum(p.numel() for p in m.parameters() if p.requires_grad)
                          for _, m in self.units],
            fold=fold, num_classes=self.num_classes, label_entropy=entropy,
            chance_accuracy=chance, n_train=0 if labels is None else int(labels.numel()),
        )
        # forward-hook bookkeeping, fixed for the model: which unit owns each module, and the
        # activation modules whose outputs are counted (dead / saturated units)
        self._owner = {id(m): i for i, (_, unit) in enumerate(self.units)
                       for m in unit.modules()}
        self._modules = list(model.modules())
        self._act_modules = [m for m in self._modules if isinstance(m, RELU_LIKE + SQUASHING)]
        # recurrent blocks: their gradient through time joins the probe-batch statistics
        self._time_units = time_units(self.units)

    # -- per step ---------------------------------------------------------------------------
    def share_steps(self, stats: StepStats, row: int) -> None:
        """Take the per-step statistics from row ``row`` of ``stats``, which covers this
        model among others trained in lockstep (the fold-parallel engine's stacked folds:
        their steps are recorded once for all folds, not through ``step`` on each model)."""
        if stats.blocks != len(self.units) or stats.block_sizes != self._unit_sizes:
            raise ValueError("shared step statistics must have this model's blocks")
        self.step_stats, self._row = stats, row

    def after_backward(self, loss: torch.Tensor | None = None) -> None:
        """Record the gradients of this step (call after ``backward()``); device-side only."""
        self.step_stats.after_backward(loss)

    step = after_backward  # the name users call in their own loops

    def reads_grads(self) -> bool:
        """Does the coming ``after_backward`` read the gradients (a sampled or recorded
        step)? The fold-parallel engine binds the fold models' ``.grad`` only then."""
        return self.step_stats.reads_grads()

    def after_step(self) -> None:
        """After ``optimizer.step()``: finish a pending update-ratio measurement."""
        self.step_stats.after_step()

    # -- per epoch --------------------------------------------------------------------------
    def epoch_end(self, *, train_loss: float | None = None, val_loss: float | None = None,
                  val_accuracy: float | None = None, epoch: int | None = None) -> dict[str, Any]:
        """Close the epoch: convert the device statistics once, add the probe-batch statistics
        and the losses normalized by the label entropy. Returns the epoch's row."""
        u = len(self.units)
        stats = self.step_stats.row(self._row)
        if self.trace.grad_rms_init is None and stats["grad_rms_init"] is not None:
            self.trace.grad_rms_init = [finite_or_none(v) for v in stats["grad_rms_init"]]
        row: dict[str, Any] = {"epoch": len(self.trace.epochs) if epoch is None else epoch,
                               "steps": stats["steps"]}
        row["grad_rms"] = [finite_or_none(v) for v in stats["grad_rms"]]
        row["update_ratio"] = ([finite_or_none(v) for v in stats["update_ratio"]]
                               if stats["update_ratio"] is not None else [None] * u)
        if train_loss is None and stats["steps"]:
            train_loss = stats["mean_loss"]
        row.update(self._probe_batch_stats())
        if not self.snr_chunks:
            snr = stats["grad_snr"]
            row["grad_snr"] = [None] * u if snr is None else [finite_or_none(v) for v in snr]
        h = self.trace.label_entropy
        row["train_loss"] = finite_or_none(train_loss)
        row["val_loss"] = finite_or_none(val_loss)
        row["val_accuracy"] = finite_or_none(val_accuracy)
        for key in ("train_loss", "val_loss"):
            row[f"{key}_norm"] = None if row[key] is None or h <= 0 else row[key] / h
        row["nonfinite"] = bool(
            (train_loss is not None and not math.isfinite(float(train_loss)))
            or any(v is None for v in row["grad_rms"]))
        self.trace.epochs.append(row)
        return row

    def _probe_batch_stats(self) -> dict[str, Any]:
        u = len(self.units)
        empty: dict[str, Any] = {k: [None] * u for k in
                                 ("act_rms", "dead_frac", "saturated_frac", "grad_snr")}
        empty["probe_accuracy"] = None
        if self.probe_batch is None:
            return empty
        x, y = self.probe_batch
        # eval mode: no BatchNorm statistics updates, no dropout draws. The flags are flipped
        # directly (nn.Module.__setattr__ and the recursive eval() cost more than the forward of
        # a small probe batch) and restored exactly as they were.
        modes = [m.training for m in self._modules]
        for m in self._modules:
            object.__setattr__(m, "training", False)
        try:
            stats = self._activations(x, y)
            stats["grad_snr"] = self._snr(x, y) if self.snr_chunks else [None] * u
            if self._time_units:
                stats.update(time_profile(self.model, self._time_units, x, y, u))
        except Exception:
            # statistics must never break a user's training: record nothing for this epoch
            stats = empty
        finally:
            for m, mode in zip(self._modules, modes, strict=True):
                object.__setattr__(m, "training", mode)
        return stats

    @torch.no_grad()
    def _activations(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        """One eval-mode forward of the probe batch with forward hooks. Each hook launches one
        reduction (a norm per block, a max per channel per ReLU, a count per squashing layer)
        and keeps its result as a tensor; the fractions are formed in a few batched ops after
        the pass, with one host sync."""
        u = len(self.units)
        rms: list[tuple[int, torch.Tensor, int]] = []  # (unit, ||out||, numel)
        tops: list[tuple[int, torch.Tensor]] = []  # (unit, per-channel max of a ReLU's output)
        sat: list[tuple[int, torch.Tensor, int]] = []  # (unit, saturated count, numel)
        last = [0]  # activation modules outside every unit belong to the unit that ran last

        def unit_hook(i: int):  # type: ignore[no-untyped-def]
            def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
                last[0] = i
                if isinstance(out, torch.Tensor) and out.numel():  # (no_grad: no detach)
                    rms.append((i, torch.linalg.vector_norm(out), out.numel()))
            return hook

        def act_hook(m: nn.Module, _inp: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or out.dim() < 2 or not out.numel():
                return
            i = self._owner.get(id(m), last[0])
            if isinstance(m, RELU_LIKE):
                # a unit (channel) is dead when it never fires: its largest output is not > 0
                dims = REDUCE_DIMS.get(out.dim()) or tuple(range(2, out.dim())) + (0,)
                tops.append((i, out.amax(dim=dims)))
            elif isinstance(m, nn.Sigmoid):  # within 0.01 of 0 or 1
                sat.append((i, ((out - 0.5).abs() > SATURATION - 0.5).sum(), out.numel()))
            else:
                sat.append((i, (out.abs() > SATURATION).sum(), out.numel()))

        handles = [unit.register_forward_hook(unit_hook(i))
                   for i, (_, unit) in enumerate(self.units)]
        handles += [m.register_forward_hook(act_hook) for m in self._act_modules]
        try:
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
        values = [v.float() for _, v, _ in rms] + [v.float() for _, v, _ in sat]
        parts = [torch.stack(values)] if values else []
        if tops:  # dead channels of every ReLU: one concatenation, a cumulative count
            fired = torch.cat([t.reshape(-1).float() for _, t in tops]) > 0  # NaN: never
            dead = fired.logical_not().float().cumsum(0)
            ends = torch.tensor([t.numel() for _, t in tops]).cumsum(0)
            counts = dead[(ends - 1).to(dead.device)]
            parts += [counts[:1], counts[1:] - counts[:-1]]
        if logits.dim() == 2:
            parts.append((logits.argmax(1) == y).float().mean().reshape(1))
        flat = torch.cat(parts).tolist() if parts else []  # one host sync
        act_rms: list[float | None] = [None] * u
        for (i, _, numel), v in zip(rms, flat, strict=False):
            act_rms[i] = v / math.sqrt(numel)  # the unit's last call counts
        sat_v: list[list[float]] = [[] for _ in range(u)]
        for (i, _, numel), v in zip(sat, flat[len(rms):], strict=False):
            sat_v[i].append(v / numel)
        dead_v: list[list[float]] = [[] for _ in range(u)]
        for (i, t), v in zip(tops, flat[len(rms) + len(sat):], strict=False):
            dead_v[i].append(v / t.numel())
        return {"act_rms": act_rms,
                "dead_frac": [sum(v) / len(v) if v else None for v in dead_v],
                "saturated_frac": [sum(v) / len(v) if v else None for v in sat_v],
                "probe_accuracy": flat[-1] if logits.dim() == 2 else None}

    def _snr(self, x: torch.Tensor, y: torch.Tensor) -> list[float | None]:
        """Gradient signal-to-noise per block from ``snr_chunks`` chunks of the probe batch:
        ||mean g||² / mean ||g_k - mean g||², without per-sample gradients."""
        k = self.snr_chunks
        if k < 2 or len(x) < 2 * k:
            return [None] * len(self.units)
        grads = []
        for xc, yc in zip(x.chunk(k), y.chunk(k), strict=True):
            with torch.enable_grad():
                loss = F.cross_entropy(self.model(xc), yc)
                raw = torch.autograd.grad(loss, self.params, allow_unused=True)
            grads.append([gi if gi is not None else torch.zeros_like(p)
                          for gi, p in zip(raw, self.params, strict=True)])
        with torch.no_grad():
            mean = [torch.stack(gs).mean(0) for gs in zip(*grads, strict=True)]
            sig = torch.stack(torch._foreach_norm(mean)).square()
            noise = torch.zeros_like(sig)
            for g in grads:
                noise += torch.stack(torch._foreach_norm(torch._foreach_sub(g, mean))).square()
            noise /= k - 1
            u = len(self.units)
            sig_u = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, sig)
            noise_u = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, noise)
            snr = (sig_u / noise_u.clamp_min(1e-30)).tolist()
        return [finite_or_none(v) for v in snr]

    # -- results ----------------------------------------------------------------------------
    def stop(self, reason: str) -> Trace:
        """Close a run that stopped early (e.g. a non-finite loss): the partial epoch joins the
        trace flagged non-finite."""
        if self.step_stats.has_steps(self._row):
            self.epoch_end()
            self.trace.epochs[-1]["nonfinite"] = True
        self.trace.stopped = reason
        return self.trace
