"""A learning-rate range test per candidate (Smith 2015, "Cyclical learning rates"; as in
Lightning's ``LearningRateFinder`` and fastai's ``lr_find``). For users, with the
measurements behind the budget and the default rule: ``docs/search_spaces.md``, "lr: auto".

A throwaway copy of the candidate trains for ``steps`` batches of its fold's training part
while the learning rate grows exponentially from ``start_lr`` (1e-7) to ``end_lr`` (1); the
sweep stops early once the smoothed loss passes ``diverge`` (4) times its best. The loss is
smoothed with a bias-corrected exponential moving average: ``beta`` 0.98 over 100 steps
(Lightning's and fastai's), ``0.98 ** (100 / steps)`` over fewer, so that the average spans
the same share of the sweep. Budget: :func:`sweep_steps` (a sweep step costs about what a
training step of the CV costs, so the test stays under a tenth of the candidate's CV time).

Choice rules (``rule``), read on the loss averaged over 0.75 decade of learning rate around
each point (:func:`centered`: no lag; the running average is only for the stop):
``steepest`` (Lightning's: where the loss falls fastest per decade, on the way down to its
minimum), ``min10`` (fastai's original: a tenth of the rate at the minimum), ``blend`` (the
default: their geometric mean, since they err on opposite sides) and ``valley`` (fastai's
newer default: two thirds of the way down the longest falling stretch).

The optimizer, weight decay, momentum, batch size and label smoothing are the candidate's own
(the rate suits the recipe it will train with); no schedule and no augmentation run during
the sweep. The test is deterministic with the seed: the copy is initialized and its batches
drawn from ``seed``. ``cross_validate`` runs it on the first fold when ``TrainConfig.lr_auto``
is set, then trains every fold (fresh models) at the chosen rate.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from nasdepth.arch import ArchConfig
from nasdepth.data import CVConfig, Dataset, Standardizer
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.train.candidate import Candidate, as_candidate
from nasdepth.train.config import LR_RULES, TrainConfig
from nasdepth.train.device import resolve_device
from nasdepth.train.fit import use_channels_last
from nasdepth.train.step import make_optimizer
from nasdepth.train.targets import SINGLE

START_LR = 1e-7
END_LR = 1.0
STEPS = 100
MIN_STEPS = 25
#: the sweep's share of the candidate's training steps, at most (0.08 leaves room under 10%
#: of the CV's time for the sweep's first-call overheads)
BUDGET = 0.08
DIVERGE = 4.0
BETA = 0.98


def sweep_steps(n_train: int, training: TrainConfig, folds: int) -> int:
    """Steps of the sweep for a candidate that trains ``folds`` folds of about ``n_train``
    rows for ``training.epochs`` epochs: 100, or 8% of the steps its CV trains where that is
    fewer, but at least 25 (the quickstart's 3 folds x 6 epochs x 18 batches: 25)."""
    per_epoch = max(1, n_train // max(1, training.batch_size))
    budget = int(BUDGET * folds * training.epochs * per_epoch)
    return max(MIN_STEPS, min(STEPS, budget))


@dataclass
class LRFinding:
    """One range test: the rates tried, the raw losses, their running average (``smoothed``,
    which decides the stop), the centred average the rule reads (``curve``), and the rate
    chosen."""

    lr: float
    rule: str
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    #: the loss the rule reads (:func:`centered`)
    curve: list[float] = field(default_factory=list)
    start_lr: float = START_LR
    end_lr: float = END_LR
    steps: int = STEPS
    diverged: bool = False
    seconds: float = 0.0
    seed: int = 0
    n_train: int = 0
    batch_size: int = 0
    optimizer: str = ""

    @property
    def steps_run(self) -> int:
        return len(self.lrs)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LRFinding:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in names})


def centered(lrs: list[float], losses: list[float], decades: float = 0.75) -> list[float]:
    """``losses`` averaged over a window of about ``decades`` of learning rate centred on each
    point: no lag, unlike the running average (which trails the loss by a good part of the
    sweep and would move every rule towards larger rates)."""
    n = len(losses)
    if n < 3:
        return list(losses)
    per_point = math.log10(lrs[-1] / lrs[0]) / (n - 1) if lrs[-1] > lrs[0] else 1.0
    half = max(1, round(decades / per_point / 2))
    arr = np.asarray(losses, dtype=float)
    return [float(arr[max(0, i - half):i + half + 1].mean()) for i in range(n)]


