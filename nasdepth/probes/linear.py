"""Linear classifier probes (Alain & Bengio 2016): what each block's output already tells
apart.

After a fold has trained, its model reads a fixed subsample of the fold's training rows and
its validation rows once, in eval mode, with a forward hook on every unit (stem, each block)
that keeps the unit's output pooled to one vector per sample (the mean over positions for
1-D and 2-D maps, the output itself on flat data). A multinomial logistic regression per unit
is fitted on the training features and scored on the validation fold: the probe accuracy
against block index says at which depth the representation becomes good enough, and what the
later blocks add.

Cost: one forward pass over at most ``max_train`` (and a quarter of the fold's) training
rows + ``max_val`` validation rows, and one batched L-BFGS fit of every unit's probe (hand-
written gradients, no autograd, no ``torch.optim``: constructing the first ``torch.optim``
optimizer of a process imports ``torch._dynamo``, 1.2-1.5 s, which the fold-parallel engine
never pays) for every unit of every fold at once, at the CV's last fold (the folds' units
share shapes: one solve's Python overhead instead of one per fold; on the digits CNN grid the
probes took 1.71 s instead of 2.18); ``benchmarks/bench_linear_probes.py`` prints its share
of a trial.
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
from nasdepth.probes.probe import spaced_rows
from nasdepth.train.hooks import TrainHook

__all__ = ["LinearProbeHook", "fit_linear_probe", "fit_linear_probes", "linear_probe_units",
           "pooled",
           "probe_features", "saturation"]

MAX_TRAIN = 1024  # training rows the probes fit on (evenly spaced)
#: ... and at most this share of the fold's training rows (at least MIN_TRAIN): the feature
#: pass costs about rows / (3 x epochs x training rows) of the training; on digits at 10
#: epochs all 1,437 rows gave the probes 5.7% of the trial (bench_linear_probes)
TRAIN_SHARE = 0.25
MIN_TRAIN = 256
MAX_VAL = 1024  # validation rows they are scored on
FIT_STEPS = 50  # L-BFGS iterations per probe
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
    (training, validation) accuracy. The reference fit, by ``torch.optim.LBFGS`` and
    autograd: the hook fits every unit at once with :func:`fit_linear_probes` (the same
    objective, hand-written and batched), which the tests check against this one."""
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


#: training parts up to this many values are standardized as the engine does (one
#: ``Standardizer.fit``); larger ones in chunks (float64 sums: equal to ~1e-7), so that the
#: probes never copy a large training part again
WHOLE_FIT = 1 << 25


def fold_scaler(x: torch.Tensor, train: np.ndarray, device: torch.device,
                chunk: int = 4096) -> Standardizer:
    """The fold's standardization (statistics of its training rows only), as the engine fits
    it: per feature on flat data, per channel on 1-D and 2-D data."""
    if len(train) * int(np.prod(x.shape[1:])) <= WHOLE_FIT:
        return Standardizer.fit(x[torch.as_tensor(train)].to(device))
    dims = (0,) if x.dim() == 2 else (0, *range(2, x.dim()))
    total = sq = None
    count = 0
    for a in range(0, len(train), chunk):
        part = x[torch.as_tensor(train[a:a + chunk])].double()
        s1, s2 = part.sum(dim=dims, keepdim=True), (part * part).sum(dim=dims, keepdim=True)
        total, sq = (s1, s2) if total is None else (total + s1, sq + s2)  # type: ignore[operator]
        count += part.numel() // s1.numel()
    assert total is not None and sq is not None
    mean = total / count
    var = (sq - count * mean * mean) / max(count - 1, 1)
    std = var.clamp_min(0).sqrt().clamp_min(1e-6)
    return Standardizer(mean[0].float().to(device), std[0].float().to(device))


