"""The experiments behind the through-time thresholds (``diagnosis.through_time``).

Runs the sequence ground-truth cases (``groundtruth.SEQUENCE_CASES``: 100-step long-range
task, tanh RNN vs LSTM, real vs random labels, a relu RNN at a far too large learning rate)
plus heavier variants the test suite leaves out (a GRU with memory at initialization, gated
cells at PyTorch's default initialization, which stall within this budget) over several seeds,
with the default shallow baseline; prints each run's through-time signals beside the expected
verdict, the range of ``grad_time_log10`` on stalled runs with and without signal in the data,
and the confusion matrix of the current rules.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diagnose_through_time.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nasdepth.diagnosis.groundtruth import (
    SEQ_ADAM,
    SEQUENCE_CASES,
    Case,
    long_range,
    rnn,
    run_case,
)

SHOWN = ["grad_time_log10", "grad_time_log10_first_epoch", "grad_time_log10_max",
         "grad_depth_log10", "val_loss_norm_min", "skill_z", "nonfinite"]

HEAVIER: tuple[Case, ...] = (
    Case("gru_long_range", "healthy", rnn("gru", 8, gate_bias=3.0), long_range, SEQ_ADAM, 8),
    # gated cells at default initialization keep ~50-73% of the state per step: their
    # gradient vanishes through time as well and they stall within 8 epochs
    Case("gru_default_init_long_range", "vanishing_through_time", rnn("gru", 8), long_range,
         SEQ_ADAM, 8),
    Case("lstm_forget_bias_1_long_range", "vanishing_through_time", rnn("lstm", 8),
         long_range, SEQ_ADAM, 8),
)


def run(cases: tuple[Case, ...], seeds: int) -> pd.DataFrame:
    rows = []
    for case in cases:
        for seed in range(seeds):
            start = time.perf_counter()
            d = run_case(case, seed)  # probes, the default shallow baseline, the rules
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence,
                         "seconds": time.perf_counter() - start,
                         **{k: d.signals.get(k) for k in SHOWN}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--light", action="store_true", help="the test suite's cases only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    df = run(SEQUENCE_CASES + (() if args.light else HEAVIER), args.seeds)
    pd.set_option("display.width", 250, "display.max_columns", 30)
    print(df.round(3).to_string(index=False))
    stalled = df[df.val_loss_norm_min > 0.98]
    for label, part in (("stalled, signal in the data", stalled[stalled.expected ==
                                                               "vanishing_through_time"]),
                        ("stalled, random labels", stalled[stalled.expected ==
                                                          "data_limited_plateau"]),
                        ("learned", df[df.expected == "healthy"])):
        g = part.grad_time_log10.dropna()
        if len(g):
            print(f"grad_time_log10 {label:30s} [{g.min():.3g} .. {g.max():.3g}]")
    print("\nConfusion matrix (rows: expected, columns: verdict):")
    print(pd.crosstab(df.expected, df.verdict).to_string())
    wrong = df[df.expected != df.verdict]
    print(f"\n{len(df) - len(wrong)}/{len(df)} correct; total {df.seconds.sum():.1f} s")
    if len(wrong):
        print(wrong[["case", "seed", "expected", "verdict"]].to_string(index=False))


if __name__ == "__main__":
    main()
