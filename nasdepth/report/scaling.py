"""The report's "Which way to scale" section, for studies whose space scales a base network
(``scaling:``, :mod:`nasdepth.space.scaling`): at each φ (a FLOPs tier), the rules (depth-only,
width-only, resolution-only, compound, searched triples) side by side, and the best rule of the
tier against each other one with the corrected resampled t-test on shared folds, as the depth
section compares depths. Tables are computed here apart from the figure that draws them.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
import pandas as pd

from nasdepth.report import tables as T
from nasdepth.report.document import Block, Para, Section, Table, add_image, fmt
from nasdepth.report.figures import finish, plt

PHI, RULE = "scaling.phi", "scaling.rule"
TABLE_COLUMNS = ["phi", "rule", "trial", "resolution", "depth", "width", "params", "flops",
                 "flops_rel", "cv_mean", "cv_se"]
TEST_COLUMNS = ["phi", "best", "rule", "diff", "t", "p_value", "folds", "worse"]


def scaling_table(study: optuna.Study, st: T.StudyTables) -> pd.DataFrame:
    """One row per scored candidate of a scaling study: its rule, φ, input side and costs;
    ``flops_rel`` is its FLOPs over the median of its φ tier (1 = matched)."""
    sampled = {t.number: t.params for t in study.get_trials(deepcopy=False)}
    rows = []
    for _, row in st.scored.iterrows():
        summary = st.records[int(row["trial"])].summary  # the record collect read
        p = {**sampled.get(int(row["trial"]), {}), **summary}
        if RULE not in p and PHI not in p:
            continue
        # a fixed phi is no Optuna parameter: the objective records it (older runs: one tier)
        rows.append({"phi": float(p.get(PHI, math.nan)), "rule": str(p.get(RULE, "")),
                     "trial": int(row["trial"]), "resolution": summary.get("resolution"),
                     "depth": row["depth"], "width": row["width"], "params": row["params"],
                     "flops": row["flops"], "cv_mean": float(row["cv_mean"]),
                     "cv_se": float(row["cv_se"])})
    if not rows:
        return pd.DataFrame(columns=TABLE_COLUMNS)
    table = pd.DataFrame(rows)
    if table["phi"].isna().all():
        table["phi"] = -1.0  # unknown but single: one tier
    median = table.groupby("phi")["flops"].transform("median").astype(float)
    table["flops_rel"] = table["flops"].astype(float) / median
    return table[TABLE_COLUMNS].sort_values(["phi", "rule", "trial"]).reset_index(drop=True)


def best_per_rule(table: pd.DataFrame, maximize: bool) -> pd.DataFrame:
    """Each rule's best candidate at each φ (repeats of a candidate keep the best)."""
    if table.empty:
        return table
    order = table.sort_values("cv_mean", ascending=not maximize)
    return order.drop_duplicates(["phi", "rule"]).sort_values(["phi", "rule"]).reset_index(
        drop=True)


def rule_tests(st: T.StudyTables, best: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """At each φ, the best rule against each other rule, paired on shared folds (``diff`` =
    best − that rule; ``worse``: significantly worse at level ``alpha``)."""
    rows = [{"phi": phi, "best": top["rule"], "rule": row["rule"], **test}
            for phi, tier in best.groupby("phi") if len(tier) >= 2
            for top, row, test in T.against_best(st, tier, alpha)]
    return pd.DataFrame(rows, columns=TEST_COLUMNS)


def answer(best: pd.DataFrame, tests: pd.DataFrame) -> list[str]:
    """One sentence per φ tier: which rule scored best, and which others it beat
    significantly; then the rules that were never significantly worse than a tier's best."""
    lines = []
    for phi, tier in best.groupby("phi"):
        rules = ", ".join(f"{r['rule']} {fmt(r['cv_mean'])} ({fmt(r['flops'])} FLOPs)"
                          for _, r in tier.sort_values("cv_mean", ascending=False).iterrows())
        t = tests[tests["phi"] == phi]
        beaten = sorted(t[t["worse"]]["rule"])
        top = t["best"].iloc[0] if not t.empty else tier.iloc[0]["rule"]
        verdict = (f"{top} beats {', '.join(beaten)} significantly (5% level)" if beaten else
                   f"{top} scores best, but no difference is significant")
        tier_name = "one φ" if phi == -1 else f"φ = {phi:g}"
        lines.append(f"{tier_name}: {rules}. {verdict}.")
    if not tests.empty:
        never = sorted(set(best["rule"]) - set(tests[tests["worse"]]["rule"]))
        lines.append("Never significantly worse than the best of a tier: "
                     f"{', '.join(never) or 'none'}. With few folds the test has little "
                     "power: 'not significantly worse' is not 'as good'.")
    return lines


def scaling_figure(best: pd.DataFrame, metric: str) -> Any:
    """CV score (± one standard error) against FLOPs, one line per rule."""
    if best.empty:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for rule, rows in best.sort_values("flops").groupby("rule"):
        se = rows["cv_se"].fillna(0.0)
        ax.errorbar(rows["flops"].astype(float), rows["cv_mean"], yerr=se, marker="o",
                    capsize=3, label=str(rule))
    ax.set_xscale("log")
    return finish(fig, ax, {"title": "rule", "fontsize": "small"},
                  title="Which way to scale: CV score against FLOPs by rule",
                  xlabel="FLOPs per sample (log scale)", ylabel=metric)


def scaling_section(study: optuna.Study, st: T.StudyTables) -> Section | None:
    """The section, or None for a study whose space does not scale."""
    table = scaling_table(study, st)
    if table.empty:
        return None
    best = best_per_rule(table, st.maximize)
    tests = rule_tests(st, best)
    blocks: list[Block] = [Para(
        "Each candidate is the base network scaled by φ along one rule: depth × α^φ, width × "
        "β^φ, input side × γ^φ with α·β²·γ² held to the same target, so the rules of one φ "
        "compare at (nearly) the same FLOPs; flops_rel is a candidate's FLOPs over its tier's "
        "median.")]
    blocks += [Para(line, "warn" if i == 0 else "text") for i, line in
               enumerate(answer(best, tests))]
    add_image(blocks, scaling_figure(best, st.metric), "scaling.png",
              "CV score against FLOPs, one line per scaling rule")
    # a tier whose phi the storage does not know (-1: an older run with phi fixed) shows empty
    best, tests = (t.replace({"phi": {-1.0: math.nan}}) for t in (best, tests))
    blocks.append(Table(best, "Best candidate of each rule at each φ (resolution: the input "
                              "side it trained on)"))
    if not tests.empty:
        blocks.append(Table(tests.assign(worse=tests["worse"].map({True: "yes", False: "no"})),
                            "Best rule of each φ against each other rule, paired on shared "
                            "folds (corrected resampled t-test; diff = best − that rule)"))
    return Section("Which way to scale", blocks)