def _objective(a: torch.Tensor, at: torch.Tensor, onehot: torch.Tensor, theta: torch.Tensor,
               l2: float, grad: bool = True) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Per unit: mean cross-entropy of the logits ``w @ a^T + bias`` plus ``l2 ||w||^2``
    and its gradient, by hand (no autograd graph, no ``torch.optim``). ``a`` is ``(units,
    rows, width)``, ``at`` its transpose (contiguous), ``onehot`` ``(units, classes, rows)``,
    ``theta`` ``(units, classes * (width + 1))``: ``w`` (class-major) then the bias. The
    class-major layout keeps the matrix products wide: ``(units, classes, rows)`` logits
    cost a third of the ``(units, rows, classes)`` ones on one CPU thread."""
    units, width, n = at.shape
    k = onehot.shape[1]
    w = theta[:, :k * width].view(units, k, width)
    bias = theta[:, k * width:].view(units, k, 1)
    logp = torch.log_softmax(torch.baddbmm(bias, w, at), dim=1)
    loss = -(onehot * logp).sum((1, 2)) / n + l2 * (w * w).sum((1, 2))
    if not grad:
        return loss, None
    d = (logp.exp() - onehot) / n  # (units, classes, rows)
    gw = torch.bmm(d, a) + 2 * l2 * w
    return loss, torch.cat([gw.reshape(units, -1), d.sum(2)], dim=1)


def _lbfgs(a: torch.Tensor, onehot: torch.Tensor, l2: float, steps: int,
           history: int = 10, tol: float = 1e-5) -> torch.Tensor:
    """Minimize :func:`_objective` for every unit at once from zero: L-BFGS with each unit's
    own curvature history and its own backtracking (Armijo) step, so a unit that converges
    stops moving and a hard one does not slow the others' steps. Returns ``theta``."""
    units, width = a.shape[0], a.shape[2]
    at = a.transpose(1, 2).contiguous()
    theta = torch.zeros(units, (width + 1) * onehot.shape[1], dtype=a.dtype, device=a.device)
    loss, g = _objective(a, at, onehot, theta, l2)
    assert g is not None
    s_hist: list[torch.Tensor] = []
    y_hist: list[torch.Tensor] = []
    rho_hist: list[torch.Tensor] = []
    active = torch.ones(units, dtype=torch.bool, device=a.device)
    for _ in range(steps):
        active &= g.abs().amax(1) > tol
        if not bool(active.any()):
            break
        # two-loop recursion, per unit (dot products over each unit's own row)
        q = g.clone()
        alphas = []
        for s, y, rho in zip(reversed(s_hist), reversed(y_hist), reversed(rho_hist),
                             strict=True):
            al = rho * (s * q).sum(1)
            q -= al[:, None] * y
            alphas.append(al)
        if s_hist:
            sy, yy = (s_hist[-1] * y_hist[-1]).sum(1), (y_hist[-1] * y_hist[-1]).sum(1)
            q *= torch.where(yy > 0, sy / yy.clamp_min(1e-30), 1.0)[:, None]
        else:  # first step: at most unit length in the l1 norm, as torch's L-BFGS
            q *= (1.0 / g.abs().sum(1).clamp_min(1.0))[:, None]
        for s, y, rho, al in zip(s_hist, y_hist, rho_hist, reversed(alphas), strict=True):
            q += s * (al - rho * (y * q).sum(1))[:, None]
        direction = -q
        slope = (g * direction).sum(1)
        bad = slope >= 0  # not a descent direction: steepest descent for that unit
        if bool(bad.any()):
            direction[bad] = -g[bad]
            slope = (g * direction).sum(1)
        direction[~active] = 0.0
        step = torch.ones(units, dtype=a.dtype, device=a.device)
        slack = 1e-6 * loss.abs()
        # the full step first, with its gradient: L-BFGS's unit step is accepted by every unit
        # on most iterations, and then that gradient is the next one (no second evaluation)
        full_loss, full_g = _objective(a, at, onehot, theta + direction, l2)
        new_loss = full_loss
        for _ in range(20):  # backtracking: halve each unit's step until it decreases enough
            # Armijo, with float32 rounding's slack: at the optimum no step decreases it
            ok = (new_loss <= loss + 1e-4 * step * slope + slack) | ~active
            if bool(ok.all()):
                break
            step = torch.where(ok, step, step * 0.5)
            new_loss, _ = _objective(a, at, onehot, theta + step[:, None] * direction, l2,
                                     grad=False)
        else:
            step = torch.where(ok, step, torch.zeros_like(step))
        trial = theta + step[:, None] * direction
        if bool((step == 1).all()):
            new_loss, new_g = full_loss, full_g
        else:
            new_loss, new_g = _objective(a, at, onehot, trial, l2)
        assert new_g is not None
        s, y = trial - theta, new_g - g
        sy = (s * y).sum(1)
        keep = sy > 1e-10  # curvature condition, per unit; else that unit's pair is zero
        s_hist.append(torch.where(keep[:, None], s, 0.0))
        y_hist.append(torch.where(keep[:, None], y, 0.0))
        rho_hist.append(torch.where(keep, 1.0 / sy.clamp_min(1e-10), 0.0))
        if len(s_hist) > history:
            s_hist.pop(0), y_hist.pop(0), rho_hist.pop(0)
        # converged where the step no longer changes the loss beyond float32 rounding
        active &= (loss - new_loss).abs() > 1e-7 * loss.abs()
        theta, loss, g = trial, new_loss, new_g
    return theta


