"""Assemble the report's sections from the tables (``tables``), the statistics (``stats``),
the baselines and the figures. Reads the study only through :func:`tables.collect`."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
import pandas as pd

from nasdepth.report import figures as F
from nasdepth.report import tables as T
from nasdepth.report.depth_section import (
    bootstrap_text,
    depth_analysis_blocks,
    depth_summary_para,
    width_descent_blocks,
)
from nasdepth.report.document import (
    Block,
    Details,
    KeyValues,
    Para,
    Report,
    Section,
    add_image,
    fmt,
)
from nasdepth.report.document import Table as Tab
from nasdepth.report.multitask import multitask_section
from nasdepth.report.scaling import scaling_section
from nasdepth.report.screening import screening_section
from nasdepth.report.stats import TTest, corrected_resampled_ttest
from nasdepth.report.transfer import transfer_section

#: stalled trials shown with full evidence (the others are listed in the verdict table)
MAX_DETAILED = 12
HEALTHY = ("healthy",)


def _pm(mean: float, std: float) -> str:
    return f"{fmt(mean)} ± {fmt(std if math.isfinite(std) else 0.0)}"


def _ttest_text(test: TTest, a: str, b: str) -> str:
    sig = "significant" if test.p_value < 0.05 else "not significant"
    return (f"Paired on {test.k} shared folds (Nadeau–Bengio corrected resampled t-test, "
            f"test/train ratio {test.test_train_ratio:.3f}): {a} − {b} = "
            f"{test.mean_diff:+.4f}, t = {test.t:.3f}, df = {test.dof}, "
            f"p = {test.p_value:.3g} ({sig} at the 5% level).")


def _space_rows(study: optuna.Study) -> list[tuple[str, str]]:
    dists: dict[str, Any] = {}
    for t in study.get_trials(deepcopy=False):
        for name, d in t.distributions.items():
            dists.setdefault(name, d)
    out = []
    for name, d in sorted(dists.items()):
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out.append((name, "one of " + ", ".join(fmt(c) for c in d.choices)))
        elif isinstance(d, optuna.distributions.IntDistribution | optuna.distributions
                        .FloatDistribution):
            log = ", log scale" if d.log else ""
            out.append((name, f"{fmt(d.low)} to {fmt(d.high)}{log}"))
        else:
            out.append((name, repr(d)))
    return out


# --- sections ----------------------------------------------------------------------------

def _cv_words(cfg: dict[str, Any]) -> str:
    """"5-fold CV (seed 0)", or for ``cv: {kind: holdout}`` the one split in the data's
    order that it is."""
    if not cfg.get("folds"):
        return ""
    if (cfg.get("cv") or {}).get("kind") == "holdout":
        return (f"holdout: one split in the data's order, the last 1/{cfg['folds']} of the "
                "rows validate")
    return f"{cfg['folds']}-fold CV (seed {cfg.get('cv_seed')})"


def summary_section(study: optuna.Study, st: T.StudyTables) -> Section:
    cfg, data = st.config, st.data
    blocks: list[Block] = []
    counts = T.state_counts(st.trials)
    items = []
    if data:
        shape = "x".join(str(s) for s in data.get("input_shape", []))
        items.append(("data", f"{data.get('name')}: {fmt(data.get('n_samples'))} samples, "
                              f"{data.get('num_classes')} classes, input shape {shape}"))
    if cfg.get("space"):
        items.append(("space file", str(cfg["space"])))
    training = cfg.get("training") or {}
    budget = [f"{cfg['trials']} trials" if cfg.get("trials") else "",
              f"timeout {cfg['timeout']} s" if cfg.get("timeout") else "",
              _cv_words(cfg),
              f"repeated {cfg['repeats']} times" if (cfg.get("repeats") or 1) > 1 else "",
              f"{training['epochs']} epochs per fold" if training.get("epochs") else ""]
    items.append(("budget", ", ".join(b for b in budget if b) or "not recorded"))
    objective = ", ".join(d.lower() for d in st.directions)
    items.append(("objective", f"{st.metric} ({objective})"))
    items.append(("trials", ", ".join(f"{n} {s.lower()}" for s, n in counts.items() if n)
                  or "none yet"))
    blocks.append(KeyValues(items))
    space = _space_rows(study)
    if space:
        blocks.append(Tab(pd.DataFrame(space, columns=["parameter", "values"]),
                          "Search space (from the trials' distributions)"))
    best = T.top_trials(st.trials, 5, maximize=st.maximize)
    if best.empty:
        blocks.append(Para("No trial has completed yet: the sections below fill in as trials "
                           "finish.", "warn"))
        return Section("Summary", blocks)
    shown = best[["trial", "depth", "width", "block", "skip", "params", "flops", "lr"]].copy()
    shown.insert(6, f"{st.metric} mean ± std",
                 [_pm(m, s) for m, s in zip(best["cv_mean"], best["cv_std"], strict=True)])
    if best["test_score"].notna().any():
        shown["held-out test"] = best["test_score"]
    shown = shown.drop(columns=[c for c in ("flops", "lr") if best[c].isna().all()])
    blocks.append(Tab(shown, "Best candidates (cross-validated on the same folds)"))
    top = best.iloc[0]
    blocks.append(Para(f"Best: trial {int(top['trial'])}, depth {fmt(top['depth'])}, width "
                       f"{fmt(top['width'])}, {top['block']} blocks, skip "
                       f"{fmt(top['skip'])}: {st.metric} {_pm(top['cv_mean'], top['cv_std'])} "
                       f"over {int(top['folds_done'])} folds, {fmt(top['params'])} parameters."))
    blocks += depth_summary_para(st)
    blocks.append(Para(f"To get this model: nasdepth export STUDY.yaml --trial {int(top['trial'])}"
                       " --out model.pt (STUDY.yaml: this study's file; refits the trial on all "
                       "non-test data; --ensemble keeps its fold models; docs/export.md).",
                       "note"))
    return Section("Summary", blocks)


def depth_section(st: T.StudyTables, baselines: pd.DataFrame | None) -> Section:
    blocks: list[Block] = []
    tab = T.depth_table(st.folds)
    if tab.empty:
        return Section("Depth", [Para("No complete trial with a depth yet.", "note")])
    add_image(blocks, F.depth_figure(st.folds, tab, st.metric, baselines), "depth.png",
              "CV score against depth, by block and skip")
    rec = T.recommend_depth(st)
    if rec is not None:
        b, r = rec.best, rec.recommended
        text = (f"Recommended depth: {fmt(r['depth'])} (trial {int(r['trial'])}, "
                f"{st.metric} {fmt(r['cv_mean'])}), the smallest depth whose best candidate is "
                f"within one standard error of the best overall (depth {fmt(b['depth'])}, "
                f"trial {int(b['trial'])}, {fmt(b['cv_mean'])} ± {fmt(b['cv_se'])} SE; "
                f"threshold {fmt(rec.threshold)}).")
        blocks.append(Para(text, "warn"))
        how_sure = bootstrap_text(st)
        if how_sure is not None:
            blocks.append(Para(how_sure))
        unsettled = T.unsettled_best(st, rec)
        if unsettled:
            blocks.append(Para(
                "Not settled: train longer. The candidates that decide this recommendation "
                f"(trial{'s' if len(unsettled) > 1 else ''} "
                f"{', '.join(str(n) for n in unsettled)}) were still improving at their last "
                "epoch, so more epochs may change which depth wins (see \"Still improving at "
                "the last epoch\").", "warn"))
        if rec.ttest is not None:
            blocks.append(Para(_ttest_text(rec.ttest, "best", "recommended")))
        elif int(b["trial"]) == int(r["trial"]):
            blocks.append(Para("The best candidate is also the shallowest within one standard "
                               "error: no paired comparison is needed.", "note"))
        else:
            blocks.append(Para(f"Only {rec.shared_folds} shared fold(s): too few for a paired "
                               "test.", "note"))
        best_tab = T.best_per_depth(st)
        add_image(blocks, F.one_se_figure(best_tab, rec.threshold, r["depth"], st.metric),
                  "one_se.png", "Best candidate per depth with one standard error")
        blocks.append(Tab(best_tab, "Best candidate at each depth, over the architectures and "
                                    "recipes tried there (SE = std / sqrt(folds); lr: the "
                                    "rate it trained at)"))
        blocks += recipe_blocks(st, best_tab)
        tests = T.depth_tests(st)
        if not tests.empty:
            shallow = [float(d) for d in tests[~tests["worse"]]["depth"]] + [float(b["depth"])]
            blocks.append(Para(
                f"A second opinion from paired tests: the shallowest depth whose best candidate "
                f"is not significantly worse than the best (corrected resampled t-test, 5% "
                f"level) is {fmt(min(shallow))}. With few folds the test has little power: "
                f"'not significantly worse' is not 'as good'."))
            blocks.append(Tab(tests.assign(worse=tests["worse"].map({True: "yes",
                                                                       False: "no"})),
                              "Best overall against the best of each other depth, "
                                     "paired on shared folds (diff = best − that depth)"))
    add_image(blocks, F.gap_figure(tab), "gap.png", "Train − validation gap against depth")
    blocks += depth_analysis_blocks(st)
    blocks.append(Details("Depth table (all complete candidates' folds)", [
        Tab(tab, "Fold scores by depth, block and skip (recomputable from folds.csv)")]))
    return Section("Depth", blocks)


def recipe_blocks(st: T.StudyTables, best_tab: pd.DataFrame) -> list[Block]:
    """How the depth comparison treats the recipe: whether each depth had its own learning
    rate, the range tests of the depths' best candidates, and the winners still improving at
    their epoch cap."""
    out: list[Block] = []
    lrs = best_tab["lr"].dropna().astype(float)  # best_per_depth and collect: always there
    auto = st.scored["lr_auto"].fillna(False).astype(bool).any()
    if len(lrs) and lrs.nunique() > 1:
        how = "picked by a range test per candidate" if auto else "searched with the architecture"
        out.append(Para(f"Each depth is compared at its own recipe: the learning rates of the "
                        f"depths' best candidates ({how}) run from {fmt(lrs.min())} to "
                        f"{fmt(lrs.max())}, a factor of {lrs.max() / lrs.min():.3g}."))
    elif len(lrs):
        out.append(Para(f"Every depth's best candidate trained at learning rate "
                        f"{fmt(lrs.iloc[0])}: with one fixed recipe the depth curve partly "
                        "measures that recipe (search lr, or set lr: auto; see "
                        "docs/search_spaces.md).", "note"))
    curves = T.lr_curves(st, [int(t) for t in best_tab["trial"]])
    if curves:
        add_image(out, F.lr_find_figure(curves), "lr_find.png",
                  "Learning-rate range tests of the best candidate at each depth")
        share = T.lr_find_share(st)
        if share is not None:
            out.append(Para(f"The range tests took {100 * share:.1f}% of the complete "
                            "candidates' time (their sweeps over their CV and range test).",
                            "note"))
    flags = best_tab["still_improving"]
    still = best_tab[flags.fillna(False).astype(bool)]
    if len(still):
        depths = ", ".join(fmt(d) for d in still["depth"])
        out.append(Para(f"Still improving at the epoch cap: the best candidate at depth(s) "
                        f"{depths} ran every epoch without its early stop (patience) firing, "
                        "so more epochs could raise its score; deeper networks often need "
                        "longer. Raise epochs before reading the depth curve as final.",
                        "warn"))
    elif len(flags) and flags.isna().all():
        out.append(Para("Whether candidates were still improving at the epoch cap is not "
                        "known: set training patience (early stopping on the validation loss) "
                        "with epochs as a cap, the recommended budget for depth studies.",
                        "note"))
    return out


def one_architecture_section(st: T.StudyTables) -> Section:
    """A study whose candidates all share one architecture (a transfer study from a model
    file, a recipe-only search): no depth, width or block comparison to draw."""
    row = st.scored.iloc[0]
    what = ", ".join(f"{k} {fmt(row[k])}" for k in ("depth", "width", "block", "skip")
                     if k in row and pd.notna(row[k]))
    return Section("Architecture", [Para(
        f"Every scored candidate has the same architecture ({what}): this study searched "
        "what trains it (the recipe, the transfer mode, the tasks), so the depth, width and "
        "block comparisons do not apply. The sections below compare what was searched.",
        "note")])


def width_section(st: T.StudyTables) -> Section:
    blocks: list[Block] = []
    wd = T.width_depth_table(st)
    if wd.empty:
        return Section("Width", [Para("No complete trial with a width yet.", "note")])
    add_image(blocks, F.width_heatmap(wd, st.metric), "width_depth.png",
              "Mean CV score by width and depth")
    blocks += width_descent_blocks(st)
    matched = T.matched_params_table(st)
    if matched.empty:
        blocks.append(Para("No parameter budget (a factor-of-two bin) holds two depths yet: the "
                           "depth-against-width comparison at matched cost needs more trials.",
                           "note"))
    else:
        add_image(blocks, F.matched_figure(matched, st.metric), "matched_params.png",
                  "Depth against width at matched parameter counts")
        blocks.append(Tab(matched.drop(columns="bin_low"),
                          "Best candidate per depth within each parameter budget"))
    return Section("Width", blocks)


def blocks_section(st: T.StudyTables) -> Section:
    blocks: list[Block] = []
    bt = T.block_table(st)
    if bt.empty:
        blocks.append(Para("No parameter budget holds two block types yet.", "note"))
    else:
        add_image(blocks, F.block_figure(bt, st.metric), "blocks.png",
                  "Block types at matched budgets")
        blocks.append(Tab(bt.drop(columns="bin_low"), "Block types at matched budgets"))
    sk = T.skip_table(st.folds)
    both = sk.dropna(subset=["on_minus_off"]) if not sk.empty else sk
    if both.empty:
        blocks.append(Para("No depth was tried with skip connections both on and off.", "note"))
    else:
        add_image(blocks, F.skip_figure(sk, st.metric), "skip.png", "Skip on against off")
        blocks.append(Tab(sk, "Mean fold score with skip connections on and off"))
        worst = both.loc[both["on_minus_off"].idxmax() if st.maximize
                         else both["on_minus_off"].idxmin()]
        blocks.append(Para(f"The largest effect of skip connections is at depth "
                           f"{fmt(worst['depth'])}: on − off = {worst['on_minus_off']:+.4f}."))
    return Section("Blocks and skip connections", blocks)


def cost_section(study: optuna.Study, st: T.StudyTables) -> Section:
    blocks: list[Block] = []
    fronts = {c: T.pareto_table(st, c) for c in ("params", "flops")}
    add_image(blocks, F.pareto_figure(st.scored, fronts, st.metric), "pareto.png",
              "Pareto front of CV score against cost")
    for cost, front in fronts.items():
        if not front.empty:
            blocks.append(Tab(front, f"Pareto front: {st.metric} against {cost}"))
    if fronts["flops"].empty:
        blocks.append(Para("No trial recorded FLOPs: the front is shown against parameters "
                           "only.", "note"))
    if len(st.directions) > 1:
        names = st.study.metric_names or [f"objective {i}" for i in range(len(st.directions))]
        rows = [{"trial": t.number, **dict(zip(names, t.values, strict=True))}
                for t in study.best_trials]
        blocks.append(Tab(pd.DataFrame(rows), "Optuna's Pareto-optimal trials over the "
                          f"study's objectives ({', '.join(st.directions)})"))
    if len(blocks) == 0:
        blocks.append(Para("No complete trial with a parameter count yet.", "note"))
    return Section("Cost", blocks)


def baseline_section(st: T.StudyTables, base_folds: pd.DataFrame | None,
                     summary: pd.DataFrame | None, error: str) -> Section:
    """``summary``: the baselines' scores (``baseline_summary`` of ``base_folds``)."""
    if base_folds is None or summary is None:
        return Section("Baselines", [Para(f"Baselines were not computed: {error}", "note")])
    blocks: list[Block] = [Tab(summary, f"Baselines on the study's folds ({st.metric})")]
    scored = st.scored
    logreg = summary[summary["model"] == "logistic regression"]
    if scored.empty or logreg.empty:
        return Section("Baselines", blocks)
    ref = float(logreg["cv_mean"].iloc[0])
    better = (scored["cv_mean"] > ref) if st.maximize else (scored["cv_mean"] < ref)
    best = T.top_trials(st.trials, 1, maximize=st.maximize).iloc[0]
    if not better.any():
        blocks.append(Para(f"No deep candidate beats logistic regression: the best, trial "
                           f"{int(best['trial'])}, scores {fmt(best['cv_mean'])} against "
                           f"{fmt(ref)}. Depth does not pay on this data (yet).", "warn"))
    else:
        blocks.append(Para(f"{int(better.sum())} of {len(scored)} complete candidates beat "
                           f"logistic regression ({fmt(ref)}); {int((~better).sum())} do not."))
    a = T.fold_scores(st.folds, best["trial"])
    lr = base_folds[base_folds["model"] == "logistic regression"].set_index("fold")
    shared = a.index.intersection(lr.index)
    if len(shared) >= 2 and st.metric in lr and not isinstance(a.index, pd.MultiIndex):
        test = corrected_resampled_ttest(
            a.loc[shared].astype(float).to_numpy(), lr.loc[shared, st.metric].to_numpy(),
            n_train=float(lr["n_train"].mean()), n_test=float(lr["n_val"].mean()))
        blocks.append(Para(_ttest_text(test, f"trial {int(best['trial'])}",
                                       "logistic regression")))
    return Section("Baselines", blocks)


