"""The depth analysis in the report: what each block adds, degradation or overfitting, how
sure the recommended depth is, auxiliary heads on against off. Called from
:func:`nasdepth.report.content.depth_section` (tables in :mod:`nasdepth.report.depth`)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from nasdepth.report import tables as T
from nasdepth.report.depth import (
    BOOTSTRAP_RESAMPLES,
    INTERPOLATION,
    MIN_RISE,
    aux_pairs,
    aux_table,
    depth_bootstrap,
    depth_statements,
    double_descent,
    fmt_depth,
    probe_curves,
    saturation_sentence,
    saturation_table,
    training_error_table,
    width_error_table,
)
from nasdepth.report.depth_figures import (
    probe_figure,
    training_error_figure,
    width_error_figure,
)
from nasdepth.report.document import Block, Para, add_image
from nasdepth.report.document import Table as Tab


def bootstrap_text(st: T.StudyTables, seed: int = 0) -> str | None:
    """"Bootstrap over folds and trials (1,000 resamples): depth 4 in 83%, depth 8 in 15%,
    depth 2 in 2%." None with fewer than two depths."""
    if st.folds.empty or "depth" not in st.folds or st.folds["depth"].nunique() < 2:
        return None
    key = f"depth_bootstrap:{seed}"  # 1,000 resamples: once for the summary and the section
    if key not in st.computed:
        st.computed[key] = depth_bootstrap(st.folds, maximize=st.maximize, seed=seed)
    boot = st.computed[key]
    boot = boot[boot["share"] > 0].sort_values("share", ascending=False)
    if boot.empty:
        return None
    shares = ", ".join(f"depth {fmt_depth(d)} in {s:.0%}"
                       for d, s in zip(boot["depth"], boot["share"], strict=True))
    return (f"How sure: resampling the folds and, at each depth, the candidates "
            f"({BOOTSTRAP_RESAMPLES:,} bootstrap resamples, seed {seed}), the one-standard-error "
            f"rule recommends {shares}.")


def depth_summary_para(st: T.StudyTables) -> list[Para]:
    """The recommendation and its bootstrap shares, for the summary (none with fewer than two
    depths)."""
    rec = T.recommend_depth(st)
    text = bootstrap_text(st)
    if rec is None or text is None:
        return []
    return [Para(f"Recommended depth: {fmt_depth(rec.recommended['depth'])} "
                 f"(one-standard-error rule; see Depth). {text}")]


def depth_analysis_blocks(st: T.StudyTables) -> list[Block]:
    """Probe curves with their saturation, the degradation/overfitting statement, and the
    auxiliary-head comparison, each where the study has what it reads."""
    blocks: list[Block] = []
    best = T.best_per_depth(st)
    probes = {n: r.linear_probes for n, r in st.records.items()
              if isinstance(getattr(r, "linear_probes", None), dict)}
    curves = probe_curves(best, probes) if not best.empty else pd.DataFrame()
    if not curves.empty:
        sat = saturation_table(curves)
        add_image(blocks, probe_figure(curves, sat), "linear_probes.png",
                  "What each block adds: linear probe accuracy per block (Alain & Bengio "
                  "2016), best candidate per depth")
        blocks += [Para(saturation_sentence(row)) for row in sat.to_dict(orient="records")]
        if not sat.empty:
            early = sat[sat["unit"] + 1 < sat["units"]]
            if len(early) and float(early["added_points"].max()) < 1.0:
                blocks.append(Para(
                    "The representation is good enough before the last block: the later "
                    "blocks add less than a point of linear separability, so a shallower "
                    "network may do (the head still reads the last block).", "note"))
    errors = training_error_table(st.folds, maximize=st.maximize)
    if not errors.empty:
        statements = depth_statements(errors)
        blocks += [Para(item["text"], "warn" if item["kind"] == "degradation" else "text")
                   for item in statements]
        if any(s["kind"] != "none" for s in statements):
            add_image(blocks, training_error_figure(errors), "training_error.png",
                      "Final training and validation error against depth")
    pairs = aux_pairs(st.records)
    if pairs:
        heads = {n: (p or {}).get("aux_accuracy") or {} for n, p in probes.items()}
        table = aux_table(st.folds, pairs, heads)
        if not table.empty:
            table = table.assign(significant=table["significant"].map({True: "yes",
                                                                       False: "no"}))
            blocks.append(Tab(table, "Auxiliary heads on against off, paired on matched "
                                     "architectures and folds (corrected resampled t-test; "
                                     "diff = on − off; heads: each head's own validation "
                                     "accuracy)"))
    return blocks


def width_descent_blocks(st: T.StudyTables) -> list[Block]:
    """Training and validation error against width (figure and table, three widths or more),
    the interpolation threshold marked; where validation error peaks and falls again (double
    descent), say so: the peak is no reason to stop widening."""
    table = width_error_table(st.folds, maximize=st.maximize)
    dd = double_descent(table)
    if dd is None:
        return []
    blocks: list[Block] = []
    add_image(blocks, width_error_figure(table, dd), "width_error.png", "Final training and "
              "validation error against width; dashed: the interpolation threshold")
    marks: dict[Any, list[str]] = {w: [] for w in table["width"]}
    if dd["threshold"] is not None:
        marks[dd["threshold"]].append("interpolation threshold")
    if dd["double_descent"]:
        marks[dd["peak"]].append("validation error peak")
    shown = table.assign(train_error=table["train_error"].round(4),
                         val_error=table["val_error"].round(4),
                         mark=[", ".join(marks[w]) for w in table["width"]])
    blocks.append(Tab(shown, "Final training and validation error per width (the best "
                             "candidate of each width at the most common depth)"))
    if dd["double_descent"]:
        blocks.append(Para(dd["text"], "warn"))
    else:
        where = ("no width fits its training labels" if dd["threshold"] is None else
                 f"training error first reaches {INTERPOLATION:.0%} at width "
                 f"{fmt_depth(dd['threshold'])} (the interpolation threshold)")
        bump = (f"its largest interior bump (width {fmt_depth(dd['candidate_peak'])}) stands "
                f"{max(dd['rise'], 0.0):.1%} above the lowest error on both sides, within the "
                f"{dd['rise_needed']:.1%} a peak needs" + (
                    " (two binomial standard errors of the validation error)"
                    if dd["rise_needed"] > MIN_RISE else ""))
        blocks.append(Para(
            f"{where[0].upper() + where[1:]}; validation error shows no double-descent peak: "
            f"{bump} (widest: {dd['widest_error']:.1%} at width {fmt_depth(dd['widest'])}).",
            "note"))
    return blocks
