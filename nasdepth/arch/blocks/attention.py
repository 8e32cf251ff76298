"""Transformer encoder layers on sequences, an embedding that opens them, attention pooling.

A ``transformer`` block is one encoder layer (``depth`` stacks them): multi-head
self-attention, then a position-wise feed-forward network of ``expansion * width`` units, each
sublayer with dropout and a normalization before it (``norm_first``, pre-norm) or after the
residual sum (post-norm, the original Transformer). ``skip=False`` removes both residual
connections: the plain twin, whose depth trains as a plain network's does. ``norm: layer`` is
the usual choice (LayerNorm over each step's features).

A run of transformer stages opens with :class:`SequenceEmbedding` (the block's ``entry``): a
1x1 projection of the input features to the model width and the positional encoding, since
attention by itself does not know the order of the steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from nasdepth.arch.blocks.base import register_block
from nasdepth.arch.blocks.recurrent import SequenceBlock, SequenceNorm
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops


def sinusoidal(length: int, channels: int, device: torch.device, dtype: torch.dtype
               ) -> torch.Tensor:
    """The sine/cosine encoding of Vaswani et al., ``(channels, length)``."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, channels, 2, device=device, dtype=torch.float32)
                     * (-math.log(10000.0) / max(channels, 1)))
    pe = torch.zeros(length, channels, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, :channels // 2]
    return pe.T.to(dtype)


class SequenceEmbedding(nn.Module):
    """Opens a run of transformer stages: a 1x1 projection of each step's features to the
    stage width (where they differ) and the ``positional`` encoding."""

    def __init__(self, in_channels: int, *, stage: StageConfig, ops: Ops) -> None:
        super().__init__()  # stage.positional: checked by the transformer block's rules
        self.in_channels, self.out_channels = in_channels, stage.width
        self.positional = stage.positional
        self.proj = (nn.Conv1d(in_channels, stage.width, 1) if in_channels != stage.width
                     else nn.Identity())
        self._pe: torch.Tensor | None = None  # cached for the last length, device and dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.positional == "none":
            return x
        pe = self._pe
        if pe is None or pe.shape[-1] != x.shape[-1] or pe.device != x.device \
                or pe.dtype != x.dtype:
            pe = self._pe = sinusoidal(x.shape[-1], x.shape[1], x.device, x.dtype)
        return x + pe


@register_block("transformer")
class TransformerBlock(SequenceBlock):
    """One encoder layer of width ``width`` (d_model) and ``heads`` attention heads."""

    layers = 4  # q/k/v projection, output projection, two feed-forward layers
    entry = SequenceEmbedding

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        heads = stage.heads  # checked by the block's rules (nasdepth.arch.rules)
        e = 4.0 if stage.expansion is None else stage.expansion
        self.norm_first = stage.norm_first
        # a wider stage projects its input; the embedding did so for the first one
        self.proj = nn.Linear(in_channels, out_channels) if in_channels != out_channels else None
        self.norm1 = SequenceNorm(stage.norm, out_channels)
        self.attn = nn.MultiheadAttention(out_channels, heads, dropout=stage.dropout,
                                          batch_first=True)
        hidden = max(1, round(out_channels * e))
        self.ff = nn.Sequential(nn.Linear(out_channels, hidden), Ops.act(stage.activation),
                                nn.Dropout(stage.dropout), nn.Linear(hidden, out_channels))
        self.norm2 = SequenceNorm(stage.norm, out_channels)
        self.drop = nn.Dropout(stage.dropout)
        if skip:  # the residual connections of both sublayers
            self.shortcut = nn.Identity()

    def main(self, x: torch.Tensor) -> torch.Tensor:
        h = x.transpose(1, 2)  # (N, L, C)
        if self.proj is not None:
            h = self.proj(h)
        h = self._sublayer(h, self.norm1, self._attend)
        h = self._sublayer(h, self.norm2, self.ff)
        return h.transpose(1, 2)

    def _attend(self, h: torch.Tensor) -> torch.Tensor:
        return self.attn(h, h, h, need_weights=False)[0]

    def _sublayer(self, h: torch.Tensor, norm: nn.Module,
                  f: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        residual = self.shortcut is not None
        if self.norm_first:
            out = self.drop(f(norm(h)))
            return h + out if residual else out
        out = self.drop(f(h))
        return norm(h + out if residual else out)


class AttentionPool(nn.Module):
    """Readout ``(N, C, L) -> (N, C)``: a learned score per step, softmax over the steps, the
    weighted mean of the steps' features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.score = nn.Linear(channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.transpose(1, 2)  # (N, L, C)
        weights = torch.softmax(self.score(seq), dim=1)  # (N, L, 1)
        return (seq * weights).sum(dim=1)
