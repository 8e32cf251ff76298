"""Report tables, computed from the storage alone (no drawing here).

``collect(study)`` reads every trial's :class:`~nasdepth.study.record.TrialRecord` once into
tidy frames (``trials``: one row per trial; ``folds``: one row per trial x fold); the functions
below derive each report table from them. A record's parts beyond ``summary``/``cv_folds`` may
be empty (probes off, a pruned or failed trial, an older record): columns are then NaN or empty
and the report says so instead of failing.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
import pandas as pd

from nasdepth.probes.time import time_frame
from nasdepth.report.stats import TTest, corrected_resampled_ttest, one_se_rule, pareto_mask
from nasdepth.study.peers import study_verdicts
from nasdepth.study.record import StudyRecord, TrialRecord, read_record, read_study_record
from nasdepth.train.metrics import LOWER_IS_BETTER

ARCH_COLUMNS = ["depth", "width", "block", "skip", "norm", "activation"]
#: the recipe each trial trained with (``lr`` after any range test), from its ``training``
RECIPE_COLUMNS = ["lr", "lr_auto", "weight_decay", "optimizer", "momentum", "batch_size",
                  "schedule", "label_smoothing", "epochs", "patience"]
TRIAL_COLUMNS = ["trial", "state", *ARCH_COLUMNS, "params", "flops", "cv_mean", "cv_std",
                 "cv_se", "folds_done", "gap_mean", "test_score", "seconds", "verdict",
                 "confidence", "fail_reason", *RECIPE_COLUMNS, "epochs_run",
                 "still_improving", "duplicate_of"]
#: states that are not finished successfully and appear in the "failed and pruned" table
PROBLEM_STATES = ("FAIL", "PRUNED", "RUNNING", "WAITING")


@dataclass
class StudyTables:
    """What the report needs from a study, read once."""

    name: str
    metric: str  # the fold column scored, e.g. ``val_accuracy``
    maximize: bool
    directions: list[str]
    config: dict[str, Any]
    data: dict[str, Any]
    trials: pd.DataFrame
    folds: pd.DataFrame
    diagnoses: dict[int, dict[str, Any]] = field(default_factory=dict)
    probes: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: per-epoch probe series over folds (``TrialRecord.trace_summary``), by trial
    traces: dict[int, dict[str, Any]] = field(default_factory=dict)
    values: dict[int, list[float]] = field(default_factory=dict)
    records: dict[int, TrialRecord] = field(default_factory=dict)
    #: trial number -> its learning-rate range test (``LRFinding.to_dict()``), where it ran
    lr_finds: dict[int, dict[str, Any]] = field(default_factory=dict)
    #: trials that copied an earlier twin's results (same parameters) instead of training
    duplicates: set[int] = field(default_factory=set)
    #: the study's own record (settings, data, baselines): ``config`` and ``data`` are its
    #: ``settings`` and ``data``
    study: StudyRecord = field(default_factory=StudyRecord)
    #: results computed once per report that several sections show (the depth bootstrap:
    #: the summary and the depth section), by name
    computed: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def complete(self) -> pd.DataFrame:
        return self.trials[self.trials["state"] == "COMPLETE"]

    @property
    def scored(self) -> pd.DataFrame:
        """Complete trials with a finite CV score."""
        done = self.complete
        return done[np.isfinite(done["cv_mean"].astype(float))]


def _objective(config: dict[str, Any], directions: list[str]) -> tuple[str, bool]:
    """The metric the study optimizes (first objective) and whether higher is better."""
    metric = config.get("objective")
    objectives = config.get("objectives")
    if metric is None and isinstance(objectives, list) and objectives:
        first = objectives[0]
        metric = first.get("metric", first.get("name")) if isinstance(first, dict) else first
    metric = str(metric or "val_accuracy")
    if not metric.startswith("val_") and "." not in metric:  # ``digit.val_accuracy``: a task's
        metric = f"val_{metric}"
    if directions:
        return metric, directions[0] == "MAXIMIZE"
    return metric, not metric.endswith(LOWER_IS_BETTER)


def _test_score(metric: str, folds: pd.DataFrame) -> float:
    """Held-out test score where a test part was set aside: the mean over the fold models of
    the folds' ``test_<metric>`` (the CV engine scores every fold model on it)."""
    column = f"test_{metric.removeprefix('val_')}"
    if column in folds and folds[column].notna().any():
        return float(folds[column].astype(float).mean())
    return math.nan


