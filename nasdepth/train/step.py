"""One training step, the same for the sequential loop (``fit.py``: one fold's model) and the
fold-parallel loop (``parallel.py``: k folds' models as one :class:`FoldStack`).

:class:`TrainStep` owns what happens to one batch: forward pass, loss (auxiliary heads
included), backward pass, the hooks' per-step calls, gradient clipping, optimizer step and
learning-rate schedule, and the epoch's running loss and hits. The loops own the data: which
rows form a batch, augmentation and standardization, validation, early stopping.

With a fold stack every quantity gains a leading fold dimension: logits ``(k, B, C)``, labels
``(k, B)``, losses ``(k,)``; the loss that is differentiated is their sum, whose gradient with
respect to fold f's slice of the stacked parameters is the gradient of fold f's own loss.
AdamW and SGD update every element on its own, so one optimizer over the stacked tensors
trains each fold exactly as on its own.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.train.config import TrainConfig
from nasdepth.train.hooks import TrainHook, steps_each_fold, timed
from nasdepth.train.loop import autocast
from nasdepth.train.stacked import FoldStack

Schedule = torch.optim.lr_scheduler.LRScheduler


#: (parameters, learning-rate factor) pairs: parts of a model trained at ``factor * lr``
LRGroups = Sequence[tuple[Sequence[torch.Tensor], float]]


def make_optimizer(params: Sequence[torch.Tensor], cfg: TrainConfig, device: torch.device,
                   steps_per_epoch: int, lr_groups: LRGroups | None = None
                   ) -> tuple[torch.optim.Optimizer, Schedule | None]:
    """The optimizer and its per-step learning-rate schedule (None: a constant rate): the one
    place the training options choose them. ``lr_groups``: the parameters as (tensors,
    factor) groups, each at ``factor * cfg.lr`` under the same schedule (a pre-trained body
    at a smaller rate than a fresh head); they replace ``params``."""
    # fused kernels do one pass over all tensors: much less per-step overhead
    fused = device.type in ("cpu", "cuda")
    groups: Any = params
    max_lr: float | list[float] = cfg.lr
    if lr_groups is not None:
        groups = [{"params": list(ps), "lr": cfg.lr * f} for ps, f in lr_groups if len(ps)]
        max_lr = [g["lr"] for g in groups]
    opt: torch.optim.Optimizer
    if cfg.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum,
                              weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0,
                              fused=fused)
    else:
        opt = torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched: Schedule | None = None
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    elif cfg.schedule == "warmup_cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: warmup_cosine_factor(t, total))
    elif cfg.schedule == "wsd":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: wsd_factor(t, total))
    return opt, sched


#: ``warmup_cosine``: the share of the steps spent warming up, and the floor the cosine
#: decays to (a share of the peak rate). See ``docs/data_and_training.md`` for the budgets
#: table (``benchmarks/bench_recipe.py --schedules``) that chose them.
WARMUP_SHARE = 0.05
LR_FLOOR = 0.1


def warmup_cosine_factor(t: int, total: int, warmup: float = WARMUP_SHARE,
                         floor: float = LR_FLOOR) -> float:
    """The rate of step ``t`` of ``total`` as a share of the peak: a linear warm-up over the
    first ``warmup`` share of the steps, then a half cosine from 1 down to ``floor`` at the
    last step. Unlike ``cosine`` (down to 0) the last epochs of a short budget still learn."""
    return wsd_factor(t, total, warmup, None, floor)


#: ``wsd``: the share of the steps at the end over which the rate decays
DECAY_SHARE = 0.2


def wsd_factor(t: int, total: int, warmup: float = WARMUP_SHARE,
               decay: float | None = DECAY_SHARE, floor: float = LR_FLOOR) -> float:
    """Warm-up, stable, decay (Hu et al. 2024, MiniCPM; Hägele et al. 2024): a linear warm-up
    over the first ``warmup`` share of the steps, the peak rate until the last ``decay``
    share, then a half cosine down to ``floor``. A short budget trains at the peak nearly all
    the way (where ``cosine`` spends half of it at low rates); a long one still anneals.
    ``decay`` None: the decay takes every step after the warm-up (``warmup_cosine``)."""
    w = max(1, round(warmup * total))
    if t < w:
        return (t + 1) / w
    d = max(1, total - w) if decay is None else max(1, round(decay * total))
    start = total - d
    if t < start:
        return 1.0
    progress = min(1.0, (t - start) / d)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))


class DirectStep:
    """``opt.step()`` of a fused ``AdamW`` or ``SGD`` without its Python around the kernel.

    ``Optimizer.step`` wraps the one fused kernel in a profiler record, hook checks, a walk
    over every parameter to gather its state and a regrouping by device and dtype: about
    0.2 ms a step for an 8x128 MLP's 34 tensors, as long as the kernel itself on small
    models (``benchmarks/profile_cv.py``). Once the first step has made the state, this
    calls the same kernel on the same state tensors with lists gathered once; the weights
    come out equal bit for bit (``tests/test_train.py``). Any step it cannot take so (a
    parameter without a gradient: a frozen part; gradient scaling; optimizer hooks) goes
    through ``opt.step()``, which shares the state, so the two can alternate."""

    def __init__(self, opt: torch.optim.Optimizer) -> None:
        self.opt = opt
        self.kind = ("adamw" if isinstance(opt, torch.optim.AdamW)
                     else "sgd" if isinstance(opt, torch.optim.SGD) else None)
        self.able = self.kind is not None and all(
            g.get("fused") and not g.get("amsgrad") and not g.get("maximize")
            and not g.get("capturable") and not g.get("differentiable")
            and not torch.is_tensor(g["lr"]) for g in opt.param_groups)
        # per group: (group, params, its state's tensor lists), gathered after step one
        self.lists: list[tuple[dict[str, Any], list[torch.Tensor],
                               list[list[torch.Tensor]]]] | None = None

    def zero_grad(self) -> None:
        for group in self.opt.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self) -> None:
        if self.lists is None or self.opt._optimizer_step_pre_hooks \
                or self.opt._optimizer_step_post_hooks:
            self.opt.step()
            self._gather()
            return
        grads: list[list[torch.Tensor]] = []
        for _, params, _ in self.lists:
            gs = [p.grad for p in params if p.grad is not None]
            if len(gs) < len(params):
                self.opt.step()
                return
            grads.append(gs)
        for (group, params, state), gs in zip(self.lists, grads, strict=True):
            if self.kind == "adamw":
                exp_avgs, exp_avg_sqs, steps = state
                beta1, beta2 = group["betas"]
                torch._foreach_add_(steps, 1)
                torch._fused_adamw_(params, gs, exp_avgs, exp_avg_sqs, [], steps,
                                    lr=group["lr"], beta1=beta1, beta2=beta2,
                                    weight_decay=group["weight_decay"], eps=group["eps"],
                                    amsgrad=False, maximize=False)
            else:
                torch._fused_sgd_(params, gs, state[0] if group["momentum"] else [],
                                  weight_decay=group["weight_decay"],
                                  momentum=group["momentum"], lr=group["lr"],
                                  dampening=group["dampening"], nesterov=group["nesterov"],
                                  maximize=False, is_first_step=False)

    def _gather(self) -> None:
        """The state's tensors as lists, once every parameter has them (and one dtype and
        device: what the fused kernel takes in one call)."""
        if not self.able or self.lists is not None:
            return
        names = (["exp_avg", "exp_avg_sq", "step"] if self.kind == "adamw"
                 else ["momentum_buffer"])
        lists: list[tuple[dict[str, Any], list[torch.Tensor], list[list[torch.Tensor]]]] = []
        for group in self.opt.param_groups:
            params = list(group["params"])
            states = [self.opt.state.get(p) or {} for p in params]
            if len({(p.device, p.dtype) for p in params}) > 1:
                return
            if self.kind == "sgd" and not group["momentum"]:
                lists.append((group, params, []))  # plain SGD keeps no state
                continue
            if not all(st.get(n) is not None for st in states for n in names):
                return
            lists.append((group, params, [[st[n] for st in states] for n in names]))
        self.lists = lists


def batch_loss(logits: torch.Tensor, y: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Mean cross-entropy: ``(B, C)`` logits -> a scalar; ``(k, B, C)`` -> one per fold."""
    if y.dim() == 1:
        return F.cross_entropy(logits.float(), y, label_smoothing=smoothing)
    k, b = y.shape
    ce = F.cross_entropy(logits.float().flatten(0, 1), y.flatten(), reduction="none",
                         label_smoothing=smoothing)
    return ce.view(k, b).mean(1)


