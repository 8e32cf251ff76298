"""The experiments behind ``nasdepth.diagnosis.rules.THRESHOLDS``.

Runs every ground-truth case of ``nasdepth.diagnosis.groundtruth`` over several seeds with probes
on, prints each run's key signals beside its expected verdict, then for each threshold the
range of the signal on the runs that must fire the rule and on those that must not (the gap
between them is where the threshold sits), and the confusion matrix of the current rules.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diagnose_thresholds.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nasdepth.diagnosis.baseline import best_shallow
from nasdepth.diagnosis.groundtruth import CASES, run_case
from nasdepth.diagnosis.rules import THRESHOLDS

SHOWN = ["nonfinite", "grad_depth_log10", "grad_growth_log10", "grad_peak_log10",
         "update_ratio_median", "update_ratio_max", "train_loss_norm_max", "dead_frac_max",
         "train_loss_norm_last", "val_loss_norm_min", "val_loss_rise", "gap_accuracy",
         "loss_gap", "skill_z", "val_loss_fall_last", "train_loss_fall_last", "loss_gone",
         "end_below_mean"]

ORDER = ["exploding_gradients", "optimization_problem", "vanishing_gradients",
         "data_limited_plateau", "undertrained", "overfitting", "healthy"]
BANDS = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]

# (signal, threshold key, verdicts that must be above/below it, direction of the rule)
SEPARATIONS = [
    ("grad_peak_log10", "grad_peak_log10", "exploding_gradients", "above"),
    ("update_ratio_max", "update_ratio_blowup", "exploding_gradients", "above"),
    ("train_loss_norm_max", "train_loss_blowup", "exploding_gradients", "above"),
    ("grad_depth_log10", "grad_depth_log10", "vanishing_gradients", "below"),
    ("update_ratio_max", "update_ratio_low", "optimization_problem", "below"),
    ("skill_z", "skill_z", "data_limited_plateau", "below"),
    ("val_loss_norm_min", "val_loss_norm_min", "data_limited_plateau", "above"),
    # the plateaus: the shallow baseline at chance (data-limited) or learning (under-trained)
    ("shallow_best_z", "shallow_z", "data_limited_plateau", "below"),
    ("val_loss_rise", "val_loss_rise", "overfitting", "above"),
    ("gap_accuracy", "gap_accuracy", "overfitting", "above"),
    ("loss_gap", "loss_gap", "overfitting", "above"),
]


def run(seeds: int) -> pd.DataFrame:
    rows = []
    for case in CASES:
        for seed in range(seeds):
            start = time.perf_counter()
            d = run_case(case, seed)
            _, shallow_skill, shallow_z = best_shallow(d.controls.get("shallow"))
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence,
                         "still_learning": d.still_learning,
                         "seconds": time.perf_counter() - start,
                         "shallow_seconds": (d.controls.get("shallow") or {}).get("seconds"),
                         "shallow_best_skill": shallow_skill, "shallow_best_z": shallow_z,
                         **{k: d.signals.get(k) for k in SHOWN}})
    return pd.DataFrame(rows)


def reliability(df: pd.DataFrame) -> pd.DataFrame:
    """Accuracy of the verdicts by confidence band."""
    band = pd.cut(df.confidence, BANDS, right=False, include_lowest=True)
    right = df.expected == df.verdict
    out = pd.DataFrame({"runs": right.groupby(band, observed=False).size(),
                        "right": right.groupby(band, observed=False).sum()})
    out["accuracy"] = (out.right / out.runs).round(3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seeds", type=int, default=5)
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
    print("\nReliability (verdicts right by confidence band):")
    print(reliability(df).to_string())
    high = df[df.confidence >= 0.8]
    print(f"confidence >= 0.8: {int((high.expected == high.verdict).sum())}/{len(high)} right")
    print("\nConfusion matrix (rows: expected, columns: verdict):")
    print(pd.crosstab(df.expected, df.verdict).to_string())
    wrong = df[df.expected != df.verdict]
    print(f"\n{len(df) - len(wrong)}/{len(df)} correct; total {df.seconds.sum():.1f} s, of "
          f"which the shallow baseline {df.shallow_seconds.sum():.1f} s")
    if len(wrong):
        print(wrong[["case", "seed", "expected", "verdict"]].to_string(index=False))


if __name__ == "__main__":
    main()