def importance_section(study: optuna.Study, st: T.StudyTables) -> Section:
    blocks: list[Block] = []
    imp, note = T.importance_table(study)
    if not imp.empty:
        add_image(blocks, F.importance_figure(imp), "importances.png", "Parameter importances")
        blocks.append(Tab(imp, "Parameter importances"))
    blocks.append(Para(note, "note"))
    hist = T.history_table(st)
    add_image(blocks, F.history_figure(hist, st.metric), "history.png", "Optimization history")
    return Section("What matters", blocks)


def _diagnosis_blocks(number: int, diag: dict[str, Any], st: T.StudyTables) -> list[Block]:
    out: list[Block] = []
    conf = diag.get("confidence")
    out.append(Para(f"Verdict: {diag.get('verdict')}"
                    + (f" (confidence {fmt(conf)})" if conf is not None else "")))
    ev = T.evidence_table(diag)
    if not ev.empty:
        out.append(Tab(ev, "Evidence"))
    out += [Para(f"Advice: {advice}") for advice in diag.get("advice") or []]
    out += [Para(f"Backed by the {b.get('control')} control: {b.get('figure')}")
            for b in diag.get("basis") or [] if isinstance(b, dict)]
    ref = (diag.get("controls") or {}).get("reference")
    if isinstance(ref, dict) and ref.get("seconds"):  # what the reference network cost
        out.append(Para(f"Reference network ({ref.get('name')}): "
                        + (f"accuracy {fmt(ref.get('val_accuracy'))}, " if ref.get("ran")
                           else f"{ref.get('reason')}, ")
                        + f"{fmt(ref.get('seconds'))} s (once for the study)"))
    probe = st.probes.get(number) or {}
    trace = st.traces.get(number)  # the record's per-epoch series over folds
    if trace is not None:
        add_image(out, F.evidence_figure(trace, f"Trial {number}: probe evidence"),
                  f"evidence_trial{number}.png", f"Trial {number}: probe evidence")
        add_image(out, F.gradient_time_figure(T.gradient_time_table(trace),
                                              f"Trial {number}: gradient through time"),
                  f"time_trial{number}.png",
                  f"Trial {number}: gradient against time step (recurrent blocks)")
    elif isinstance(probe.get("grad_rms_last_epoch"), list):  # records without the series
        add_image(out, F.gradient_profile_figure(probe["grad_rms_last_epoch"],
                                                 f"Trial {number}: gradient by depth"),
                  f"evidence_trial{number}.png",
                  f"Trial {number}: gradient RMS by block, last epoch")
    signals = probe.get("signals")
    if isinstance(signals, dict) and signals:
        out.append(Details(f"Trial {number}: all probe signals (median over folds)", [
            Tab(pd.DataFrame(sorted(signals.items()), columns=["signal", "value"]))]))
    controls = diag.get("controls")
    if controls:
        frame = _controls_frame(diag)
        if frame is not None and len(frame) > 1:
            add_image(out, F.controls_figure(frame, f"Trial {number}: model against controls"),
                      f"controls_trial{number}.png", f"Trial {number}: controls")
            out.append(Tab(frame, "The model beside its control runs"))
        else:
            rows = [{"control": k, **(v if isinstance(v, dict) else {"result": v})}
                    for k, v in controls.items()] if isinstance(controls, dict) else []
            if rows:
                df = pd.json_normalize(rows)
                df = df.map(lambda v: json.dumps(v) if isinstance(v, list | dict) else v)
                out.append(Tab(df, "Controls"))
    return out


