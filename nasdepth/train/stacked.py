"""The k folds of an MLP as one model whose layers hold k stacked weights (grouped matmuls).

``vmap`` (:mod:`nasdepth.train.parallel`) batches any model, but on the CPU its per-operator
dispatch is most of an MLP step. For flat inputs every layer that owns state is linear or a
batch/layer/group norm, so each is swapped for a layer holding the k folds' tensors stacked on
a leading dimension, run as one batched call; activations travel as ``(k*B, features)``, so
every parameter-free layer works unchanged (it acts on each sample alone). What it gains:
``docs/data_and_training.md``, "Fold-parallel training". Parameter and buffer names are those
of the original model; each fold's own ``nn.Module`` holds views of its slices
(:class:`FoldStack`), so hooks and probes see each fold's current weights and gradients.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

Tensors = dict[str, torch.Tensor]


def _stack(mods: Sequence[nn.Module], name: str) -> torch.Tensor | None:
    first = getattr(mods[0], name)
    if first is None:
        return None
    return torch.stack([getattr(m, name).detach() for m in mods]).clone()


class StackedLinear(nn.Module):
    """k ``nn.Linear`` layers as one ``baddbmm``: ``(k*B, in) -> (k*B, out)``.

    The weight is stored transposed, ``(k, in, out)``: ``bmm``'s gradient then arrives in the
    parameter's own layout (with ``nn.Linear``'s ``(out, in)`` it arrives transposed and every
    step pays a copy to accumulate it). ``StackedFolds.transposed`` lists these weights, so
    that a fold's own ``nn.Linear`` views them back as ``(out, in)``."""

    def __init__(self, mods: Sequence[nn.Linear]) -> None:
        super().__init__()
        self.k = len(mods)
        weight = torch.stack([m.weight.detach() for m in mods])  # (k, out, in)
        self.weight = nn.Parameter(weight.transpose(1, 2).contiguous())
        bias = _stack(mods, "bias")
        self.bias = None if bias is None else nn.Parameter(bias)  # (k, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xk = x.reshape(self.k, -1, x.shape[-1])
        w = self.weight
        out = torch.bmm(xk, w) if self.bias is None else torch.baddbmm(self.bias[:, None], xk, w)
        return out.reshape(-1, out.shape[-1])