def fit_linear_probes(feats: Sequence[torch.Tensor], y_train: torch.Tensor,
                      y_val: torch.Tensor, n_train: int, num_classes: int, *,
                      steps: int = FIT_STEPS, l2: float = L2
                      ) -> list[tuple[float, float]]:
    """:func:`fit_linear_probe`'s problem for every unit at once: the features (rows
    ``:n_train`` train, the rest validation) zero-padded to one width and stacked, and one
    batched L-BFGS (:func:`_lbfgs`: each unit its own history and step) over the units'
    independent problems: one unit's Python overhead instead of one per unit (an 8-block MLP:
    9 fits). Same objective and optimum as :func:`fit_linear_probe` (the test compares).
    Always in fp32: the features are cast and autocast is off (the engine runs hooks under the
    fold's precision)."""
    return fit_probe_sets([(feats, y_train, y_val, n_train)], num_classes, steps=steps,
                          l2=l2)[0]


def fit_probe_sets(sets: Sequence[ProbeSet], num_classes: int, *, steps: int = FIT_STEPS,
                   l2: float = L2) -> list[list[tuple[float, float]]]:
    """:func:`fit_linear_probes` for several folds' units at once (``sets``: each fold's
    ``(features, y_train, y_val, n_train)``): per set, per unit, (train, validation)
    accuracy (none for a set without units). Sets of one shape share one batched L-BFGS;
    always in fp32, as there."""
    filled = [feats for feats, *_ in sets if len(feats)]
    if not filled:
        return [[] for _ in sets]
    device = filled[0][0].device
    floats = [([f.float() for f in feats], y_tr, y_va, n) for feats, y_tr, y_va, n in sets]
    if device.type in ("cpu", "cuda"):
        with torch.autocast(device.type, enabled=False):
            return _fit_probe_sets(floats, num_classes, steps, l2)
    return _fit_probe_sets(floats, num_classes, steps, l2)


#: one fold's probe problems: (each unit's features, training labels, validation labels,
#: training rows: the first ``n_train`` rows of every feature matrix)
ProbeSet = tuple[Sequence[torch.Tensor], torch.Tensor, torch.Tensor, int]


def _standardized(feats: Sequence[torch.Tensor], n_train: int, width: int) -> torch.Tensor:
    """``(units, rows, width)``: each unit's features standardized on its training rows and
    zero-padded to ``width`` (padded columns stay zero)."""
    stack = []
    for f in feats:
        tr = f[:n_train]
        mean = tr.mean(0, keepdim=True)
        std = tr.std(0, keepdim=True).nan_to_num(0.0).clamp_min(1e-6)
        stack.append(F.pad((f - mean) / std, (0, width - f.shape[1])))
    return torch.stack(stack)


