"""Recurrent blocks on sequences: vanilla ``rnn`` (tanh or relu), ``lstm`` and ``gru``.

One block is one recurrent layer (``depth`` stacks them), run by PyTorch's fused ``nn.RNN``,
``nn.LSTM`` or ``nn.GRU`` over the whole sequence. Blocks pass ``(N, C, L)`` tensors like the
1-D convolutions, so recurrent and convolutional stages mix (a conv stem, then GRU layers) and
the head's readouts work on either. ``skip`` adds a residual connection around each layer (a
linear projection where the width changes); ``bidirectional`` runs a second layer over the
reversed sequence, each direction with half the width.

A bidirectional block holds two unidirectional layers rather than one ``bidirectional=True``
module, so that the probes can cut either direction into chunks (:class:`TimeTap`); on a CPU
PyTorch runs the two directions one after the other anyway.
"""

from __future__ import annotations

import torch
from torch import nn

from nasdepth.arch.blocks.base import Block, register_block
from nasdepth.arch.config import StageConfig
from nasdepth.arch.layers import Ops
from nasdepth.arch.rules import check_gate_bias

TIME_SAMPLES = 8  # sampled steps of a TimeTap: 8 chunks per direction cost ~nothing extra


class SequenceNorm(nn.Module):
    """A normalization of each step's features on ``(N, L, C)``: ``layer`` (LayerNorm over C, as
    in Transformers), ``batch`` (per-feature statistics over batch and steps), ``group``
    (GroupNorm over C per step) or ``none``."""

    def __init__(self, kind: str, channels: int) -> None:
        super().__init__()
        self.kind = kind
        self.norm = Ops(0).norm(kind, channels)  # flat features' norms: each step is a row

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind in ("layer", "none"):
            return self.norm(x)
        # batch and group norms take (rows, C): every step of every sample is one row
        n, steps, c = x.shape
        return self.norm(x.reshape(n * steps, c)).view(n, steps, c)


def sample_steps(length: int, samples: int) -> list[int]:
    """``samples`` steps spread evenly over ``0 .. length - 1``, both ends included."""
    if length <= samples:
        return list(range(length))
    return sorted({round(i * (length - 1) / (samples - 1)) for i in range(samples)})


class TimeTap:
    """Ask a recurrent block for the gradient with respect to its hidden state at sampled steps.

    Set ``block.time_tap = TimeTap()`` before a forward pass with gradients on: each direction
    then runs in chunks that end at the sampled ``steps`` (processing order: step 0 is the
    first the cell reads, the last ``steps`` entry its final state) and a zero tensor is added
    to the state there, the output at that step included. ``deltas[d][i]`` holds those zeros
    (``(h,)``, or ``(h, c)`` for an LSTM, each ``(1, N, hidden)``) for direction ``d`` and step
    ``i``: the gradient of a loss with respect to them is the gradient with respect to the
    hidden state at that step, through every later step and every layer above. Each chunk is
    still one fused call.
    """

    def __init__(self, samples: int = TIME_SAMPLES) -> None:
        self.samples = int(samples)
        self.steps: list[int] = []
        self.deltas: list[list[tuple[torch.Tensor, ...]]] = []


def under_vmap(x: torch.Tensor) -> bool:
    """Is ``x`` a batched tensor inside ``torch.func.vmap`` (the fold-parallel engine)?"""
    check = getattr(getattr(torch._C, "_functorch", None), "is_batchedtensor", None)
    return bool(check(x)) if check is not None else False


class SequenceBlock(Block):
    """Base of the sequence blocks: 1-D inputs only; a stride pools before the block."""

    strides_by_pool = True