class StackedBatchNorm1d(nn.Module):
    """k ``nn.BatchNorm1d`` on ``(k*B, C)``: one ``batch_norm`` over ``(B, k*C)``, so each
    fold normalizes with its own batch statistics and updates its own running buffers."""

    running_mean: torch.Tensor | None
    running_var: torch.Tensor | None
    num_batches_tracked: torch.Tensor | None

    def __init__(self, mods: Sequence[nn.BatchNorm1d | nn.BatchNorm2d]) -> None:
        super().__init__()
        m0 = mods[0]
        self.k, self.eps, self.momentum = len(mods), m0.eps, m0.momentum
        self.track = m0.track_running_stats
        w, b = _stack(mods, "weight"), _stack(mods, "bias")
        self.weight = None if w is None else nn.Parameter(w)
        self.bias = None if b is None else nn.Parameter(b)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            self.register_buffer(name, _stack(mods, name) if self.track else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k, c = self.k, x.shape[-1]
        out = self.norm(x.reshape(k, -1, c).transpose(0, 1).reshape(-1, k * c))
        return out.reshape(-1, k, c).transpose(0, 1).reshape(-1, c)

    def norm(self, xt: torch.Tensor) -> torch.Tensor:
        """One ``batch_norm`` of ``xt`` whose channels (dimension 1) are the k folds' side by
        side, ``k*C``; the running buffers updated as ``nn.BatchNorm1d`` does."""
        momentum = self.momentum
        if self.training and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if momentum is None:  # cumulative moving average, as nn.BatchNorm1d does
                momentum = 1.0 / float(self.num_batches_tracked[0])
        use_batch = self.training or not self.track
        return F.batch_norm(
            xt,
            None if self.running_mean is None else self.running_mean.view(-1),
            None if self.running_var is None else self.running_var.view(-1),
            None if self.weight is None else self.weight.view(-1),
            None if self.bias is None else self.bias.view(-1),
            use_batch, 0.0 if momentum is None else momentum, self.eps)


class StackedAffineNorm(nn.Module):
    """k ``nn.LayerNorm`` (over features) or ``nn.GroupNorm`` on flat ``(k*B, C)`` data: the
    normalization is per sample; only the affine weights differ between folds."""

    def __init__(self, mods: Sequence[nn.LayerNorm | nn.GroupNorm]) -> None:
        super().__init__()
        m0 = mods[0]
        self.k, self.eps = len(mods), m0.eps
        self.groups = m0.num_groups if isinstance(m0, nn.GroupNorm) else None
        w, b = _stack(mods, "weight"), _stack(mods, "bias")
        self.weight = None if w is None else nn.Parameter(w)
        self.bias = None if b is None else nn.Parameter(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[-1]
        if self.groups is None:
            out = F.layer_norm(x, (c,), None, None, self.eps)
        else:
            out = F.group_norm(x, self.groups, None, None, self.eps)
        if self.weight is None:
            return out if self.bias is None else (out.reshape(self.k, -1, c)
                                                  + self.bias[:, None]).reshape(-1, c)
        out = out.reshape(self.k, -1, c)
        if self.bias is None:
            return (out * self.weight[:, None]).reshape(-1, c)
        return torch.addcmul(self.bias[:, None], out, self.weight[:, None]).reshape(-1, c)


def _stacker(m: nn.Module) -> Any:
    """The stacked replacement of a leaf that owns state, or None where we have none."""
    if type(m) is nn.Linear:
        return StackedLinear
    if type(m) is nn.BatchNorm1d:
        return StackedBatchNorm1d
    if (type(m) is nn.LayerNorm and len(m.normalized_shape) == 1) or type(m) is nn.GroupNorm:
        return StackedAffineNorm
    return None


def _owns_state(m: nn.Module) -> bool:
    return (any(True for _ in m.parameters(recurse=False))
            or any(b is not None for b in m.buffers(recurse=False)))


def own_tensors(model: nn.Module) -> nn.Module:
    """``model`` with parameters and buffers of its own (copies of their values): a fold model
    of a :class:`FoldStack` holds views of the stack's tensors, which the stack keeps
    changing."""
    for t in [*model.parameters(), *model.buffers()]:
        t.data = t.data.clone()
    return model


def can_stack(model: nn.Module, input_shape: Sequence[int]) -> bool:
    """Flat inputs, and every module that owns parameters or buffers has a stacked twin.

    Parameter-free modules act on each sample alone in the networks ``build_model`` makes for
    flat data (activations, dropout, identity); batch norm is the one layer that mixes samples.
    """
    if len(input_shape) != 1:
        return False
    return all(_stacker(m) is not None for m in model.modules() if _owns_state(m))


class FoldStack:
    """What both fold ensembles share: the k fold models, their stacked parameters and buffers
    (names as in the models), and each model bound to views of its slices.

    ``transposed``: names stacked as ``(k, in, out)`` and viewed back as ``(out, in)``. No copies
    are made: the fold models follow every optimizer step and buffer update of the stack."""

    models: list[nn.Module]
    params: Tensors
    buffers: Tensors
    transposed: frozenset[str] = frozenset()

    def __call__(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        """``(k, B, ...)`` inputs -> ``(k, B, C)`` logits (and auxiliary logits)."""
        raise NotImplementedError

    def _bind(self) -> None:
        self.k = len(self.models)
        # per stacked parameter: whether it is transposed, and its k fold parameters
        self._fold_params: list[tuple[torch.Tensor, bool, list[nn.Parameter]]] = [
            (self.params[name], name in self.transposed, [])
            for name, _ in self.models[0].named_parameters()]
        for f, model in enumerate(self.models):
            for (_, _, fold_params), (name, p) in zip(self._fold_params,
                                                      model.named_parameters(), strict=True):
                p.data = self._view(self.params[name], name, f)
                fold_params.append(p)
            for name, _ in list(model.named_buffers()):
                owner, _, attr = name.rpartition(".")
                module = model.get_submodule(owner) if owner else model
                module._buffers[attr] = self.buffers[name][f]

    def _view(self, t: torch.Tensor, name: str, k: int) -> torch.Tensor:
        return t[k].T if name in self.transposed else t[k]

    def stacked_params(self, params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The stacked tensors (``(k, ...)``, all folds) behind parameters of a fold model, in
        the order given (a transposed one's slices are its fold parameters transposed)."""
        owner = {id(p): stacked for stacked, _, fold_params in self._fold_params
                 for p in fold_params}
        return [owner[id(p)] for p in params]

    def bind_grads(self) -> None:
        """Give every fold model's parameters their slice of the stacked gradients as ``.grad``
        (views of this step's gradients: call after each backward that hooks read)."""
        for stacked, transposed, fold_params in self._fold_params:
            g = stacked.grad
            if g is None:
                for p in fold_params:
                    p.grad = None
                continue
            for p, view in zip(fold_params, g.unbind(0), strict=True):
                p.grad = view.T if transposed else view

    def unbind_grads(self) -> None:
        """Drop the fold models' gradient views (so no stale gradient is read, and the
        step's gradients are freed with the stacked ones)."""
        for _, _, fold_params in self._fold_params:
            for p in fold_params:
                p.grad = None

    def state(self, k: int) -> Tensors:
        """Fold ``k``'s tensors, shaped as in its own model (a snapshot)."""
        return {n: self._view(t, n, k).detach().clone()
                for n, t in {**self.params, **self.buffers}.items()}

    @torch.no_grad()
    def load(self, k: int, state: Tensors) -> None:
        for n, t in {**self.params, **self.buffers}.items():
            self._view(t, n, k).copy_(state[n])

    def materialize(self, k: int) -> nn.Module:
        """Fold ``k``'s own model: its tensors are views of the stack, always current."""
        return self.models[k]


class SwappedFolds(FoldStack):
    """k models of one structure as one network: a copy of the first whose every leaf that
    owns state is swapped for ``twin(leaf)``, a layer holding the k folds' tensors (built from
    the k leaves). ``transposed``: the twin class whose weight is stored ``(k, in, out)``."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device,
                 twin: Callable[[nn.Module], Any], transposed: type) -> None:
        self.models = [m.to(device) for m in models]
        self.net: Any = copy.deepcopy(self.models[0])
        modules = [dict(m.named_modules()) for m in self.models]
        for name, leaf in list(self.net.named_modules()):
            if not _owns_state(leaf):
                continue
            swapped = twin(leaf)([mods[name] for mods in modules])
            parent_name, _, attr = name.rpartition(".")
            parent = self.net.get_submodule(parent_name) if parent_name else self.net
            setattr(parent, attr, swapped.to(device))
        self.params: Tensors = dict(self.net.named_parameters())
        self.buffers: Tensors = {n: b for n, b in self.net.named_buffers() if b is not None}
        self.transposed = frozenset(f"{name}.weight" for name, m in self.net.named_modules()
                                    if isinstance(m, transposed))
        self._bind()
        self._mode: bool | None = None  # the mode ``net`` was last put in (None: not yet)

    def _set_mode(self, train: bool) -> None:
        if self._mode is not train:  # ``train()`` walks every module: only when it changes
            self.net.train(train)
            self._mode = train


class StackedFolds(SwappedFolds):
    """k models of one structure as one model of stacked layers."""

    def __init__(self, models: Sequence[nn.Module], device: torch.device) -> None:
        super().__init__(models, device, _stacker, StackedLinear)

    def __call__(self, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, ...]:
        """``(k, B, F)`` inputs -> ``(k, B, C)`` logits (and auxiliary logits)."""
        self._set_mode(train)
        k, b = x.shape[:2]
        out = self.net(x.reshape(k * b, *x.shape[2:]))
        aux = getattr(self.net, "aux_logits", None) or []
        if aux:
            self.net.aux_logits = []
        return tuple(t.reshape(k, b, -1) for t in (out, *aux))
