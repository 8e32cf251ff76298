"""CPU training throughput of the sequence blocks (samples per second), side by side.

Trains each family on MNIST-1D-shaped batches ((batch, 1, 40), 10 classes) for a fixed number
of AdamW steps (forward, backward, step; no probes) and prints samples/s, the median of
``--repeats`` timed runs; families alternate within each repeat, so machine load (the shared
development CPU) hits all alike, and the ratio to the 1-D residual CNN is the figure to read.
``--length`` changes the sequence length (the recurrent layers' cost grows with it, one step
after another, while convolutions and attention run the steps at once).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sequence.py [--width 64 --depth 2]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from nasdepth.arch import ArchConfig, build_model, count_parameters


def families(width: int, depth: int) -> dict[str, ArchConfig]:
    def one(block: str, **opts: object) -> ArchConfig:
        return ArchConfig.from_dict({"stages": [{"block": block, "depth": depth,
                                                 "width": width, "norm": "layer", **opts}],
                                     "stem": [], "head_pool": "avg"})

    return {"residual CNN": one("residual", kernel_size=5), "rnn (tanh)": one("rnn"),
            "lstm": one("lstm"), "gru": one("gru"), "lstm bidirectional":
            one("lstm", bidirectional=True), "transformer": one("transformer", heads=4)}


def samples_per_second(cfg: ArchConfig, length: int, batch: int, steps: int) -> float:
    torch.manual_seed(0)
    model = build_model(cfg, (1, length), 10)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 1, length), torch.randint(0, 10, (batch,))
    for _ in range(2):  # warm-up
        F.cross_entropy(model(x), y).backward()
    start = time.perf_counter()
    for _ in range(steps):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--length", type=int, default=40)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    fams = families(args.width, args.depth)
    runs: dict[str, list[float]] = {name: [] for name in fams}
    for _ in range(args.repeats):
        for name, cfg in fams.items():
            runs[name].append(samples_per_second(cfg, args.length, args.batch, args.steps))
    base = statistics.median(runs["residual CNN"])
    print(f"width {args.width}, depth {args.depth}, length {args.length}, batch {args.batch}; "
          f"1 thread; median of {args.repeats} runs of {args.steps} AdamW steps")
    print(f"{'family':20s} {'params':>8s} {'samples/s':>10s} {'vs CNN':>7s}")
    for name, cfg in fams.items():
        med = statistics.median(runs[name])
        params = count_parameters(build_model(cfg, (1, args.length), 10))
        print(f"{name:20s} {params:8d} {med:10.0f} {med / base:7.2f}")


if __name__ == "__main__":
    main()