def _controls_frame(diag: dict[str, Any]) -> pd.DataFrame | None:
    """The diagnose package's own table of the model beside its controls, where installed
    and the stored dict reads back (None otherwise: the raw controls are shown instead)."""
    try:
        from nasdepth.diagnosis import Diagnosis, controls_frame

        return controls_frame(Diagnosis.from_dict(diag))
    except Exception:  # an older or newer stored shape: fall back to the raw dict
        return None


def diagnoses_section(st: T.StudyTables) -> Section:
    table = T.diagnoses_table(st)
    if table.empty:
        return Section("Diagnoses", [Para("No trial carries a diagnosis (the probes were off, "
                                          "or the study predates them).", "note")])
    counts = T.verdict_counts(table)
    blocks: list[Block] = [Tab(counts, "Trials per verdict")]
    add_image(blocks, F.verdict_figure(counts), "verdicts.png", "Trials per verdict")
    stalled = table[~table["verdict"].isin(HEALTHY)]
    blocks.append(Tab(stalled.drop(columns=["state", "advice"]),
                      "Trials that did not train healthily (advice: below and in diagnoses.csv)"))
    for _, row in stalled.head(MAX_DETAILED).iterrows():
        n = int(row["trial"])
        blocks.append(Details(f"Trial {n}: {row['verdict']} (depth {fmt(row['depth'])}, "
                              f"{row['block']}, skip {fmt(row['skip'])})",
                              _diagnosis_blocks(n, st.diagnoses[n], st)))
    if len(stalled) > MAX_DETAILED:
        blocks.append(Para(f"{len(stalled) - MAX_DETAILED} more stalled trials are listed in "
                           "diagnoses.csv.", "note"))
    return Section("Diagnoses", blocks)


