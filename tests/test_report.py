"""Reports on a small real study (digits, a few trials trained for real): files, tables that
match the CSVs, the one-SE rule, the corrected t-test, escaping, partial and multi-objective
studies, and the CLI."""

from __future__ import annotations

import math
import re
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import yaml
from matplotlib.image import imread as plt_imread
from scipy import stats as sps

from nasdepth.cli import main
from nasdepth.report import collect, corrected_resampled_ttest, one_se_rule, write_report
from nasdepth.report import tables as T
from nasdepth.report.stats import pareto_mask
from nasdepth.study import make_storage, run_study
from nasdepth.study.record import RECORD_KEY, TrialRecord, read_record, write_record
from nasdepth.study.study_file import load_study
from tests.conftest import write_study

EVIL = "<script>alert(1)</script>"
SPACE = {
    "name": "report_tiny",
    "stages": 1,
    "depth": {"type": "int", "low": 1, "high": 3},
    "width": {"type": "categorical", "choices": [4, 8]},
    "block": {"type": "categorical", "choices": ["plain", "residual"]},
    "skip": {"type": "categorical", "choices": [True, False]},
}


def _partial_trials(study: optuna.Study) -> None:
    """Leave the study as a live one looks mid-run: one trial still running, one failed with
    its reason, one pruned after its first fold (the fold of a real trial)."""
    real = read_record(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))[0])
    study.ask()  # RUNNING
    failed = study.ask()
    write_record(failed, TrialRecord(number=failed.number, state="failed",
                                     reason=f"non-finite loss at fold 0, epoch 1 {EVIL}"))
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    pruned = study.ask()
    write_record(pruned, TrialRecord(number=pruned.number, state="pruned",
                                     summary=real.summary, cv_folds=real.cv_folds[:1],
                                     pruned_at={"fold": 1, "epoch": 0, "step": 1}))
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One real study (4 trials, 2 folds, 1 epoch on digits, 20% held out for testing) named
    like an attack, plus partial-state trials, and its report."""
    folder = tmp_path_factory.mktemp("report")
    path = write_study(folder, name="report_tiny", space=SPACE,
                       cv={"folds": 2, "test_size": 0.2},
                       training={"epochs": 1, "batch_size": 64, "lr": 0.01},
                       budget={"trials": 4})
    raw = yaml.safe_load(path.read_text())
    raw["storage"] = str(folder / "report.journal")
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    run_study(path, progress=False)
    # named like an attack: nasdepth refuses such a name, another tool may store one, and the
    # report must escape it
    storage = make_storage(raw["storage"])
    optuna.copy_study(from_study_name="report_tiny", from_storage=storage, to_storage=storage,
                      to_study_name=EVIL)
    study = optuna.load_study(study_name=EVIL, storage=storage)
    _partial_trials(study)
    out = folder / "out"
    index = write_report(study, out)
    return {"folder": folder, "path": path, "study": study, "out": out, "index": index}


def test_files_exist_and_page_is_self_contained(built: dict[str, Any]) -> None:
    out = built["out"]
    assert built["index"] == out / "index.html"
    for name in ("index.html", "report.md", "trials.csv", "folds.csv", "diagnoses.csv",
                 "depth.png", "one_se.png"):
        assert (out / name).stat().st_size > 0, name
    page = (out / "index.html").read_text()
    assert page.count('<img src="data:image/png;base64,') >= 5
    # nothing is fetched: no remote or relative resources, no scripts
    assert "http://" not in page and "https://" not in page
    assert "<script" not in page and "<link" not in page
    assert all(src.startswith("data:image/png;base64,")
               for src in re.findall(r'src="([^"]*)"', page))
    md = (out / "report.md").read_text()
    for heading in ("## Summary", "## Depth", "## Width", "## Blocks and skip connections",
                    "## Cost", "## Baselines", "## What matters", "## Diagnoses",
                    "## Failed and pruned trials"):
        assert heading in md and f">{heading[3:]}</h2>" in page
    for line in md.splitlines():  # every figure named in report.md exists beside it
        if line.startswith("!["):
            assert (out / line.split("](")[1].rstrip(")")).is_file(), line


def test_depth_table_equals_recomputation_from_folds_csv(built: dict[str, Any]) -> None:
    out, study = built["out"], built["study"]
    folds = pd.read_csv(out / "folds.csv")
    done = folds[folds["state"] == "COMPLETE"]
    expected = done.groupby(["depth", "block", "skip"]).agg(
        trials=("trial", "nunique"), folds=("val_accuracy", "size"),
        mean=("val_accuracy", "mean"), std=("val_accuracy", "std"),
        min=("val_accuracy", "min"), max=("val_accuracy", "max"),
        gap_mean=("gap_accuracy", "mean")).reset_index()
    table = T.depth_table(collect(study).folds)
    assert len(table) == len(expected) > 0
    for col in ("depth", "trials", "folds", "mean", "std", "min", "max", "gap_mean"):
        np.testing.assert_allclose(table[col].astype(float), expected[col].astype(float),
                                   rtol=1e-12, err_msg=col)
    assert list(table["block"]) == list(expected["block"])
    # the trial table's CV mean/std are the folds' too (pruned trials keep their one fold)
    trials = pd.read_csv(out / "trials.csv").set_index("trial")
    by_trial = folds.groupby("trial")["val_accuracy"]
    np.testing.assert_allclose(trials.loc[by_trial.mean().index, "cv_mean"], by_trial.mean())
    complete = trials[trials["state"] == "COMPLETE"]
    np.testing.assert_allclose(complete["cv_std"], by_trial.std().loc[complete.index])
    np.testing.assert_allclose(complete["cv_se"], complete["cv_std"] / math.sqrt(2))


def test_one_se_rule_on_a_hand_made_table() -> None:
    table = pd.DataFrame({"depth": [2, 4, 8, 16, 32],
                          "cv_mean": [0.80, 0.86, 0.90, 0.91, 0.905],
                          "cv_se": [0.01, 0.02, 0.02, 0.015, 0.03]})
    # best 0.91 at depth 16, threshold 0.91 - 0.015 = 0.895: depth 8 (0.90) is the simplest
    assert table.loc[one_se_rule(table), "depth"] == 8
    # a tighter SE leaves only the best
    assert table.loc[one_se_rule(table.assign(cv_se=0.001)), "depth"] == 16
    # minimizing a loss: best 0.30 at depth 8, threshold 0.33: depth 4 (0.32)
    loss = table.assign(cv_mean=[0.50, 0.32, 0.30, 0.34, 0.31], cv_se=[0.02, 0.02, 0.03,
                                                                        0.01, 0.01])
    assert loss.loc[one_se_rule(loss, maximize=False), "depth"] == 4
    # unordered input and a missing SE (the best alone) are handled
    shuffled = table.sample(frac=1.0, random_state=1)
    assert shuffled.loc[one_se_rule(shuffled), "depth"] == 8
    assert table.loc[one_se_rule(table.assign(cv_se=np.nan)), "depth"] == 16


def test_recommended_depth_follows_the_rule_on_the_real_study(built: dict[str, Any]) -> None:
    st = collect(built["study"])
    best = T.best_per_depth(st)
    rec = T.recommend_depth(st)
    assert rec is not None
    threshold = best["cv_mean"].max() - best.loc[best["cv_mean"].idxmax(), "cv_se"]
    assert rec.recommended["depth"] == best[best["cv_mean"] >= threshold]["depth"].min()
    md = (built["out"] / "report.md").read_text()
    assert f"Recommended depth: {int(rec.recommended['depth'])} " in md
    # the paired tests against every other depth, recomputed from folds.csv
    folds = pd.read_csv(built["out"] / "folds.csv")
    tests = T.depth_tests(st)
    best_trial = int(best.loc[best["cv_mean"].idxmax(), "trial"])
    assert len(tests) == len(best) - 1
    for _, row in tests.iterrows():
        a = folds[folds["trial"] == best_trial].sort_values("fold")["val_accuracy"]
        b = folds[folds["trial"] == row["trial"]].sort_values("fold")["val_accuracy"]
        n_train = folds[folds["trial"] == best_trial]["n_train"].mean()
        n_val = folds[folds["trial"] == best_trial]["n_val"].mean()
        expected = corrected_resampled_ttest(a.to_numpy(), b.to_numpy(), n_train=n_train,
                                             n_test=n_val)
        assert row["t"] == pytest.approx(expected.t)
        assert row["p_value"] == pytest.approx(expected.p_value)


def test_corrected_resampled_ttest_matches_hand_computation() -> None:
    a = [0.90, 0.85, 0.88, 0.92, 0.87]
    b = [0.86, 0.84, 0.85, 0.90, 0.83]
    # by hand: d = (.04, .01, .03, .02, .04), mean .028, s^2 = .00068 / 4 = .00017;
    # 5-fold CV: n_test / n_train = 1/4, so t = .028 / sqrt((1/5 + 1/4) * .00017) = 3.2013
    res = corrected_resampled_ttest(a, b, n_train=400, n_test=100)
    assert res.mean_diff == pytest.approx(0.028)
    assert res.std_diff ** 2 == pytest.approx(0.00017)
    assert res.t == pytest.approx(0.028 / math.sqrt(0.45 * 0.00017))
    assert res.t == pytest.approx(3.2013, abs=1e-4)
    assert res.dof == 4
    assert res.p_value == pytest.approx(2 * sps.t.sf(3.20131, 4), rel=1e-4)
    # the correction only shrinks the plain paired t by sqrt((1/k) / (1/k + n_test/n_train))
    plain = sps.ttest_rel(a, b)
    assert res.t == pytest.approx(plain.statistic * math.sqrt(0.2 / 0.45))
    assert res.p_value > plain.pvalue
    assert corrected_resampled_ttest(b, a, n_train=400, n_test=100).t == pytest.approx(-res.t)
    with pytest.raises(ValueError):
        corrected_resampled_ttest([0.9], [0.8], n_train=4, n_test=1)


def test_pareto_mask() -> None:
    score = [0.9, 0.8, 0.95, 0.85, float("nan")]
    cost = [100, 50, 400, 200, 10]
    assert list(pareto_mask(score, cost)) == [True, True, True, False, False]


def test_study_name_and_reasons_are_escaped(built: dict[str, Any]) -> None:
    page = (built["out"] / "index.html").read_text()
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<title>Study &lt;script&gt;" in page
    md = (built["out"] / "report.md").read_text()
    assert EVIL not in md and "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_held_out_test_score(built: dict[str, Any]) -> None:
    """Every fold model is scored on the held-out 20%; the report shows their mean."""
    trials = pd.read_csv(built["out"] / "trials.csv").set_index("trial")
    folds = pd.read_csv(built["out"] / "folds.csv")
    done = folds[folds["state"] == "COMPLETE"].groupby("trial")["test_accuracy"].mean()
    np.testing.assert_allclose(trials.loc[done.index, "test_score"], done)
    md = (built["out"] / "report.md").read_text()
    assert "held-out test |" in md


def test_partial_study_lists_running_failed_and_pruned(built: dict[str, Any]) -> None:
    trials = pd.read_csv(built["out"] / "trials.csv")
    assert (trials["state"] == "COMPLETE").sum() == 4
    assert set(trials["state"]) == {"COMPLETE", "RUNNING", "FAIL", "PRUNED"}
    problems = T.problems_table(collect(built["study"]).trials)
    assert sorted(problems["state"]) == ["FAIL", "PRUNED", "RUNNING"]
    reasons = dict(zip(problems["state"], problems["fail_reason"], strict=True))
    assert reasons["FAIL"].startswith("non-finite loss at fold 0")
    assert reasons["PRUNED"].startswith("pruned") and "running" in reasons["RUNNING"]
    page = (built["out"] / "index.html").read_text()
    assert "non-finite loss at fold 0, epoch 1 &lt;script&gt;" in page


def test_baselines_on_the_same_folds(built: dict[str, Any]) -> None:
    base = pd.read_csv(built["out"] / "baselines.csv")
    folds = pd.read_csv(built["out"] / "folds.csv")
    assert set(base["model"]) == {"majority class", "logistic regression"}
    # the baselines' validation folds have the study's fold sizes
    sizes = folds.groupby("fold")["n_val"].first()
    for model, rows in base.groupby("model"):
        assert list(rows["n_val"]) == list(sizes), model
    # the held-out 20% is never in a fold (sklearn rounds the test part up)
    assert base["n_train"].iloc[0] + base["n_val"].iloc[0] == 1797 - math.ceil(0.2 * 1797)
    assert "test_accuracy" in base and base["test_accuracy"].notna().all()
    majority = base[base["model"] == "majority class"]["val_accuracy"]
    logreg = base[base["model"] == "logistic regression"]["val_accuracy"]
    assert majority.between(0.09, 0.12).all()  # digits: ten balanced classes
    assert logreg.min() > 0.9
    md = (built["out"] / "report.md").read_text()
    beaten = (folds[folds["state"] == "COMPLETE"].groupby("trial")["val_accuracy"].mean()
              <= logreg.mean()).all()
    assert ("No deep candidate beats logistic regression" in md) == beaten


def test_cli_report_rebuilds_from_the_storage(built: dict[str, Any],
                                              capsys: pytest.CaptureFixture) -> None:
    # the same study in another kind of storage (SQLite through Optuna's RDB storage)
    url = f"sqlite:///{built['folder'] / 'copy.db'}"
    optuna.copy_study(from_study_name=EVIL, from_storage=make_storage(raw_storage(built)),
                      to_storage=url, to_study_name="report_tiny")  # the study file's name
    out = built["folder"] / "rebuilt"
    assert main(["report", str(built["path"]), "--storage", url, "--out", str(out),
                 "--no-baselines"]) == 0
    assert str(out / "index.html") in capsys.readouterr().out
    pd.testing.assert_frame_equal(pd.read_csv(out / "trials.csv"),
                                  pd.read_csv(built["out"] / "trials.csv"))
    assert "Baselines were not computed" in (out / "report.md").read_text()
    missing = built["folder"] / "nope.journal"
    assert main(["report", str(built["path"]), "--storage", str(missing)]) == 2
    assert "No storage at" in capsys.readouterr().err


def test_stored_diagnoses_are_counted_and_listed(built: dict[str, Any]) -> None:
    """The study's own trials carry a probe summary and a diagnosis (probes run by default)."""
    stored = {t.number: read_record(t).verdict for t in built["study"].trials
              if read_record(t).diagnosis}
    table = pd.read_csv(built["out"] / "diagnoses.csv")
    assert dict(zip(table["trial"], table["verdict"], strict=True)) == stored
    md = (built["out"] / "report.md").read_text()
    if not stored:
        pytest.skip("the probes did not run in this tree: no stored diagnosis to show")
    for verdict, n in pd.Series(list(stored.values())).value_counts().items():
        assert f"| {verdict} | {n} |" in md
    stalled = [n for n, v in stored.items() if v != "healthy"]
    for n in stalled[:3]:
        assert f"#### Trial {n}: {stored[n]}" in md


