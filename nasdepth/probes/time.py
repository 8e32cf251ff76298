"""Gradients through time: how much of the loss's gradient reaches each step of a recurrent
layer's hidden state.

Vanishing gradients were first described for recurrent networks, through time rather than
through layers: the gradient of the loss with respect to the hidden state ``h_t`` is a product
of one Jacobian per later step, so a vanilla tanh RNN whose recurrent weights shrink the state
passes ``10^-k`` of the last step's gradient back ``t`` steps, and cannot learn what depends
on early inputs. LSTM and GRU gates are the answer (an open forget gate is a Jacobian of 1).

Once per epoch, with the rest of the probe-batch statistics (eval mode, no RNG draws, no
parameter gradient touched), every recurrent block of the model runs its probe batch with a
:class:`~nasdepth.arch.blocks.recurrent.TimeTap`: the sequence in chunks that end at
``samples`` evenly spaced steps (each chunk one fused call), a zero added to the hidden state
(and an LSTM's cell state) there, and one ``autograd.grad`` of the summed loss with respect to
those zeros. The epoch's trace row then holds

- ``time_steps``: per probed unit (None for units without a recurrent block), the sampled
  steps in the order the cell reads them (0 first, the last one its final state; a
  bidirectional block's reverse direction counts from the sequence's end);
- ``grad_time``: per probed unit, the per-sample RMS of ``||dL/dh_t||`` at those steps (an
  LSTM's cell state included; both directions' squares summed).

Cost: one forward and backward of the first ``TIME_ROWS`` rows of the probe batch per epoch,
about one training step's worth (``benchmarks/bench_probes.py``, the sequence workloads;
figures in ``docs/architectures.md``).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.arch.blocks.recurrent import TIME_SAMPLES, RecurrentBlock, TimeTap
from nasdepth.probes.trace import Trace, finite_or_none

EPS = 1e-30
#: probe-batch rows the time profile uses: a per-sample RMS settles on a few samples, and the
#: chunked forward and backward cost grows with them (bench_probes: 16 rows keep it at a few %)
TIME_ROWS = 16


def time_units(units: Sequence[tuple[str, nn.Module]]) -> dict[int, list[RecurrentBlock]]:
    """The recurrent blocks inside each probed unit, by unit index (units without one left
    out)."""
    found = {i: [m for m in unit.modules() if isinstance(m, RecurrentBlock)]
             for i, (_, unit) in enumerate(units)}
    return {i: blocks for i, blocks in found.items() if blocks}


def time_profile(model: nn.Module, taps: dict[int, list[RecurrentBlock]], x: torch.Tensor,
                 y: torch.Tensor, n_units: int, samples: int = TIME_SAMPLES
                 ) -> dict[str, Any]:
    """``{"time_steps", "grad_time"}`` of one probe batch (see the module docstring); the
    caller sets the model's mode (the probe: eval)."""
    x, y = x[:TIME_ROWS], y[:TIME_ROWS]  # the probe batch is evenly spaced over the fold
    tapped = [(i, b, TimeTap(samples)) for i, blocks in taps.items() for b in blocks]
    for _, block, tap in tapped:
        block.time_tap = tap
    try:
        with torch.enable_grad():
            logits = model(x)
            # summed, not averaged: the gradient of one sample's loss, whatever the batch size
            loss = F.cross_entropy(logits, y, reduction="sum")
            zeros = [z for _, _, tap in tapped for direction in tap.deltas
                     for step in direction for z in step]
            grads = torch.autograd.grad(loss, zeros, allow_unused=True)
    finally:
        for _, block, _ in tapped:
            block.time_tap = None
    with torch.no_grad():
        sq = [torch.zeros((), device=x.device) if g is None else g.float().square().sum()
              for g in grads]
        values = torch.stack(sq).tolist() if sq else []  # one host sync
    n = max(1, len(x))
    squares: dict[int, list[float]] = {}
    steps: list[list[int] | None] = [None] * n_units
    pos = 0
    for i, _, tap in tapped:
        row = squares.setdefault(i, [0.0] * len(tap.steps))
        steps[i] = list(tap.steps)
        for direction in tap.deltas:
            for s, step in enumerate(direction):
                if s < len(row):  # several blocks of one unit: the first one's steps
                    row[s] += sum(values[pos:pos + len(step)])
                pos += len(step)
    profile: list[list[float | None] | None] = [None] * n_units
    for i, row in squares.items():
        profile[i] = [finite_or_none(math.sqrt(v / n)) for v in row]
    return {"time_steps": steps, "grad_time": profile}


def _log_ratio(profile: Sequence[float | None]) -> float | None:
    first, last = profile[0], profile[-1]
    if first is None or last is None or last <= 0 or len(profile) < 2:
        return None
    return math.log10(max(first, EPS) / last)


def time_ratios(trace: Trace) -> list[float | None]:
    """Per epoch: log10 of the gradient at the first sampled step over the last step's, the
    median over the recurrent units (None where the epoch has no time profile)."""
    out: list[float | None] = []
    for e in trace.epochs:
        ratios = [r for p in (e.get("grad_time") or []) if p
                  for r in (_log_ratio(p),) if r is not None]
        out.append(statistics.median(ratios) if ratios else None)
    return out


def time_signals(trace: Trace) -> dict[str, float | None]:
    """``grad_time_log10`` (median over epochs of :func:`time_ratios`: below about -3 the first
    steps get a thousandth of the last step's gradient), its first and last epoch and its
    largest value (far above 0: the gradient grows backwards through time, exploding)."""
    ratios = [r for r in time_ratios(trace) if r is not None]
    return {
        "grad_time_log10": statistics.median(ratios) if ratios else None,
        "grad_time_log10_first_epoch": ratios[0] if ratios else None,
        "grad_time_log10_last_epoch": ratios[-1] if ratios else None,
        "grad_time_log10_max": max(ratios) if ratios else None,
    }


def time_frame(traces: Sequence[Trace | dict[str, Any]]) -> pd.DataFrame:
    """One row per fold x epoch x recurrent unit x sampled step: ``fold, epoch, block, step,
    grad`` (the data of a gradient-against-time figure)."""
    rows = []
    for t in traces:
        trace = t if isinstance(t, Trace) else Trace.from_dict(t)
        for e in trace.epochs:
            for name, steps, profile in zip(trace.blocks, e.get("time_steps") or [],
                                            e.get("grad_time") or [], strict=False):
                for step, g in zip(steps or [], profile or [], strict=False):
                    rows.append({"fold": trace.fold, "epoch": e.get("epoch"), "block": name,
                                 "step": step, "grad": g})
    return pd.DataFrame(rows, columns=["fold", "epoch", "block", "step", "grad"])
