"""Whether a CNN's folds train faster as one network of grouped convolutions on this CPU
(``parallel: auto``; :mod:`nasdepth.train.grouped`).

Five folds' convolutions as one grouped call share oneDNN's per-call overhead, so the smaller
the convolution, the more grouping gains; how large a convolution still gains depends on the
chip and the precision. Measured on 5-fold CVs of the digits CNNs (8x8 maps, batch 64):

* 16 channels (9.4 million multiply-adds per call): 1.3-1.7x on an AMD EPYC of Zen 5, fp32
  and bf16. Convolutions this small (at most :data:`ALWAYS_MACS`) are grouped everywhere.
* 32 channels (37.7 million): 0.97-1.06x on Zen 5 under bf16, 0.83-0.89x in fp32; but
  1.14-1.32x under bf16 on a Xeon with AMX (``docs/data_and_training.md``).
* 16 channels on 28x28 maps (115 million): 0.6x on Zen 5.

So between :data:`ALWAYS_MACS` and :data:`MAX_MACS` the answer is measured once per machine,
precision and shape class (:func:`grouping_fast`): a reference CV of a small plain CNN shaped
like the model's typical convolution (its channels, map side and batch, each rounded to a power
of two), grouped against one fold after another (the CV driver's
:func:`~nasdepth.train.cv.reference_grouped_speedup`); grouping is
used where it is at least :data:`~nasdepth.train.cpu_bf16.MIN_SPEEDUP` faster. The answer is cached
beside the bf16 ones (:func:`~nasdepth.train.cpu_bf16.cache_file`), so every later run on the
machine picks the same engine. ``NASDEPTH_CPU_GROUPED=1`` (or ``0``) sets the measured answer
instead (the always/never bounds still hold).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from nasdepth.train.cpu_bf16 import cached_speedup, forced_answer, machine, pow2_bucket

log = logging.getLogger(__name__)
ENV = "NASDEPTH_CPU_GROUPED"
#: typical convolutions of at most this many multiply-adds per call are grouped on every CPU
ALWAYS_MACS = 16e6
#: above this nothing measured gained, and a reference step would cost seconds: never grouped
MAX_MACS = 2.0**27
_known: dict[str, bool] = {}


#: a reference measurement: ``(channels, side, dims, batch, k, bf16)`` -> sequential seconds
#: over grouped seconds (the CV driver's :func:`~nasdepth.train.cv.reference_grouped_speedup`)
Measure = Callable[[int, int, int, int, int, bool], float]


def grouping_fast(macs: float, channels: int, side: int, dims: int, batch: int, k: int,
                  precision: str, measure: Measure | None = None) -> bool:
    """Whether ``k`` folds of a CNN whose typical convolution does ``macs`` multiply-adds per
    call (``channels`` out, on maps of ``side`` per axis over ``dims`` axes, at ``batch``)
    train faster grouped on this CPU in ``precision`` (see the module's docstring). In the
    measured range the cached answer, else ``measure``'s; without ``measure`` (and nothing
    cached) no."""
    if k < 2:
        return False
    if macs <= ALWAYS_MACS:
        return True
    if macs > MAX_MACS:
        return False
    forced = forced_answer(ENV, "1 (group mid-sized CNN folds under parallel: auto) or 0 (not)")
    if forced is not None:
        return forced
    shape = (pow2_bucket(channels, 8, 256), pow2_bucket(side, 1, 64), dims,
             pow2_bucket(batch, 8, 256), k)
    bf16 = precision == "bf16"
    key = (f"{machine()} | grouped conv{dims}d c{shape[0]} s{shape[1]} b{shape[3]} k{k} "
           f"{'bf16' if bf16 else 'fp32'}")
    if key not in _known:
        try:
            fast = cached_speedup(key, None if measure is None else partial(measure, *shape, bf16))
        except (RuntimeError, ValueError) as exc:  # a choice of engine never fails a CV
            log.warning("could not measure %s (%s): folds train one by one", key, exc)
            fast = False
        if fast is None:
            return False  # nothing cached and nothing to measure with: not grouped
        _known[key] = fast
    return _known[key]
