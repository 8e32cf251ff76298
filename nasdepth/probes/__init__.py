"""Probes: per-block, per-epoch training statistics that explain a stall.

Three ways in:

- ``cross_validate(arch, data, hooks=[ProbeHook()])``: every fold's :class:`Trace` lands in
  ``CVResult.traces``; ``hook.summary()`` is the compact ``probe_summary`` of a trial.
- ``Probe(model, probe_batch=(x, y))`` in your own training loop: ``probe.step(loss)`` after
  ``backward()``, ``probe.epoch_end(val_loss=...)`` after each epoch, then
  ``nasdepth.diagnose(probe)``.
- ``nasdepth.diagnose(model_or_arch, data)`` attaches probes itself.
"""

from nasdepth.probes.hook import PROBE_BATCH, ProbeHook, probe_hook
from nasdepth.probes.linear import LinearProbeHook, fit_linear_probe, saturation
from nasdepth.probes.multitask import MultitaskProbeHook
from nasdepth.probes.probe import Probe, label_entropy, probe_units
from nasdepth.probes.summary import fold_signals, signals, summarize
from nasdepth.probes.trace import BLOCK_SERIES, EPOCH_SCALARS, Trace

__all__ = [
    "BLOCK_SERIES", "EPOCH_SCALARS", "PROBE_BATCH", "LinearProbeHook", "MultitaskProbeHook",
    "Probe", "ProbeHook", "Trace",
    "fit_linear_probe", "fold_signals", "label_entropy", "probe_hook", "probe_units",
    "saturation", "signals", "summarize",
]