def raw_storage(built: dict[str, Any]) -> str:
    return str(yaml.safe_load(built["path"].read_text())["storage"])


def _copy_study(src: optuna.Study, directions: list[str], name: str,
                values: Any, extra: Any = None) -> optuna.Study:
    """A new in-memory study holding ``src``'s complete trials with other objective values
    (and extra user attributes), for the multi-objective and diagnosis cases."""
    dst = optuna.create_study(study_name=name, directions=directions,
                              storage=optuna.storages.InMemoryStorage())
    for key, value in src.user_attrs.items():
        dst.set_user_attr(key, value)
    for t in src.get_trials(states=(optuna.trial.TrialState.COMPLETE,)):
        rec = read_record(t)
        for name, value in (extra(t) if extra else {}).items():
            setattr(rec, name, value)
        attrs = {**t.user_attrs, RECORD_KEY: rec.to_dict()}
        dst.add_trial(optuna.trial.create_trial(
            params=t.params, distributions=t.distributions, values=values(t),
            user_attrs=attrs))
    return dst


def test_multi_objective_study_shows_the_pareto_front(built: dict[str, Any],
                                                      tmp_path: Path) -> None:
    src = built["study"]
    multi = _copy_study(src, ["maximize", "minimize"], "multi",
                        lambda t: [t.value, read_record(t).summary["params"]])
    index = write_report(multi, tmp_path, baselines=False)
    page = index.read_text()
    assert "Pareto-optimal trials" in page
    st = collect(multi)
    front = T.pareto_table(st, "params")
    expected = [t.number for t in multi.best_trials]
    assert sorted(front["trial"]) == sorted(expected)


