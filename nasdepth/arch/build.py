"""``build_model(cfg, input_shape, num_classes)``: an ``ArchConfig`` becomes an ``nn.Module``.

The input rank picks the layers: ``(F,)`` -> MLP, ``(C, L)`` -> 1-D convs, ``(C, H, W)`` -> 2-D.
Everything the classic families differ in (stem layers, pooled or strided downsampling,
transition layers, head pooling and hidden layers) is read from the config and from the block
classes' declarations; no family is special-cased here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import torch
from torch import nn

from nasdepth.arch.blocks import conv_norm_act, get_block, has_transition
from nasdepth.arch.blocks.attention import AttentionPool
from nasdepth.arch.blocks.recurrent import FlattenSteps, LastStep, RecurrentBlock
from nasdepth.arch.config import (
    AUX_HEADS,
    HEAD_POOLS,
    INITS,
    SEQUENCE_POOLS,
    STEM_KINDS,
    ArchConfig,
)
from nasdepth.arch.layers import Ops
from nasdepth.errors import ConfigError, UnknownNameError

SOURCE = "the architecture"


class Network(nn.Module):
    """stem -> blocks (in forward order) -> head; optional auxiliary heads tap blocks.

    ``named_blocks()`` lists the stem, every block and the head in forward order: the units the
    probes profile from input to output. In training mode ``forward`` stores the auxiliary
    logits in ``aux_logits`` (empty without auxiliary heads, and in eval mode).
    """

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], head: nn.Module,
                 aux_heads: Mapping[int, nn.Module] | None = None) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.head = head
        # keyed by the index of the block whose output the auxiliary head reads
        self.aux = nn.ModuleDict({str(i): m for i, m in (aux_heads or {}).items()})
        self.aux_logits: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        aux: list[torch.Tensor] = []
        if self.training and len(self.aux):
            for i, block in enumerate(self.blocks):
                x = block(x)
                if str(i) in self.aux:
                    aux.append(self.aux[str(i)](x))
        else:
            x = self.blocks(x)
        self.aux_logits = aux
        return self.head(x)

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
    if not cfg.stages:
        raise ConfigError(SOURCE, "stages", list(cfg.stages), "a non-empty list of stages")
    if cfg.init not in INITS:
        raise UnknownNameError(SOURCE, "init", cfg.init, INITS)
    ops = Ops(input_rank(input_shape))
    stem, cin = _build_stem(cfg, ops, int(input_shape[0]))
    blocks: list[nn.Module] = []
    aux: dict[int, nn.Module] = {}
    for si, stage in enumerate(cfg.stages):
        if stage.depth < 1:
            raise ConfigError(SOURCE, "depth", stage.depth, "an int >= 1")
        block_cls = get_block(stage.block)
        stride = 1 if ops.flat else stage.stride
        if has_transition(block_cls, si, stride) and block_cls.transition is not None:
            transition = block_cls.transition(cin, stride=stride, stage=stage, ops=ops)
            blocks.append(transition)
            cin, stride = cast(int, transition.out_channels), 1
        # a run of stages of a block with an entry (a Transformer's embedding) opens with it
        if block_cls.entry is not None and (si == 0 or cfg.stages[si - 1].block != stage.block):
            entry = block_cls.entry(cin, stage=stage, ops=ops)
            blocks.append(entry)
            cin = cast(int, entry.out_channels)
        for i in range(stage.depth):
            block = block_cls(cin, stage.width, stride=stride if i == 0 else 1, stage=stage,
                              skip=cfg.skip, ops=ops)
            blocks.append(block)
            cin = block.out_channels
        if si in cfg.aux_heads:
            aux[len(blocks) - 1] = _aux_head(cfg, ops, cin, num_classes)
    for a in cfg.aux_heads:
        if not 0 <= a < len(cfg.stages):
            raise ConfigError(SOURCE, "aux_heads", list(cfg.aux_heads),
                              f"stage indices in 0..{len(cfg.stages) - 1}")
    steps = _head_steps(stem, blocks, input_shape) if cfg.head_pool == "flatten" else 1
    head = _build_head(cfg, ops, cin, num_classes, preactivated=get_block(
        cfg.stages[-1].block).preactivation, steps=steps)
    model = Network(stem, blocks, head, aux)
    initialize(model, cfg.init)
    return model


def _build_stem(cfg: ArchConfig, ops: Ops, channels: int) -> tuple[nn.Module, int]:
    first = cfg.stages[0]
    layers: list[nn.Module] = []
    cin = channels
    for layer in cfg.stem:
        if layer.kind not in STEM_KINDS:
            raise UnknownNameError(f"{SOURCE} stem", "kind", layer.kind, STEM_KINDS)
        k = first.kernel_size if layer.kernel_size is None else layer.kernel_size
        stride = 1 if ops.flat else layer.stride
        if layer.kind == "conv":
            width = layer.width or cfg.stem_width or first.width
            layers.append(conv_norm_act(ops, cin, width, first, kernel_size=k, stride=stride))
            cin = width
        else:
            kind = "max" if layer.kind == "maxpool" else "avg"
            layers.append(ops.pool(stride, kind, kernel_size=layer.kernel_size))
    return nn.Sequential(*layers), cin


def _aux_head(cfg: ArchConfig, ops: Ops, cin: int, num_classes: int) -> nn.Module:
    """An auxiliary classifier on a block's output: pooling + linear, or torchvision's
    GoogLeNet ``InceptionAux`` (same layers and sizes, so the parameter counts agree)."""
    if cfg.aux_head not in AUX_HEADS:
        raise UnknownNameError(SOURCE, "aux_head", cfg.aux_head, AUX_HEADS)
    if cfg.aux_head == "linear":
        return nn.Sequential(ops.global_pool(), nn.Linear(cin, num_classes))
    if ops.rank != 2:
        raise ConfigError(SOURCE, "aux_head", cfg.aux_head,
                          "linear for flat and 1-D inputs (inception: 2-D maps)")
    return nn.Sequential(
        nn.AdaptiveAvgPool2d(4), nn.Conv2d(cin, 128, 1, bias=False),
        nn.BatchNorm2d(128, eps=0.001), nn.ReLU(inplace=True), nn.Flatten(1),
        nn.Linear(128 * 16, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
        nn.Linear(1024, num_classes))


def _head_steps(stem: nn.Module, blocks: Sequence[nn.Module], input_shape: Sequence[int]
                ) -> int:
    """The sequence length reaching the head (strides and pools shorten it): one forward of a
    zero sample through the stem and blocks in eval mode (``flatten`` readout only)."""
    body = nn.Sequential(stem, *blocks).eval()
    with torch.no_grad():
        return int(body(torch.zeros(1, *(int(s) for s in input_shape))).shape[-1])


def _build_head(cfg: ArchConfig, ops: Ops, cin: int, num_classes: int, *,
                preactivated: bool, steps: int = 1) -> nn.Sequential:
    """[final norm + act after pre-activation blocks] -> pool -> (hidden, act, dropout)* ->
    [dropout when there is no hidden layer] -> linear; the dropout placement of VGG,
    GoogLeNet and MobileNetV2 alike."""
    if cfg.head_pool not in HEAD_POOLS:
        raise UnknownNameError(SOURCE, "head_pool", cfg.head_pool, HEAD_POOLS)
    if cfg.head_pool_size < 1:
        raise ConfigError(SOURCE, "head_pool_size", cfg.head_pool_size, "an int >= 1")
    if not 0 <= cfg.head_dropout < 1:
        raise ConfigError(SOURCE, "head_dropout", cfg.head_dropout, "a number in [0, 1)")
    last = cfg.stages[-1]
    layers: list[nn.Module] = []
    if preactivated:
        layers += [ops.norm(last.norm, cin), ops.act(last.activation)]
    if cfg.head_pool in SEQUENCE_POOLS:
        layers.append(_sequence_readout(cfg, ops, cin, steps))
    else:
        layers.append(ops.global_pool(cfg.head_pool, cfg.head_pool_size))
    features = ops.pooled_features(cin, cfg.head_pool_size)
    if cfg.head_pool == "flatten":
        features = cin * steps
    for hidden in cfg.head_hidden:
        layers += [nn.Linear(features, hidden), Ops.act(last.activation)]
        if cfg.head_dropout > 0:
            layers.append(nn.Dropout(cfg.head_dropout))
        features = hidden
    if not cfg.head_hidden and cfg.head_dropout > 0:
        layers.append(nn.Dropout(cfg.head_dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


def _sequence_readout(cfg: ArchConfig, ops: Ops, cin: int, steps: int = 1) -> nn.Module:
    """``last`` step, ``attention`` pooling or every step ``flatten``ed: readouts of 1-D
    inputs, one vector per sample."""
    if ops.rank != 1:
        raise ConfigError(SOURCE, "head_pool", cfg.head_pool,
                          "avg or max for flat and 2-D inputs (last and attention read "
                          "sequences: 1-D (N, C, L) inputs)")
    if cfg.head_pool_size != 1:
        raise ConfigError(SOURCE, "head_pool_size", cfg.head_pool_size,
                          f"1 with head_pool {cfg.head_pool!r} (one vector per sample)")
    if cfg.head_pool == "attention":
        return AttentionPool(cin)
    if cfg.head_pool == "flatten":
        return FlattenSteps(steps)
    last = cfg.stages[-1]
    return LastStep(split=bool(last.bidirectional)
                    and issubclass(get_block(last.block), RecurrentBlock))


def initialize(model: nn.Module, scheme: str) -> None:
    """Re-initialize conv/linear weights; ``default`` keeps PyTorch's own initialization."""
    if scheme not in INITS:
        raise UnknownNameError(SOURCE, "init", scheme, INITS)
    if scheme == "default":
        return
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
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