@torch.no_grad()
def clip_per_fold(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """``clip_grad_norm_`` for each fold's slice of the stacked gradients."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (k,)
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.view(-1, *([1] * (g.dim() - 1))))


class TrainStep:
    """Forward, loss, backward, hooks, clipping, optimizer step and schedule for one batch of
    ``model`` (one fold) or of a :class:`FoldStack` (k folds at once).

    ``compiled``: the callable that runs ``model``'s forward pass (``torch.compile(model)``);
    ``model`` itself is what hooks see and where auxiliary heads leave their logits. ``opt``
    and ``sched`` are attributes: a caller that needs another schedule replaces ``sched``.
    """

    def __init__(self, model: nn.Module | FoldStack, training: TrainConfig,
                 device: torch.device, steps_per_epoch: int, *,
                 hooks: Sequence[TrainHook] = (), aux_weight: float = 0.0,
                 compiled: Callable[..., Any] | None = None,
                 lr_groups: LRGroups | None = None) -> None:
        self.folds: FoldStack | None = None
        self.model: nn.Module | None = None  # one of the two
        if isinstance(model, FoldStack):
            self.folds = model
            self.params = list(model.params.values())
        else:
            self.model = model
            self.params = [p for p in model.parameters() if p.requires_grad]
        if lr_groups is not None:
            # as given: a tensor that gets no gradient (frozen; ``requires_grad`` False) gets
            # no optimizer state either, so a block unfrozen later (gradual unfreezing) can
            # be listed from the start
            self.params = [p for ps, _ in lr_groups for p in ps]
        self.forward: Callable[..., Any] = compiled if compiled is not None else model
        self.opt, self.sched = make_optimizer(self.params, training, device, steps_per_epoch,
                                              lr_groups)
        self.direct = DirectStep(self.opt)
        # fp16 needs loss scaling against gradient underflow; bf16 has fp32's range
        self.amp = (torch.amp.GradScaler("cuda")
                    if device.type == "cuda" and training.precision == "fp16" else None)
        self.device, self.precision = device, training.precision
        self.smoothing, self.grad_clip = training.label_smoothing, training.grad_clip
        self.aux_weight = aux_weight
        self.hooks = [h for h in hooks if steps_each_fold(h)]  # the rest do nothing per step
        k = () if self.folds is None else (self.folds.k,)
        self.total = torch.zeros(k, device=device)  # this epoch's summed loss (per fold)
        self.correct = torch.zeros(k, device=device, dtype=torch.long)

    @property
    def lr(self) -> float:
        """The current rate of the first parameter group (the head's, with ``lr_groups``)."""
        return float(self.opt.param_groups[0]["lr"])

    def start_epoch(self) -> None:
        self.total.zero_()
        self.correct.zero_()

    def outputs(self, x: torch.Tensor) -> tuple[Any, list[torch.Tensor]]:
        """The network's outputs for a training batch (logits, or a multitask network's
        ``{task: logits}``; with a fold dimension for a stack) and its auxiliary logits."""
        if self.folds is not None:
            out, *aux = self.folds(x, train=True)
            return out, list(aux)
        return self.forward(x), list(getattr(self.model, "aux_logits", None) or [])

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Train on one batch: ``x`` ready for the model (standardized, augmented, in its
        memory format), ``y`` its labels (``(k, B, ...)`` and ``(k, B)`` for a fold stack)."""
        with autocast(self.device, self.precision):
            out, aux = self.outputs(x)
            loss = batch_loss(out, y, self.smoothing)
            full = loss
            if self.aux_weight and aux:
                aux_losses = [batch_loss(a, y, self.smoothing) for a in aux]
                full = loss + self.aux_weight * torch.stack(aux_losses).sum(0)
        self.update(full, loss)
        self.total.add_(loss.detach(), alpha=y.shape[-1])
        self.correct.add_((out.detach().argmax(-1) == y).sum(-1))

    def update(self, objective: torch.Tensor, loss: torch.Tensor) -> None:
        """Everything after the forward pass: backward of ``objective`` (the loss that is
        differentiated: per fold for a stack), the hooks' per-step calls (they see ``loss``,
        the batch loss as it is reported), clipping, the optimizer step and the schedule. A
        loop with its own loss (the joint loss of several tasks) calls this directly."""
        self.direct.zero_grad()
        if self.folds is not None:
            objective = objective.sum()
        (objective if self.amp is None else self.amp.scale(objective)).backward()
        if self.folds is not None and self.hooks:
            losses = loss.detach()
            for hook in self.hooks:
                timed(hook, hook.after_backward_folds, self.folds, losses)
        elif self.model is not None:
            for hook in self.hooks:
                timed(hook, hook.after_backward, self.model, loss)
        if self.grad_clip:
            if self.amp is not None:
                self.amp.unscale_(self.opt)
            if self.folds is not None:
                clip_per_fold(self.params, self.grad_clip)
            else:
                torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip)
        if self.amp is None:
            self.direct.step()
        else:
            self.amp.step(self.opt)
            self.amp.update()
        for hook in self.hooks:
            if self.folds is not None:
                timed(hook, hook.after_step_folds, self.folds)
            elif self.model is not None:
                timed(hook, hook.after_step, self.model)
        if self.sched is not None:
            self.sched.step()