def test_diagnoses_section_from_stored_diagnoses(built: dict[str, Any], tmp_path: Path) -> None:
    """Stored diagnoses of every verdict kind render with their evidence: the study's own
    per-epoch trace summary (odd trials) or, for records without one, the compact per-block
    profile of the probe summary (even trials)."""
    src = built["study"]
    compact = {"folds": 2, "blocks": 3, "signals": {"skill_last": 0.01},
               "grad_rms_last_epoch": [1e-7, 1e-4, 1e-2]}

    def extra(t: optuna.trial.FrozenTrial) -> dict[str, Any]:
        verdict = "data_limited_plateau" if t.number % 2 else "vanishing_gradients"
        assert read_record(t).trace_summary  # the real study's probes
        return {"diagnosis": {
            "verdict": verdict, "confidence": 0.8,
            "evidence": [{"signal": "grad_depth_log10", "value": -5.2, "threshold": -3,
                          "meaning": f"first block gets 1e-5 of the last {EVIL}"}],
            "advice": ["add skip connections or normalization"],
            "controls": {"shuffled": {"val_accuracy": 0.1}}},
            **({} if t.number % 2 else {"probe_summary": compact, "trace_summary": None})}

    diag = _copy_study(src, ["maximize"], "diag", lambda t: [t.value], extra)
    index = write_report(diag, tmp_path, baselines=False)
    page = index.read_text()
    assert EVIL not in page and "first block gets 1e-5 of the last &lt;script&gt;" in page
    table = pd.read_csv(tmp_path / "diagnoses.csv")
    assert len(table) == 4 and set(table["verdict"]) == {"data_limited_plateau",
                                                          "vanishing_gradients"}
    counts = T.verdict_counts(T.diagnoses_table(collect(diag)))
    assert counts["trials"].sum() == 4
    md = (tmp_path / "report.md").read_text()
    assert "## Looks like vanishing gradients, but is data-limited" in md
    assert len(list(tmp_path.glob("evidence_trial*.png"))) == 4
    assert len(list(tmp_path.glob("controls_trial*.png"))) == 4
    assert "<details><summary>Trial " in page


