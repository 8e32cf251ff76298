"""Write ``reports/<study>/``: ``report.md``, ``trials.csv`` and figures."""

from __future__ import annotations

from pathlib import Path

import optuna

from nasdepth.report.figures import depth_figure
from nasdepth.report.tables import top_trials, trials_frame


def _markdown_table(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(str(row[c]) for c in cols) + " |")
    return "\n".join(lines)


def write_report(study: optuna.Study, out_dir: str | Path) -> Path:
    """Rebuild the report of ``study`` from its storage into ``out_dir``; returns the
    path of ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(study)
    trials.to_csv(out / "trials.csv", index=False)
    counts = trials["state"].value_counts().to_dict()
    lines = [f"# Study `{study.study_name}`", ""]
    data = study.user_attrs.get("data", {})
    if data:
        lines += [f"Data: `{data.get('name')}`, {data.get('n_samples')} samples, "
                  f"{data.get('num_classes')} classes, input shape {data.get('input_shape')}.", ""]
    lines += ["Trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())), ""]
    best = top_trials(trials)
    if len(best):
        shown = best[["trial", "depth", "width", "block", "skip", "params", "cv_mean", "cv_std"]]
        lines += ["## Best candidates", "", _markdown_table(shown.round(4)), ""]
        depth_figure(trials, out / "depth.png")
        lines += ["## Accuracy against depth", "", "![CV accuracy against depth](depth.png)", ""]
    failed = trials[trials["state"] == "FAIL"]
    if len(failed):
        lines += ["## Failed trials", "", _markdown_table(failed[["trial", "fail_reason"]]), ""]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