def _number(*candidates: Any) -> float:
    """The first candidate that is a number, as a float (NaN where none is)."""
    for value in candidates:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return math.nan


def _reason(rec: TrialRecord) -> str:
    if rec.reason:
        return str(rec.reason)
    if rec.state in ("running", "waiting"):
        return f"{rec.state} when the report was written"
    return ""


def recipe_of(training: dict[str, Any] | None) -> dict[str, Any]:
    """The :data:`RECIPE_COLUMNS` of a trial's recorded training settings (NaN/None where the
    trial predates them)."""
    training = training or {}
    out: dict[str, Any] = {}
    for key in RECIPE_COLUMNS:
        value = training.get(key)
        if key == "momentum" and training.get("optimizer") not in (None, "sgd"):
            value = None  # AdamW has none: a number here would mislead
        out[key] = value if value is not None else (
            None if key in ("optimizer", "schedule", "lr_auto") else math.nan)
    return out


def still_improving(folds: list[dict[str, Any]], training: dict[str, Any] | None
                    ) -> bool | None:
    """Whether a trial was still improving when it hit its epoch cap: with ``patience`` on,
    a fold that ran every epoch without stopping had improved its validation loss within its
    last ``patience`` epochs. None where that cannot be told (no patience, no folds)."""
    training = training or {}
    cap, patience = training.get("epochs"), training.get("patience") or 0
    if not folds or not cap or not patience:
        return None
    ran = [f for f in folds if isinstance(f.get("epochs"), int | float)]
    if not ran:
        return None
    return any(int(f["epochs"]) >= int(cap) and not f.get("stopped_early") for f in ran)


