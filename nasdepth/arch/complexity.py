"""Parameter and FLOP counts of a model, for budgets, tables and the preset checks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nasdepth.arch.build import count_parameters


def complexity(model: nn.Module, input_shape: Sequence[int]) -> dict[str, int]:
    """``{"params": trainable parameters, "flops": FLOPs of one forward pass of one sample}``.

    FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (a multiply-add counts 2;
    convolutions and matrix products only, as usual). The model runs in eval mode on the device
    of its parameters, so a model built under ``torch.device("meta")`` is counted without any
    arithmetic: that is how the CLI counts a 138M-parameter VGG in a fraction of a second.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros(1, *(int(s) for s in input_shape), device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return {"params": count_parameters(model), "flops": int(counter.get_total_flops())}
