"""Linear classifier probes (Alain & Bengio 2016): what each block's output already tells
apart.

After a fold has trained, its model reads a fixed subsample of the fold's training rows and
its validation rows once, in eval mode, with a forward hook on every unit (stem, each block)
that keeps the unit's output pooled to one vector per sample (the mean over positions for
1-D and 2-D maps, the output itself on flat data). A multinomial logistic regression per unit
is fitted on the training features and scored on the validation fold: the probe accuracy
against block index says at which depth the representation becomes good enough, and what the
later blocks add.

Cost: one forward pass over at most ``max_train`` + ``max_val`` rows and one small L-BFGS fit
per unit, once per fold; ``benchmarks/bench_linear_probes.py`` prints its share of a trial.
Nothing here changes the training result: it runs after the last epoch, in eval mode, with no
random draws (evenly spaced rows, zero-initialized probes).

Use::

    hook = LinearProbeHook(data, splits)
    result = cross_validate(arch, data, cv=splits, hooks=[hook])
    hook.summary()["val_accuracy"]   # per unit, mean over folds
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nasdepth.data import Dataset, Splits, Standardizer
from nasdepth.errors import ConfigError
from nasdepth.train.hooks import TrainHook

__all__ = ["LinearProbeHook", "fit_linear_probe", "linear_probe_units", "pooled",
           "probe_features", "saturation"]

MAX_TRAIN = 1024  # training rows the probes fit on (evenly spaced)
MAX_VAL = 2048  # validation rows they are scored on
FIT_STEPS = 100  # L-BFGS iterations per probe
L2 = 1e-3  # weight penalty of the probes (features standardized first)
CHUNK = 256  # rows per forward chunk (the engine's evaluation chunk on the CPU)

Split = tuple[np.ndarray, np.ndarray]


def linear_probe_units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The units probed, in forward order: the stem (where it does anything) and each block of
    a nasdepth ``Network``; else the model's top-level children except the last (the head)."""
    blocks = getattr(model, "blocks", None)
    stem = getattr(model, "stem", None)
    if isinstance(blocks, nn.Sequential):
        units: list[tuple[str, nn.Module]] = []
        if isinstance(stem, nn.Module) and len(list(stem.children())):
            units.append(("stem", stem))
        units += [(f"block{i}.{type(b).__name__}", b) for i, b in enumerate(blocks)]
        return units
    children = list(model.named_children())
    if len(children) < 2:
        raise ConfigError("the model", "children", len(children),
                          "a nasdepth Network or a model with at least two child modules")
    return children[:-1]


def pooled(out: Any) -> torch.Tensor:
    """One vector per sample: ``(N, F)`` as it is, ``(N, C, ...)`` averaged over positions
    (the first tensor of a tuple output)."""
    if isinstance(out, tuple | list):
        out = out[0]
    out = out.detach().float()
    return out if out.dim() == 2 else out.flatten(2).mean(dim=2)


@torch.no_grad()
def probe_features(model: nn.Module, units: Sequence[tuple[str, nn.Module]],
                   x: torch.Tensor, chunk: int = CHUNK,
                   taps: dict[int, nn.Module] | None = None
                   ) -> tuple[list[torch.Tensor], dict[int, torch.Tensor]]:
    """Each unit's pooled output for the rows ``x``: one forward pass (in chunks), eval mode;
    the model's mode is restored. ``taps`` (unit index -> auxiliary head) also read that
    unit's raw output in the same pass: their predicted classes come back by unit index."""
    feats: list[list[torch.Tensor]] = [[] for _ in units]
    taps = taps or {}
    preds: dict[int, list[torch.Tensor]] = {i: [] for i in taps}

    def keep(i: int) -> Any:
        def hook(_m: nn.Module, _inp: Any, out: Any) -> None:
            feats[i].append(pooled(out))
            if i in taps:
                preds[i].append(taps[i](out).argmax(1))
        return hook

    handles = [m.register_forward_hook(keep(i)) for i, (_, m) in enumerate(units)]
    was = model.training
    model.eval()
    try:
        for a in range(0, len(x), chunk):
            model(x[a:a + chunk])
    finally:
        model.train(was)
        for h in handles:
            h.remove()
    return [torch.cat(f) for f in feats], {i: torch.cat(p) for i, p in preds.items()}