def collect(study: optuna.Study) -> StudyTables:
    """Read all trials of ``study`` into a :class:`StudyTables`."""
    srec = read_study_record(study)  # the study's settings, data and baselines, read once
    config = dict(srec.settings)
    directions = [d.name for d in study.directions]
    metric, maximize = _objective(config, directions)
    reread = study_verdicts(study)  # plateau verdicts read again beside trials that learned
    trials = study.get_trials(deepcopy=False)
    records = {t.number: read_record(t) for t in trials}
    diagnoses: dict[int, dict[str, Any]] = {}
    for n, r in records.items():
        diag = reread.get(n, r.diagnosis if isinstance(r.diagnosis, dict) else None)
        if diag:
            diagnoses[n] = diag
    rows, fold_rows = [], []
    for t in trials:
        rec = records[t.number]
        training = rec.training or None
        summary = rec.summary or {}
        folds = pd.DataFrame(rec.cv_folds)
        scores = (folds[metric].astype(float) if metric in folds
                  else pd.Series(dtype=float))
        arch = {k: summary.get(k) for k in ARCH_COLUMNS}
        diag = diagnoses.get(t.number)
        k = len(scores)
        std = float(scores.std(ddof=1)) if k > 1 else math.nan
        rows.append({
            "trial": t.number, "state": t.state.name, **arch,
            "params": _number(summary.get("params"), rec.costs.get("params")),
            "flops": _number(rec.costs.get("flops"), summary.get("flops")),
            "cv_mean": float(scores.mean()) if k else math.nan,
            "cv_std": std, "cv_se": std / math.sqrt(k) if k > 1 else math.nan,
            "folds_done": k,
            "gap_mean": float(folds["gap_accuracy"].mean()) if "gap_accuracy" in folds
            else math.nan,
            "test_score": _test_score(metric, folds),
            "seconds": _number(rec.wall_time),
            "verdict": diag.get("verdict") if diag else None,
            "confidence": diag.get("confidence") if diag else None,
            "fail_reason": _reason(rec),
            **recipe_of(training),
            "epochs_run": float(folds["epochs"].astype(float).mean()) if "epochs" in folds
            else math.nan,
            "still_improving": still_improving(rec.cv_folds, training),
            # a repeated candidate whose scores were copied from this earlier trial
            "duplicate_of": rec.duplicate_of,
        })
        for fold in rec.cv_folds:
            fold_rows.append({"trial": t.number, "state": t.state.name, **arch,
                              "params": rows[-1]["params"], **fold,
                              "score": fold.get(metric, math.nan)})
    folds_df = pd.DataFrame(fold_rows)
    if folds_df.empty:
        folds_df = pd.DataFrame(columns=["trial", "state", *ARCH_COLUMNS, "params", "fold",
                                         "score"])
    return StudyTables(
        name=study.study_name, metric=metric, maximize=maximize, directions=directions,
        config=config, data=dict(srec.data), trials=pd.DataFrame(rows, columns=TRIAL_COLUMNS),
        folds=folds_df, diagnoses=diagnoses,
        probes={n: r.probe_summary for n, r in records.items()
                if isinstance(r.probe_summary, dict)},
        traces={n: r.trace_summary for n, r in records.items()
                if isinstance(r.trace_summary, dict) and r.trace_summary.get("epochs")},
        values={t.number: [float(v) for v in t.values] for t in trials if t.values is not None},
        records=records,
        lr_finds={n: r.lr_find for n, r in records.items() if isinstance(r.lr_find, dict)},
        duplicates={n for n, r in records.items() if r.duplicate_of is not None}, study=srec)


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: architecture summary, CV score mean/std/se, state and reason."""
    return collect(study).trials


def top_trials(trials: pd.DataFrame, n: int = 5, *, maximize: bool = True) -> pd.DataFrame:
    """The ``n`` best complete trials (ties: fewer parameters first), each candidate once: a
    repeated candidate's copy of an earlier trial's scores (``duplicate_of``) is left out."""
    done = trials[(trials["state"] == "COMPLETE") & np.isfinite(trials["cv_mean"].astype(float))]
    if "duplicate_of" in done:
        done = done[done["duplicate_of"].isna()]
    return done.sort_values(["cv_mean", "params"], ascending=[not maximize, True]).head(n)


def state_counts(trials: pd.DataFrame) -> dict[str, int]:
    return {s: int((trials["state"] == s).sum())
            for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")}


# --- depth -------------------------------------------------------------------------------

def depth_table(folds: pd.DataFrame) -> pd.DataFrame:
    """CV score against depth, by block and skip, over the folds of complete trials: number of
    trials and folds, mean, std (ddof=1), min and max of the fold scores, and the mean
    train-minus-validation accuracy gap."""
    cols = ["depth", "block", "skip", "trials", "folds", "mean", "std", "min", "max",
            "gap_mean"]
    done = folds[(folds["state"] == "COMPLETE") & folds["depth"].notna()]
    if done.empty:
        return pd.DataFrame(columns=cols)
    gap = done["gap_accuracy"] if "gap_accuracy" in done else pd.Series(np.nan, done.index)
    done = done.assign(gap=gap.astype(float), score=done["score"].astype(float))
    g = done.groupby(["depth", "block", "skip"], sort=True, dropna=False)
    out = g.agg(trials=("trial", "nunique"), folds=("score", "size"), mean=("score", "mean"),
                std=("score", "std"), min=("score", "min"), max=("score", "max"),
                gap_mean=("gap", "mean")).reset_index()
    return out[cols]


def varied_recipe(trials: pd.DataFrame) -> list[str]:
    """The recipe columns (beyond ``lr``) that took more than one value among ``trials``."""
    return [col for col in RECIPE_COLUMNS[2:]
            if col in trials and trials[col].dropna().astype(str).nunique() > 1]


def best_per_depth(st: StudyTables) -> pd.DataFrame:
    """The best complete candidate at each depth, over every architecture *and recipe* tried
    at that depth (each depth at its own best recipe), with its CV mean, std and standard
    error (std / sqrt(folds)): the table the one-standard-error rule and the paired tests
    read. ``lr`` is the rate it trained at (the range test's pick under ``lr: auto``), the
    recipe columns that varied in the study follow, ``candidates`` counts what was compared
    at the depth, and ``still_improving`` marks a winner that hit its epoch cap while still
    improving (its score may understate the depth)."""
    done = st.scored[st.scored["depth"].notna()]
    extra = varied_recipe(done)
    cols = ["depth", "trial", "block", "skip", "width", "params", "lr", *extra, "cv_mean",
            "cv_std", "cv_se", "folds_done", "candidates", "still_improving"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    order = done.sort_values(["cv_mean", "params"], ascending=[not st.maximize, True])
    best = order.groupby("depth", sort=True).head(1).sort_values("depth")
    counts = done.groupby("depth")["trial"].nunique()
    best = best.assign(candidates=best["depth"].map(counts).astype(int))
    return best[cols].reset_index(drop=True)


def lr_find_share(st: StudyTables) -> float | None:
    """Seconds of the complete trials' range tests over those trials' total seconds (None
    without range tests)."""
    ran = [n for n in st.lr_finds if n not in st.duplicates]  # twins copied, did not run
    done = st.scored[st.scored["trial"].isin(ran)]
    seconds = done["seconds"].astype(float)
    if done.empty or not np.isfinite(seconds).all() or seconds.sum() <= 0:
        return None
    tests = sum(float(st.lr_finds[int(n)].get("seconds") or 0.0) for n in done["trial"])
    return tests / float(seconds.sum())


def lr_curves(st: StudyTables, trials: list[int]) -> dict[str, dict[str, Any]]:
    """The range-test sweeps of ``trials`` (those that ran one), labelled for a legend."""
    out: dict[str, dict[str, Any]] = {}
    rows = st.trials.set_index("trial")
    for n in trials:
        found = st.lr_finds.get(int(n))
        if found and found.get("lrs"):
            depth = rows.loc[int(n), "depth"] if int(n) in rows.index else None
            label = f"trial {int(n)}" + (f", depth {int(depth)}" if isinstance(
                depth, int | float) and math.isfinite(float(depth)) else "")
            out[label] = found
    return out


@dataclass
class DepthRecommendation:
    best: pd.Series
    recommended: pd.Series
    threshold: float
    ttest: TTest | None
    shared_folds: int


def fold_scores(folds: pd.DataFrame, trial: Any) -> pd.Series:
    """A trial's fold scores indexed by fold (by (repeat, fold) under repeated CV), so two
    candidates pair on the very same splits."""
    rows = folds[folds["trial"] == trial]
    unique = rows["fold"].is_unique  # the engine numbers repeated-CV splits 0..k*r-1
    keys = "fold" if unique or "repeat" not in rows else ["repeat", "fold"]
    return rows.set_index(keys)["score"].astype(float)


def paired_test(folds: pd.DataFrame, a: Any, b: Any) -> tuple[TTest | None, int]:
    """Trial ``a`` against trial ``b`` (``mean_diff`` = a − b) by the corrected resampled
    t-test on the folds they share, and how many they share (no test under two)."""
    sa, sb = fold_scores(folds, a), fold_scores(folds, b)
    shared = sa.index.intersection(sb.index)
    if len(shared) < 2:
        return None, len(shared)
    own = folds[folds["trial"] == a]
    if {"n_train", "n_val"} <= set(own.columns) and own["n_train"].notna().any():
        n_train, n_test = float(own["n_train"].mean()), float(own["n_val"].mean())
    else:  # k-fold: each validation fold is 1/(k-1) of its training set
        n_train, n_test = float(len(shared) - 1), 1.0
    return corrected_resampled_ttest(sa.loc[shared].to_numpy(), sb.loc[shared].to_numpy(),
                                     n_train=n_train, n_test=n_test), len(shared)


def against_best(st: StudyTables, table: pd.DataFrame, alpha: float = 0.05
                 ) -> list[tuple[pd.Series, pd.Series, dict[str, Any]]]:
    """The best row of ``table`` (a candidate per row: ``trial``, ``cv_mean``) against each
    other row on their shared folds: (best, row, ``diff`` = best − row, ``t``, ``p_value``,
    ``folds`` and ``worse``: the row significantly worse at level ``alpha``)."""
    best = table.loc[table["cv_mean"].idxmax() if st.maximize else table["cv_mean"].idxmin()]
    sign = 1.0 if st.maximize else -1.0
    out = []
    for _, row in table[table["trial"] != best["trial"]].iterrows():
        test, _ = paired_test(st.folds, best["trial"], row["trial"])
        if test is not None:
            out.append((best, row, {
                "diff": test.mean_diff, "t": test.t, "p_value": test.p_value, "folds": test.k,
                "worse": bool(sign * test.mean_diff > 0 and test.p_value < alpha)}))
    return out


def recommend_depth(st: StudyTables) -> DepthRecommendation | None:
    """One-standard-error depth over :func:`best_per_depth`, and the corrected resampled t-test
    (best minus recommended) on the folds both candidates share."""
    table = best_per_depth(st)
    if table.empty:
        return None
    idx = one_se_rule(table, maximize=st.maximize)
    best_idx = table["cv_mean"].idxmax() if st.maximize else table["cv_mean"].idxmin()
    best, rec = table.loc[best_idx], table.loc[idx]
    se = float(best["cv_se"]) if math.isfinite(float(best["cv_se"])) else 0.0
    threshold = float(best["cv_mean"]) - se if st.maximize else float(best["cv_mean"]) + se
    test, shared = paired_test(st.folds, best["trial"], rec["trial"])
    return DepthRecommendation(best=best, recommended=rec, threshold=threshold,
                               ttest=test if best["trial"] != rec["trial"] else None,
                               shared_folds=shared)


def depth_tests(st: StudyTables, alpha: float = 0.05) -> pd.DataFrame:
    """The best candidate against the best candidate of every other depth, paired on their
    shared folds (corrected resampled t-test; ``diff`` = best minus that depth's, so positive
    means the overall best scores higher when maximizing). ``worse`` marks depths whose
    candidate is significantly worse at level ``alpha``."""
    cols = ["depth", "trial", "cv_mean", "diff", "t", "p_value", "folds", "worse"]
    table = best_per_depth(st)
    if len(table) < 2:
        return pd.DataFrame(columns=cols)
    rows = [{"depth": row["depth"], "trial": row["trial"], "cv_mean": row["cv_mean"], **test}
            for _, row, test in against_best(st, table, alpha)]
    return pd.DataFrame(rows, columns=cols)


# --- width, blocks, skip -----------------------------------------------------------------

def width_depth_table(st: StudyTables) -> pd.DataFrame:
    """Per depth x width: number of complete candidates, their mean CV score and the best."""
    done = st.scored[st.scored["depth"].notna() & st.scored["width"].notna()]
    cols = ["depth", "width", "candidates", "mean", "best"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    g = done.groupby(["depth", "width"], sort=True)["cv_mean"]
    best = g.max() if st.maximize else g.min()
    out = pd.DataFrame({"candidates": g.size(), "mean": g.mean(), "best": best})
    return out.reset_index()[cols]


def params_bin(params: pd.Series) -> pd.Series:
    """Budget bins of a factor of two: ``2^floor(log2(params))`` (NaN stays NaN)."""
    p = params.astype(float)
    return pd.Series(np.where(p > 0, 2.0 ** np.floor(np.log2(p.where(p > 0, 1.0))), np.nan),
                     index=params.index)


def _bin_label(lo: float) -> str:
    return f"{int(lo):,}–{int(2 * lo) - 1:,}"


def matched_params_table(st: StudyTables) -> pd.DataFrame:
    """Depth against width at matched parameter counts: within each factor-of-two budget bin
    that holds at least two depths, the best candidate at each depth (its width and score)."""
    cols = ["budget", "bin_low", "depth", "width", "block", "skip", "params", "cv_mean", "trial"]
    done = st.scored[st.scored["depth"].notna() & st.scored["params"].notna()]
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = done.assign(bin_low=params_bin(done["params"]))
    order = done.sort_values(["cv_mean", "params"], ascending=[not st.maximize, True])
    best = order.groupby(["bin_low", "depth"], sort=True).head(1)
    depths = best.groupby("bin_low")["depth"].nunique()
    best = best[best["bin_low"].isin(depths[depths >= 2].index)]
    best = best.assign(budget=best["bin_low"].map(_bin_label))
    return best.sort_values(["bin_low", "depth"])[cols].reset_index(drop=True)


def block_table(st: StudyTables) -> pd.DataFrame:
    """Block types at matched budgets: per factor-of-two parameter bin holding two or more
    block types, each block's number of candidates, mean and best CV score, and the best
    candidate's trial and std over folds."""
    cols = ["budget", "bin_low", "block", "candidates", "mean", "best", "best_std",
            "best_trial"]
    done = st.scored[st.scored["block"].notna() & st.scored["params"].notna()]
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = done.assign(bin_low=params_bin(done["params"]))
    g = done.groupby(["bin_low", "block"], sort=True)["cv_mean"]
    order = done.sort_values(["cv_mean", "params"], ascending=[not st.maximize, True])
    top = order.groupby(["bin_low", "block"], sort=True).head(1).set_index(["bin_low", "block"])
    out = pd.DataFrame({"candidates": g.size(), "mean": g.mean(),
                        "best": g.max() if st.maximize else g.min(),
                        "best_std": top["cv_std"], "best_trial": top["trial"]}).reset_index()
    kinds = out.groupby("bin_low")["block"].nunique()
    out = out[out["bin_low"].isin(kinds[kinds >= 2].index)]
    out = out.assign(budget=out["bin_low"].map(_bin_label))
    return out[cols].reset_index(drop=True)


def skip_table(folds: pd.DataFrame) -> pd.DataFrame:
    """Skip connections on against off at each depth (all blocks, complete trials): mean fold
    score with each and the difference on minus off (NaN where one side was not tried)."""
    cols = ["depth", "skip_on", "skip_off", "on_minus_off", "folds_on", "folds_off"]
    done = folds[(folds["state"] == "COMPLETE") & folds["depth"].notna() & folds["skip"].notna()]
    if done.empty:
        return pd.DataFrame(columns=cols)
    done = done.assign(score=done["score"].astype(float), skip=done["skip"].astype(bool))
    mean = done.pivot_table(index="depth", columns="skip", values="score", aggfunc="mean")
    count = done.pivot_table(index="depth", columns="skip", values="score", aggfunc="size")
    out = pd.DataFrame(index=mean.index)
    out["skip_on"] = mean[True] if True in mean else np.nan
    out["skip_off"] = mean[False] if False in mean else np.nan
    out["on_minus_off"] = out["skip_on"] - out["skip_off"]
    out["folds_on"] = count[True] if True in count else 0
    out["folds_off"] = count[False] if False in count else 0
    out[["folds_on", "folds_off"]] = out[["folds_on", "folds_off"]].fillna(0).astype(int)
    return out.reset_index()[cols]


# --- cost, history, importances -----------------------------------------------------------

def pareto_table(st: StudyTables, cost: str) -> pd.DataFrame:
    """Complete candidates on the front of CV score against ``cost`` (``params``/``flops``),
    sorted by cost."""
    done = st.scored[np.isfinite(st.scored[cost].astype(float))]
    cols = ["trial", cost, "cv_mean", "depth", "width", "block", "skip"]
    if done.empty:
        return pd.DataFrame(columns=cols)
    mask = pareto_mask(done["cv_mean"], done[cost], maximize=st.maximize)
    return done[mask].sort_values(cost)[cols].reset_index(drop=True)


def history_table(st: StudyTables) -> pd.DataFrame:
    """Objective (first value) of every complete trial in trial order, with the best so far."""
    done = set(st.complete["trial"])
    df = pd.DataFrame([(n, v[0]) for n, v in sorted(st.values.items()) if v and n in done],
                      columns=["trial", "value"])
    best = df["value"].cummax() if st.maximize else df["value"].cummin()
    return df.assign(best_so_far=best)


def importance_table(study: optuna.Study, *, min_trials: int = 5
                     ) -> tuple[pd.DataFrame, str]:
    """Optuna parameter importances (PED-ANOVA; fANOVA where PED-ANOVA cannot run) of the
    first objective. Returns the table and a note (why it is empty, or the evaluator used)."""
    empty = pd.DataFrame(columns=["parameter", "importance"])
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(done) < min_trials:
        return empty, (f"Parameter importances need at least {min_trials} complete trials; "
                       f"this study has {len(done)}.")
    varied = {p for t in done for p in t.params
              if len({repr(u.params.get(p)) for u in done}) > 1}
    if not varied:
        return empty, "No parameter took more than one value: nothing to rank."

    # PED-ANOVA ranks parameters by how they reach *low* target values: flip maximized ones
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    notes = []
    evaluators: list[tuple[str, type[optuna.importance.BaseImportanceEvaluator]]] = [
        ("PED-ANOVA", optuna.importance.PedAnovaImportanceEvaluator),
        ("fANOVA", optuna.importance.FanovaImportanceEvaluator)]
    for label, cls in evaluators:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # the direction note, handled
                imp = optuna.importance.get_param_importances(
                    study, evaluator=cls(), target=lambda t: sign * float(t.values[0]))
        except Exception as exc:  # e.g. too few trials above the quantile; try the next one
            notes.append(f"{label} could not run ({type(exc).__name__}: {exc}).")
            continue
        df = pd.DataFrame({"parameter": list(imp), "importance": [float(v)
                                                                   for v in imp.values()]})
        # ties in the order of their names, not of the hash seed's set iteration
        df = df.sort_values(["importance", "parameter"], ascending=[False, True],
                            ignore_index=True)
        return df, " ".join([*notes, f"Evaluator: {label}, on {len(done)} complete trials."])
    return empty, " ".join(notes)


# --- diagnoses and problems ---------------------------------------------------------------

def diagnoses_table(st: StudyTables) -> pd.DataFrame:
    """One row per diagnosed trial: architecture, score, verdict, confidence, whether it was
    still learning at its last epoch, first advice."""
    cols = ["trial", "state", "depth", "width", "block", "skip", "cv_mean", "verdict",
            "confidence", "still_learning", "advice"]
    rows = []
    for number, diag in sorted(st.diagnoses.items()):
        row = st.trials[st.trials["trial"] == number].iloc[0]
        advice = diag.get("advice") or []
        rows.append({**{c: row[c] for c in cols[:7]}, "verdict": diag.get("verdict"),
                     "confidence": diag.get("confidence"),
                     "still_learning": diag.get("still_learning"),
                     "advice": "; ".join(str(a) for a in advice) if isinstance(advice, list)
                     else str(advice)})
    return pd.DataFrame(rows, columns=cols)


def data_limited_table(st: StudyTables) -> tuple[pd.DataFrame, list[int]]:
    """Trials diagnosed data-limited *with a control behind the verdict*, one row per backing
    control with its figure (``basis`` of the diagnosis), and the numbers of data-limited
    trials without one (records written before verdicts needed a control)."""
    cols = ["trial", "depth", "width", "block", "skip", "cv_mean", "confidence", "control",
            "control_result", "grad_first_over_last_log10", "skill_above_chance"]
    rows, unbacked = [], []
    for number, diag in sorted(st.diagnoses.items()):
        if diag.get("verdict") != "data_limited_plateau":
            continue
        basis = [b for b in diag.get("basis") or [] if isinstance(b, dict)]
        if not basis:
            unbacked.append(number)
            continue
        row = st.trials[st.trials["trial"] == number].iloc[0]
        sig = diag.get("signals") or {}
        for b in basis:
            rows.append({**{c: row[c] for c in cols[:6]}, "confidence": diag.get("confidence"),
                         "control": b.get("control"), "control_result": b.get("figure"),
                         "grad_first_over_last_log10": sig.get("grad_depth_log10"),
                         "skill_above_chance": sig.get("skill_best")})
    return pd.DataFrame(rows, columns=cols), unbacked


def still_learning_table(st: StudyTables) -> pd.DataFrame:
    """Trials whose loss was still falling at their last epoch (the diagnosis's reading of
    the trace), best first: ``val_loss_fall_last`` is the fall per epoch at the end (label
    entropies), ``loss_gone`` the share of the starting loss gone."""
    cols = ["trial", "depth", "width", "block", "skip", "cv_mean", "verdict", "epochs",
            "val_loss_fall_last", "loss_gone"]
    rows = []
    for number, diag in sorted(st.diagnoses.items()):
        if not (diag.get("still_learning") or diag.get("verdict") == "undertrained"):
            continue
        row = st.trials[st.trials["trial"] == number].iloc[0]
        sig = diag.get("signals") or {}
        rows.append({**{c: row[c] for c in cols[:6]}, "verdict": diag.get("verdict"),
                     "epochs": sig.get("epochs"), "val_loss_fall_last":
                     sig.get("val_loss_fall_last"), "loss_gone": sig.get("loss_gone")})
    df = pd.DataFrame(rows, columns=cols)
    return df.sort_values("cv_mean", ascending=not st.maximize).reset_index(drop=True) \
        if len(df) else df


def unsettled_best(st: StudyTables, rec: DepthRecommendation) -> list[int]:
    """The candidates that decide the depth recommendation (the best one, the recommended one,
    and every depth's best within the one-standard-error threshold) that were still learning
    at their last epoch: where there are any, more epochs may reorder the depths."""
    table = best_per_depth(st)
    close = table[table["cv_mean"] >= rec.threshold] if st.maximize \
        else table[table["cv_mean"] <= rec.threshold]
    deciding = {int(rec.best["trial"]), int(rec.recommended["trial"])} | {
        int(t) for t in close["trial"]}
    learning = set(still_learning_table(st)["trial"].astype(int))
    return sorted(deciding & learning)


def verdict_counts(diagnoses: pd.DataFrame) -> pd.DataFrame:
    if diagnoses.empty:
        return pd.DataFrame(columns=["verdict", "trials"])
    counts = diagnoses["verdict"].fillna("none").value_counts()
    return counts.rename_axis("verdict").reset_index(name="trials")


def architectures_tried(st: StudyTables) -> int:
    """Distinct architectures among the scored trials (by their recorded ``ArchConfig``); 1:
    the study searched the training recipe, the transfer mode or the tasks only."""
    return len({json.dumps(st.records[int(n)].arch, sort_keys=True)
                for n in st.scored["trial"] if int(n) in st.records})


def gradient_time_table(trace: dict[str, Any]) -> pd.DataFrame:
    """The gradient at each sampled step of every recurrent unit, at the first and the last
    recorded epoch (``epoch, block, step, grad``): the data of the gradient-against-time
    figure. Empty for a model without recurrent blocks."""
    frame = time_frame([trace]).dropna(subset=["grad"])
    if frame.empty:
        return frame[["epoch", "block", "step", "grad"]]
    first, last = frame["epoch"].min(), frame["epoch"].max()
    keep = frame[frame["epoch"].isin({first, last})]
    return keep[["epoch", "block", "step", "grad"]].reset_index(drop=True)


def evidence_table(diagnosis: dict[str, Any]) -> pd.DataFrame:
    """A diagnosis's evidence: signal, value, threshold, meaning."""
    cols = ["signal", "value", "threshold", "meaning"]
    ev = diagnosis.get("evidence") or []
    rows = [{c: e.get(c) for c in cols} for e in ev if isinstance(e, dict)]
    return pd.DataFrame(rows, columns=cols)


def problems_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Failed, pruned and unfinished trials with their reasons."""
    cols = ["trial", "state", "depth", "width", "block", "skip", "folds_done", "fail_reason"]
    return trials[trials["state"].isin(PROBLEM_STATES)][cols].reset_index(drop=True)
