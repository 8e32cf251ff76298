"""``StepStats``: the per-step half of the probes, for k models of one structure at once.

A :class:`~nasdepth.probes.Probe` watches one model; the fold-parallel engine trains k fold
models as stacked tensors (``(k, ...)``: one slice per fold). Both keep their per-step
statistics here, as ``(k, blocks)`` device tensors: k = 1 for one model (its parameters), k
folds for a stack (the stacked parameters, so every op covers all folds and the fold models
never need gradient views). Per-epoch rows come out per model (``row(i)``).

Cost model (CPU kernels are cheap next to their dispatch, a few microseconds per tensor and
op, so the per-step path counts tensors and ops, not FLOPs):

- every step: a counter and the detached loss appended to a list (no op, no sync);
- every ``update_every``-th step (10; in epochs under 20 steps on 2 steps): the gradients and
  the weights are each concatenated into a ``(k, parameters)`` buffer allocated once (one
  ``torch.cat`` each, the weights through cached views), the norms of every model's blocks come
  from one foreach call over the buffers' ``(model, block)`` slices, and the gradients join a
  running sum (one add); after the optimizer step one more concatenation and one subtraction
  give ||ΔW|| per model and block. The sampled mini-batches are the chunks of the gradient
  signal-to-noise ratio (no per-sample gradients, works with BatchNorm). These sampled steps
  are also the gradient records: ``grad_every=N`` (< ``update_every``) adds the gradient norms
  of every N-th step in between (one concatenation and one foreach norm);
- once per epoch: the lists are stacked and reduced in a few batched ops with one host sync.

On the fold-parallel engine this costs one set of ops per step for all k folds, instead of
binding gradient views and calling a probe per fold model
(``benchmarks/bench_probe_steps.py`` times both inside a training loop; figures in
``docs/diagnose.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

MIN_SAMPLES = 2  # per epoch and kind (update ratio and SNR; gradient RMS), short epochs
FOLD_ROWS = 64  # per-step norms kept as tensors before they are folded into sums


def memory_order(t: torch.Tensor) -> tuple[int, ...] | None:
    """The permutation of ``t``'s dimensions that lists its elements in memory order (None when
    that is the identity: contiguous tensors)."""
    if t.is_contiguous():
        return None
    return tuple(sorted(range(t.dim()), key=lambda d: t.stride(d), reverse=True))


class StepStats:
    """Per-step gradient norms, update ratios and the SNR gradient sum of ``k`` models.

    ``params``: the parameters in block order, each holding all k models (``stacked``: a
    leading dimension of size k) or one model's (k = 1; flattened in its memory order, so
    channels-last weights give views, not copies). ``block_sizes``: how many elements of the
    flattened parameters each block owns, in order. ``snr``: keep the running gradient sum of
    the sampled steps (the signal-to-noise ratio from the training mini-batches).
    """

    def __init__(self, params: Sequence[torch.Tensor], block_sizes: Sequence[int], *,
                 k: int = 1, stacked: bool = False, update_every: int = 10,
                 grad_every: int | None = None, snr: bool = True) -> None:
        self.params = list(params)
        self.k, self.stacked, self.snr = int(k), bool(stacked), bool(snr)
        self.blocks = len(block_sizes)
        self.block_sizes = [int(s) for s in block_sizes]
        self.device = self.params[0].device
        self.dtype = self.params[0].dtype
        for param in self.params[1:]:
            self.dtype = torch.promote_types(self.dtype, param.dtype)
        self.numel = torch.tensor([float(s) for s in self.block_sizes], device=self.device)
        self._zero = torch.zeros((), device=self.device, dtype=self.dtype)
        # one model's parameters flatten in their memory order; stacked ones keep the models
        # first (a stack is contiguous: torch.func.stack_module_state, stacked layers)
        self._orders = [None if stacked else memory_order(p) for p in self.params]
        self._sizes = [p.numel() // self.k for p in self.params]
        self._param_views: list[torch.Tensor] | None = None
        self._param_ptrs: list[int] = []
        self.update_every = int(update_every)
        self.grad_every = self.update_every if grad_every is None else int(grad_every)
        self._period = self.update_every  # shortened for short epochs (MIN_SAMPLES)
        self._grad_period = self.grad_every
        # flat (k, parameters) buffers allocated on first use and reused: the flattened
        # gradients of a recorded step (also the weights after a sampled step), the weight
        # snapshot of the update ratio and the running sum of sampled gradients (SNR)
        self._flat: list[torch.Tensor] | None = None
        self._slices: list[list[torch.Tensor]] = []  # per buffer: (model, block) slices
        self.init_norms: torch.Tensor | None = None  # (k, blocks) squared, first record
        self._closed: list[dict[str, Any]] | None = None
        self._unread: set[int] = set()
        self._reset()

    def _reset(self) -> None:
        shape = (self.k, self.blocks)
        self._grad_sq = torch.zeros(shape, device=self.device)  # sum of squared norms
        self._snr_sq = torch.zeros(shape, device=self.device)  # the same, sampled steps
        self._update_sum = torch.zeros(shape, device=self.device)  # sum of ||ΔW||/||W||
        # per-step 0-dim norms not yet folded into the sums, k * blocks per entry in
        # (model, block) order: a sampled step adds the gradients' then the weights', a
        # finished sample ||ΔW||, a record-only step the gradients'
        self._sample_norms: list[torch.Tensor] = []
        self._d_norms: list[torch.Tensor] = []
        self._record_norms: list[torch.Tensor] = []
        self._losses: list[torch.Tensor] = []
        self._rows_pending = 0  # steps whose norms wait in those lists
        self.steps = self.grad_steps = self.sampled = self.updates = 0
        self._pending = False  # a snapshot waits for the optimizer step

    # -- per step ---------------------------------------------------------------------------
    def _buffers(self) -> list[torch.Tensor]:
        """The flat buffers [gradients, snapshot, gradient sum], allocated once."""
        if self._flat is None:
            total = sum(self.block_sizes)
            self._flat = [torch.zeros(self.k, total, device=self.device, dtype=self.dtype)
                          for _ in range(3)]
            self._slices = [[s for row in b for s in row.split(self.block_sizes)]
                            for b in self._flat]
        return self._flat

    def _flat2d(self, t: torch.Tensor, order: tuple[int, ...] | None) -> torch.Tensor:
        return (t if order is None else t.permute(order)).reshape(self.k, -1)

    def _weights(self) -> list[torch.Tensor]:
        """The parameters as ``(k, n)`` views, cached while their storage stays put (a
        parameter that is not dense gets a fresh reshape each time)."""
        if self._param_views is None:
            flat = [self._flat2d(p.detach(), o)
                    for p, o in zip(self.params, self._orders, strict=True)]
            ptrs = [p.data_ptr() for p in self.params]
            if [f.data_ptr() for f in flat] != ptrs:
                return flat  # some are copies (not dense): not cacheable
            self._param_views, self._param_ptrs = flat, ptrs
        return self._param_views

    def _grads(self) -> list[torch.Tensor]:
        return [self._zero.expand(self.k, n) if p.grad is None else self._flat2d(p.grad, o)
                for p, o, n in zip(self.params, self._orders, self._sizes, strict=True)]

    def reads_grads(self) -> bool:
        """Does the coming ``after_backward`` read the gradients (a sampled or recorded
        step)?"""
        step = self.steps
        return step % self._period == 0 or step % self._grad_period == 0

    def after_backward(self, loss: torch.Tensor | None = None) -> None:
        """Record this step's gradients (after ``backward()``); ``loss``: the step's loss, a
        0-dim tensor (k = 1) or one per model. Device-side only."""
        # most steps end after the counters: no no_grad context (its enter and exit cost more
        # than the rest of such a step), the loss only detached and kept
        if self._pending:  # a user loop calls no after_step: the last step's update is in
            self._finish_update()
        self._closed = None
        if loss is not None:
            self._losses.append(loss.detach())
        step = self.steps
        self.steps += 1
        if step % self._period == 0:  # update ratio and SNR
            self._sample()
        elif step % self._grad_period == 0:
            self._record()
        if self._rows_pending >= FOLD_ROWS:
            self._fold()

    @torch.no_grad()
    def _record(self) -> None:
        """Gradient norms only: one concatenation and one foreach norm over its slices."""
        flat_g = self._buffers()[0]
        torch.cat(self._grads(), dim=1, out=flat_g)
        norms = torch._foreach_norm(self._slices[0])
        self._record_norms.extend(norms)
        self.grad_steps += 1
        self._rows_pending += 1
        if self.init_norms is None:  # the first step: gradients at initialization
            self.init_norms = self._rows(norms)[0]

    @torch.no_grad()
    def _sample(self) -> None:
        """Gradient norms, the weight snapshot and the SNR gradient sum: the gradients are
        concatenated into one flat buffer (one op), the weights into the snapshot (one op), and
        the block norms of both come from one foreach call over their slices."""
        flat_g, snap, grad_sum = self._buffers()
        torch.cat(self._grads(), dim=1, out=flat_g)
        torch.cat(self._weights(), dim=1, out=snap)
        norms = torch._foreach_norm(self._slices[0] + self._slices[1])
        self._sample_norms.extend(norms)
        self.grad_steps += 1  # sampled steps also count as recorded ones
        self._rows_pending += 1
        if self.init_norms is None:
            self.init_norms = self._rows(norms[:self.k * self.blocks])[0]
        self._pending = True
        if self.snr:
            if self.sampled == 0:  # the epoch's first sample: no zeroing pass needed
                grad_sum.copy_(flat_g)
            else:
                grad_sum.add_(flat_g)
        self.sampled += 1

    def after_step(self) -> None:
        """After ``optimizer.step()``: finish a pending update-ratio measurement."""
        if self._pending:
            self._finish_update()

    @torch.no_grad()
    def _finish_update(self) -> None:
        after, snap, _ = self._buffers()  # the gradient buffer is free until the next sample
        torch.cat(self._weights(), dim=1, out=after)
        snap.sub_(after)  # W_before - W_after
        self._d_norms.extend(torch._foreach_norm(self._slices[1]))
        self.updates += 1
        self._pending = False

    def _rows(self, norms: Sequence[torch.Tensor]) -> torch.Tensor:
        """n * k * blocks 0-dim norms -> (n, k, blocks) squares."""
        return torch.stack(list(norms)).view(-1, self.k, self.blocks).float().square()

    @torch.no_grad()
    def _fold(self) -> None:
        """Fold the pending per-step norms into the epoch's accumulators (batched ops)."""
        if self._record_norms:
            self._grad_sq += self._rows(self._record_norms).sum(0)
            self._record_norms = []
        per = self.k * self.blocks
        n = len(self._d_norms) // per  # finished samples (a pending one waits for its step)
        if n:
            rows = self._rows(self._sample_norms[:2 * n * per]).view(n, 2, self.k, self.blocks)
            g_sq = rows[:, 0].sum(0)
            self._grad_sq += g_sq
            self._snr_sq += g_sq
            dn = self._rows(self._d_norms)
            self._update_sum += (dn / rows[:, 1].clamp_min(1e-30)).sqrt().sum(0)
            self._sample_norms, self._d_norms = self._sample_norms[2 * n * per:], []
        self._rows_pending = len(self._sample_norms) // (2 * per)

    # -- per epoch --------------------------------------------------------------------------
    def row(self, i: int = 0) -> dict[str, Any]:
        """Model ``i``'s statistics of the epoch so far. The first call of an epoch closes it
        for all k models (one host sync); the others read their rows, until the next step or
        until every model has read its row."""
        if self._closed is None or i not in self._unread:
            self._closed = self._close()
            self._unread = set(range(self.k))
        self._unread.discard(i)
        return self._closed[i]

    def has_steps(self, i: int = 0) -> bool:
        """Are there steps in the epoch so far that model ``i`` has not read its row of?"""
        return self.steps > 0 or (self._closed is not None and i in self._unread
                                  and self._closed[i]["steps"] > 0)

    @torch.no_grad()
    def _close(self) -> list[dict[str, Any]]:
        if self._pending:
            self._finish_update()
        self._fold()
        self._check_views()
        k, u = self.k, self.blocks
        grad_rms = (self._grad_sq / (max(1, self.grad_steps) * self.numel)).sqrt()
        update = self._update_sum / max(1, self.updates)
        if self._losses:
            mean_loss = torch.stack(self._losses).float().view(len(self._losses), -1).mean(0)
        else:
            mean_loss = torch.full((1,), float("nan"), device=self.device)
        mean_loss = mean_loss.expand(k)
        snr = torch.full((k, u), float("nan"), device=self.device)
        n = self.sampled
        if self.snr and n >= 2 and self._flat is not None:
            # sampled mini-batches as the chunks: ||mean g||² / (E||g||² - ||mean g||²)
            sig = self._rows(torch._foreach_norm(self._slices[2]))[0] / n**2
            noise = (self._snr_sq / n - sig) * n / (n - 1)
            snr = sig / noise.clamp_min(1e-30)
        init = (torch.full((k, u), float("nan"), device=self.device)
                if self.init_norms is None else (self.init_norms / self.numel).sqrt())
        packed = torch.cat([grad_rms, update, snr, mean_loss[:, None], init], dim=1).tolist()
        rows = [{"steps": self.steps,
                 "grad_rms": r[:u],
                 "update_ratio": r[u:2 * u] if self.updates else None,
                 "grad_snr": r[2 * u:3 * u] if self.snr else None,
                 "mean_loss": r[3 * u] if self._losses else None,
                 "grad_rms_init": r[3 * u + 1:] if self.init_norms is not None else None}
                for r in packed]
        # short epochs (fewer than MIN_SAMPLES * update_every steps): MIN_SAMPLES samples,
        # which are also the gradient records (a sampled step records the gradients too, so
        # no step pays for a record beside them); otherwise the default periods
        short = -(-self.steps // MIN_SAMPLES)
        self._period = max(1, min(self.update_every, short))
        self._grad_period = self._period if short < self.update_every else self.grad_every
        self._reset()
        return rows

    def _check_views(self) -> None:
        """Once per epoch: drop the cached parameter views if a parameter's storage moved."""
        if self._param_views is not None and self._param_ptrs != [
                p.data_ptr() for p in self.params]:
            self._param_views = None

