"""One model file (plain containers that ``torch.load(weights_only=True)`` reads, so opening
one never runs code from it; its layout: ``docs/export.md``, "The file"): the weights of a
refitted candidate (or its k fold models), the input standardization they were trained with
(float32 values written as JSON numbers, which read back bit for bit) and JSON metadata; and
:class:`ExportedModel`, the ``nn.Module`` that :func:`load_model` gives back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from nasdepth.arch import ArchConfig, build_model, count_parameters
from nasdepth.arch.weights import MODEL_FORMAT, load_error
from nasdepth.data.resize import resize_tensor
from nasdepth.errors import NasdepthError
from nasdepth.outpath import write_atomically

#: the ``format`` entry of every model file (``nasdepth.arch.load_weights`` reads them too)
FORMAT = MODEL_FORMAT
#: 1: state_dicts + metadata (arch, training, input shape, classes, standardization, scores)
FORMAT_VERSION = 1
#: rows per forward pass in ``predict_proba`` (bounded memory whatever the input size)
PREDICT_ROWS = 256

Array = np.ndarray | torch.Tensor


class ExportedModel(nn.Module):
    """A trained candidate that takes raw inputs: the saved standardization is applied first.

    ``members`` holds one network (a refit) or the k fold networks (an ensemble), each with its
    own standardization (``mean_k``/``std_k`` buffers, so ``.to(device)`` moves them too).
    ``forward(x)`` returns logits: the member's, or for an ensemble the log of the members'
    mean probabilities (so that ``softmax(forward(x))`` is the averaged probability).
    ``metadata`` is what the file says (architecture, training, data, scores, versions).
    """

    def __init__(self, members: Sequence[nn.Module], means: Sequence[torch.Tensor],
                 stds: Sequence[torch.Tensor], metadata: dict[str, Any]) -> None:
        super().__init__()
        if not members or not len(members) == len(means) == len(stds):
            raise ValueError("one mean and one std per member, at least one member")
        self.members = nn.ModuleList(members)
        for k, (mean, std) in enumerate(zip(means, stds, strict=True)):
            self.register_buffer(f"mean_{k}", mean.detach().clone().float())
            self.register_buffer(f"std_{k}", std.detach().clone().float())
        self.metadata = metadata
        self.input_shape = tuple(int(s) for s in metadata["input_shape"])
        self.class_names = [str(c) for c in metadata["class_names"]]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def device(self) -> torch.device:
        return self.get_buffer("mean_0").device

    def _standardized(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return (x - self.get_buffer(f"mean_{k}")) / self.get_buffer(f"std_{k}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.members) == 1:
            return self.members[0](self._standardized(x, 0))
        probs = [torch.softmax(m(self._standardized(x, k)).float(), dim=1)
                 for k, m in enumerate(self.members)]
        return torch.log(torch.stack(probs).mean(0).clamp_min(1e-12))

    def check_input(self, x: Array, source: str = "the input") -> torch.Tensor:
        """``x`` as a float32 tensor on the model's device, its shape checked."""
        t = torch.as_tensor(np.asarray(x, dtype=np.float32) if isinstance(x, np.ndarray) else x)
        if t.dim() == len(self.input_shape):  # one sample
            t = t.unsqueeze(0)
        side = self.metadata.get("resolution")  # trained at its own input side: resize to it
        if side is not None and t.dim() == len(self.input_shape) + 1 and \
                t.shape[1] == self.input_shape[0] and tuple(t.shape[1:]) != self.input_shape:
            t = resize_tensor(t.float(), int(side), source)
        if tuple(t.shape[1:]) != self.input_shape:
            got, want = tuple(t.shape[1:]), self.input_shape
            flat = len(got) == 1 and len(want) == 1
            detail = (f"{got[0]} features; this model takes {want[0]}" if flat else
                      f"samples of shape {got}; this model takes samples of shape {want}")
            trained = self.metadata.get("data_info", {}).get("name", "its data")
            raise NasdepthError(f"{source} has {detail} (trained on {trained}).")
        return t.to(self.device, torch.float32)

    @torch.no_grad()
    def predict_proba(self, x: Array, batch_size: int = PREDICT_ROWS) -> torch.Tensor:
        """Class probabilities ``(N, C)`` of raw (unstandardized) inputs ``(N, *input_shape)``,
        on the model's device."""
        was_training = self.training
        self.eval()
        t = self.check_input(x)
        out = [torch.softmax(self(t[i:i + batch_size]).float(), dim=1)
               for i in range(0, len(t), batch_size)]
        self.train(was_training)
        return torch.cat(out) if out else torch.zeros(0, self.num_classes, device=self.device)

    def predict(self, x: Array, batch_size: int = PREDICT_ROWS) -> torch.Tensor:
        """Predicted class indices ``(N,)`` (names: ``model.class_names[i]``)."""
        return self.predict_proba(x, batch_size).argmax(1)


def _json_floats(t: torch.Tensor) -> list[float]:
    return [float(v) for v in t.detach().float().cpu().reshape(-1)]


def standardization_dict(mean: torch.Tensor, std: torch.Tensor) -> dict[str, Any]:
    """A fitted :class:`~nasdepth.data.Standardizer` as JSON (shape kept: per feature for flat
    data, per channel otherwise)."""
    shape = list(mean.shape)
    return {"kind": "standardize", "per": "feature" if len(shape) == 1 else "channel",
            "shape": shape, "mean": _json_floats(mean), "std": _json_floats(std)}


