"""The report's "Multitask" section: does sharing help, how deep should the shared trunk be,
and which task has no signal. Tables come from :mod:`nasdepth.report.tasks_tables`; this
module only draws them and writes the section (None for a single-task study)."""

from __future__ import annotations

import pandas as pd
from matplotlib.ticker import MaxNLocator

from nasdepth.report import tasks_tables as MT
from nasdepth.report.document import Block, KeyValues, Para, Section, add_image, fmt
from nasdepth.report.document import Table as Tab
from nasdepth.report.figures import WIDE, finish, metric_label, plt, sns
from nasdepth.report.tables import StudyTables


def branch_figure(table: pd.DataFrame, metric: str):  # type: ignore[no-untyped-def]
    """Each task's best score against ``branch_at`` (blocks shared before the split)."""
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    sns.lineplot(data=table, x="branch_at", y="best", hue="task", marker="o", ax=ax)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return finish(fig, ax, title="Score against the depth of the shared trunk",
                  xlabel="branch_at (blocks shared; 0: only the stem)",
                  ylabel=metric_label(metric))


def sharing_figure(folds: pd.DataFrame, metric: str):  # type: ignore[no-untyped-def]
    """Per-fold scores of each task, multitask against alone."""
    if folds.empty:
        return None
    fig, ax = plt.subplots(figsize=WIDE)
    # tasks are categories: points with one SD over folds, no line from task to task
    sns.pointplot(data=folds, x="task", y="score", hue="mode", dodge=0.3, ax=ax,
                  errorbar="sd", linestyle="none", capsize=0.1)
    return finish(fig, ax, title="Each task: shared network against the same architecture "
                  "alone", xlabel="task", ylabel=metric_label(metric))


def multitask_section(st: StudyTables) -> Section | None:
    if not MT.is_multitask(st):
        return None
    tasks_cfg = (st.config.get("tasks") or {}) if isinstance(st.config, dict) else {}
    metric = str(tasks_cfg.get("metric") or "val_accuracy")
    blocks: list[Block] = []
    scores = MT.task_scores(st)
    best = MT.best_trial(st)
    tasks = list(dict.fromkeys(scores["task"])) if not scores.empty else []
    blocks.append(KeyValues([
        ("tasks", ", ".join(tasks) or "none recorded"),
        ("objective", f"{tasks_cfg.get('objective', 'mean')} of {metric}"),
        ("loss weighting", str(tasks_cfg.get("weighting", "fixed"))),
        ("best trial", "none complete" if best is None else str(best)),
    ]))
    flagged = MT.flagged_tasks(scores, best)
    for _, row in flagged.iterrows():
        blocks.append(Para(
            f"Task '{row['task']}' shows no signal: the best trial scores {fmt(row['mean'])} "
            "on it and the diagnosis calls it data-limited (neither the network nor the "
            "shallow baseline learns its labels on these folds). Its score says nothing about "
            "the architecture; consider dropping it or giving it less weight.", "warn"))
    baselines = st.study.multitask_baselines
    sharing = MT.sharing_table(baselines, metric, st.maximize)
    if sharing.empty:
        blocks.append(Para("No single-task baselines stored yet (they run after the search "
                           "when tasks.baselines is true).", "note"))
    else:
        trial = baselines.get("trial") if isinstance(baselines, dict) else None
        blocks.append(Para(f"Trial {trial}'s architecture trained on each task alone, on the "
                           "same folds with the same seeds, against the shared network."))
        add_image(blocks, sharing_figure(MT.sharing_folds(baselines, metric), metric),
                  "multitask_sharing.png", "Multitask against single-task")
        blocks.append(Tab(sharing, "Does sharing help? (difference: multitask − single; "
                                   "p: corrected resampled t-test on the shared folds)"))
    branch = MT.branch_table(scores, st.maximize)
    if not branch.empty:
        add_image(blocks, branch_figure(branch, metric), "multitask_branch.png",
                  "Score against branch_at")
        blocks.append(Tab(branch, "Each task's score against branch_at (best and mean over "
                                  "trials)"))
    if best is not None and not scores.empty:
        own = scores[scores["trial"] == best][["task", "mean", "std", "verdict"]]
        blocks.append(Tab(own.reset_index(drop=True),
                          f"Trial {best}: each task's score and diagnosis"))
    return Section("Multitask", blocks)