CHROMIUM = Path("/usr/bin/chromium")
#: the page's own console is silent (it has no scripts): any console line is an error report
#: from the browser itself (a refused resource, a CSP violation, a failed decode)
CONSOLE = re.compile(r":CONSOLE[:(]")


def _chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
             "--virtual-time-budget=5000"]
    return subprocess.run([str(CHROMIUM), *flags, *args], capture_output=True, text=True,
                          timeout=180)


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason="no headless Chromium at /usr/bin/chromium (apt-get install chromium)")
def test_page_renders_its_figures_in_chromium(built: dict[str, Any], tmp_path: Path) -> None:
    index = built["index"]
    shot = tmp_path / "shot.png"
    proc = _chromium(["--window-size=1000,2400", f"--screenshot={shot}", index.as_uri()],
                     tmp_path / "profile1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not CONSOLE.search(proc.stderr), [ln for ln in proc.stderr.splitlines()
                                             if CONSOLE.search(ln)]
    pixels = plt_imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1000)
    ink = (pixels < 0.9).any(axis=2)
    colour = (pixels.max(axis=2) - pixels.min(axis=2)) > 0.3  # plots are the colourful parts
    assert ink.mean() > 0.03 and colour.mean() > 0.001, (ink.mean(), colour.mean())

    # a test copy with a tiny script that writes each image's natural size into the DOM
    # (the report itself carries no scripts, and its CSP forbids them)
    page = index.read_text()
    probe = ("<script>addEventListener('load',()=>{for(const i of document.images)"
             "i.setAttribute('data-natural',i.naturalWidth+'x'+i.naturalHeight);"
             "document.body.setAttribute('data-loaded','yes')})</script>")
    copy = tmp_path / "probe.html"
    copy.write_text(page.replace("default-src 'none';", "default-src 'none'; script-src "
                                 "'unsafe-inline';").replace("</body>", probe + "</body>"))
    proc = _chromium(["--dump-dom", copy.as_uri()], tmp_path / "profile2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not CONSOLE.search(proc.stderr)
    assert 'data-loaded="yes"' in proc.stdout
    sizes = re.findall(r'data-natural="(\d+)x(\d+)"', proc.stdout)
    assert len(sizes) == page.count("<img ") >= 5
    assert all(int(w) >= 300 and int(h) >= 150 for w, h in sizes), sizes


def _tables(trials: pd.DataFrame) -> T.StudyTables:
    folds = pd.DataFrame(columns=["trial", "state", "depth", "fold", "score"])
    return T.StudyTables(name="hand", metric="val_accuracy", maximize=True,
                         directions=["MAXIMIZE"], config={}, data={}, trials=trials,
                         folds=folds)


def test_matched_budget_tables_on_a_hand_made_study() -> None:
    rows = [  # depth, width, block, params, cv_mean
        (2, 32, "plain", 1100, 0.90), (8, 16, "plain", 1500, 0.93), (4, 16, "residual", 1200,
                                                                     0.92),
        (8, 8, "residual", 1900, 0.95), (2, 8, "plain", 300, 0.70), (16, 4, "plain", 5000,
                                                                     0.60)]
    trials = pd.DataFrame([{"trial": i, "state": "COMPLETE", "depth": d, "width": w,
                            "block": b, "skip": True, "params": float(p), "cv_mean": m,
                            "cv_std": 0.01 * (i + 1)}
                           for i, (d, w, b, p, m) in enumerate(rows)])
    st = _tables(trials)
    matched = T.matched_params_table(st)
    # only the 1,024-2,047 bin holds several depths: best at depths 2, 4, 8
    assert list(matched["budget"].unique()) == ["1,024–2,047"]
    assert list(matched["depth"]) == [2, 4, 8]
    assert list(matched["trial"]) == [0, 2, 3] and list(matched["width"]) == [32, 16, 8]
    blocks = T.block_table(st).set_index("block")
    assert blocks.loc["plain", "candidates"] == 2 and blocks.loc["residual", "candidates"] == 2
    assert blocks.loc["plain", "mean"] == pytest.approx(0.915)
    assert blocks.loc["residual", "best"] == pytest.approx(0.95)
    assert blocks.loc["residual", "best_trial"] == 3
    assert blocks.loc["residual", "best_std"] == pytest.approx(0.04)
    wd = T.width_depth_table(st).set_index(["depth", "width"])
    assert wd.loc[(2, 8), "best"] == 0.70 and len(wd) == 6
    pareto = T.pareto_table(st, "params")
    assert list(pareto["trial"]) == [4, 0, 2, 1, 3]  # trial 5 is dominated


def test_skip_table_on_hand_made_folds() -> None:
    folds = pd.DataFrame([
        {"trial": 0, "state": "COMPLETE", "depth": 8, "skip": True, "fold": 0, "score": 0.9},
        {"trial": 0, "state": "COMPLETE", "depth": 8, "skip": True, "fold": 1, "score": 0.8},
        {"trial": 1, "state": "COMPLETE", "depth": 8, "skip": False, "fold": 0, "score": 0.5},
        {"trial": 1, "state": "COMPLETE", "depth": 8, "skip": False, "fold": 1, "score": 0.4},
        {"trial": 2, "state": "PRUNED", "depth": 8, "skip": False, "fold": 0, "score": 0.0},
        {"trial": 3, "state": "COMPLETE", "depth": 2, "skip": False, "fold": 0, "score": 0.7},
    ])
    table = T.skip_table(folds).set_index("depth")
    assert table.loc[8, "on_minus_off"] == pytest.approx(0.4)
    assert table.loc[8, "folds_off"] == 2  # the pruned trial's fold is left out
    assert math.isnan(table.loc[2, "skip_on"]) and table.loc[2, "folds_on"] == 0


def test_importances_rank_the_parameter_that_matters() -> None:
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    rng = np.random.default_rng(0)

    def objective(trial: optuna.Trial) -> float:
        depth = trial.suggest_int("depth", 1, 16)
        trial.suggest_categorical("width", [8, 16, 32])
        return depth / 16 + 0.01 * float(rng.normal())

    study.optimize(objective, n_trials=30)
    table, note = T.importance_table(study)
    assert table.iloc[0]["parameter"] == "depth", (table, note)
    assert "PED-ANOVA" in note
    few = optuna.create_study()
    few.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    empty, why = T.importance_table(few)
    assert empty.empty and "at least 5 complete trials" in why



def test_importance_ties_read_in_name_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tied parameters come out in the order of their names, whatever order the evaluator
    (which iterates over sets, so over the hash seed) hands them in."""
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: t.suggest_float("x", 0, 1) + t.suggest_float("w", 0, 1)
                   + t.suggest_float("a", 0, 1), n_trials=6)
    for order in (["x", "w", "a"], ["w", "a", "x"]):
        monkeypatch.setattr(optuna.importance, "get_param_importances",
                            lambda *a, order=order, **k: {p: (0.5 if p == "x" else 0.25)
                                                          for p in order})
        table, _ = T.importance_table(study)
        assert list(table["parameter"]) == ["x", "a", "w"]


def test_transfer_mode_figure_is_the_same_twice() -> None:
    """The strip of trials per transfer mode jitters with its own seed, not numpy's global
    state, so a report rebuilt from the same storage draws the same picture."""
    from nasdepth.report.transfer_figures import mode_figure

    trials = pd.DataFrame({"mode": ["scratch", "fine_tune", "scratch", "feature_extraction"],
                           "cv_mean": [0.9, 0.95, 0.91, 0.8]})
    offsets = []
    for seed in (1, 2):
        np.random.seed(seed)
        fig = mode_figure(trials, "accuracy")
        assert fig is not None
        offsets.append(fig.axes[0].collections[0].get_offsets().copy())
    np.testing.assert_array_equal(offsets[0], offsets[1])
    xs = offsets[0][:, 0]
    assert abs(xs[0] - xs[2]) < 0.31 and abs(xs[0] - xs[1]) > 0.69  # one column per mode

#: a space where deep sigmoid nets without normalization stall: the probes have something to
#: show (vanishing gradients) beside shallow candidates
STALL_SPACE = {
    "name": "stall", "stages": 1, "depth": {"type": "categorical", "choices": [1, 10]},
    "width": {"type": "categorical", "choices": [4, 8]},
    "block": {"type": "categorical", "choices": ["plain", "residual"]},
    "skip": {"type": "categorical", "choices": [True, False]},
    "activation": "sigmoid", "norm": "none",
}


def test_report_of_a_real_study_with_probes_renders_every_section(tmp_path: Path) -> None:
    """A real study (6 trials, probes on) rebuilt from its storage: every section with data
    shows its figure, and every stalled trial its per-epoch evidence from its record."""
    path = write_study(tmp_path, name="stall", space=STALL_SPACE,
                       data={"source": "sklearn:digits", "limit": 300}, cv={"folds": 2},
                       training={"epochs": 2, "batch_size": 32, "lr": 0.01},
                       budget={"trials": 6}, sampler="random")
    run_study(path, progress=False)
    cfg = load_study(path)
    study = optuna.load_study(study_name="stall", storage=make_storage(cfg.storage_url))
    out = tmp_path / "out"
    write_report(study, out)
    md = (out / "report.md").read_text()
    st = collect(study)
    images = {p.name for p in out.glob("*.png")}
    assert {"depth.png", "one_se.png", "gap.png", "width_depth.png", "pareto.png",
            "history.png", "verdicts.png", "importances.png"} <= images
    for heading in ("Summary", "Depth", "Width", "Blocks and skip connections", "Cost",
                    "Baselines", "What matters", "Diagnoses",
                    "Looks like vanishing gradients, but is data-limited",
                    "Failed and pruned trials"):
        assert f"\n## {heading}\n" in md, heading
    assert "Best candidates (cross-validated on the same folds)" in md
    assert "Baselines on the study's folds" in md
    # a section without data says so, one with data draws it
    assert ("skip.png" in images) == (not T.skip_table(st.folds)["on_minus_off"].dropna().empty)
    assert ("blocks.png" in images) == (not T.block_table(st).empty)
    # the evidence figure of every stalled trial comes from its record's per-epoch series
    stalled = [n for n, d in st.diagnoses.items() if d["verdict"] != "healthy"]
    assert stalled and "vanishing_gradients" in {st.diagnoses[n]["verdict"] for n in stalled}
    for n in stalled:
        assert f"evidence_trial{n}.png" in images
        assert f"![Trial {n}: probe evidence](evidence_trial{n}.png)" in md
        trace = st.traces[n]
        assert len(trace["epochs"]) == 2 and trace["folds"] == 2
    diagnosed = pd.read_csv(out / "diagnoses.csv")
    assert sorted(diagnosed["trial"]) == sorted(read_record(t).number for t in study.trials)


RNN_SPACE = {"name": "rnn", "stages": 1, "stem": [], "block": "rnn",
             "depth": {"type": "categorical", "choices": [1, 2]}, "width": 8, "skip": False,
             "norm": "none", "head_pool": "last"}


def test_a_recurrent_trial_shows_its_gradient_through_time(tmp_path: Path) -> None:
    """The record of a recurrent trial keeps the gradient at each sampled time step (over the
    folds), and the report draws it for every stalled trial: the data of the figure is the
    table, first and last epoch, one line per recurrent unit."""
    path = write_study(tmp_path, name="rnn", space=RNN_SPACE,
                       data={"source": "mnist1d", "n_samples": 300, "seed": 0},
                       cv={"folds": 2}, training={"epochs": 2, "batch_size": 32, "lr": 0.003},
                       budget={"trials": 2}, sampler="grid")
    run_study(path, progress=False)
    cfg = load_study(path)
    study = optuna.load_study(study_name="rnn", storage=make_storage(cfg.storage_url))
    st = collect(study)
    for t in study.trials:
        trace = read_record(t).trace_summary
        assert trace is not None
        units = [i for i, b in enumerate(trace["blocks"]) if "RNNBlock" in b]
        depth = read_record(t).arch["stages"][0]["depth"]
        assert len(units) == depth
        for row in trace["epochs"]:
            for i in units:
                assert len(row["time_steps"][i]) == len(row["grad_time"][i]) == 8
                assert row["time_steps"][i][0] == 0 and row["time_steps"][i][-1] == 39
        table = T.gradient_time_table(trace)
        assert set(table["epoch"]) == {1, 2} and table["block"].nunique() == depth
        assert len(table) == 2 * depth * 8 and (table["grad"] > 0).all()
    out = tmp_path / "out"
    write_report(study, out)
    md = (out / "report.md").read_text()
    stalled = [n for n, d in st.diagnoses.items() if d["verdict"] != "healthy"]
    assert stalled
    for n in stalled:
        assert (out / f"time_trial{n}.png").is_file()
        assert f"(time_trial{n}.png)" in md
    # a model without recurrent blocks has no such table
    conv = {"blocks": ["block0"], "epochs": [{"epoch": 1, "grad_rms": [1.0]}]}
    assert T.gradient_time_table(conv).empty
