"""Per-step probe cost on the fold-parallel engine: one probe per fold model against one
``StepStats`` over the stacked parameters, timed inside a training loop.

Builds 3 stacked fold models of an 8x128 MLP (``make_ensemble``, as ``cross_validate`` does),
trains them on random batches of 64 and times, step by step, the training (forward, loss,
backward, optimizer step) and the probes' per-step calls, for the two ways: ``per fold`` binds
the fold models' gradient views on the sampled steps and calls each fold's ``Probe``;
``shared`` records every fold at once from the stacked tensors (what ``ProbeHook`` does). The
two ways alternate every two epochs of 63 steps, so the machine's drift hits both alike. Prints the
probes' time as a share of the training time.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_probe_steps.py [--steps 3000]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from nasdepth.arch import ArchConfig, build_model
from nasdepth.probes import Probe
from nasdepth.probes.steps import StepStats
from nasdepth.train.parallel import make_ensemble

K, BATCH, EPOCH = 3, 64, 63
BLOCK = 2 * EPOCH  # steps of one way before the other's turn: whole epochs


def main() -> None:
    parser = argparse.ArgumentParser(description="per-step probe cost, folds together")
    parser.add_argument("--steps", type=int, default=3024)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    arch = ArchConfig.from_dict({"stages": [{"block": "plain", "depth": 8, "width": 128}]})
    ens = make_ensemble([build_model(arch, (64,), 4) for _ in range(K)], torch.device("cpu"),
                        (64,))
    opt = torch.optim.AdamW(list(ens.params.values()), lr=1e-3)
    probes = [Probe(m) for m in ens.models]
    shared = StepStats(ens.stacked_params(probes[0].params), probes[0].step_stats.block_sizes,
                       k=K, stacked=True)
    x, y = torch.randn(K, BATCH, 64), torch.randint(0, 4, (K, BATCH))
    train = {"per fold": 0.0, "shared": 0.0}
    probe = {"per fold": 0.0, "shared": 0.0}
    for step in range(args.steps):
        way = "per fold" if (step // BLOCK) % 2 == 0 else "shared"
        t0 = time.perf_counter()
        opt.zero_grad()
        out = ens(x, train=True)[0]
        ce = F.cross_entropy(out.flatten(0, 1), y.flatten(), reduction="none").view(K, -1)
        losses = ce.mean(1)
        losses.sum().backward()
        t1 = time.perf_counter()
        if way == "shared":
            shared.after_backward(losses.detach())
        else:
            bind = any(p.reads_grads() for p in probes)
            if bind:
                ens.bind_grads()
            for p, loss in zip(probes, losses.detach().unbind(0), strict=True):
                p.after_backward(loss)
            if bind:
                ens.unbind_grads()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        if way == "shared":
            shared.after_step()
        else:
            for p in probes:
                p.after_step()
        t4 = time.perf_counter()
        train[way] += (t1 - t0) + (t3 - t2)
        probe[way] += (t2 - t1) + (t4 - t3)
        if step % EPOCH == EPOCH - 1:  # an epoch's end: the statistics are read and reset
            if way == "shared":
                shared.row(0)
            else:
                for p in probes:
                    p.step_stats.row(0)
    print(f"{K} stacked folds of an 8x128 MLP, batch {BATCH}, {args.steps} steps; probes' "
          "per-step time as a share of the training time:")
    for way in train:
        print(f"  {way:9s} {probe[way] / train[way]:6.2%}  "
              f"(training {train[way] / (args.steps / 2) * 1e3:.2f} ms per step)")


if __name__ == "__main__":
    main()
