"""Parameter and FLOP counts of a model or an architecture: the one place FLOPs are counted
(budgets, a trial's costs, ``nasdepth arch``, the preset checks).

FLOPs are those of one forward pass of one sample, a multiply-add counting 2, for the layers
that dominate: convolutions and linear layers, the layers (and the convention) of
``torch.utils.flop_counter.FlopCounterMode``, which a test checks gives the same totals. They
come from per-layer rules (:data:`FLOP_RULES`, fvcore style) applied by forward hooks to the
output shapes of one forward pass of one sample: milliseconds for the models a search samples,
where ``FlopCounterMode`` costs 1.5-2.5 s on its first use in every process.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from nasdepth.arch.build import build_model, count_parameters
from nasdepth.arch.config import ArchConfig

FlopRule = Callable[[Any, Any], int]


def _linear(module: nn.Linear, output: torch.Tensor) -> int:
    return 2 * output.numel() * module.in_features


def _conv(module: nn.modules.conv._ConvNd, output: torch.Tensor) -> int:
    fan_in = module.in_channels // module.groups * math.prod(module.kernel_size)
    return 2 * output.numel() * fan_in


def _recurrent(module: nn.RNNBase, output: tuple[torch.Tensor, Any]) -> int:
    """Input and recurrent matrix products of every step, layer and direction (gates: 1 for
    RNN, 3 for GRU, 4 for LSTM): what PyTorch's decomposed kernels run."""
    seq = output[0]
    steps = seq.shape[1] if module.batch_first else seq.shape[0]
    gates = {"LSTM": 4, "GRU": 3}.get(module.mode, 1)
    dirs = 2 if module.bidirectional else 1
    h = module.hidden_size
    total = 0
    for layer in range(module.num_layers):
        cin = module.input_size if layer == 0 else h * dirs
        total += 2 * steps * gates * h * (cin + h) * dirs
    return total


def _attention(module: nn.MultiheadAttention, output: tuple[torch.Tensor, Any]) -> int:
    """Self-attention (queries, keys and values of one length): the q/k/v and output
    projections, and the two products of the scores (q k^T, then the weights times v)."""
    out = output[0]
    steps = out.shape[1] if module.batch_first else out.shape[0]
    e = module.embed_dim
    return 2 * steps * e * 4 * e + 2 * 2 * steps * steps * e


#: layer type -> FLOPs of one call from the module and its output; a block made of other
#: weight layers (attention, recurrence) adds its rule here
FLOP_RULES: dict[type[nn.Module], FlopRule] = {
    nn.Linear: _linear,
    nn.Conv1d: _conv,
    nn.Conv2d: _conv,
    nn.Conv3d: _conv,
    nn.RNN: _recurrent,
    nn.LSTM: _recurrent,
    nn.GRU: _recurrent,
    nn.MultiheadAttention: _attention,
}


def count_flops(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Forward FLOPs of one sample of shape ``input_shape`` (eval mode, on the device of the
    model's parameters; ``meta`` costs no arithmetic)."""
    rules = [(m, FLOP_RULES[type(m)]) for m in model.modules() if type(m) in FLOP_RULES]
    total = 0

    def hook(rule: FlopRule) -> Callable[[nn.Module, Any, torch.Tensor], None]:
        def count(module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
            nonlocal total
            total += rule(module, output)
        return count

    handles = [m.register_forward_hook(hook(rule)) for m, rule in rules]
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *(int(s) for s in input_shape), device=device))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return total


def complexity(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """``{"params": trainable parameters, "flops": forward FLOPs of one sample}``. A model
    built under ``torch.device("meta")`` is counted without memory or arithmetic (but the
    first forward pass on meta tensors in a process costs seconds)."""
    return {"params": count_parameters(model), "flops": count_flops(model, input_shape)}


def config_complexity(cfg: ArchConfig, input_shape: Sequence[int], num_classes: int,
                      *, flops: bool = True) -> tuple[int, int | None]:
    """(parameters, forward FLOPs per sample or None) of the model ``cfg`` describes.

    Parameters alone come from a model built on the meta device (no memory, no init). FLOPs
    need one forward pass, run on the CPU with PyTorch's default init: milliseconds for the
    sizes a search samples, where the first forward pass on meta tensors costs seconds in each
    process (PyTorch's meta kernels load sympy). The init's draws happen in a forked RNG: a
    count leaves the global random state (and so the seeds of training) as it was.
    """
    cfg = replace(cfg, init="default")  # orthogonal init cannot run on meta tensors
    if not flops:
        with torch.device("meta"):
            return count_parameters(build_model(cfg, input_shape, num_classes)), None
    with torch.random.fork_rng(devices=[]):
        model = build_model(cfg, input_shape, num_classes)
    return count_parameters(model), count_flops(model, input_shape)
