"""What a checkpoint says about the network it came from (:func:`read_source`), and the
one adaptation of a pre-trained network to inputs of another shape (:func:`new_stem_conv`).
Resizing and channel repetition change the data, not the network: they live in
``nasdepth.train.transfer`` beside the data they transform.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from torch import nn

from nasdepth.arch.config import ArchConfig
from nasdepth.arch.weights import MODEL_FORMAT, load_file, read_checkpoint
from nasdepth.errors import NasdepthError

CONVS = (nn.Conv1d, nn.Conv2d)


@dataclass(frozen=True)
class SourceModel:
    """A checkpoint's description. ``arch``, ``input_shape`` and ``num_classes`` are known
    for a nasdepth model file; for a ``state_dict`` only ``in_channels`` (from its first
    convolution weight, where it has one)."""

    path: str
    kind: str  # "nasdepth-model" or "state_dict"
    arch: ArchConfig | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    in_channels: int | None = None


def read_source(path: str | Path) -> SourceModel:
    """The description of the checkpoint at ``path`` (a :class:`NasdepthError` when it is
    missing or no checkpoint)."""
    path = Path(path)
    state, kind = read_checkpoint(path)  # checks the file with one message per problem
    in_channels = next((int(t.shape[1]) for k, t in state.items()
                        if k.endswith("weight") and t.dim() in (3, 4)), None)
    if kind != MODEL_FORMAT:
        return SourceModel(str(path), kind, in_channels=in_channels)
    raw = load_file(path)  # read once: read_checkpoint's own load, cached
    try:
        meta = json.loads(raw["metadata"])
        arch = ArchConfig.from_dict(meta["arch"], f"{path} (arch)")
        shape = tuple(int(s) for s in meta["input_shape"])
        classes = len(meta["class_names"])
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, NasdepthError):
            raise
        raise NasdepthError(f"{path} is a damaged nasdepth model file (missing or unreadable "
                            f"entry {exc}).") from None
    return SourceModel(str(path), kind, arch=arch, input_shape=shape, num_classes=classes,
                       in_channels=shape[0] if len(shape) > 1 else None)


def first_conv(model: nn.Module) -> tuple[str, nn.Module]:
    """(qualified name, module) of the first convolution in forward order (the stem's, or the
    first block's where there is no stem)."""
    for name, module in model.named_modules():
        if isinstance(module, CONVS):
            return name, module
    raise NasdepthError("This network has no convolution to give new input channels (flat "
                        "inputs: the feature count must match the checkpoint's).")


def new_stem_conv(model: nn.Module, channels: int) -> str:
    """Replace the first convolution by a fresh one (PyTorch's initialization) that reads
    ``channels`` input channels; returns its qualified name (its parameters train)."""
    name, module = first_conv(model)
    conv = cast(nn.Conv2d, module)  # or Conv1d: the same constructor
    fresh = type(conv)(channels, conv.out_channels, conv.kernel_size,  # type: ignore[arg-type]
                       stride=conv.stride, padding=conv.padding,  # type: ignore[arg-type]
                       dilation=conv.dilation,  # type: ignore[arg-type]
                       bias=conv.bias is not None)
    fresh = fresh.to(device=conv.weight.device, dtype=conv.weight.dtype)
    parent_name, _, attr = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, attr, fresh)
    return name