def choose(lrs: list[float], losses: list[float], rule: str = "blend") -> float:
    """The learning rate ``rule`` picks from a sweep's raw ``losses`` (see the module
    docstring), read on the :func:`centered` curve. Too short a sweep (under 10 points) gives
    its minimum's rate over 10."""
    if rule not in LR_RULES:
        raise UnknownNameError("the range test", "rule", rule, LR_RULES)
    n = len(lrs)
    loss = np.asarray(centered(lrs, losses), dtype=float)
    low = int(np.nanargmin(loss))
    if n < 10 or rule == "min10":
        return float(lrs[low]) / 10
    if rule == "blend":
        return math.sqrt(choose(lrs, losses, "steepest") * choose(lrs, losses, "min10"))
    if rule == "steepest":
        # the fastest fall per decade, on the way down to the minimum
        if low < 2:
            return float(lrs[low]) / 10
        grad = np.gradient(loss[:low + 1], np.log10(np.asarray(lrs[:low + 1])))
        return float(lrs[int(np.nanargmin(grad))])
    # valley: longest run of strictly decreasing losses (O(n^2) dynamic programme, n <= 100)
    best_len, best = [1] * n, list(range(n))
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and best_len[j] + 1 > best_len[i]:
                best_len[i], best[i] = best_len[j] + 1, best[j]
    end = int(np.argmax(best_len))
    start = best[end]
    return float(lrs[start + (end - start) * 2 // 3])


def candidate_range_test(candidate: Candidate, data: Dataset, train_idx: np.ndarray, *,
                         training: TrainConfig, seed: int, device: torch.device,
                         folds: int = 1, start_lr: float = START_LR, end_lr: float = END_LR,
                         steps: int | None = None, diverge: float = DIVERGE,
                         rule: str = "blend") -> LRFinding:
    """The range test ``lr: auto`` runs for ``candidate`` (prepared ``data``): a throwaway
    copy of the network ``train_idx``'s fold trains (``seed``: its initialization; the
    candidate's targets, frozen parts and standardization, as the fold trains) is swept over
    ``train_idx`` for ``steps`` batches (None: the budget of ``folds`` such folds,
    :func:`sweep_steps`). The one place a rate is chosen: ``cross_validate``, :func:`find_lr`
    and the scikit-learn estimator call it."""
    steps = sweep_steps(len(train_idx), training, folds) if steps is None else steps
    if not 0 < start_lr < end_lr:
        raise ConfigError("the range test", "start_lr", start_lr, f"> 0 and < end_lr ({end_lr})")
    if steps < 2:
        raise ConfigError("the range test", "steps", steps, "an int >= 2")
    if rule not in LR_RULES:
        raise UnknownNameError("the range test", "rule", rule, LR_RULES)
    probe = candidate.fold(data, train_idx, seed, device)
    began = time.perf_counter()
    model, targets = probe.model, probe.options.targets or SINGLE
    x_raw = probe.data.x[torch.as_tensor(train_idx)].to(device)
    y = targets.labels(probe.data)[torch.as_tensor(train_idx)].to(device)
    # training part only, as in the fold's training
    x = Standardizer.fit(x_raw)(x_raw) if probe.options.standardize else x_raw
    if use_channels_last(training, probe.data.input_shape, device):  # as the fold trains
        x = x.contiguous(memory_format=torch.channels_last)
        model = model.to(memory_format=torch.channels_last)
    model.to(device).train()
    params = [p for p in model.parameters() if p.requires_grad]
    # the candidate's optimizer; no schedule: the sweep sets the rate of every step
    opt, _ = make_optimizer(params, replace(training, lr=start_lr, schedule="none"), device, 1)
    gen = torch.Generator().manual_seed(seed)
    n, bs = len(train_idx), min(training.batch_size, len(train_idx))
    ratio = end_lr / start_lr
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    beta = BETA ** (STEPS / max(1, steps))  # spans the same share of the sweep as 0.98 of 100
    avg, best, diverged = 0.0, math.inf, False
    perm, pos = torch.randperm(n, generator=gen), 0
    for i in range(steps):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        idx = perm[pos:pos + bs].to(device)
        pos += bs
        lr = start_lr * ratio ** (i / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        loss = targets.loss(model, x[idx], y[idx], training.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        avg = beta * avg + (1 - beta) * value
        s = avg / (1 - beta ** (i + 1))
        lrs.append(lr)
        losses.append(value)
        smoothed.append(s)
        best = min(best, s)
        if i > 0 and s > diverge * best:  # Lightning: stop once the loss runs away
            diverged = True
            break
    if not lrs:
        raise ConfigError("the range test", "start_lr", start_lr,
                          "low enough that the first step's loss is finite")
    chosen = choose(lrs, losses, rule)
    return LRFinding(lr=chosen, rule=rule, lrs=lrs, losses=losses, smoothed=smoothed,
                     curve=centered(lrs, losses),
                     start_lr=start_lr, end_lr=end_lr, steps=steps, diverged=diverged,
                     seconds=time.perf_counter() - began, seed=seed, n_train=n,
                     batch_size=bs, optimizer=training.optimizer)


def find_lr(arch: ArchConfig, data: Dataset, *, training: TrainConfig | None = None,
            folds: int = 5, seed: int = 0, cv: CVConfig | None = None,
            start_lr: float = START_LR, end_lr: float = END_LR, steps: int | None = None,
            diverge: float = DIVERGE, rule: str = "blend") -> LRFinding:
    """The range test ``lr: auto`` runs for ``arch``: on the first fold's training part of
    the same splits ``cross_validate(arch, data, folds=folds, seed=seed, cv=cv)`` uses, with a
    copy initialized as that fold's model (``seed * 1000``). ``steps`` None: the budget rule
    (:func:`sweep_steps`), as under ``lr: auto``."""
    training = (training or TrainConfig()).validate()
    cv = (cv or CVConfig(folds=folds, seed=seed)).validate("the range test")
    device = resolve_device(training.device)
    train_idx = cv.resolve(data, "the range test").folds[0][0]  # cross_validate's fold 0
    return candidate_range_test(as_candidate(arch), data, train_idx, training=training,
                                seed=seed * 1000, device=device, folds=cv.n_splits,
                                start_lr=start_lr, end_lr=end_lr, steps=steps, diverge=diverge,
                                rule=rule)
