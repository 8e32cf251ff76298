"""Depth analysis on constructed fold tables: degradation vs overfitting, the bootstrap of
the recommended depth, auxiliary heads on against off, probe saturation."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from nasdepth.report.depth import (
    aux_pairs,
    aux_table,
    depth_bootstrap,
    depth_statements,
    probe_curves,
    saturation_sentence,
    saturation_table,
    training_error_table,
)


def _folds(spec: dict[tuple[int, bool], tuple[float, float]], k: int = 5,
           noise: float = 0.002) -> pd.DataFrame:
    """One trial per (depth, skip) with ``k`` folds: (train accuracy, val accuracy)."""
    rng = np.random.default_rng(0)
    rows = []
    for t, ((depth, skip), (train, val)) in enumerate(sorted(spec.items())):
        for f in range(k):
            v = val + rng.normal(0, noise)
            rows.append({"trial": t, "state": "COMPLETE", "depth": depth, "block": "plain",
                         "skip": skip, "fold": f, "train_accuracy": train + rng.normal(0, noise),
                         "val_accuracy": v, "score": v, "n_train": 800, "n_val": 200})
    return pd.DataFrame(rows)


def test_degradation_is_told_apart_from_overfitting() -> None:
    folds = _folds({
        # plain: training error rises past depth 4 (degradation)
        (2, False): (0.95, 0.90), (4, False): (0.98, 0.93), (8, False): (0.90, 0.86),
        (16, False): (0.70, 0.68),
        # residual: training error keeps falling, validation error rises (overfitting)
        (2, True): (0.95, 0.92), (4, True): (0.99, 0.93), (8, True): (1.0, 0.88),
        (16, True): (1.0, 0.84),
    })
    table = training_error_table(folds)
    assert len(table) == 8 and table["train_error"].between(-0.01, 0.31).all()
    by = {s["skip"]: s for s in depth_statements(table)}
    plain, res = by[False], by[True]
    assert plain["kind"] == "degradation" and plain["depth"] == 4 and plain["at"] == 16
    assert "optimization limit" in plain["text"] and "He et al. 2016" in plain["text"]
    assert res["kind"] == "overfitting" and "not an optimization limit" in res["text"]


def test_no_statement_of_degradation_when_training_error_falls() -> None:
    folds = _folds({(2, False): (0.90, 0.88), (4, False): (0.95, 0.92),
                    (8, False): (0.97, 0.93)})
    (item,) = depth_statements(training_error_table(folds))
    assert item["kind"] == "none"
    # a rise within noise is not degradation
    noisy = _folds({(2, False): (0.950, 0.9), (4, False): (0.947, 0.9)}, noise=0.01)
    (item,) = depth_statements(training_error_table(noisy))
    assert item["kind"] == "none"


def test_bootstrap_is_reproducible_and_reads_clear_cases() -> None:
    # depth 2 far below; depth 8 a hair above depth 4 on every fold (well within one
    # standard error): the 1-SE rule keeps depth 4 in (nearly) every resample
    folds = _folds({(2, False): (0.9, 0.80), (4, False): (0.99, 0.93)}, noise=0.01)
    deeper = folds[folds["depth"] == 4].assign(trial=9, depth=8)
    deeper["score"] = deeper["val_accuracy"] = deeper["score"] + 0.001
    folds = pd.concat([folds, deeper], ignore_index=True)
    a = depth_bootstrap(folds, seed=3, resamples=400)
    b = depth_bootstrap(folds, seed=3, resamples=400)
    pd.testing.assert_frame_equal(a, b)
    share = dict(zip(a["depth"], a["share"], strict=True))
    assert abs(sum(share.values()) - 1) < 1e-9
    assert share[2] == 0.0 and share[4] > 0.9  # the 1-SE rule keeps the smaller of 4 and 8
    c = depth_bootstrap(folds, seed=4, resamples=400)
    assert not a.equals(c) or share[4] == 1.0  # another seed: other draws (same reading)
    # minimizing (a loss) flips the preference
    loss = folds.assign(score=1 - folds["score"])
    share_min = dict(zip(*depth_bootstrap(loss, maximize=False, seed=0,
                                          resamples=200)[["depth", "share"]].T.values,
                         strict=True))
    assert share_min[4] > 0.9


def test_aux_heads_on_against_off_table() -> None:
    arch = {"stages": [{"depth": 4}], "aux_weight": 0.3}
    recs = {
        0: SimpleNamespace(state="complete", arch={**arch, "aux_heads": [0]},
                           training={"lr": 0.01}, cv_folds=[{}]),
        1: SimpleNamespace(state="complete", arch={**arch, "aux_heads": []},
                           training={"lr": 0.01}, cv_folds=[{}]),
        2: SimpleNamespace(state="complete", arch={**arch, "aux_heads": []},
                           training={"lr": 0.1}, cv_folds=[{}]),  # another recipe: unpaired
    }
    pairs = aux_pairs(recs)
    assert pairs == [(0, 1)]
    folds = _folds({(4, True): (1.0, 0.95), (4, False): (1.0, 0.90)}, noise=0.005)
    folds["trial"] = folds["trial"].map({0: 1, 1: 0})  # trial 0 (heads on) scores 0.95
    table = aux_table(folds, pairs, {0: {"block0.PlainBlock": 0.81}})
    row = table.iloc[0]
    assert row["trial_on"] == 0 and row["diff"] > 0.04 and row["significant"]
    assert row["heads"] == "block0 0.810" and row["folds"] == 5


def test_probe_saturation_sentence() -> None:
    best = pd.DataFrame({"depth": [4], "trial": [7]})
    probes = {7: {"units": ["stem", "block0.X", "block1.X", "block2.X", "block3.X"],
                  "val_accuracy": [0.5, 0.90, 0.955, 0.96, 0.962],
                  "train_accuracy": [0.5, 0.9, 0.96, 0.97, 0.97]}}
    curves = probe_curves(best, probes)
    assert len(curves) == 5
    (row,) = saturation_table(curves).to_dict(orient="records")
    assert row["unit"] == 2 and abs(row["added_points"] - 0.7) < 1e-9
    text = saturation_sentence(row)
    assert text.startswith("Depth 4 (trial 7): unit 3 of 5 (block1) reaches 97%")
    assert "units 4-5 add 0.7 points" in text


def test_a_real_study_report_shows_the_depth_analysis(tmp_path) -> None:
    """A real study (probes on, depths 2 and 4, auxiliary head on and off) rebuilt from its
    storage: the summary prints the bootstrap shares beside the recommendation, the depth
    section draws the probe curves, states where each saturates and pairs heads on/off."""
    import optuna

    from nasdepth.report.writers import write_report
    from nasdepth.study import make_storage, run_study
    from nasdepth.study.study_file import load_study
    from tests.conftest import write_study

    space = {"name": "depthprobe", "stages": 2, "width": 8, "block": "plain", "skip": False,
             "depth": {"type": "categorical", "choices": [2, 4]},
             "aux_heads": {"type": "categorical", "choices": [[], [0]]}}
    path = write_study(tmp_path, name="depthprobe", space=space, budget={"trials": 4},
                       sampler="grid", data={"source": "sklearn:digits", "limit": 400})
    run_study(path, progress=False)
    cfg = load_study(path)
    study = optuna.load_study(study_name="depthprobe", storage=make_storage(cfg.storage_url))
    out = tmp_path / "out"
    write_report(study, out)
    md = (out / "report.md").read_text()
    assert "linear_probes.png" in {p.name for p in out.glob("*.png")}
    assert md.count("How sure: resampling the folds") == 2  # summary and depth section
    assert "of the final probe accuracy" in md
    # the space searches aux_heads: on against off, paired per depth, with the head's accuracy
    assert "Auxiliary heads on against off" in md
    import re

    section = md.split("Auxiliary heads on against off")[1].split("####")[0]
    # one row per depth, each with its head's own accuracy (depth 2: block0; depth 4: block1)
    assert len(re.findall(r"\| block\d 0\.\d+ \|", section)) == 2
    assert "| no | block" in section or "| yes | block" in section


def test_double_descent_peak_and_interpolation_threshold() -> None:
    from nasdepth.report.depth import double_descent

    curve = pd.DataFrame({"width": [4, 8, 16, 32, 64, 128, 256],
                          "train_error": [0.6, 0.4, 0.2, 0.05, 0.0, 0.0, 0.0],
                          "val_error": [0.62, 0.45, 0.35, 0.40, 0.48, 0.36, 0.30]})
    dd = double_descent(curve)
    assert dd is not None and dd["double_descent"] and dd["peak"] == 64
    assert dd["threshold"] == 64 and "at the interpolation threshold" in dd["text"]
    assert "not a sign that the model is too big" in dd["text"]
    mono = curve.assign(val_error=[0.62, 0.45, 0.35, 0.33, 0.32, 0.31, 0.30])
    plain = double_descent(mono)
    assert plain is not None and not plain["double_descent"] and plain["text"] is None


def test_saturation_sentence_when_later_units_lose() -> None:
    row = {"depth": 8, "trial": 1, "unit": 0, "units": 9, "name": "stem", "reached": 0.778,
           "final": 0.725, "added_points": -5.3}
    assert "units 2-9 lose 5.3 points" in saturation_sentence(row)
    one = {**row, "units": 2, "added_points": 1.5}
    assert saturation_sentence(one).endswith("unit 2 adds 1.5 points.")


def test_width_section_draws_the_curve_and_marks_threshold_and_peak() -> None:
    """The Width section's double-descent blocks: a figure, a table that marks the
    interpolation threshold and the peak, and the sentence that the peak is no reason to
    stop; on a curve without a peak, the threshold still marked and no peak claimed."""
    from types import SimpleNamespace

    from nasdepth.report.depth_section import width_descent_blocks
    from nasdepth.report.document import Image, Para, Table

    widths = [4, 8, 16, 32, 64, 128, 256]
    train = [0.6, 0.4, 0.2, 0.05, 0.0, 0.0, 0.0]

    def tables(val):
        rows = [{"trial": i, "fold": 0, "width": w, "depth": 2, "train_accuracy": 1 - t,
                 "val_accuracy": 1 - v, "score": 1 - v, "state": "COMPLETE"}
                for i, (w, t, v) in enumerate(zip(widths, train, val, strict=True))]
        return SimpleNamespace(folds=pd.DataFrame(rows), maximize=True)

    blocks = width_descent_blocks(tables([0.62, 0.45, 0.35, 0.40, 0.48, 0.36, 0.30]))
    assert [type(b) for b in blocks] == [Image, Table, Para]
    marks = dict(zip(blocks[1].df["width"], blocks[1].df["mark"], strict=True))
    assert marks[64] == "interpolation threshold, validation error peak"
    assert marks[32] == "" and "not a sign that the model is too big" in blocks[2].text
    flat = width_descent_blocks(tables([0.62, 0.45, 0.35, 0.33, 0.32, 0.31, 0.30]))
    marks = dict(zip(flat[1].df["width"], flat[1].df["mark"], strict=True))
    assert marks[64] == "interpolation threshold" and "peak" not in " ".join(marks.values())
    assert "interpolation threshold" in flat[2].text and "no double-descent peak" in flat[2].text


def test_double_descent_peak_must_clear_the_validation_noise() -> None:
    """A bump of 1.8 points on 1,000 validation rows (two standard errors: 3.2 points) is
    not read as a peak; the same bump on 100,000 rows is."""
    from nasdepth.report.depth import double_descent

    curve = pd.DataFrame({"width": [16, 32, 64, 128],
                          "train_error": [0.43, 0.26, 0.0, 0.0],
                          "val_error": [0.458, 0.518, 0.500, 0.505]})
    small = double_descent(curve.assign(n_val=1000))
    assert small is not None and not small["double_descent"] and small["candidate_peak"] == 32
    assert abs(small["rise_needed"] - 2 * (0.518 * 0.482 / 1000) ** 0.5) < 1e-12
    large = double_descent(curve.assign(n_val=100_000))
    assert large is not None and large["double_descent"] and large["peak"] == 32
