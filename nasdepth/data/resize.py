"""``resized(data, side)``: every sample of a data set at another resolution (compound scaling's
input resolution, :mod:`nasdepth.space.scaling`).

Images (C, H, W) become (C, side, side) by bilinear interpolation (antialiased when shrinking,
so a smaller side averages rather than skips pixels); sequences (C, L) become (C, side) by
linear interpolation. Labels, groups and tasks stay as they are: the same samples, so the same
folds.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from nasdepth.data.dataset import Dataset
from nasdepth.errors import ConfigError

#: samples resized per call: bounds the memory of the float copy on large data sets
CHUNK = 4096


def resized(data: Dataset, side: int) -> Dataset:
    """``data`` with every sample's spatial size ``side`` (the same object where it already
    is)."""
    shape = data.input_shape
    if len(shape) not in (2, 3):
        raise ConfigError("the data", "input_shape", list(shape),
                          "(channels, length) or (channels, height, width) to change its "
                          "resolution")
    if isinstance(side, bool) or not isinstance(side, int) or side < 1:
        raise ConfigError("the data", "resolution", side, "an int >= 1")
    size = (side,) * (len(shape) - 1)
    if tuple(shape[1:]) == size:
        return data
    mode = "linear" if len(shape) == 2 else "bilinear"
    shrink = any(s > side for s in shape[1:])
    parts = [F.interpolate(data.x[i:i + CHUNK].float(), size=size, mode=mode,
                           align_corners=False, antialias=shrink and mode == "bilinear")
             for i in range(0, len(data), CHUNK)]
    return replace(data, x=torch.cat(parts).to(data.x.dtype).contiguous())