def data_limited_section(st: T.StudyTables) -> Section | None:
    table = T.diagnoses_table(st)
    if table.empty:
        return None
    backed, unbacked = T.data_limited_table(st)
    blocks: list[Block] = [Para(
        "A flat loss looks like vanishing gradients, but where the gradients reach every block "
        "and a control shows that the data carry no signal for a model — the shallow baseline "
        "(logistic regression and extra trees on the same splits) at chance, shuffled labels "
        "scoring the same, or a flat learning curve — the data, not the depth, limit the "
        "score. Skip connections or normalization will not help these candidates; more "
        "informative data or features would. Only trials with such a control are listed.")]
    if backed.empty:
        blocks.append(Para("No trial was diagnosed as a data-limited plateau.", "note"))
    else:
        # the two signals that separate the cases (do gradients reach the first block, does
        # validation beat the class frequencies) beside the control that backs the verdict
        blocks.append(Tab(backed, "Trials diagnosed as data-limited plateaus, with the control "
                                  "that backs each (a log10 gradient ratio near 0: the first "
                                  "block gets as much gradient as the last; skill near 0: no "
                                  "better than the class frequencies)"))
    if unbacked:
        blocks.append(Para(
            f"Trial{'s' if len(unbacked) > 1 else ''} {', '.join(map(str, unbacked))} "
            "carr{} a data-limited verdict from an earlier version, without a control behind "
            "it: rerun their diagnosis (nasdepth diagnose --study ... --trial N) before "
            "trusting it.".format("y" if len(unbacked) > 1 else "ies"), "note"))
    others = table[table["verdict"].isin(["undertrained", "undecided_plateau"])]
    if not others.empty:
        what = {"undertrained": "under-trained: the shallow baseline learns on these data",
                "undecided_plateau": "undecided: no control tells yet"}
        blocks.append(Para(
            f"{len(others)} other trial(s) plateaued at chance, but no control shows that the "
            "data lack signal, so they are not listed as data-limited: "
            + "; ".join(f"trial {int(r.trial)} {what[str(r.verdict)]}"
                        for r in others.itertuples())
            + ". Their diagnoses (above) give the figures and what to do (or which control "
            "would settle it).", "note"))
    return Section("Looks like vanishing gradients, but is data-limited", blocks)


