"""One 5-fold CV three ways, side by side on the same model, data and epochs:

* ``plain``: the loop a user would write by hand (``TensorDataset`` + ``DataLoader``,
  ``AdamW``, cosine schedule, validation each epoch);
* ``engine-seq``: ``cross_validate(..., parallel=False)`` (tensors on the device, randperm
  batches, fused optimizer, channels-last for CNNs);
* ``engine-par``: ``cross_validate(..., parallel=True)`` (the k folds at once: an MLP as stacked
  layers with grouped matmuls, a CNN as one ``vmap``-ped ensemble).

The hand-written loop runs in a child process of its own, as a user's script would (its wall
and CPU times are taken there): the engine tunes the process's ``malloc`` the first time it
trains (``nasdepth.train.host_memory``), which would speed up a loop in the same process too
(``--same-process`` runs it here, and so shows the engine's lead over a loop whose author tuned
``malloc`` alike). Variants are interleaved within each repeat so that foreign load hits them
alike; the table shows medians over repeats and the median of per-repeat ratios against ``plain``.

    .venv/bin/python benchmarks/bench_cv.py                  # CPU, 1 thread, both cases
    .venv/bin/python benchmarks/bench_cv.py --case mlp --repeats 5 --epochs 10
    .venv/bin/python benchmarks/bench_cv.py --device cuda    # on a GPU machine
    .venv/bin/python benchmarks/bench_cv.py --device cuda --precisions fp32,bf16,fp16
    .venv/bin/python benchmarks/bench_cv.py --case cnn --precisions auto,fp32

The compute bound, printed under each case's table: the FLOPs of one CV, counted exactly
(``FlopCounterMode`` over one real training step of the case's model at the batch size, forward
and backward, times the steps each variant takes; plus the forward passes that score the
validation rows each epoch, and the engine's final pass over the training rows); this CPU's
rates for the case's kernels, each measured alone in a tight loop in the same run: the model's
own convolutions (CNN, channels-last as the engine runs them) or linear layers (MLP; one fold
at a time, and as the fold-parallel engine's stacked ``bmm``) at the batch size, forward and
backward, and a large sgemm (the peak); and per variant: the GFLOP/s it achieves, the wall time
and GFLOP/s that the target ratio over ``plain`` (``TARGETS``: 1.3x on the CNN, 3x on the MLP)
would need, and the kernel-only bound: the time its FLOPs take at its own kernels' rate alone,
and at the sgemm peak, with the ratio over ``plain`` each gives; and the time outside those
kernels (CPU time less the bound), now and what the target leaves for it. A target that needs
more GFLOP/s than a variant's kernels reach alone is out of reach for an engine that calls
them.
The bound table is in CPU seconds of this process (the kernels are timed so too), so that the
other processes on a shared machine do not count; the wall GFLOP/s is printed beside it.

``--precisions``: the engine's variants under each ``precision`` (default ``auto``, what a
user gets: bf16 autocast for CNNs on a CPU where bf16 convolutions are faster, fp32
otherwise; ``auto,fp32`` adds the
fp32 engine beside it). Each variant's name carries its setting (none for ``auto``) and the
bound table the precision it resolved to: a bf16 variant's bound takes its convolutions' rate
under bf16 autocast. Mean CV accuracies are printed beside the times, so that a faster
precision that loses accuracy shows it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from nasdepth import ArchConfig, StageConfig, TrainConfig, build_model, cross_validate, load_data
from nasdepth.data import Dataset, Standardizer, make_folds
from nasdepth.train.loop import batch_plan

#: the issue's ratio over the hand-written loop, per case kind
TARGETS = {"cnn": 1.3, "mlp": 3.0}


@dataclass
class Case:
    name: str
    arch: ArchConfig
    data: Dataset
    kind: str = "mlp"


def cases(which: str, mlp_samples: int) -> list[Case]:
    out = []
    if which in ("cnn", "all"):
        cnn = ArchConfig(stages=(StageConfig(block="residual", depth=3, width=32),))
        out.append(Case("CNN residual 3x32 (7 convs), digits 1x8x8", cnn,
                        load_data("sklearn:digits"), "cnn"))
    if which in ("mlp", "all"):
        mlp = ArchConfig(stages=(StageConfig(block="plain", depth=8, width=128),))
        data = load_data({"source": "synthetic:classification", "n_samples": mlp_samples,
                          "n_features": 64, "n_informative": 16, "n_classes": 4})
        out.append(Case(f"MLP 8x128, synthetic {mlp_samples}x64", mlp, data, "mlp"))
    return out


def plain_loop(case: Case, folds: int, epochs: int, bs: int, lr: float, device: str) -> None:
    """What a user writes by hand: a DataLoader per fold, a step per batch, eval per epoch."""
    dev = torch.device(device)
    for k, (tr, va) in enumerate(make_folds(case.data.y_numpy, folds, seed=0)):
        torch.manual_seed(k)
        model = build_model(case.arch, case.data.input_shape, case.data.num_classes).to(dev)
        scaler = Standardizer.fit(case.data.x[tr])
        train = TensorDataset(scaler(case.data.x[tr]), case.data.y[tr])
        val = TensorDataset(scaler(case.data.x[va]), case.data.y[va])
        loader = DataLoader(train, batch_size=bs, shuffle=True, drop_last=True)
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * len(loader))
        for _ in range(epochs):
            model.train()
            for xb, yb in loader:
                xb, yb = xb.to(dev), yb.to(dev)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for xb, yb in DataLoader(val, batch_size=1024):
                    correct += int((model(xb.to(dev)).argmax(1) == yb.to(dev)).sum())


#: mean CV accuracy of each engine variant's last run (printed beside its time)
ACCURACY: dict[str, float] = {}
#: the precision each engine variant resolved to (``auto``: by model and CPU)
RESOLVED: dict[str, str] = {}


def engine(parallel: bool, precision: str = "fp32", name: str = ""
           ) -> Callable[[Case, int, int, int, float, str], None]:
    def run(case: Case, folds: int, epochs: int, bs: int, lr: float, device: str) -> None:
        training = TrainConfig(epochs=epochs, batch_size=bs, lr=lr, device=device,
                               precision=precision)
        res = cross_validate(case.arch, case.data, folds=folds, seed=0, training=training,
                             parallel=parallel)
        ACCURACY[name] = res.mean()
        RESOLVED[name] = res.settings["precision"]

    return run


def variants(precisions: list[str]) -> dict[str, Callable[..., None]]:
    out: dict[str, Callable[..., None]] = {"plain": plain_loop}
    for p in precisions:
        tag = "" if p == "auto" else f"-{p}"
        out[f"engine-seq{tag}"] = engine(False, p, f"engine-seq{tag}")
        out[f"engine-par{tag}"] = engine(True, p, f"engine-par{tag}")
    return out


def auto_variant(case: Case, folds: int, bs: int, device: str) -> str:
    """Which engine variant ``parallel: auto`` picks for the case on this machine (the
    engine's own rule, its measurements included)."""
    from nasdepth.train.cv import choose_parallel

    splits = make_folds(case.data.y_numpy, folds, seed=0)
    model = build_model(case.arch, case.data.input_shape, case.data.num_classes)
    on = choose_parallel("auto", case.data, torch.device(device), (), splits,
                         TrainConfig(batch_size=bs, device=device), model=model)
    return "engine-par (folds side by side)" if on else "engine-seq (one fold at a time)"


_CASES: dict[tuple[str, int], list[Case]] = {}


def _plain_job(which: str, mlp_samples: int, index: int, threads: int, *a: object
               ) -> tuple[float, float]:
    """The hand-written loop in the child process: (wall s, CPU s), timed there."""
    torch.set_num_threads(threads)
    if (which, mlp_samples) not in _CASES:
        _CASES[which, mlp_samples] = cases(which, mlp_samples)
    case = _CASES[which, mlp_samples][index]
    start, cpu = time.perf_counter(), time.process_time()
    plain_loop(case, *a)  # type: ignore[arg-type]
    sync(str(a[-1]))
    return time.perf_counter() - start, time.process_time() - cpu


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- the compute bound -------------------------------------------------------------------


def _model(case: Case) -> nn.Module:
    return build_model(case.arch, case.data.input_shape, case.data.num_classes)


def sample_flops(case: Case, bs: int) -> tuple[float, float]:
    """FLOPs per sample of a training step (forward + backward at batch ``bs``, counted over
    one real step of the case's model) and of an evaluation forward pass. ``FlopCounterMode``
    counts the matrix products and convolutions (what the kernels below run); both scale
    linearly with the batch."""
    torch.manual_seed(0)
    model = _model(case).train()
    x, y = case.data.x[:bs].float(), case.data.y[:bs]
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    train = counter.get_total_flops()
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return train / bs, counter.get_total_flops() / bs


def cv_samples(case: Case, variant: str, folds: int, epochs: int, bs: int) -> tuple[int, int]:
    """Samples one CV trains on and samples it scores, per variant: the hand loop drops each
    fold's last partial batch (``drop_last``) and scores the validation rows each epoch; the
    engine takes ``batch_plan`` over the smallest fold's size on every fold, scores the
    validation rows each epoch and the training rows once at the end (train metrics, gap)."""
    splits = make_folds(case.data.y_numpy, folds, seed=0)
    n_tr, n_va = [len(tr) for tr, _ in splits], [len(va) for _, va in splits]
    if variant == "plain":
        return epochs * sum(n // bs * bs for n in n_tr), epochs * sum(n_va)
    used = batch_plan(min(n_tr), bs)[-1][1]
    return folds * epochs * used, epochs * sum(n_va) + sum(n_tr)


def _best_rate(fn: Callable[[], None], flops: float, seconds: float = 0.1, blocks: int = 10
               ) -> float:
    """FLOP/s of ``fn`` (``flops`` a call) in a tight loop: the best of ``blocks`` timed
    blocks of about ``seconds`` each, in this process's CPU time (the peak: time the shared
    cores give to other processes does not count)."""
    fn()
    start, n = time.process_time(), 0
    while time.process_time() - start < 0.05:
        fn()
        n += 1
    per_block = max(1, int(n * seconds / (time.process_time() - start)))
    best = float("inf")
    for _ in range(blocks):
        start = time.process_time()
        for _ in range(per_block):
            fn()
        best = min(best, (time.process_time() - start) / per_block)
    return flops / best


def sgemm_rate(n: int = 1024) -> float:
    """FLOP/s of an ``n`` x ``n`` x ``n`` fp32 matrix product."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    return _best_rate(lambda: torch.mm(a, b, out=out), 2.0 * n**3)


def layer_shapes(case: Case, bs: int) -> list[tuple[nn.Module, torch.Size]]:
    """The model's convolutions (CNN) or linear layers (MLP), each with its input's shape
    at batch ``bs``, in forward order."""
    kind = nn.Conv2d if case.kind == "cnn" else nn.Linear
    model = _model(case).train()
    shapes: list[tuple[nn.Module, torch.Size]] = []

    def record(mod: nn.Module, inp: tuple[torch.Tensor, ...]) -> None:
        shapes.append((mod, inp[0].shape))

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, kind)]
    model(case.data.x[:bs].float())
    for h in hooks:
        h.remove()
    return shapes


def _rate_over(steps: list[tuple[Callable[[], None], Callable[[], None]]]) -> float:
    """FLOP/s over several kernels, each timed alone: total FLOPs over total time. Each entry
    is (the timed step, the same step with ``backward()``, which ``FlopCounterMode``'s module
    hooks need)."""
    flops = seconds = 0.0
    for step, counted in steps:
        with FlopCounterMode(display=False) as counter:
            counted()
        f = counter.get_total_flops()
        flops += f
        seconds += f / _best_rate(step, f, blocks=5)
    return flops / seconds


def layer_rate(case: Case, bs: int, folds: int = 1, bf16: bool = False) -> tuple[float, int]:
    """FLOP/s of the model's own convolutions (CNN, channels-last as the engine runs them)
    or linear layers (MLP) at batch ``bs``, forward and backward (weight and input gradients;
    the first layer has no input gradient, as in training), each alone in a tight loop. For
    an MLP, ``folds`` > 1 runs each layer as the fold-parallel engine does: one ``bmm`` over
    ``folds`` stacked weights. ``bf16``: under bf16 autocast, as the engine's ``precision:
    bf16`` runs them. Also the number of layers."""
    shapes = layer_shapes(case, bs)
    fmt = torch.channels_last if case.kind == "cnn" else torch.contiguous_format
    steps = []
    for i, (mod, shape) in enumerate(shapes):
        fn: Callable[[torch.Tensor], torch.Tensor]
        if folds > 1 and isinstance(mod, nn.Linear):
            w = torch.randn(folds, mod.in_features, mod.out_features, requires_grad=True)
            x = torch.randn(folds, *shape).requires_grad_(i > 0)
            g = torch.randn(folds, shape[0], mod.out_features)
            fn, wrt = partial(torch.bmm, mat2=w), [w]
        else:
            fn = mod.to(memory_format=fmt)
            x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(i > 0)
            g = torch.randn(fn(x).shape).contiguous(memory_format=fmt)
            wrt = list(mod.parameters())
        wrt += [x] if x.requires_grad else []

        def step(fn: Callable[..., torch.Tensor] = fn, x: torch.Tensor = x,
                 g: torch.Tensor = g, wrt: list[torch.Tensor] = wrt) -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                y = fn(x)
            torch.autograd.grad(y, wrt, g.to(y.dtype))

        def counted(fn: Callable[..., torch.Tensor] = fn, x: torch.Tensor = x,
                    g: torch.Tensor = g) -> None:
            with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                y = fn(x)
            y.backward(g.to(y.dtype))

        steps.append((step, counted))
    return _rate_over(steps), len(shapes)


def bound_table(case: Case, walls: dict[str, list[float]], cpus: dict[str, list[float]],
                folds: int, epochs: int, bs: int) -> None:
    """The compute-bound table under a case's timings (see the module's docstring), in CPU
    seconds of this process (``cpus``), as the kernels' rates are: on shared cores, wall time
    also counts the time other processes take."""
    per_train, per_eval = sample_flops(case, bs)
    sgemm = sgemm_rate()
    layers, n_layers = layer_rate(case, bs)
    bf16 = any(RESOLVED.get(name) == "bf16" for name in walls)
    layers_bf16 = layer_rate(case, bs, bf16=True)[0] if bf16 else layers
    if case.kind == "cnn":
        stacked = layers  # vmap runs the folds' convolutions as the same oneDNN kernels
        rates = (f"the model's {n_layers} convolutions at batch {bs}, forward + backward, "
                 f"channels-last {layers / 1e9:.1f}")
    else:
        stacked = layer_rate(case, bs, folds)[0]
        rates = (f"the model's {n_layers} linear layers at batch {bs}, forward + backward, "
                 f"one fold (mm) {layers / 1e9:.1f}, {folds} folds stacked (bmm) "
                 f"{stacked / 1e9:.1f}")
    print(f"  compute (matmuls and convolutions, counted): {per_train / 1e6:,.3f} MFLOP per "
          f"training sample (forward + backward), {per_eval / 1e6:,.3f} per scored sample")
    if bf16:
        rates += f"; the same under bf16 autocast {layers_bf16 / 1e9:.1f}"
    print(f"  kernels alone, 1 thread, GFLOP/s: sgemm 1024^3 {sgemm / 1e9:.1f}; {rates}")
    target = TARGETS[case.kind]
    plain = statistics.median(cpus["plain"])
    print(f"  in CPU seconds: target {target:g}x plain = {plain / target:.2f} s. Bound: the "
          f"variant's FLOPs at the rate of its own kernels alone (fold-parallel MLP: the "
          f"stacked bmm), and at the sgemm peak; max x: plain's CPU s over the bound; "
          f"outside: CPU s less the bound, now and what the target leaves")
    print(f"  {'variant':<16} {'GFLOP':>7} {'wall GF/s':>9} {'CPU s':>7} {'CPU GF/s':>8} "
          f"{'target s':>8} {'needs GF/s':>10} {'bound s':>7} {'max x':>6} {'peak s':>6} "
          f"{'max x':>6} {'outside s':>9} {'target leaves':>13}")
    for name, w in walls.items():
        trained, scored = cv_samples(case, "plain" if name == "plain" else "engine", folds,
                                     epochs, bs)
        flops = trained * per_train + scored * per_eval
        cpu = statistics.median(cpus[name])
        own = flops / (layers_bf16 if RESOLVED.get(name) == "bf16"
                       else stacked if name.startswith("engine-par") else layers)
        peak = flops / sgemm
        need = (f"{'-':>8} {'-':>10}" if name == "plain"
                else f"{plain / target:8.2f} {flops / (plain / target) / 1e9:10.1f}")
        leaves = "-" if name == "plain" else f"{plain / target - own:.2f}"
        label = f"{name} ({RESOLVED[name]})" if name in RESOLVED else name
        print(f"  {label:<16} {flops / 1e9:7.1f} {flops / statistics.median(w) / 1e9:9.1f} "
              f"{cpu:7.2f} {flops / cpu / 1e9:8.1f} {need} {own:7.2f} {plain / own:6.2f} "
              f"{peak:6.2f} {plain / peak:6.2f} {cpu - own:9.2f} {leaves:>13}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--case", choices=["cnn", "mlp", "all"], default="all")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mlp-samples", type=int, default=20000)
    ap.add_argument("--precisions", default="auto",
                    help="comma list of engine precisions: auto (the default setting), fp32, "
                         "bf16 (autocast), fp16 (autocast, CUDA)")
    ap.add_argument("--same-process", action="store_true",
                    help="run the hand-written loop in this process (sharing the engine's "
                         "malloc setting) instead of a child process of its own")
    args = ap.parse_args()
    VARIANTS = variants(args.precisions.split(","))
    from peer_process import PeerProcess  # this script's folder

    with PeerProcess(args.same_process) as peer:
        run_cases(args, VARIANTS, peer)


def run_cases(args: argparse.Namespace, VARIANTS: dict[str, Callable[..., None]],
              peer: Any) -> None:
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, device {args.device}, {args.threads} thread(s), "
          f"{args.folds}-fold CV x {args.epochs} epochs, batch {args.batch_size}, "
          f"{args.repeats} interleaved repeats, load average {os.getloadavg()[0]:.1f}; "
          f"the hand-written loop {peer.where}")
    for index, case in enumerate(cases(args.case, args.mlp_samples)):
        def run(fn: Callable[..., None], *a: object, index: int = index, case: Case = case
                ) -> tuple[float, float]:
            """(wall s, CPU s) of one variant's CV; the hand loop in the child process."""
            if fn is plain_loop:  # timed where it runs (a child process by default)
                return peer.call(_plain_job, args.case, args.mlp_samples, index,  # type: ignore
                                 args.threads, *a)
            sync(args.device)
            start, cpu = time.perf_counter(), time.process_time()
            fn(case, *a)
            sync(args.device)
            return time.perf_counter() - start, time.process_time() - cpu

        n_train = len(case.data) * (args.folds - 1) / args.folds
        samples = n_train * args.epochs * args.folds
        for fn in VARIANTS.values():  # warm-up: allocator, kernels, lazy imports
            run(fn, 2, 1, args.batch_size, args.lr, args.device)
        walls: dict[str, list[float]] = {v: [] for v in VARIANTS}
        cpus: dict[str, list[float]] = {v: [] for v in VARIANTS}  # the CV's own CPU time
        for _ in range(args.repeats):
            for name, fn in VARIANTS.items():
                wall, cpu = run(fn, args.folds, args.epochs, args.batch_size, args.lr,
                                args.device)
                walls[name].append(wall)
                cpus[name].append(cpu)
        print(f"\n{case.name}: {samples:,.0f} training samples per CV")
        print(f"  {'variant':<16} {'wall s':>8} {'samples/s':>10} {'x plain':>8} {'x seq':>6} "
              f"{'CV acc':>7}")
        seq = next(n for n in walls if n.startswith("engine-seq"))  # the first one listed
        for name, w in walls.items():
            ratio = statistics.median(np.array(walls["plain"]) / np.array(w))
            vs_seq = statistics.median(np.array(walls[seq]) / np.array(w))
            med = statistics.median(w)
            acc = f"{ACCURACY[name]:.4f}" if name in ACCURACY else "-"
            print(f"  {name:<16} {med:8.2f} {samples / med:10,.0f} {ratio:8.2f} {vs_seq:6.2f} "
                  f"{acc:>7}", flush=True)
        print(f"  `parallel: auto` (the default) runs this case as "
              f"{auto_variant(case, args.folds, args.batch_size, args.device)}")
        if args.device == "cpu":
            bound_table(case, walls, cpus, args.folds, args.epochs, args.batch_size)
        else:  # the bound reads CPU kernels' rates in CPU seconds: nothing to say of a GPU
            print("  (no compute bound off the CPU: the GPU's kernels are not timed alone)")


if __name__ == "__main__":
    main()
