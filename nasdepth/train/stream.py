"""Data placement: keep a fold's tensors on the device, or stream batches from the host (the
rule, its log line and what it costs: ``docs/data_and_training.md``, "Data placement").

Streamed rows stay on the host (pinned on CUDA) and a ``DataLoader`` feeds the on-device
path's batches: :class:`PlanSampler` yields exactly the rows of ``fold_perm`` cut by
``batch_plan``, so on the CPU a streamed fold gives the same scores as an on-device one, bit
for bit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler
from torch.utils.data import Dataset as TorchDataset

from nasdepth.data import Dataset, Standardizer
from nasdepth.train.config import PLACEMENTS
from nasdepth.train.loop import fold_perm

__all__ = [
    "DEVICE_FRACTION", "PLACEMENTS", "STATS_CHUNK_BYTES", "HostRows", "PlanSampler",
    "fit_standardizer", "fold_device_bytes", "free_device_memory", "host_loader",
    "placement_decision", "resolve_placement",
]

log = logging.getLogger("nasdepth.train")

#: the share of free device memory a fold's data may take on the device; the rest is left for
#: the model, optimizer state, activations (k times more when folds train as one ensemble)
#: and allocator fragmentation
DEVICE_FRACTION = 0.5
#: a training part up to this size is standardized from one chunk (exactly the on-device
#: statistics); larger ones are reduced chunk by chunk in float64
STATS_CHUNK_BYTES = 256 * 2**20


def _mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def fold_device_bytes(data: Dataset, n_train: int, n_val: int, n_test: int = 0) -> int:
    """Bytes the on-device path keeps on the device for one fold: the raw training rows and a
    standardized copy (the batches' source; with augmentation the copy is made for scoring),
    the standardized validation and test rows, and their labels. Fold-parallel training keeps
    all ``N`` raw rows once instead, which is less for any k >= 2 (2(k-1)/k + 1/k >= 1)."""
    rows = 2 * n_train + n_val + n_test
    row_bytes = data.x.element_size() * math.prod(data.input_shape)
    return rows * row_bytes + (n_train + n_val + n_test) * data.y.element_size()


def placement_decision(mode: str, device_type: str, needed_bytes: int,
                       free_bytes: int | None, fraction: float = DEVICE_FRACTION
                       ) -> tuple[str, str]:
    """``(placement, reason)``: ``"device"`` or ``"stream"`` and why, as a log line says it.

    A pure function of its inputs (``free_bytes``: free device memory, None where unknown),
    so the CUDA rule is tested without a GPU.
    """
    if mode not in PLACEMENTS:
        raise ValueError(f"data placement must be one of {', '.join(PLACEMENTS)}, not {mode!r}")
    if mode != "auto":
        return mode, f"data_placement: {mode} was set"
    if device_type != "cuda":
        return "device", f"on {device_type} the data is in the memory training runs from"
    if free_bytes is None:
        return "device", "the free device memory is unknown"
    fits = needed_bytes <= fraction * free_bytes
    return ("device" if fits else "stream"), (
        f"a fold needs {_mib(needed_bytes)}, {'under' if fits else 'over'} {fraction:.0%} of "
        f"the {_mib(free_bytes)} free on the device")


def free_device_memory(device: torch.device) -> int | None:
    """Free bytes on a CUDA device, counting memory PyTorch's allocator holds but does not use
    (``mem_get_info`` reports it as taken; an earlier fold's freed tensors sit there)."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return int(free + max(0, cached))


def resolve_placement(mode: str, data: Dataset, device: torch.device, n_train: int,
                      n_val: int, n_test: int = 0, *, fold: int | None = None,
                      level: int = logging.INFO) -> str:
    """``"device"`` or ``"stream"`` for ``mode`` (``auto``/``device``/``stream``); logs the
    choice and the reason on the ``nasdepth.train`` logger."""
    needed = fold_device_bytes(data, n_train, n_val, n_test)
    placement, why = placement_decision(mode, device.type, needed, free_device_memory(device))
    where = "" if fold is None else f"fold {fold}: "
    verb = "kept on" if placement == "device" else "streamed from the host to"
    log.log(level, "%sdata %s %s: %s", where, verb, device, why)
    return placement


class HostRows(TorchDataset):
    """Rows of ``x`` and ``y`` on the host; item ``rows`` (an index tensor) is one batch.

    With ``pin`` the gather writes straight into page-locked memory (one copy, not a gather
    and then a pin), so the copy to the GPU can be ``non_blocking``; PyTorch's caching host
    allocator keeps such a buffer from reuse until its copy has finished.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pin: bool = False) -> None:
        self.x, self.y, self.pin = x, y, pin

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.pin:  # index_select: 9 us for 64x64 rows where x[rows] takes 22 us
            return torch.index_select(self.x, 0, rows), torch.index_select(self.y, 0, rows)
        xb = torch.empty((len(rows), *self.x.shape[1:]), dtype=self.x.dtype, pin_memory=True)
        yb = torch.empty((len(rows), *self.y.shape[1:]), dtype=self.y.dtype, pin_memory=True)
        return torch.index_select(self.x, 0, rows, out=xb), torch.index_select(
            self.y, 0, rows, out=yb)


class PlanSampler(Sampler[torch.Tensor]):
    """Each epoch: one ``fold_perm`` draw from ``gen`` and, per ``(a, b)`` of ``plan``, the
    dataset rows ``index[perm[a:b]]``: the on-device path's batches, in its order."""

    def __init__(self, index: np.ndarray, plan: Sequence[tuple[int, int]],
                 gen: torch.Generator) -> None:
        self.index = torch.as_tensor(index, dtype=torch.long)
        self.plan, self.gen = list(plan), gen

    def __len__(self) -> int:
        return len(self.plan)

    def __iter__(self) -> Iterator[torch.Tensor]:
        perm = fold_perm(len(self.index), self.plan[-1][1], self.gen)  # at the epoch's start
        for a, b in self.plan:
            yield self.index[perm[a:b]]


class ChunkSampler(Sampler[torch.Tensor]):
    """``index`` in order, ``size`` rows at a time (prediction)."""

    def __init__(self, index: np.ndarray, size: int) -> None:
        self.index, self.size = torch.as_tensor(index, dtype=torch.long), size

    def __len__(self) -> int:
        return -(-len(self.index) // self.size)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for i in range(0, len(self.index), self.size):
            yield self.index[i:i + self.size]


def host_loader(rows: HostRows, sampler: Sampler[torch.Tensor]) -> DataLoader:
    """A ``DataLoader`` over whole batches (``batch_size=None``: the sampler's index tensors
    go to ``rows[...]`` as they are).

    ``num_workers=0``: the rows are tensors in memory, so a batch is one ``index_select`` at
    memory speed; worker processes would only add pickling or shared-memory copies of every
    batch, compete with the training thread for the cores (PERF_NOTES: two busy processes on
    two cores stall each other) and fork a process that may hold CUDA state. The GPU still
    overlaps with the host: kernels and the ``non_blocking`` copy run asynchronously while the
    next batch is gathered. A private ``generator`` keeps the loader's per-iterator base-seed
    draw off the global RNG, which dropout and initialization use: without it a streamed run
    would drift from the on-device one.
    """
    # ``collate_fn``: the batch as ``HostRows`` made it (the default ``default_convert`` only
    # re-walks the tuple: ~10% of the loader's per-batch cost)
    return DataLoader(rows, sampler=sampler, batch_size=None, num_workers=0, pin_memory=False,
                      collate_fn=lambda batch: batch, generator=torch.Generator())


@torch.no_grad()
def fit_standardizer(x: torch.Tensor, index: np.ndarray, device: torch.device,
                     chunk_bytes: int = STATS_CHUNK_BYTES) -> Standardizer:
    """The training part's standardization (rows ``index`` of host ``x``) without moving the
    whole part to the device; validation rows never enter it.

    A part that fits in ``chunk_bytes`` is moved in one piece and fitted by
    ``Standardizer.fit``, exactly as on the device path. A larger one is reduced chunk by
    chunk in float64 and the chunks' (count, mean, sum of squared deviations) are merged
    (Chan et al.): one pass over the host data, no cancellation; the result agrees with
    ``Standardizer.fit`` up to float32 rounding.
    """
    index = np.asarray(index)
    per_row = max(1, x.element_size() * math.prod(x.shape[1:]))
    chunk_rows = max(2, chunk_bytes // per_row)
    if len(index) <= chunk_rows:
        return Standardizer.fit(x[torch.as_tensor(index)].to(device))
    # as Standardizer: per feature for flat data, per channel for 1-D/2-D data
    dims = (0,) if x.dim() == 2 else (0, *range(2, x.dim()))
    # float64 chunks: MPS has no float64, so its statistics are reduced on the host
    where = torch.device("cpu") if device.type == "mps" else device

    def moments(rows: np.ndarray) -> tuple[int, torch.Tensor, torch.Tensor]:
        c = x[torch.as_tensor(rows)].to(where, torch.float64)
        mean_c = c.mean(dim=dims, keepdim=True)
        return c.numel() // mean_c.numel(), mean_c, ((c - mean_c) ** 2).sum(dim=dims,
                                                                           keepdim=True)

    step = max(2, chunk_rows // 4)  # a float64 chunk and its squared deviations: 4x the bytes
    count, mean, m2 = moments(index[:step])
    for i in range(step, len(index), step):
        n_c, mean_c, m2_c = moments(index[i:i + step])
        delta, total = mean_c - mean, count + n_c
        mean = mean + delta * (n_c / total)
        m2 = m2 + m2_c + delta ** 2 * (count * n_c / total)
        count = total
    std = (m2 / max(1, count - 1)).sqrt().clamp_min(1e-6)
    return Standardizer(mean[0].float().to(device), std[0].float().to(device))
