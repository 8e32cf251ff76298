"""The experiments behind ``nasdepth.diagnosis.rules.THRESHOLDS``.

Runs every ground-truth case of ``nasdepth.diagnosis.groundtruth`` over several seeds with probes
on, prints each run's key signals beside its expected verdict, then for each threshold the
range of the signal on the runs that must fire the rule and on those that must not (the gap
between them is where the threshold sits), and the confusion matrix of the current rules.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diagnose_thresholds.py [--seeds 5]
    ... --all --seeds 3      # the earlier cases, the through-time ones and the hidden-signal ones
    ... --hidden --seeds 3   # only the hidden-signal cases (signal shallow models cannot see)
    ... --cost               # the reference network's cost beside the diagnosed run's

``--all``/``--hidden`` also print the reliability table per confidence band over every run
(what ``docs/diagnose.md`` shows).
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from nasdepth.diagnosis.baseline import best_shallow
from nasdepth.diagnosis.groundtruth import CASES, HIDDEN_CASES, SEQUENCE_CASES, run_case
from nasdepth.diagnosis.rules import THRESHOLDS

SHOWN = ["nonfinite", "grad_depth_log10", "grad_growth_log10", "grad_peak_log10",
         "update_ratio_median", "update_ratio_max", "train_loss_norm_max", "dead_frac_max",
         "train_loss_norm_last", "val_loss_norm_min", "val_loss_norm_last", "val_loss_rise",
         "gap_accuracy", "loss_gap", "cv_val_accuracy", "skill_z", "val_loss_fall_last",
         "train_loss_fall_last", "loss_gone",
         "end_below_mean"]

ORDER = ["exploding_gradients", "optimization_problem", "vanishing_through_time",
         "vanishing_gradients", "data_limited_plateau", "undertrained", "undecided_plateau",
         "overfitting", "healthy"]
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


def run(seeds: int, cases=CASES) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    rows = []
    for case in cases:
        for seed in range(seeds):
            start = time.perf_counter()
            d = run_case(case, seed)
            _, shallow_skill, shallow_z = best_shallow(d.controls.get("shallow"))
            ref = d.controls.get("reference") or {}
            print(f"{case.name:40s} seed {seed} {case.expected:22s} -> {d.verdict:22s} "
                  f"{d.confidence:.2f}", flush=True)
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence,
                         "still_learning": d.still_learning,
                         "seconds": time.perf_counter() - start,
                         "shallow_seconds": (d.controls.get("shallow") or {}).get("seconds"),
                         "shallow_best_skill": shallow_skill, "shallow_best_z": shallow_z,
                         "reference_z": ref.get("z"), "reference_seconds": ref.get("seconds"),
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


def cost() -> None:
    """The reference network's seconds beside a diagnosed run's on the same splits: digits
    (1,797 8x8 images), MNIST-1D (4,000 sequences of 40 steps) and the hidden textures."""
    from nasdepth.data import CVConfig, load_data
    from nasdepth.diagnosis.groundtruth import cnn
    from nasdepth.diagnosis.hidden import textures
    from nasdepth.diagnosis.reference import run_reference
    from nasdepth.train import TrainConfig, cross_validate

    rows = []
    for name, data in (("digits", load_data("sklearn:digits")),
                       ("MNIST-1D", load_data({"source": "mnist1d", "n_samples": 5000})),
                       ("textures", textures(0))):
        splits = CVConfig(folds=3, seed=0).resolve(data)
        start = time.perf_counter()
        cross_validate(cnn("residual", 2, 16, norm="batch", skip=True), data, cv=splits,
                       epochs=10, training=TrainConfig(batch_size=64))
        run_s = time.perf_counter() - start
        ref = run_reference(data, splits, model_seconds=run_s)
        rows.append({"data": name, "rows": len(data), "run_s": round(run_s, 1),
                     "reference_s": round(ref["seconds"], 1),
                     "share": round(ref["seconds"] / run_s, 2),
                     "reference_accuracy": round(ref.get("val_accuracy") or 0, 3),
                     "epochs": ref.get("epochs")})
        print(rows[-1], flush=True)
    print(pd.DataFrame(rows).to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--all", action="store_true", help="every ground-truth case")
    parser.add_argument("--hidden", action="store_true", help="the hidden-signal cases")
    parser.add_argument("--cost", action="store_true", help="the reference network's cost")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    if args.cost:
        cost()
        return
    cases = (HIDDEN_CASES if args.hidden else
             (*CASES, *SEQUENCE_CASES, *HIDDEN_CASES) if args.all else CASES)
    df = run(args.seeds, cases)
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
          f"which the shallow baseline {df.shallow_seconds.sum():.1f} s, the reference network "
          f"{df.reference_seconds.fillna(0).sum():.1f} s")
    if len(wrong):
        print(wrong[["case", "seed", "expected", "verdict"]].to_string(index=False))


if __name__ == "__main__":
    main()
