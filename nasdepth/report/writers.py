"""Write ``reports/<study>/``: ``index.html`` (self-contained), ``report.md`` with the same
content and its PNG figures, and ``trials.csv``, ``folds.csv``, ``diagnoses.csv``."""

from __future__ import annotations

from pathlib import Path

import optuna
import pandas as pd

from nasdepth.report.content import build_report
from nasdepth.report.html import render_html
from nasdepth.report.markdown import render_markdown
from nasdepth.report.tables import StudyTables, collect, diagnoses_table


def study_baselines(st: StudyTables) -> tuple[pd.DataFrame | None, str]:
    """Baselines on the study's own data and folds; ``(None, why)`` where they cannot be
    computed (data no longer loadable here, no CV settings recorded)."""
    from nasdepth.data import load_data
    from nasdepth.report.baselines import baseline_folds, study_splits

    spec = st.config.get("data")
    if not spec or not (isinstance(st.config.get("folds"), int)
                        or isinstance(st.config.get("cv"), dict)):
        return None, "the study does not record its data spec and folds."
    try:
        data = load_data(spec if isinstance(spec, dict) else str(spec))  # a spec or a mapping
        return baseline_folds(data, study_splits(data, st.config)), ""
    except Exception as exc:  # a report must still be written when the data moved away
        return None, f"{type(exc).__name__}: {exc}"


def write_report(study: optuna.Study, out_dir: str | Path, *, baselines: bool = True) -> Path:
    """Rebuild the report of ``study`` from its storage into ``out_dir``; returns the path of
    ``index.html``. ``baselines=False`` skips fitting the majority-class and logistic
    regression baselines."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    st = collect(study)
    base, why = (study_baselines(st) if baselines else (None, "turned off."))
    report = build_report(study, st, base, why)
    st.trials.to_csv(out / "trials.csv", index=False)
    st.folds.to_csv(out / "folds.csv", index=False)
    diagnoses_table(st).to_csv(out / "diagnoses.csv", index=False)
    if base is not None:
        base.to_csv(out / "baselines.csv", index=False)
    for img in report.images():
        (out / img.name).write_bytes(img.png)
    (out / "report.md").write_text(render_markdown(report), encoding="utf-8")
    path = out / "index.html"
    path.write_text(render_html(report), encoding="utf-8")
    return path
