"""``Probe``: per-block training statistics, cheap enough to leave on.

Cost model (measured on a 2-core CPU, see ``benchmarks/bench_probes.py`` and
``docs/diagnose.md``). On the CPU an op costs a few microseconds of dispatch per tensor, more
than its arithmetic for these model sizes, so the probe counts tensors and ops, not FLOPs:

- every step: a counter and the detached loss appended to a list (no op, no sync);
- every ``update_every``-th step (10; in epochs under 20 steps on 2 steps): the gradients and
  the weights are each concatenated into a
  flat buffer allocated once (one ``torch.cat`` each, the weights through cached 1-D views),
  their per-block norms come from one foreach call over the blocks' slices, and the gradients
  join a running sum (one add); after the optimizer step one more concatenation and one
  subtraction give ||ΔW|| per block. The sampled mini-batches are the chunks of the gradient
  signal-to-noise ratio (no per-sample gradients, works with BatchNorm). These sampled steps
  are also the gradient records: ``grad_every=N`` (< ``update_every``) adds the gradient norms
  of every N-th step in between (one ``torch._foreach_norm`` over the gradient tensors, kept
  as 0-dim device tensors), for a denser sample at a higher cost;
- once per epoch: the lists are stacked and reduced in a few batched ops with one host sync,
  and a small fixed probe batch (``ProbeHook``: 1/64 of the fold, 32 to 256 samples) runs
  through the model in eval mode with forward hooks that only launch one reduction each, for
  activation RMS, dead ReLU and saturated sigmoid/tanh units and the probe accuracy.

Measured with ``ProbeHook`` defaults (``bench_probes.py``, 21 interleaved repeats): the probe's
own calls take 2.4-2.9% of the time of an 8x128 MLP's 3-fold CV (batch 64 and 256, folds one
by one or together) and 1.1% of a small residual CNN's; the side-by-side medians on the noisy
development VM were +1.5% to +5.7% on the sequential engine (see ``docs/diagnose.md``).

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
    print(probe.diagnose().verdict)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.errors import ConfigError
from nasdepth.probes.trace import Trace, finite_or_none

if TYPE_CHECKING:
    from nasdepth.diagnose.diagnosis import Diagnosis

RELU_LIKE = (nn.ReLU, nn.ReLU6)
SQUASHING = (nn.Sigmoid, nn.Tanh, nn.Hardtanh)
SATURATION = 0.99  # |tanh| or 1 - sigmoid beyond this: a saturated unit (gradient < 2%)
#: the dimensions a ReLU output is reduced over per channel (dim 1), by rank
REDUCE_DIMS = {r: tuple(d for d in range(r) if d != 1) for r in range(2, 9)}
MIN_SAMPLES = 2  # per epoch and kind (update ratio and SNR; gradient RMS), short epochs
FOLD_ROWS = 64  # per-step norms kept as tensors before they are folded into sums


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


def _memory_order(t: torch.Tensor) -> tuple[int, ...] | None:
    """The permutation of ``t``'s dimensions that lists its elements in memory order (None when
    that is the identity: contiguous tensors)."""
    if t.is_contiguous():
        return None
    return tuple(sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True))


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
        self._unit_numel = torch.tensor([float(s) for s in self._unit_sizes], device=device)
        self._unit_of = torch.tensor(unit_of, device=device)  # for the snr_chunks path
        self._dtype = self.params[0].dtype
        for param in self.params[1:]:
            self._dtype = torch.promote_types(self._dtype, param.dtype)
        self._zero = torch.zeros((), device=device, dtype=self._dtype)
        self._param_views: list[torch.Tensor] | None = None
        self._param_ptrs: list[int] = []
        # each parameter (and its gradient) is flattened in the parameter's memory order, so
        # that channels-last weights flatten to views, not copies (None: already contiguous)
        self._orders = [_memory_order(p) for p in self.params]
        self.update_every, self.snr_chunks = int(update_every), int(snr_chunks)
        self._period = self.update_every  # shortened for short epochs (MIN_SAMPLES)
        # gradient norms on the sampled steps and on every grad_every-th step (by default the
        # same steps): a per-epoch RMS needs a sample of the steps, not all of them, and
        # skipping steps keeps the probe's cost within budget
        self.grad_every = int(grad_every)
        self._grad_period = self.grad_every
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
        # flat buffers (one element per trainable weight) allocated on first use and reused:
        # the flattened gradients of a recorded step (also the weights after a sampled step),
        # the weight snapshot of the update ratio and the running sum of sampled gradients (SNR)
        self._flat: list[torch.Tensor] | None = None
        self._unit_views: list[list[torch.Tensor]] = []
        self._init_norms: torch.Tensor | None = None  # squared block gradient norms, first step
        # forward-hook bookkeeping, fixed for the model: which unit owns each module, and the
        # activation modules whose outputs are counted (dead / saturated units)
        self._owner = {id(m): i for i, (_, unit) in enumerate(self.units)
                       for m in unit.modules()}
        self._modules = list(model.modules())
        self._act_modules = [m for m in self._modules if isinstance(m, RELU_LIKE + SQUASHING)]
        self._reset_epoch()

    # -- per step ---------------------------------------------------------------------------
    # CPU kernels are cheap next to their dispatch (a few microseconds per tensor and op), so
    # the per-step path touches as few tensors as possible: the gradients are concatenated into
    # one flat buffer (one op) whose per-block slices give the norms (one foreach op over the
    # blocks, not the parameter tensors); the weight snapshot is one concatenation of cached
    # 1-D views of the parameters. Results stay 0-dim device tensors in lists (no host sync);
    # the squares, sums and ratios run in a few batched ops when the lists are folded into the
    # accumulators (once per epoch, or every FOLD_ROWS records).
    def _reset_epoch(self) -> None:
        u = len(self.units)
        self._grad_sq = torch.zeros(u, device=self.device)  # sum of squared gradient norms
        self._snr_sq = torch.zeros(u, device=self.device)  # the same on the sampled steps
        self._update_sum = torch.zeros(u, device=self.device)  # sum of per-block ||ΔW||/||W||
        # per-step norms not yet folded into the sums: 2u per sampled step (the gradient's block
        # norms, then the weights' before the step), u per finished sample (||ΔW||), n per
        # record-only step (the gradient tensors' norms)
        self._sample_norms: list[torch.Tensor] = []
        self._d_norms: list[torch.Tensor] = []
        self._grad_norms_p: list[torch.Tensor] = []
        self._rows_pending = 0
        self._losses: list[torch.Tensor] = []
        self._grad_steps = self._sampled = self._updates = self._steps = 0
        self._pending = False  # a snapshot waits for the optimizer step

    def _buffers(self) -> list[torch.Tensor]:
        """The flat buffers [gradients, snapshot, gradient sum], allocated once."""
        if self._flat is None:
            total = sum(self._unit_sizes)
            self._flat = [torch.zeros(total, device=self.device, dtype=self._dtype)
                          for _ in range(3)]
            self._unit_views = [list(b.split(self._unit_sizes)) for b in self._flat]
        return self._flat

    def _params_flat(self) -> list[torch.Tensor]:
        """The parameters flattened in their memory order: 1-D views, cached while their
        storage stays put (a parameter that is not dense gets a fresh reshape each time)."""
        if self._param_views is None:
            flat = [p.detach().reshape(-1) if o is None else p.detach().permute(o).reshape(-1)
                    for p, o in zip(self.params, self._orders, strict=True)]
            ptrs = [p.data_ptr() for p in self.params]
            if [f.data_ptr() for f in flat] != ptrs:
                return flat  # some are copies (not dense): not cacheable
            self._param_views, self._param_ptrs = flat, ptrs
        return self._param_views

    def _check_views(self) -> None:
        """Once per epoch: drop the cached parameter views if a parameter's storage moved."""
        if self._param_views is not None and self._param_ptrs != [
                p.data_ptr() for p in self.params]:
            self._param_views = None

    def after_backward(self, loss: torch.Tensor | None = None) -> None:
        """Record the gradients of this step (call after ``backward()``); device-side only."""
        # most steps end after the counters: no no_grad context (its enter and exit cost more
        # than the rest of such a step), the loss only detached and kept
        if self._pending:  # a user loop calls no after_step: the last step's update is in
            self._finish_update()
        if loss is not None:
            self._losses.append(loss.detach())
        step = self._steps
        self._steps += 1
        record = step % self._grad_period == 0
        sampled = step % self._period == 0  # update ratio and SNR
        if sampled:
            self._sample()
        elif record:
            self._record()
        if self._rows_pending >= FOLD_ROWS:
            self._fold()

    step = after_backward  # the name users call in their own loops

    def reads_grads(self) -> bool:
        """Does the coming ``after_backward`` read the gradients (a sampled or recorded
        step)? The fold-parallel engine binds the fold models' ``.grad`` only then."""
        step = self._steps
        return step % self._period == 0 or step % self._grad_period == 0

    @torch.no_grad()
    def _record(self) -> None:
        """Gradient norms only: one foreach norm over the gradient tensors (no copy)."""
        grads = [p.grad for p in self.params]
        if any(g is None for g in grads):  # unused parameters
            grads = [self._zero if g is None else g for g in grads]
        norms = torch._foreach_norm(grads)  # type: ignore[arg-type]
        self._grad_norms_p.extend(norms)
        self._grad_steps += 1
        self._rows_pending += 1
        if self._init_norms is None:  # the fold's first step: gradients at initialization
            self._init_norms = self._rows_p(norms)[0]

    @torch.no_grad()
    def _sample(self) -> None:
        """Gradient norms, the weight snapshot and the SNR gradient sum: the gradients are
        concatenated into one flat buffer (one op), the weights into the snapshot (one op), and
        the block norms of both come from one foreach call over their per-block slices."""
        flat_g, snap, grad_sum = self._buffers()
        g_units, s_units, _ = self._unit_views
        torch.cat([self._zero.expand(p.numel()) if p.grad is None
                   else p.grad.reshape(-1) if o is None else p.grad.permute(o).reshape(-1)
                   for p, o in zip(self.params, self._orders, strict=True)], out=flat_g)
        torch.cat(self._params_flat(), out=snap)
        norms = torch._foreach_norm(g_units + s_units)
        self._sample_norms.extend(norms)
        self._grad_steps += 1  # sampled steps also count as recorded ones
        self._rows_pending += 1
        if self._init_norms is None:
            self._init_norms = self._rows(norms[:len(self.units)])[0]
        self._pending = True
        if not self.snr_chunks:
            if self._sampled == 0:  # the epoch's first sample: no zeroing pass needed
                grad_sum.copy_(flat_g)
            else:
                grad_sum.add_(flat_g)
            self._sampled += 1

    def after_step(self) -> None:
        """After ``optimizer.step()``: finish a pending update-ratio measurement."""
        if self._pending:
            self._finish_update()

    @torch.no_grad()
    def _finish_update(self) -> None:
        after, snap, _ = self._buffers()  # the gradient buffer is free until the next sample
        torch.cat(self._params_flat(), out=after)
        snap.sub_(after)  # W_before - W_after
        self._d_norms.extend(torch._foreach_norm(self._unit_views[1]))
        self._updates += 1
        self._pending = False

    def _rows(self, norms: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """k * units 0-dim block norms -> (k, units) squares."""
        return torch.stack(norms).view(-1, len(self.units)).float().square()

    def _rows_p(self, norms: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> torch.Tensor:
        """k * params 0-dim parameter norms -> (k, units) squares, summed per block."""
        sq = torch.stack(norms).view(-1, len(self.params)).float().square()
        out = torch.zeros(sq.shape[0], len(self.units), device=self.device)
        return out.index_add_(1, self._unit_of, sq)

    @torch.no_grad()
    def _fold(self) -> None:
        """Fold the pending per-step norms into the epoch's accumulators (batched ops)."""
        u = len(self.units)
        if self._grad_norms_p:
            self._grad_sq += self._rows_p(self._grad_norms_p).sum(0)
            self._grad_norms_p = []
        k = len(self._d_norms) // u  # finished samples (a pending one waits for its step)
        if k:
            rows = torch.stack(self._sample_norms[:2 * k * u]).view(k, 2 * u).float().square()
            g_sq = rows[:, :u].sum(0)
            self._grad_sq += g_sq
            self._snr_sq += g_sq
            dn = self._rows(self._d_norms)
            self._update_sum += (dn / rows[:, u:].clamp_min(1e-30)).sqrt().sum(0)
            self._sample_norms, self._d_norms = self._sample_norms[2 * k * u:], []
        self._rows_pending = len(self._sample_norms) // (2 * u)

    # -- per epoch --------------------------------------------------------------------------
    def epoch_end(self, *, train_loss: float | None = None, val_loss: float | None = None,
                  val_accuracy: float | None = None, epoch: int | None = None) -> dict[str, Any]:
        """Close the epoch: convert the device statistics once, add the probe-batch statistics
        and the losses normalized by the label entropy. Returns the epoch's row."""
        if self._pending:
            self._finish_update()
        self._fold()
        self._check_views()
        u = len(self.units)
        grad_rms = (self._grad_sq / (max(1, self._grad_steps) * self._unit_numel)).sqrt()
        update = self._update_sum / max(1, self._updates)
        mean_loss = (torch.stack(self._losses).float().mean() if self._losses
                     else torch.full((), float("nan"), device=self.device))
        snr = torch.full((u,), float("nan"), device=self.device)
        k = self._sampled
        if not self.snr_chunks and k >= 2:
            # sampled mini-batches as the chunks: ||mean g||² / (E||g||² - ||mean g||²)
            sig = self._rows(torch._foreach_norm(self._unit_views[2]))[0] / k**2
            noise = (self._snr_sq / k - sig) * k / (k - 1)
            snr = sig / noise.clamp_min(1e-30)
        parts = [grad_rms, update, snr, mean_loss.reshape(1)]
        first = self.trace.grad_rms_init is None and self._init_norms is not None
        if first:
            assert self._init_norms is not None
            parts.append((self._init_norms / self._unit_numel).sqrt())
        packed = torch.cat(parts).tolist()  # one host sync
        if first:
            self.trace.grad_rms_init = [finite_or_none(v) for v in packed[3 * u + 1:]]
        row: dict[str, Any] = {"epoch": len(self.trace.epochs) if epoch is None else epoch,
                               "steps": self._steps}
        row["grad_rms"] = [finite_or_none(v) for v in packed[:u]]
        row["update_ratio"] = ([finite_or_none(v) for v in packed[u:2 * u]]
                               if self._updates else [None] * u)
        if train_loss is None and self._steps:
            train_loss = packed[3 * u]
        row.update(self._probe_batch_stats())
        if not self.snr_chunks:
            row["grad_snr"] = [finite_or_none(v) for v in packed[2 * u:3 * u]]
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
        # short epochs (fewer than MIN_SAMPLES * update_every steps): MIN_SAMPLES samples,
        # which are also the gradient records (a sampled step records the gradients too, so
        # no step pays for a record beside them); otherwise the default periods
        short = -(-self._steps // MIN_SAMPLES)
        self._period = max(1, min(self.update_every, short))
        self._grad_period = self._period if short < self.update_every else self.grad_every
        self._reset_epoch()
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
        if self._steps:
            self.epoch_end()
            self.trace.epochs[-1]["nonfinite"] = True
        self.trace.stopped = reason
        return self.trace

    def diagnose(self) -> Diagnosis:
        """Verdict from this probe's trace alone (no controls)."""
        from nasdepth.diagnose.rules import diagnose_traces

        return diagnose_traces([self.trace])
