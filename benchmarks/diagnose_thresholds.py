"""The experiments behind ``nasdepth.diagnosis.rules.THRESHOLDS``.

Runs every ground-truth case of ``nasdepth.diagnosis.groundtruth`` over several seeds with probes
on, prints each run's key signals beside its expected verdict, then for each threshold the
range of the signal on the runs that must fire the rule and on those that must not (the gap
between them is where the threshold sits), and the confusion matrix of the current rules.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diagnose_thresholds.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nasdepth.diagnosis.groundtruth import CASES
from nasdepth.diagnosis.rules import THRESHOLDS, diagnose_traces
from nasdepth.probes import ProbeHook
from nasdepth.train import NonFiniteLossError, cross_validate

SHOWN = ["nonfinite", "grad_depth_log10", "grad_growth_log10", "grad_peak_log10",
         "update_ratio_median", "update_ratio_max", "train_loss_norm_max", "dead_frac_max",
         "train_loss_norm_last", "val_loss_norm_min", "val_loss_rise", "gap_accuracy",
         "loss_gap", "skill_z"]

ORDER = ["exploding_gradients", "optimization_problem", "vanishing_gradients",
         "data_limited_plateau", "overfitting", "healthy"]

# (signal, threshold key, verdicts that must be above/below it, direction of the rule)
SEPARATIONS = [
    ("grad_peak_log10", "grad_peak_log10", "exploding_gradients", "above"),
    ("update_ratio_max", "update_ratio_blowup", "exploding_gradients", "above"),
    ("train_loss_norm_max", "train_loss_blowup", "exploding_gradients", "above"),
    ("grad_depth_log10", "grad_depth_log10", "vanishing_gradients", "below"),
    ("update_ratio_max", "update_ratio_low", "optimization_problem", "below"),
    ("skill_z", "skill_z", "data_limited_plateau", "below"),
    ("val_loss_norm_min", "val_loss_norm_min", "data_limited_plateau", "above"),
    ("val_loss_rise", "val_loss_rise", "overfitting", "above"),
    ("gap_accuracy", "gap_accuracy", "overfitting", "above"),
    ("loss_gap", "loss_gap", "overfitting", "above"),
]


def run(seeds: int) -> pd.DataFrame:
    rows = []
    for case in CASES:
        for seed in range(seeds):
            data = case.data(seed)
            hook = ProbeHook()
            start = time.perf_counter()
            try:
                cv = cross_validate(case.arch, data, folds=2, epochs=case.epochs, seed=seed,
                                    training=case.training, hooks=[hook])
                folds = cv.folds
            except NonFiniteLossError as exc:
                hook.close(str(exc))
                folds = None
            d = diagnose_traces(hook.traces, folds=folds)
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence,
                         "seconds": time.perf_counter() - start,
                         **{k: d.signals.get(k) for k in SHOWN}})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    df = run(args.seeds)
    pd.set_option("display.width", 250, "display.max_columns", 30)
    print(df.round(4).to_string(index=False))
    print("\nSeparation (min..max of the signal on runs where the rule must fire vs. on runs"
          " that reach it and must not):")
    for signal, key, verdict, direction in SEPARATIONS:
        fire = df[df.expected == verdict][signal].dropna()
        # the rules are read in ORDER: a rule only meets runs that no earlier rule decided
        later = ORDER[ORDER.index(verdict) + 1:]
        rest = df[df.expected.isin(later)][signal].dropna()
        print(f"  {signal:24s} rule fires {direction} {THRESHOLDS[key]:<8g} "
              f"{verdict:22s} [{fire.min():.4g} .. {fire.max():.4g}]   "
              f"others [{rest.min():.4g} .. {rest.max():.4g}]")
    print("\nConfusion matrix (rows: expected, columns: verdict):")
    print(pd.crosstab(df.expected, df.verdict).to_string())
    wrong = df[df.expected != df.verdict]
    print(f"\n{len(df) - len(wrong)}/{len(df)} correct; total {df.seconds.sum():.1f} s")
    if len(wrong):
        print(wrong[["case", "seed", "expected", "verdict"]].to_string(index=False))


if __name__ == "__main__":
    main()