def still_learning_section(st: T.StudyTables) -> Section | None:
    if not st.diagnoses:
        return None
    table = T.still_learning_table(st)
    text = ("Candidates whose validation loss was still falling at their last epoch (or that "
            "never left chance on learnable data: under-trained). Their scores understate what "
            "they reach with more epochs or a larger learning rate, so compare them only after "
            "training longer.")
    shown = (Para("None: every diagnosed candidate had settled.", "note") if table.empty
             else Tab(table, "Still learning (val_loss_fall_last: fall per epoch at the end, "
                             "label entropies; loss_gone: share of the starting loss gone)"))
    return Section("Still improving at the last epoch", [Para(text), shown])


def problems_section(st: T.StudyTables) -> Section:
    tab = T.problems_table(st.trials)
    shown = (Para("None.", "note") if tab.empty
             else Tab(tab, "Trials that did not complete, with their reasons"))
    return Section("Failed and pruned trials", [shown])


def build_report(study: optuna.Study, st: T.StudyTables, base_folds: pd.DataFrame | None,
                 base_error: str = "") -> Report:
    """Every section of the report, in reading order."""
    base = None
    if base_folds is not None and not base_folds.empty:
        from nasdepth.report.baselines import baseline_summary

        base = baseline_summary(base_folds, st.metric)
    counts = T.state_counts(st.trials)
    subtitle = (f"{len(st.trials)} trials ({counts['COMPLETE']} complete), objective "
                f"{st.metric}. Generated by nasdepth from the study's storage alone.")
    if T.architectures_tried(st) == 1:  # nothing to compare: one short note instead
        arch_sections: list[Section | None] = [one_architecture_section(st)]
    else:
        arch_sections = [depth_section(st, base), width_section(st), blocks_section(st)]
    sections = [summary_section(study, st), *arch_sections, scaling_section(study, st),
                transfer_section(st),
                cost_section(study, st),
                baseline_section(st, base_folds, base, base_error), importance_section(study, st),
                diagnoses_section(st), data_limited_section(st), still_learning_section(st),
                problems_section(st), multitask_section(st), screening_section(study)]
    return Report(name=st.name, subtitle=subtitle, sections=[s for s in sections if s])

