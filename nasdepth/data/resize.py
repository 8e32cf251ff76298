"""``resized(data, side)``: every sample of a data set at another resolution (compound scaling's
input resolution, :mod:`nasdepth.space.scaling`).

Images (C, H, W) become (C, side, side) by bilinear interpolation (antialiased when shrinking,
so a smaller side averages rather than skips pixels); sequences (C, L) become (C, side) by
linear interpolation. Labels, groups and tasks stay as they are: the same samples, so the same
folds.
"""

from __future__ import annotations

import weakref
from dataclasses import replace

import torch
import torch.nn.functional as F

from nasdepth.data.dataset import Dataset
from nasdepth.errors import ConfigError

#: samples resized per call: bounds the memory of the float copy on large data sets
CHUNK = 4096


def resize_tensor(x: torch.Tensor, side: int, source: str = "the data") -> torch.Tensor:
    """Samples ``(N, C, L)`` or ``(N, C, H, W)`` at spatial size ``side`` (``x`` itself where
    they already are)."""
    if x.dim() not in (3, 4):
        raise ConfigError(source, "input_shape", list(x.shape[1:]),
                          "(channels, length) or (channels, height, width) to change its "
                          "resolution")
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ConfigError(source, "resolution", side, "an int >= 1")
    size = (side,) * (x.dim() - 2)
    if tuple(x.shape[2:]) == size:
        return x
    mode = "linear" if x.dim() == 3 else "bilinear"
    shrink = any(s > side for s in x.shape[2:])
    parts = [F.interpolate(x[i:i + CHUNK].float(), size=size, mode=mode, align_corners=False,
                           antialias=shrink and mode == "bilinear")
             for i in range(0, len(x), CHUNK)]
    return torch.cat(parts).to(x.dtype).contiguous()


#: recent resized copies: ``id(data)`` -> (a weak reference to ``data``, {side: copy}); a
#: study resizes its one data set to a handful of sides, once each
_CACHE: dict[int, tuple[weakref.ref[Dataset], dict[int, Dataset]]] = {}
_CACHED_SETS = 4


def resized(data: Dataset, side: int) -> Dataset:
    """``data`` with every sample's spatial size ``side`` (the same object where it already
    is; the same copy for the same data set and side while the data set lives)."""
    if len(data.input_shape) not in (2, 3):
        resize_tensor(data.x[:0].reshape(0, *data.input_shape), side)  # raises the error
    entry = _CACHE.get(id(data))
    if entry is None or entry[0]() is not data:
        entry = (weakref.ref(data), {})
        _CACHE[id(data)] = entry
        while len(_CACHE) > _CACHED_SETS:
            del _CACHE[next(iter(_CACHE))]
    sides = entry[1]
    if side not in sides:
        x = resize_tensor(data.x, side)
        sides[side] = data if x is data.x else replace(data, x=x)
    return sides[side]
