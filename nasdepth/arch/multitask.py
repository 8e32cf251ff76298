"""Multitask networks: a shared trunk, then one branch per task (hard parameter sharing).

``MultitaskConfig`` wraps an :class:`ArchConfig` (the architecture one task alone would get)
with the task names and where they split::

    stem -> block 1 .. block b (shared) -+-> block b+1 .. block D -> head   (task "digit")
                                         +-> block b+1 .. block D -> head   (task "parity")

``branch_at`` = b is the block after which the tasks split: 0 shares only the stem, the
network's depth D (the default, None) shares every block and gives each task only its own
head. Every branch repeats the rest of the trunk (its own weights) and ends in the head of
the architecture; ``head_depth``/``head_width`` (when set) replace the head's hidden layers
by ``head_depth`` layers of ``head_width`` units. With one task the network is exactly the
single-task network of ``arch`` (the same modules, built in the same order).

The joint loss (:meth:`MultitaskNetwork.joint_loss`) over the tasks' mean cross-entropies:

- ``weighting: fixed``: ``sum_t w_t * L_t`` with ``weights`` (default 1 for every task);
- ``weighting: uncertainty``: Kendall, Gal & Cipolla (2018), "Multi-task learning using
  uncertainty to weigh losses": one learned log-variance ``s_t`` per task (initialized at 0,
  trained with the network) and ``sum_t exp(-s_t) * L_t + s_t / 2`` (their classification
  form, ``L_t / sigma_t^2 + log sigma_t``): a task whose loss stays high (noisy) is weighted
  down, the ``s_t / 2`` term keeps the weights from collapsing to zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from nasdepth.arch.blocks import get_block, has_transition
from nasdepth.arch.build import build_model, input_rank
from nasdepth.arch.config import ArchConfig, checked_keys
from nasdepth.errors import ConfigError, UnknownNameError

WEIGHTINGS = ("fixed", "uncertainty")
SOURCE = "the multitask architecture"


@dataclass(frozen=True)
class MultitaskConfig:
    """``arch`` with one branch per task of ``tasks``, split after block ``branch_at``."""

    arch: ArchConfig
    tasks: tuple[str, ...]
    branch_at: int | None = None  # None: every block shared (only the heads are per task)
    head_depth: int | None = None  # None: the heads' hidden layers are arch.head_hidden
    head_width: int = 64
    weighting: str = "fixed"
    weights: tuple[float, ...] = ()  # fixed weighting: one per task (empty: all 1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(self.tasks))
        object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))

    @property
    def shared_blocks(self) -> int:
        """Blocks shared by every task (``branch_at`` resolved on the architecture)."""
        return self.arch.depth if self.branch_at is None else int(self.branch_at)

    @property
    def task_weights(self) -> tuple[float, ...]:
        return self.weights or tuple(1.0 for _ in self.tasks)

    @property
    def head_hidden(self) -> tuple[int, ...]:
        if self.head_depth is None:
            return tuple(self.arch.head_hidden)
        return tuple(self.head_width for _ in range(self.head_depth))

    def validate(self, source: str = SOURCE) -> MultitaskConfig:
        if not self.tasks or len(set(self.tasks)) != len(self.tasks):
            raise ConfigError(source, "tasks", list(self.tasks),
                              "a non-empty list of task names without repeats")
        b = self.branch_at
        if b is not None and (not isinstance(b, int) or isinstance(b, bool)
                              or not 0 <= b <= self.arch.depth):
            raise ConfigError(source, "branch_at", b,
                              f"an int in 0..{self.arch.depth} (the network's blocks; 0: only "
                              "the stem shared)")
        h = self.head_depth
        if h is not None and (not isinstance(h, int) or isinstance(h, bool) or h < 0):
            raise ConfigError(source, "head_depth", h, "an int >= 0 (hidden layers per head)")
        if not isinstance(self.head_width, int) or self.head_width < 1:
            raise ConfigError(source, "head_width", self.head_width, "an int >= 1")
        if self.weighting not in WEIGHTINGS:
            raise UnknownNameError(source, "weighting", self.weighting, WEIGHTINGS)
        if self.weights and (len(self.weights) != len(self.tasks)
                             or any(w < 0 for w in self.weights)):
            raise ConfigError(source, "weights", list(self.weights),
                              f"{len(self.tasks)} numbers >= 0, one per task")
        if self.weights and self.weighting == "uncertainty":
            raise ConfigError(source, "weights", list(self.weights),
                              "unset with weighting: uncertainty (the weights are learned)")
        if self.arch.aux_heads:
            raise ConfigError(source, "aux_heads", list(self.arch.aux_heads),
                              "empty for a multitask network (each task has its own head)")
        return self

    def single(self, task: str) -> MultitaskConfig:
        """The same architecture for ``task`` alone (fixed weight 1): its baseline."""
        return replace(self, tasks=(task,), weighting="fixed", weights=())

    def summary(self) -> dict[str, Any]:
        return {**self.arch.summary(), "tasks": "+".join(self.tasks),
                "branch_at": self.shared_blocks, "head_depth": len(self.head_hidden),
                "head_width": self.head_width if self.head_hidden else None,
                "weighting": self.weighting}

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch.to_dict(), "tasks": list(self.tasks),
                "branch_at": self.branch_at, "head_depth": self.head_depth,
                "head_width": self.head_width, "weighting": self.weighting,
                "weights": list(self.weights)}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = SOURCE) -> MultitaskConfig:
        checked_keys(cls, d, source, "multitask")
        if "arch" not in d or "tasks" not in d:
            raise ConfigError(source, "multitask", sorted(d), "a mapping with arch and tasks")
        d = dict(d)
        arch = d.pop("arch")
        arch = arch if isinstance(arch, ArchConfig) else ArchConfig.from_dict(arch, source)
        return cls(arch=arch, **d).validate(source)


def block_ends(cfg: ArchConfig, rank: int) -> list[int]:
    """``ends[b]``: how many modules of ``Network.blocks`` the first ``b`` blocks of ``cfg``
    take (transition and entry layers belong to the block they open). ``ends[0] = 0``."""
    ends, pos = [0], 0
    for si, stage in enumerate(cfg.stages):
        cls = get_block(stage.block)
        stride = 1 if rank == 0 else stage.stride
        if has_transition(cls, si, stride) and cls.transition is not None:
            pos += 1
        if cls.entry is not None and (si == 0 or cfg.stages[si - 1].block != stage.block):
            pos += 1
        ends += range(pos + 1, pos + stage.depth + 1)
        pos += stage.depth
    return ends


class TaskPath(nn.Module):
    """One task's path through a :class:`MultitaskNetwork`: stem, shared blocks, the task's
    branch and head, as a single-task network (forward gives that task's logits). It holds the
    network's own modules (not copies): probes on it see the shared trunk and the head."""

    def __init__(self, net: MultitaskNetwork, task: str) -> None:
        super().__init__()
        self.stem, self.shared = net.stem, net.shared
        self.branch: nn.Sequential = net.branches[task]  # type: ignore[assignment]
        self.head = net.heads[task]
        self.task = task

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.branch(self.shared(self.stem(x))))

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        named = [("stem", self.stem)]
        named += [(f"block{i}.{type(b).__name__}", b) for i, b in enumerate(self.shared)]
        n = len(self.shared)
        named += [(f"{self.task}/block{n + i}.{type(b).__name__}", b)
                  for i, b in enumerate(self.branch)]
        return named + [(f"{self.task}/head", self.head)]