def _fit_probe_sets(sets: Sequence[ProbeSet], num_classes: int, steps: int, l2: float
                    ) -> list[list[tuple[float, float]]]:
    """(train, validation) accuracy of every unit's probe of every set: sets of one shape (the
    same rows and widths: a candidate's folds) solved by one batched L-BFGS, whose units are
    independent problems (each its own history and step), so each unit's fit is the one it
    gets alone with one set's Python overhead instead of one per set."""
    out: list[list[tuple[float, float]]] = [[] for _ in sets]
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, (feats, _, _, n_train) in enumerate(sets):
        if not len(feats):
            continue
        shape = (int(feats[0].shape[0]), n_train, max(int(f.shape[1]) for f in feats))
        groups.setdefault(shape, []).append(i)
    for (_, n_train, width), members in groups.items():
        xs = [_standardized(sets[i][0], n_train, width) for i in members]
        x = torch.cat(xs)  # (units of every member, rows, width)
        a, b = x[:, :n_train], x[:, n_train:]
        onehot = torch.cat([F.one_hot(sets[i][1], num_classes).to(x.dtype).T.expand(
            len(sets[i][0]), -1, -1) for i in members])
        theta = _lbfgs(a, onehot, l2, steps)
        units = x.shape[0]
        w = theta[:, :width * num_classes].view(units, num_classes, width).transpose(1, 2)
        bias = theta[:, width * num_classes:].view(units, 1, num_classes)
        y_tr = torch.cat([sets[i][1].expand(len(sets[i][0]), -1) for i in members])
        y_va = torch.cat([sets[i][2].expand(len(sets[i][0]), -1) for i in members])
        with torch.no_grad():
            tr_acc = (torch.baddbmm(bias, a, w).argmax(2) == y_tr).float().mean(1).tolist()
            va_acc = (torch.baddbmm(bias, b, w).argmax(2) == y_va).float().mean(1).tolist()
        at = 0
        for i in members:
            n = len(sets[i][0])
            out[i] = list(zip(tr_acc[at:at + n], va_acc[at:at + n], strict=True))
            at += n
    return out


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
        self._pending: list[dict[str, Any]] = []  # folds whose features wait for their fits
        self._done: list[dict[str, Any]] = []

    def on_fit_start(self, model: nn.Module, fold: int, x_train: torch.Tensor,
                     y_train: torch.Tensor) -> None:
        if (tuple(x_train.shape[1:]) != tuple(self.data.x.shape[1:]) or y_train.dim() != 1
                or fold >= len(self.splits)):
            return
        most = min(self.max_train, max(MIN_TRAIN, int(TRAIN_SHARE * len(x_train))))
        idx = spaced_rows(len(x_train), most).to(x_train.device)
        # a copy of the few rows kept: the engine may free or reuse its fold tensors
        self._rows[fold] = (x_train[idx].clone(), y_train[idx].clone())

    def on_fit_end(self, model: nn.Module, fold: int) -> dict[str, Any] | None:
        """The fold's unit features now (its model is final); their probes are fitted with
        every other fold's at the CV's last fold (one batched L-BFGS for all folds: their
        units share shapes), or at the first read of :attr:`fold_rows` or :meth:`summary`."""
        kept = self._rows.pop(fold, None)
        if kept is not None:
            self._pending.append(self._features(model, fold, kept))
        if fold >= len(self.splits) - 1:
            self._fit_pending()
        return None

    def _features(self, model: nn.Module, fold: int,
                  kept: tuple[torch.Tensor, torch.Tensor]) -> dict[str, Any]:
        start = time.perf_counter()
        dev = next(model.parameters()).device
        tr, va = self.splits[fold]
        scaler = fold_scaler(self.data.x, np.asarray(tr), dev)
        va = np.asarray(va)[spaced_rows(len(va), self.max_val).numpy()]
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
        finite = [i for i, f in enumerate(feats) if torch.isfinite(f).all()]
        row = {"fold": int(fold), "units": names,
               "features": [int(f.shape[1]) for f in feats],
               "n_train": int(n_tr), "n_val": len(va),
               # each auxiliary head's own validation accuracy, by the unit it reads
               "aux_accuracy": {names[i]: round(float((p[n_tr:] == y_val).float().mean()), 5)
                                for i, p in preds.items()}}
        return {"row": row, "finite": finite, "n_units": len(feats),
                "set": ([feats[i] for i in finite], y_tr, y_val, n_tr),
                "seconds": time.perf_counter() - start}

    def _fit_pending(self) -> None:
        """Fit the probes of every fold whose features wait, all in one batched solve."""
        if not self._pending:
            return
        start = time.perf_counter()
        fits = fit_probe_sets([p["set"] for p in self._pending], int(self.data.num_classes),
                              steps=self.steps, l2=self.l2)
        share = (time.perf_counter() - start) / len(self._pending)
        for p, fit in zip(self._pending, fits, strict=True):
            got = dict(zip(p["finite"], fit, strict=True))
            acc = [got.get(i, (None, None)) for i in range(p["n_units"])]
            row = {**p["row"],
                   "train_accuracy": [None if a is None else round(a, 5) for a, _ in acc],
                   "val_accuracy": [None if b is None else round(b, 5) for _, b in acc],
                   "seconds": round(p["seconds"] + share, 4)}
            self._done.append(row)
        self._pending = []

    @property
    def fold_rows(self) -> list[dict[str, Any]]:
        """One dict per probed fold (units, feature widths, train and validation probe
        accuracy per unit, rows, seconds)."""
        self._fit_pending()
        return self._done

    def summary(self) -> dict[str, Any] | None:
        """Per unit: validation and training probe accuracy (mean over the probed folds),
        the folds' rows and the probes' total seconds; None when no fold was probed."""
        done = self.fold_rows
        rows = [r for r in done if r["units"] == done[0]["units"]] if done else []
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
                "folds": rows, "seconds": round(sum(r["seconds"] for r in done), 4)}


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
