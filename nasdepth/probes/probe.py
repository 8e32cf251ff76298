"""``Probe``: per-block training statistics, cheap enough to leave on.

Cost model (measured on a 2-core CPU, see ``benchmarks/bench_probes.py``): every
``grad_every``-th step (4) the probe takes the norms of all gradient tensors in one
``torch._foreach_norm`` call and adds their squares to a device tensor (no host sync); every
``update_every``-th step (10) it measures the relative update ||ΔW||/||W|| the same way, and
adds the gradients to a running sum, so that the sampled mini-batches serve as the chunks of the
gradient signal-to-noise ratio (no per-sample gradients, works with BatchNorm). Once per epoch
it runs a fixed probe batch through the model in eval mode (forward hooks only then) for
activation RMS, dead ReLU and saturated sigmoid/tanh units. Eval mode and no RNG draws keep
BatchNorm running statistics and dropout masks of training unchanged: the probe does not change
the training result.

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
    ``probe_batch`` when omitted).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        probe_batch: tuple[torch.Tensor, torch.Tensor] | None = None,
        labels: torch.Tensor | None = None,
        num_classes: int | None = None,
        update_every: int = 10,
        grad_every: int = 4,
        snr_chunks: int = 0,
        fold: int = 0,
    ) -> None:
        if not isinstance(model, nn.Module):
            raise ConfigError("Probe", "model", type(model).__name__, "a torch.nn.Module")
        if update_every < 1:
            raise ConfigError("Probe", "update_every", update_every, "an int >= 1")
        if grad_every < 1:
            raise ConfigError("Probe", "grad_every", grad_every, "an int >= 1")
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
        self._unit_of = torch.tensor(unit_of, device=device)
        numel = torch.tensor([float(p.numel()) for p in self.params], device=device)
        self._unit_numel = torch.zeros(len(self.units), device=device).index_add_(
            0, self._unit_of, numel)
        self._zero = torch.zeros((), device=device)
        self.update_every, self.snr_chunks = int(update_every), int(snr_chunks)
        self._period = self.update_every  # shortened for short epochs (>= 4 samples each)
        # gradient norms on every grad_every-th step: a per-epoch RMS needs a sample of the
        # steps, not all of them, and skipping steps keeps the probe's cost within budget
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
        self._reset_epoch()

    # -- per step ---------------------------------------------------------------------------
    def _reset_epoch(self) -> None:
        n, u = len(self.params), len(self.units)
        self._grad_sq = torch.zeros(n, device=self.device)
        self._grad_steps = 0
        self._snr_sq = torch.zeros(n, device=self.device)
        self._sampled = 0
        # sum of the step gradients: with _grad_sq the spread of the mini-batch gradients
        self._grad_sum = [torch.zeros_like(p) for p in self.params] if not self.snr_chunks \
            else []
        self._loss_sum = torch.zeros((), device=self.device)
        self._steps = 0
        self._update_sum = torch.zeros(u, device=self.device)
        self._updates = 0
        self._snapshot: list[torch.Tensor] | None = None

    @torch.no_grad()
    def after_backward(self, loss: torch.Tensor | None = None) -> None:
        """Record the gradients of this step (call after ``backward()``); device-side only."""
        self._finish_update()  # a user loop calls no after_step: the last step's update is in
        if loss is not None:
            self._loss_sum += loss.detach().float()
        record = self._steps % self._grad_period == 0
        sampled = self._steps % self._period == 0  # update ratio and SNR
        if record or sampled:
            grads = [p.grad if p.grad is not None else self._zero for p in self.params]
            norms = torch._foreach_norm(grads)
            if record:
                self._grad_sq += torch.stack(norms).square()
                self._grad_steps += 1
        if sampled:
            self._snapshot = list(torch._foreach_mul(self.params, 1.0))  # one batched copy
            if self._grad_sum:
                full = [p.grad if p.grad is not None else self._grad_sum[i].new_zeros(())
                        for i, p in enumerate(self.params)]
                torch._foreach_add_(self._grad_sum, full)
                self._snr_sq += torch.stack(norms).square()
                self._sampled += 1
        self._steps += 1

    step = after_backward  # the name users call in their own loops

    @torch.no_grad()
    def after_step(self) -> None:
        """After ``optimizer.step()``: finish a pending update-ratio measurement."""
        self._finish_update()

    def _finish_update(self) -> None:
        if self._snapshot is None:
            return
        with torch.no_grad():
            diff = torch._foreach_sub(self.params, self._snapshot)
            dn = torch.stack(torch._foreach_norm(diff)).square()
            wn = torch.stack(torch._foreach_norm(self._snapshot)).square()
            u = len(self.units)
            dn_u = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, dn)
            wn_u = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, wn)
            self._update_sum += (dn_u / wn_u.clamp_min(1e-30)).sqrt()
        self._updates += 1
        self._snapshot = None

    # -- per epoch --------------------------------------------------------------------------
    def epoch_end(self, *, train_loss: float | None = None, val_loss: float | None = None,
                  val_accuracy: float | None = None, epoch: int | None = None) -> dict[str, Any]:
        """Close the epoch: convert the device statistics once, add the probe-batch statistics
        and the losses normalized by the label entropy. Returns the epoch's row."""
        self._finish_update()
        steps = max(1, self._steps)
        grad_sq_u = torch.zeros(len(self.units), device=self.device).index_add_(
            0, self._unit_of, self._grad_sq)
        grad_rms = (grad_sq_u / (max(1, self._grad_steps) * self._unit_numel)).sqrt()
        update = self._update_sum / max(1, self._updates)
        mean_loss = self._loss_sum / steps
        u = len(self.units)
        snr = torch.full((u,), float("nan"), device=self.device)
        k = self._sampled
        if self._grad_sum and k >= 2:
            # sampled mini-batches as the chunks: ||mean g||² / (E||g||² - ||mean g||²)
            mean_sq = torch.stack(torch._foreach_norm(self._grad_sum)).square() / k**2
            sig = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, mean_sq)
            sq = torch.zeros(u, device=self.device).index_add_(0, self._unit_of, self._snr_sq)
            noise = (sq / k - sig) * k / (k - 1)
            snr = sig / noise.clamp_min(1e-30)
        packed = torch.cat([grad_rms, update, snr, mean_loss.reshape(1)]).tolist()  # one sync
        row: dict[str, Any] = {"epoch": len(self.trace.epochs) if epoch is None else epoch,
                               "steps": self._steps}
        row["grad_rms"] = [finite_or_none(v) for v in packed[:u]]
        row["update_ratio"] = ([finite_or_none(v) for v in packed[u:2 * u]]
                               if self._updates else [None] * u)
        if train_loss is None and self._steps:
            train_loss = packed[-1]
        row.update(self._probe_batch_stats())
        if self._grad_sum:
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
        self._period = max(1, min(self.update_every, self._steps // 4))
        self._grad_period = max(1, min(self.grad_every, self._steps // 8))
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
        modes = [(m, m.training) for m in self.model.modules()]
        self.model.eval()  # no BatchNorm statistics updates, no dropout draws
        try:
            stats = self._activations(x, y)
            stats["grad_snr"] = self._snr(x, y) if self.snr_chunks else [None] * u
        except Exception:
            # statistics must never break a user's training: record nothing for this epoch
            stats = empty
        finally:
            for m, mode in modes:
                m.training = mode
        return stats

    @torch.no_grad()
    def _activations(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, Any]:
        u = len(self.units)
        rms: list[float | None] = [None] * u
        dead: list[list[float]] = [[] for _ in range(u)]
        sat: list[list[float]] = [[] for _ in range(u)]
        owner = {}
        for i, (_, unit) in enumerate(self.units):
            for m in unit.modules():
                owner[id(m)] = i
        last = [0]  # activation modules outside every unit belong to the unit that ran last
        handles = []

        def unit_hook(i: int):  # type: ignore[no-untyped-def]
            def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
                last[0] = i
                if isinstance(out, torch.Tensor):
                    rms[i] = float(out.detach().float().square().mean().sqrt())
            return hook

        def act_hook(m: nn.Module, _inp: Any, out: Any) -> None:
            if not isinstance(out, torch.Tensor) or out.dim() < 2:
                return
            i = owner.get(id(m), last[0])
            o = out.detach().float()
            if isinstance(m, RELU_LIKE):
                alive = (o.transpose(0, 1).reshape(o.shape[1], -1) > 0).any(dim=1)
                dead[i].append(float(1.0 - alive.float().mean()))
            elif isinstance(m, nn.Sigmoid):
                sat[i].append(float(((o < 1 - SATURATION) | (o > SATURATION)).float().mean()))
            else:
                sat[i].append(float((o.abs() > SATURATION).float().mean()))

        for i, (_, unit) in enumerate(self.units):
            handles.append(unit.register_forward_hook(unit_hook(i)))
        for m in self.model.modules():
            if isinstance(m, RELU_LIKE + SQUASHING):
                handles.append(m.register_forward_hook(act_hook))
        try:
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
        acc = float((logits.argmax(1) == y).float().mean()) if logits.dim() == 2 else None
        return {"act_rms": rms,
                "dead_frac": [sum(v) / len(v) if v else None for v in dead],
                "saturated_frac": [sum(v) / len(v) if v else None for v in sat],
                "probe_accuracy": acc}

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