class MultitaskNetwork(nn.Module):
    """stem -> shared blocks -> per task: branch blocks -> head. ``forward`` gives
    ``{task: logits}``; :meth:`path` one task's path as a single-task module."""

    def __init__(self, cfg: MultitaskConfig, stem: nn.Module, shared: Sequence[nn.Module],
                 branches: Mapping[str, Sequence[nn.Module]], heads: Mapping[str, nn.Module],
                 num_classes: Mapping[str, int]) -> None:
        super().__init__()
        self.cfg = cfg
        self.tasks = tuple(cfg.tasks)
        self.num_classes = {t: int(num_classes[t]) for t in self.tasks}
        self.stem = stem
        self.shared = nn.Sequential(*shared)
        self.branches = nn.ModuleDict({t: nn.Sequential(*branches[t]) for t in self.tasks})
        self.heads = nn.ModuleDict({t: heads[t] for t in self.tasks})
        # uncertainty weighting: s_t = log sigma_t^2, learned with the network
        self.log_vars = (nn.Parameter(torch.zeros(len(self.tasks)))
                         if cfg.weighting == "uncertainty" else None)
        self.fixed_weights: torch.Tensor
        self.register_buffer("fixed_weights", torch.tensor(cfg.task_weights),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        z = self.shared(self.stem(x))
        return {t: self.heads[t](self.branches[t](z)) for t in self.tasks}

    def path(self, task: str) -> TaskPath:
        if task not in self.heads:
            raise UnknownNameError(SOURCE, "task", task, self.tasks)
        return TaskPath(self, task)

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        """The stem and shared blocks once, then each task's branch blocks and head."""
        paths = [TaskPath(self, t).named_blocks() for t in self.tasks]
        trunk = 1 + len(self.shared)
        return paths[0][:trunk] + [unit for p in paths for unit in p[trunk:]]

    def task_weights(self) -> torch.Tensor:
        """The weight of each task's loss now: fixed, or ``exp(-s_t)`` when learned."""
        if self.log_vars is None:
            return self.fixed_weights
        return torch.exp(-self.log_vars.detach())

    def joint_loss(self, losses: torch.Tensor) -> torch.Tensor:
        """The loss that is differentiated, from the tasks' losses ``(T,)``."""
        return joint_loss(losses, self.log_vars, self.fixed_weights)


def joint_loss(losses: torch.Tensor, log_vars: torch.Tensor | None,
               fixed_weights: torch.Tensor) -> torch.Tensor:
    """The tasks' losses ``(..., T)`` weighed into one per leading index: fixed weights, or
    uncertainty weighting ``exp(-s_t) L_t + s_t / 2`` with ``s_t`` learned (a fold stack
    passes its stacked ``(k, T)`` tensors and gets one joint loss per fold)."""
    if log_vars is None:
        return (fixed_weights * losses).sum(-1)
    return (torch.exp(-log_vars) * losses + 0.5 * log_vars).sum(-1)


def build_multitask(cfg: MultitaskConfig, input_shape: Sequence[int],
                    num_classes: Mapping[str, int]) -> MultitaskNetwork:
    """A fresh multitask network; ``num_classes`` maps each task to its number of classes.

    Each task's branch comes from a network of ``cfg.arch`` built for that task (in task
    order, after seeding by the caller): the stem and shared blocks are the first task's.
    """
    cfg.validate()
    for t in cfg.tasks:
        if t not in num_classes:
            raise UnknownNameError(SOURCE, "task", t, list(num_classes))
    arch = replace(cfg.arch, head_hidden=cfg.head_hidden)
    ends = block_ends(arch, input_rank(input_shape))
    cut = ends[cfg.shared_blocks]
    nets = {t: build_model(arch, input_shape, int(num_classes[t])) for t in cfg.tasks}
    first = nets[cfg.tasks[0]]
    if len(first.blocks) != ends[-1]:  # the count above must follow build_model
        raise RuntimeError(f"block_ends counted {ends[-1]} modules, the network has "
                           f"{len(first.blocks)}")
    return MultitaskNetwork(cfg, first.stem, list(first.blocks)[:cut],
                            {t: list(net.blocks)[cut:] for t, net in nets.items()},
                            {t: net.head for t, net in nets.items()}, num_classes)