class RecurrentBlock(SequenceBlock):
    """One recurrent layer over ``(N, C, L)``: ``C`` features per step in, ``width`` out."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int, stage: StageConfig,
                 skip: bool, ops: Ops) -> None:
        super().__init__(in_channels, out_channels, stride=stride, stage=stage, skip=skip, ops=ops)
        self.bidirectional = stage.bidirectional
        hidden = out_channels // 2 if stage.bidirectional else out_channels
        self.rnn = self.make_cell(in_channels, hidden, stage)
        self.rnn_reverse = (self.make_cell(in_channels, hidden, stage) if stage.bidirectional
                            else None)
        self.drop = nn.Dropout(stage.dropout) if stage.dropout > 0 else nn.Identity()
        if skip:
            self.shortcut = (nn.Identity() if in_channels == out_channels
                             else nn.Linear(in_channels, out_channels, bias=False))
        self.norm = SequenceNorm(stage.norm, out_channels)
        self.time_tap: TimeTap | None = None

    def make_cell(self, cin: int, hidden: int, stage: StageConfig) -> nn.RNNBase:
        raise NotImplementedError

    def main(self, x: torch.Tensor) -> torch.Tensor:
        if under_vmap(x):  # on this error cross_validate trains the folds one after another
            raise NotImplementedError(
                f"vmap: the fused {type(self.rnn).__name__} layer of a {self.name} block has no "
                "batching rule (its folds train one after another)")
        seq = x.transpose(1, 2)  # (N, L, C): the fused layers' batch-first layout
        out = self._run(self.rnn, seq)
        if self.rnn_reverse is not None:
            back = self._run(self.rnn_reverse, seq.flip(1)).flip(1)
            out = torch.cat([out, back], dim=2)
        out = self.drop(out)
        if self.shortcut is not None:
            out = out + self.shortcut(seq)
        return self.norm(out).transpose(1, 2)

    def _run(self, rnn: nn.RNNBase, seq: torch.Tensor) -> torch.Tensor:
        tap = self.time_tap
        if tap is None or not torch.is_grad_enabled():
            return rnn(seq)[0]
        tap.steps = sample_steps(seq.shape[1], tap.samples)
        outs: list[torch.Tensor] = []
        deltas: list[tuple[torch.Tensor, ...]] = []
        state: torch.Tensor | tuple[torch.Tensor, ...] | None = None
        start = 0
        was = rnn.training
        rnn.training = True  # cuDNN's RNN backward exists in training mode only (one layer:
        try:                 # no dropout inside the module, so nothing else changes)
            for t in tap.steps:
                out, state = rnn(seq[:, start:t + 1], state)
                parts = state if isinstance(state, tuple) else (state,)
                zeros = tuple(torch.zeros_like(s, requires_grad=True) for s in parts)
                parts = tuple(s + z for s, z in zip(parts, zeros, strict=True))
                state = parts if isinstance(state, tuple) else parts[0]
                # the output at step t is h_t itself: it takes the same perturbation
                outs.append(torch.cat([out[:, :-1], parts[0].transpose(0, 1)], dim=1))
                deltas.append(zeros)
                start = t + 1
        finally:
            rnn.training = was
        tap.deltas.append(deltas)
        return torch.cat(outs, dim=1)


@register_block("rnn")
class RNNBlock(RecurrentBlock):
    """Vanilla (Elman) recurrent layer, ``nonlinearity`` tanh or relu."""

    def make_cell(self, cin: int, hidden: int, stage: StageConfig) -> nn.RNNBase:
        return nn.RNN(cin, hidden, nonlinearity=stage.nonlinearity, batch_first=True)


def _gate_bias(rnn: nn.RNNBase, gate: int, hidden: int, value: float) -> None:
    """Start gate ``gate`` (its index in PyTorch's stacked gate weights) at bias ``value``."""
    check_gate_bias(value)
    bias_ih: torch.Tensor = rnn.bias_ih_l0  # type: ignore[assignment]
    bias_hh: torch.Tensor = rnn.bias_hh_l0  # type: ignore[assignment]
    with torch.no_grad():
        bias_ih[gate * hidden:(gate + 1) * hidden].fill_(float(value))
        bias_hh[gate * hidden:(gate + 1) * hidden].zero_()


@register_block("lstm")
class LSTMBlock(RecurrentBlock):
    """LSTM layer; the forget gate's bias starts at ``gate_bias`` (default 1, Jozefowicz et al.
    2015), so the cell state carries information across steps from the first update on."""

    def make_cell(self, cin: int, hidden: int, stage: StageConfig) -> nn.RNNBase:
        lstm = nn.LSTM(cin, hidden, batch_first=True)
        # gates are stacked (input, forget, cell, output)
        _gate_bias(lstm, 1, hidden, 1.0 if stage.gate_bias is None else stage.gate_bias)
        return lstm


@register_block("gru")
class GRUBlock(RecurrentBlock):
    """GRU layer (PyTorch's initialization); ``gate_bias`` starts the update gate, which keeps
    the previous state (PyTorch's h' = (1 - z) * n + z * h), at that bias."""

    def make_cell(self, cin: int, hidden: int, stage: StageConfig) -> nn.RNNBase:
        gru = nn.GRU(cin, hidden, batch_first=True)
        if stage.gate_bias is not None:  # gates are stacked (reset, update, new)
            _gate_bias(gru, 1, hidden, stage.gate_bias)
        return gru


class LastStep(nn.Module):
    """Readout ``(N, C, L) -> (N, C)``: the last step; after a bidirectional recurrent block the
    forward half at the last step and the reverse half at the first (each direction's final
    state)."""

    def __init__(self, split: bool = False) -> None:
        super().__init__()
        self.split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.split:
            return x[..., -1]
        half = x.shape[1] // 2
        return torch.cat([x[:, :half, -1], x[:, half:, 0]], dim=1)


class FlattenSteps(nn.Module):
    """Readout ``(N, C, L) -> (N, C * L)``: every step's state into the head, as the MNIST-1D
    paper's GRU (Greydanus 2020) flattens its bidirectional GRU's output over all 40 steps
    into one linear layer. ``steps``: the length the head was built for (a sequence of another
    length would not fit its linear layer: said here rather than as a shape mismatch)."""

    def __init__(self, steps: int) -> None:
        super().__init__()
        self.steps = int(steps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.steps:
            raise ValueError(f"head_pool 'flatten' was built for {self.steps} steps; "
                             f"got a sequence of {x.shape[-1]}")
        return x.flatten(1)