def fit_linear_probe(f_train: torch.Tensor, y_train: torch.Tensor, f_val: torch.Tensor,
                     y_val: torch.Tensor, num_classes: int, *, steps: int = FIT_STEPS,
                     l2: float = L2) -> tuple[float, float]:
    """Fit a multinomial logistic regression on ``(f_train, y_train)`` (features standardized
    with the training rows' statistics; zero start, L-BFGS, L2 penalty ``l2``) and return its
    (training, validation) accuracy."""
    mean = f_train.mean(0, keepdim=True)
    std = f_train.std(0, keepdim=True).nan_to_num(0.0).clamp_min(1e-6)
    a, b = (f_train - mean) / std, (f_val - mean) / std
    w = torch.zeros(a.shape[1], num_classes, device=a.device, requires_grad=True)
    bias = torch.zeros(num_classes, device=a.device, requires_grad=True)
    opt = torch.optim.LBFGS([w, bias], lr=1.0, max_iter=steps, history_size=10,
                            line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(a @ w + bias, y_train) + l2 * (w * w).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        train_acc = float(((a @ w + bias).argmax(1) == y_train).float().mean())
        val_acc = float(((b @ w + bias).argmax(1) == y_val).float().mean())
    return train_acc, val_acc


def _spaced(n: int, most: int) -> torch.Tensor:
    """At most ``most`` evenly spaced row indices of ``0 .. n - 1`` (no random draws)."""
    if n <= most:
        return torch.arange(n)
    return torch.linspace(0, n - 1, most).round().long()


class LinearProbeHook(TrainHook):
    """Per-unit linear probes of each fold's trained model for ``cross_validate``.

    ``data`` and ``splits`` (the ``Splits`` the CV runs on, or its ``(train, val)`` index
    pairs) give each fold's validation rows, standardized with the fold's training statistics
    as the engine does. A fold whose hook input is not the data's rows (cached features of a
    frozen body, multitask labels) is skipped. ``fold_rows`` holds one dict per probed fold;
    ``summary()`` the mean over folds.
    """

    def __init__(self, data: Dataset, splits: Splits | Sequence[Split], *,
                 max_train: int = MAX_TRAIN, max_val: int = MAX_VAL, steps: int = FIT_STEPS,
                 l2: float = L2) -> None:
        self.data, self.splits = data, splits
        self.max_train, self.max_val, self.steps, self.l2 = max_train, max_val, steps, l2
        self._rows: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.fold_rows: list[dict[str, Any]] = []

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        if (tuple(x_train.shape[1:]) != tuple(self.data.x.shape[1:]) or y_train.dim() != 1
                or fold >= len(self.splits)):
            return
        idx = _spaced(len(x_train), self.max_train).to(x_train.device)
        # a copy of the few rows kept: the engine may free or reuse its fold tensors
        self._rows[fold] = (x_train[idx].clone(), y_train[idx].clone())

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        kept = self._rows.pop(fold, None)
        if kept is None:
            return None
        start = time.perf_counter()
        dev = next(model.parameters()).device
        tr, va = self.splits[fold]
        scaler = Standardizer.fit(self.data.x[torch.as_tensor(np.asarray(tr))].to(dev))
        va = np.asarray(va)[_spaced(len(va), self.max_val).numpy()]
        x_val = scaler(self.data.x[torch.as_tensor(va)].to(dev))
        y_val = self.data.y[torch.as_tensor(va)].to(dev)
        x_tr, y_tr = kept[0].to(dev), kept[1].to(dev)
        units = linear_probe_units(model)
        n_tr = len(x_tr)
        aux = getattr(model, "aux", None)  # auxiliary heads by the index of the block they read
        names = [n for n, _ in units]
        taps = {names.index(n): aux[k] for k in (aux or {})
                for n in names if n.startswith(f"block{k}.")} if isinstance(
            aux, nn.ModuleDict) else {}
        feats, preds = probe_features(model, units, torch.cat([x_tr, x_val]), taps=taps)
        num_classes = int(self.data.num_classes)
        train_acc: list[float | None] = []
        val_acc: list[float | None] = []
        for f in feats:
            if not torch.isfinite(f).all():
                train_acc.append(None)
                val_acc.append(None)
                continue
            a, b = fit_linear_probe(f[:n_tr], y_tr, f[n_tr:], y_val, num_classes,
                                    steps=self.steps, l2=self.l2)
            train_acc.append(round(a, 5))
            val_acc.append(round(b, 5))
        row = {"fold": int(fold), "units": [n for n, _ in units],
               "features": [int(f.shape[1]) for f in feats],
               "train_accuracy": train_acc, "val_accuracy": val_acc,
               "n_train": int(n_tr), "n_val": len(va),
               # each auxiliary head's own validation accuracy, by the unit it reads
               "aux_accuracy": {names[i]: round(float((p[n_tr:] == y_val).float().mean()), 5)
                                for i, p in preds.items()},
               "seconds": round(time.perf_counter() - start, 4)}
        self.fold_rows.append(row)
        return None

    def summary(self) -> dict[str, Any] | None:
        """Per unit: validation and training probe accuracy (mean over the probed folds),
        the folds' rows and the probes' total seconds; None when no fold was probed."""
        rows = [r for r in self.fold_rows if r["units"] == self.fold_rows[0]["units"]]
        if not rows:
            return None

        def mean(key: str, i: int) -> float | None:
            vals = [r[key][i] for r in rows if r[key][i] is not None]
            return round(sum(vals) / len(vals), 5) if vals else None

        n = len(rows[0]["units"])
        heads = rows[0].get("aux_accuracy") or {}
        aux = {h: round(sum(r["aux_accuracy"][h] for r in rows) / len(rows), 5) for h in heads}
        return {"units": rows[0]["units"], "features": rows[0]["features"],
                "aux_accuracy": aux,
                "val_accuracy": [mean("val_accuracy", i) for i in range(n)],
                "train_accuracy": [mean("train_accuracy", i) for i in range(n)],
                "folds": rows, "seconds": round(sum(r["seconds"] for r in self.fold_rows), 4)}


def saturation(accuracy: Sequence[float | None], share: float = 0.97) -> dict[str, Any] | None:
    """Where a probe-accuracy curve saturates: the first unit (0-based) whose accuracy reaches
    ``share`` of the last unit's, and how many points the units after it add. None for a
    curve without finite values."""
    vals = [v for v in accuracy if v is not None and math.isfinite(v)]
    if not vals or accuracy[-1] is None:
        return None
    final = float(accuracy[-1])  # type: ignore[arg-type]
    first = next(i for i, v in enumerate(accuracy)
                 if v is not None and v >= share * final - 1e-12)
    reached = float(accuracy[first])  # type: ignore[arg-type]
    return {"unit": first, "units": len(accuracy), "share": share, "final": final,
            "reached": reached, "added_after": final - reached}
