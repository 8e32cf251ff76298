"""The k folds of a CNN as one model of grouped convolutions (fold-parallel CNNs on a CPU).

k models of one structure on 2-D (or 1-D) maps become one network whose activations hold the
folds side by side in the channels, ``(B, k*C, H, W)`` (``(B, k*C, L)``), fold-major: fold
f's sample b is row b of channels ``f*C .. (f+1)*C``. Every convolution becomes one grouped
convolution with ``k`` times the groups (a fold's channels only ever meet its own weights),
every batch or group norm one call over ``k*C`` channels (batch norm's statistics are per
channel, so per fold), and a head's linear layer one batched matrix product. Layers without
state (activations, pooling, residual additions) act per channel and work unchanged. A layer
that moves channels between positions (a concatenation, as dense and inception blocks do)
would mix folds: :func:`group_folds` checks every grouped network against its fold models on
a random batch and refuses one whose outputs differ.

Why: a small convolution (16 channels on 8x8 maps at batch 64) is mostly per-call overhead in
oneDNN; five of them as one grouped call ran a whole training step 1.3-1.9x faster on an AMD
EPYC (Zen 5), while at 32 channels the two are at parity there (1.14-1.32x on a Xeon with AMX
under bf16) and at 16 channels on 28x28 maps the grouped call is slower
(``docs/data_and_training.md``, "Fold-parallel CNNs as grouped convolutions").
:func:`grouping_pays` is that rule, measured per machine between the sizes every CPU agrees
on (:mod:`nasdepth.train.cpu_grouped`). Parameter and buffer names are the
original model's; each fold's own ``nn.Module`` holds views of its slices (:class:`FoldStack`).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.arch.blocks.squeeze import DropPath
from nasdepth.train.cpu_grouped import Measure, grouping_fast
from nasdepth.train.stacked import (
    StackedAffineNorm,
    StackedBatchNorm1d,
    StackedLinear,
    SwappedFolds,
    _owns_state,
    _stack,
    own_tensors,
)


class GroupedConv(nn.Module):
    """k ``nn.Conv2d`` (or ``nn.Conv1d``) as one convolution with ``k`` times the groups on
    ``(B, k*C, H, W)`` (``(B, k*C, L)``). The weight is stored ``(k, out, in/groups, *kernel)``:
    fold f's slice is its own weight."""

    def __init__(self, mods: Sequence[nn.Conv1d | nn.Conv2d]) -> None:
        super().__init__()
        m0 = mods[0]
        self.conv = F.conv2d if isinstance(m0, nn.Conv2d) else F.conv1d
        self.k, self.groups = len(mods), m0.groups
        self.stride, self.padding, self.dilation = m0.stride, m0.padding, m0.dilation
        self.weight = nn.Parameter(_stack(mods, "weight"))  # type: ignore[arg-type]
        bias = _stack(mods, "bias")
        self.bias = None if bias is None else nn.Parameter(bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.flatten(0, 1)
        b = None if self.bias is None else self.bias.flatten()
        return self.conv(x, w, b, self.stride, self.padding, self.dilation,
                         self.k * self.groups)


class GroupedBatchNorm(StackedBatchNorm1d):
    """k ``nn.BatchNorm2d`` (or ``nn.BatchNorm1d`` on 1-D maps) on the grouped layout, whose
    channels already are the folds' ``k*C`` side by side: one ``batch_norm``, each fold with its
    own batch statistics and running buffers (:class:`StackedBatchNorm1d`'s)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


class GroupedGroupNorm(StackedAffineNorm):
    """k ``nn.GroupNorm`` of G groups as one ``group_norm`` of ``k*G`` groups (a fold's
    channels form its own G groups), with :class:`StackedAffineNorm`'s weights."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert self.groups is not None
        return F.group_norm(x, self.k * self.groups,
                            None if self.weight is None else self.weight.view(-1),
                            None if self.bias is None else self.bias.view(-1), self.eps)


class GroupedLinear(StackedLinear):
    """k ``nn.Linear`` on ``(B, k*in)`` (each fold's features side by side) as one ``baddbmm``,
    back to ``(B, k*out)``: :class:`~nasdepth.train.stacked.StackedLinear`'s weights (stored
    transposed, ``(k, in, out)``) on the grouped layout."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xk = x.reshape(b, self.k, -1).transpose(0, 1)  # (k, B, in)
        w = self.weight
        out = torch.bmm(xk, w) if self.bias is None else torch.baddbmm(self.bias[:, None], xk, w)
        return out.transpose(0, 1).reshape(b, -1)


def _grouper(m: nn.Module) -> Any:
    """The grouped replacement of a leaf that owns state, or None where there is none (batch
    norm of flat features is :mod:`~nasdepth.train.stacked`'s, and refused by the check)."""
    if type(m) in (nn.Conv1d, nn.Conv2d) and m.padding_mode == "zeros":
        return GroupedConv
    if type(m) in (nn.BatchNorm1d, nn.BatchNorm2d):
        return GroupedBatchNorm
    if type(m) is nn.GroupNorm:
        return GroupedGroupNorm
    if type(m) is nn.Linear:
        return GroupedLinear
    return None


def can_group(model: nn.Module, input_shape: Sequence[int]) -> bool:
    """1-D or 2-D maps in (``(C, L)`` or ``(C, H, W)``), and every module that owns
    parameters or buffers has a grouped twin (no auxiliary heads: their logits leave the
    network beside the output). Whether the network also keeps each fold's channels together
    is checked on a batch by :func:`group_folds`. Not with stochastic depth (``drop_path``
    above 0)."""
    if len(input_shape) not in (2, 3) or len(getattr(model, "aux", ()) or ()):
        return False
    # stochastic depth drops whole samples: grouped, a sample's row holds every fold, so all
    # folds would drop it together (each its own mask on the other engines)
    if any(isinstance(m, DropPath) and m.p > 0 for m in model.modules()):
        return False
    return all(_grouper(m) is not None for m in model.modules() if _owns_state(m))


def conv_calls(model: nn.Module, input_shape: Sequence[int], batch: int
               ) -> list[tuple[float, int, int, int]]:
    """Each convolution's forward call on a batch of ``batch`` samples (one shape pass on a
    single sample): its multiply-adds, output channels, output map side (the geometric mean
    over its axes) and number of axes."""
    calls: list[tuple[float, int, int, int]] = []

    def record(m: nn.Module, _: Any, out: torch.Tensor) -> None:
        assert isinstance(m, (nn.Conv1d, nn.Conv2d))
        positions = out[0].shape[1:]
        side = round(math.prod(positions) ** (1 / len(positions)))
        calls.append((batch * out[0].numel() * (m.in_channels // m.groups)
                      * math.prod(m.kernel_size), m.out_channels, side, len(positions)))

    handles = [m.register_forward_hook(record) for m in model.modules()
               if isinstance(m, (nn.Conv1d, nn.Conv2d))]
    was = model.training
    try:
        p = next(model.parameters())
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *input_shape, device=p.device, dtype=p.dtype))
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return calls


def conv_macs(model: nn.Module, input_shape: Sequence[int], batch: int) -> list[float]:
    """Multiply-adds of each convolution's forward call on a batch of ``batch`` samples."""
    return [c[0] for c in conv_calls(model, input_shape, batch)]


def grouping_pays(model: nn.Module, input_shape: Sequence[int], batch: int, k: int = 5,
                  precision: str = "fp32", measure: Measure | None = None) -> bool:
    """``parallel: auto`` on a CPU: group a CNN's ``k`` folds where its typical convolution
    (the median call by multiply-adds) runs faster grouped on this CPU in ``precision``
    (:func:`~nasdepth.train.cpu_grouped.grouping_fast`: small ones always, mid-sized ones as
    measured on this machine, large ones never), so that per-call overhead, not arithmetic,
    is what the k folds share. ``measure``: the reference measurement for an answer not yet
    cached (the CV driver passes its own); without it a mid-sized CNN is not grouped."""
    if not can_group(model, input_shape):
        return False
    try:
        calls = sorted(conv_calls(model, input_shape, batch))
    except (RuntimeError, ValueError, TypeError):  # a network one sample cannot pass: as is
        return False
    if not calls:
        return False
    macs, channels, side, dims = calls[(len(calls) - 1) // 2]
    return grouping_fast(macs, channels, side, dims, batch, k, precision, measure)


class GroupedFolds(SwappedFolds):
    """k models of one structure on 1-D or 2-D maps as one network of grouped layers."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        super().__init__(models, device, _grouper, GroupedLinear)
        self.channels_last = device.type == "cpu"  # 2-D maps: the faster layout there

    def __call__(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        """``(k, B, C, *positions)`` inputs -> ``(k, B, classes)`` logits."""
        self._set_mode(train)
        k, b, c = x.shape[:3]
        xg = x.transpose(0, 1).reshape(b, k * c, *x.shape[3:])
        if self.channels_last and xg.dim() == 4:
            xg = xg.contiguous(memory_format=torch.channels_last)
        out = self.net(xg)
        return (out.reshape(b, k, -1).transpose(0, 1),)

    @torch.no_grad()
    def matches_folds(self, input_shape: Sequence[int], rows: int = 3) -> bool:
        """Whether the grouped network gives every fold model's own outputs (eval mode, fp32,
        a random batch): False where a layer mixes the folds' channels."""
        p = self.params[next(iter(self.params))]
        x = torch.randn(self.k, rows, *input_shape, generator=torch.Generator().manual_seed(0))
        x = x.to(p.device)
        modes = [m.training for m in self.models]
        try:
            got = self(x, train=False)[0]
            for f, model in enumerate(self.models):
                model.eval()
                want = model(x[f])
                if not isinstance(want, torch.Tensor) or want.shape != got[f].shape \
                        or not torch.allclose(got[f], want, rtol=1e-3, atol=1e-4):
                    return False
        except (RuntimeError, TypeError, AttributeError, ValueError):
            return False  # outputs the grouped network cannot give (several tasks' logits)
        finally:
            for model, mode in zip(self.models, modes, strict=True):
                model.train(mode)
        return True


def group_folds(models: Sequence[nn.Module], device: torch.device,
                input_shape: Sequence[int]) -> GroupedFolds | None:
    """The folds' models as one :class:`GroupedFolds`, or None where they cannot be grouped
    (a layer without a grouped twin, or one that moves channels and so mixes folds)."""
    if not can_group(models[0], input_shape):
        return None
    grouped = GroupedFolds(models, device)
    if grouped.matches_folds(input_shape):
        return grouped
    for model in grouped.models:  # they hold views of the stack: tensors of their own again
        own_tensors(model)
    return None


def groups_cleanly(model: nn.Module, input_shape: Sequence[int], k: int = 2) -> bool:
    """Whether ``k`` folds of ``model`` (copies with weights of their own) group into a network
    that gives each fold's outputs (:meth:`GroupedFolds.matches_folds`); ``model`` itself is
    left as it was."""
    if not can_group(model, input_shape):
        return False
    copies = [copy.deepcopy(model).cpu() for _ in range(k)]
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for f, m in enumerate(copies[1:], 1):
            for p in m.parameters():  # distinct folds: a mix-up shows in the outputs
                p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.1 * f)
    return group_folds(copies, torch.device("cpu"), input_shape) is not None