def _tensor(d: dict[str, Any], key: str) -> torch.Tensor:
    return torch.tensor(d[key], dtype=torch.float32).reshape(d["shape"])


def save_model(path: str | Path, members: Sequence[nn.Module],
               standardizations: Sequence[tuple[torch.Tensor, torch.Tensor]],
               metadata: dict[str, Any]) -> Path:
    """Write one model file: the members' weights, their standardization and ``metadata``."""
    meta = dict(metadata)
    meta["format"], meta["format_version"] = FORMAT, FORMAT_VERSION
    meta["preprocessing"] = [standardization_dict(m, s) for m, s in standardizations]
    meta["members"] = len(members)
    text = json.dumps(meta, allow_nan=True)
    states = [{k: v.detach().cpu().contiguous() for k, v in m.state_dict().items()}
              for m in members]
    return write_atomically(path, lambda part: torch.save(
        {"format": FORMAT, "format_version": FORMAT_VERSION, "metadata": text,
         "state_dicts": states}, part))


def read_model_file(path: str | Path) -> tuple[dict[str, Any], list[dict[str, torch.Tensor]]]:
    """(metadata, state_dicts) of a model file, or a :class:`NasdepthError` saying why not."""
    path = Path(path)
    if not path.is_file():
        raise NasdepthError(f"Model file {path} does not exist.")
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, truncated, or objects beyond plain data
        raise load_error(exc, f"The model file {path}", f"{path} is not a nasdepth model "
                         f"file: torch.load(weights_only=True) cannot read it as a file "
                         f"written by torch.save") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        keys = sorted(map(str, raw))[:8] if isinstance(raw, dict) else type(raw).__name__
        raise NasdepthError(f"{path} is a PyTorch file but not a nasdepth model file (no "
                            f"'format': '{FORMAT}' entry; it holds {keys}). Make one with "
                            "`nasdepth export`.")
    version = raw.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise NasdepthError(f"{path} is a nasdepth model file of format version {version!r}; "
                            f"this nasdepth reads versions up to {FORMAT_VERSION} (upgrade it).")
    try:
        meta = json.loads(raw["metadata"])
        states = list(raw["state_dicts"])
        for key in ("arch", "input_shape", "class_names", "preprocessing"):
            meta[key]  # noqa: B018 - presence check with one message below
    except (KeyError, TypeError, ValueError) as exc:
        raise NasdepthError(f"{path} is a damaged nasdepth model file (missing or unreadable "
                            f"entry {exc}).") from None
    if len(states) != len(meta["preprocessing"]) or not states:
        raise NasdepthError(f"{path} is a damaged nasdepth model file ({len(states)} weight "
                            f"sets for {len(meta['preprocessing'])} standardizations).")
    return meta, states


def load_model(path: str | Path, device: str | torch.device = "cpu") -> ExportedModel:
    """The model in ``path`` (written by ``nasdepth export`` / :func:`export_model`), in eval
    mode on ``device``, with ``.predict(x)`` and ``.predict_proba(x)`` taking raw inputs."""
    meta, states = read_model_file(path)
    arch = ArchConfig.from_dict(meta["arch"], f"{path} (arch)")
    shape = tuple(int(s) for s in meta["input_shape"])
    check_declared_size(path, arch, shape, len(meta["class_names"]), states)
    members = []
    for k, state in enumerate(states):
        net = build_model(arch, shape, len(meta["class_names"]))
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise NasdepthError(f"The weights of member {k} in {path} do not fit its "
                                f"architecture: {' '.join(str(exc).split())[:400]}") from None
        members.append(net)
    means = [_tensor(p, "mean") for p in meta["preprocessing"]]
    stds = [_tensor(p, "std") for p in meta["preprocessing"]]
    model = ExportedModel(members, means, stds, meta)
    return model.to(device).eval()


def check_declared_size(path: str | Path, arch: ArchConfig, shape: tuple[int, ...],
                        classes: int, states: Sequence[dict[str, torch.Tensor]]) -> None:
    """Refuse a file whose metadata declares a network larger than the weights it holds (a
    crafted file could make ``load_model`` allocate terabytes): the declared network is
    counted on the meta device first, which allocates nothing."""
    if not shape or any(s < 1 for s in shape) or math.prod(shape) > MAX_INPUT or not (
            2 <= classes <= MAX_CLASSES):
        raise NasdepthError(f"{path} is a damaged nasdepth model file (input shape {shape}, "
                            f"{classes} classes).")
    try:
        with torch.device("meta"):  # orthogonal init cannot run on meta tensors
            declared = count_parameters(build_model(replace(arch, init="default"), shape,
                                                    classes))
    except (ValueError, RuntimeError, TypeError) as exc:
        raise NasdepthError(f"{path} declares a network that cannot be built: "
                            f"{' '.join(str(exc).split())[:200]}") from None
    held = max(sum(int(t.numel()) for t in st.values() if isinstance(t, torch.Tensor))
               for st in states)
    if declared > held:
        raise NasdepthError(f"{path} declares a network of {declared:,} parameters but holds "
                            f"weights for {held:,}; it is damaged or was not written by "
                            "nasdepth, and is not loaded.")


#: bounds of a model file's declared input (values) and classes
MAX_INPUT = 2**31
MAX_CLASSES = 2**20
