"""``build_model(cfg, input_shape, num_classes)``: an ``ArchConfig`` becomes an ``nn.Module``.

The input rank picks the layers: ``(F,)`` -> MLP, ``(C, L)`` -> 1-D convs, ``(C, H, W)`` -> 2-D.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nasdepth.arch.blocks import conv_norm_act, get_block
from nasdepth.arch.config import ArchConfig
from nasdepth.arch.layers import Ops
from nasdepth.errors import ConfigError, UnknownNameError

INITS = ("default", "kaiming", "xavier", "orthogonal")


class Network(nn.Module):
    """stem -> blocks (in forward order) -> global pooling -> head.

    ``named_blocks()`` lists the stem, every block and the head in forward order: the units the
    probes profile from input to output.
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)))

    def named_blocks(self) -> list[tuple[str, nn.Module]]:
        named = [("stem", self.stem)]
        named += [(f"block{i}.{type(b).__name__}", b) for i, b in enumerate(self.blocks)]
        return named + [("head", self.head)]


def input_rank(input_shape: Sequence[int]) -> int:
    """0 for flat features ``(F,)``, 1 for ``(C, L)``, 2 for ``(C, H, W)``."""
    if len(input_shape) not in (1, 2, 3) or any(int(s) < 1 for s in input_shape):
        raise ConfigError("the data", "input_shape", tuple(input_shape),
                          "(features,), (channels, length) or (channels, height, width)")
    return len(input_shape) - 1


def build_model(cfg: ArchConfig, input_shape: Sequence[int], num_classes: int) -> Network:
    """Build a fresh, initialized network for samples of ``input_shape`` and ``num_classes``."""
    if num_classes < 2:
        raise ConfigError("the data", "num_classes", num_classes, "an int >= 2")
    ops = Ops(input_rank(input_shape))
    channels = int(input_shape[0])
    first = cfg.stages[0]
    stem_width = cfg.stem_width or first.width
    stem = conv_norm_act(ops, channels, stem_width, first)
    blocks: list[nn.Module] = []
    cin = stem_width
    for stage in cfg.stages:
        block_cls = get_block(stage.block)
        for i in range(stage.depth):
            stride = stage.stride if (i == 0 and not ops.flat) else 1
            block = block_cls(cin, stage.width, stride=stride, stage=stage, skip=cfg.skip, ops=ops)
            blocks.append(block)
            cin = block.out_channels
    head_layers: list[nn.Module] = [ops.global_pool()]
    for hidden in cfg.head_hidden:
        head_layers += [nn.Linear(cin, hidden), Ops.act(first.activation)]
        cin = hidden
    head_layers.append(nn.Linear(cin, num_classes))
    model = Network(stem, blocks, nn.Sequential(*head_layers))
    initialize(model, cfg.init)
    return model


def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialize conv/linear weights; ``default`` keeps PyTorch's own initialization."""
    if scheme not in INITS:
        raise UnknownNameError("the architecture", "init", scheme, INITS)
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if scheme == "kaiming":
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif scheme == "xavier":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.orthogonal_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
