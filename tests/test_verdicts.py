"""Data-limited only where a learner that could see the signal fails too: real small studies on
data whose signal shallow models cannot see (a texture anywhere in a noise image), the
reference network, and the hidden-signal ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from nasdepth.diagnosis.capable import capable_reading
from nasdepth.diagnosis.groundtruth import HIDDEN_CASES, run_case
from nasdepth.diagnosis.hidden import HIDDEN
from nasdepth.diagnosis.rules import THRESHOLDS


@pytest.fixture(autouse=True)
def _flush_denormals():
    old = torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(old if isinstance(old, bool) else False)


SPACE = {"name": "tex", "stages": 1, "depth": 4, "width": 16, "block": "residual",
         "skip": True, "norm": "batch", "init": "kaiming",
         "lr": {"type": "categorical", "choices": [1.0e-5, 3.0e-3]}}


def _textures_npz(tmp_path, n: int = 480) -> str:
    data = HIDDEN["textures"](0, n=n)
    path = tmp_path / "textures.npz"
    np.savez(path, x=data.x.numpy(), y=data.y_numpy)
    return str(path)


def _study(tmp_path, lrs, epochs=6, **diagnosis):  # type: ignore[no-untyped-def]
    from nasdepth.study import run_study
    from nasdepth.study.record import read_record
    from tests.conftest import write_study

    space = {**SPACE, "lr": {"type": "categorical", "choices": sorted(set(lrs))}}
    path = write_study(tmp_path, name="tex", space=space, data=_textures_npz(tmp_path),
                       cv={"folds": 2, "seed": 3}, training={"epochs": epochs, "batch_size": 32},
                       budget={"trials": len(lrs)}, enqueue=[{"lr": lr} for lr in lrs],
                       diagnosis=diagnosis)
    study = run_study(path, progress=False)
    return study, [read_record(t) for t in study.trials]


def _learned(rec) -> bool:  # type: ignore[no-untyped-def]
    return rec.diagnosis["verdict"] == "healthy"


def test_study_with_a_trial_that_learned_calls_no_stalled_trial_data_limited(tmp_path) -> None:
    """Textures anywhere in noise images (the shallow baseline is at chance): trials at lr
    3e-3 learn, trials at lr 1e-5 stall. No stalled trial is data-limited, and each names
    the trial that learned; the reference network is never needed (the reference is off)."""
    study, records = _study(tmp_path, [3e-3, 1e-5, 1e-5], reference=False)
    base = study.user_attrs["shallow_baseline"]
    assert max(base["logistic_z"], base["trees_z"]) < 3  # shallow models see nothing
    learned = [r for r in records if _learned(r)]
    stalled = [r for r in records if not _learned(r)]
    assert learned and stalled, [r.diagnosis["verdict"] for r in records]
    for r in stalled:
        d = r.diagnosis
        assert d["verdict"] != "data_limited_plateau", d["advice"]
        assert d["verdict"] in ("undertrained", "optimization_problem"), d["verdict"]
        text = " ".join(d["advice"])
        assert f"trial {learned[0].number}" in text and "same folds" in text, text
    # the verdicts read the study as it stands: diagnose --study and a rebuilt report agree
    from nasdepth.study.peers import reread_verdict, study_peers

    peers = study_peers(study, records[0].splits["digest"], base["chance_accuracy"])
    assert [p["trial"] for p in peers["learned"]] == [r.number for r in learned]
    old = {"verdict": "undecided_plateau", "advice": ["undecided: ..."], "controls": {}}
    again = reread_verdict(old, peers)
    assert again["verdict"] == "undertrained" and "trial" in again["advice"][0]


def test_study_where_every_trial_is_undertrained_gets_no_data_limited_verdict(tmp_path
                                                                             ) -> None:
    """Every trial under-trained on the textures (2 epochs at lr 1e-4 / 3e-5): none learns, the
    shallow baseline is at chance; the reference network (run once for the study) learns, so
    no trial is data-limited."""
    study, records = _study(tmp_path, [1e-4, 3e-5], epochs=2)
    ref = study.user_attrs.get("reference_network")
    assert ref and ref["ran"], ref
    for r in records:
        d = r.diagnosis
        assert d["verdict"] == "undertrained", d
        assert "the reference network" in " ".join(d["advice"])
    assert sum(1 for r in records if "reference" in r.timings) == 1  # once per study
    from nasdepth.report import write_report

    write_report(study, tmp_path / "report")  # the report shows what the reference cost
    md = (tmp_path / "report" / "report.md").read_text()
    assert "Reference network (residual+BatchNorm 2-D CNN" in md
    assert " s (once for the study)" in md
    verdicts = set(pd.read_csv(tmp_path / "report" / "diagnoses.csv").verdict)
    assert "data_limited_plateau" not in verdicts


def test_reference_off_leaves_a_plateau_undecided(tmp_path) -> None:
    study, records = _study(tmp_path, [1e-4], epochs=2, reference=False)
    d = records[0].diagnosis
    assert d["verdict"] == "undecided_plateau", d
    assert any("reference network control" in a for a in d["advice"])


def test_capable_reading() -> None:
    th = THRESHOLDS
    assert capable_reading({}, th)[0] == "missing"
    assert capable_reading({"reference": {"pending": True}}, th)[0] == "pending"
    off = {"reference": {"ran": False, "reason": "over budget"}}
    assert capable_reading(off, th)[0] == "missing"
    fails = {"reference": {"ran": True, "z": 0.5, "skill": 0.01}}
    assert capable_reading(fails, th)[0] == "fails"
    learns = {"reference": {"ran": True, "z": 20.0, "skill": 0.8}}
    assert capable_reading(learns, th)[0] == "learns"
    peer = {"peers": {"learned": [{"trial": 3, "z": 9.0}]}, **fails}
    reading, who = capable_reading(peer, th)
    assert reading == "learns" and who is not None and who["trial"] == 3


@pytest.mark.slow  # the hidden-signal cases with their reference networks: minutes
def test_hidden_signal_ground_truth() -> None:
    wrong = []
    for case in HIDDEN_CASES:
        d = run_case(case, 0)
        if d.verdict != case.expected:
            wrong.append((case.name, d.verdict))
        if case.expected == "data_limited_plateau":
            assert {b["control"] for b in d.basis} >= {"shallow", "reference"}
        if case.expected == "undertrained":
            assert "reference network" in " ".join(d.advice)
    assert not wrong, wrong


def test_a_flat_network_that_learns_the_band_is_healthy() -> None:
    """The oblique band (40 features, shallow models at chance): the regularized residual MLP
    learns it, its validation loss ends well below the label entropy, and it is called
    healthy (a few seconds: one seed, 2 folds of 600 rows, 40 epochs)."""
    from nasdepth.diagnosis.baseline import best_shallow

    case = next(c for c in HIDDEN_CASES if c.name == "hidden_band_healthy")
    d = run_case(case, 0)
    assert d.verdict == "healthy", (d.verdict, d.advice)
    s = d.signals
    assert s["val_loss_norm_last"] < 0.85 and s["skill_z"] > 10, s
    _, _, shallow_z = best_shallow(d.controls.get("shallow"))
    assert shallow_z is not None and shallow_z < THRESHOLDS["shallow_z"]  # hidden from them


def test_an_overconfident_learner_is_healthy_at_the_lowest_confidence() -> None:
    """A wider band MLP stopped by patience 3 before its validation loss ever fell below the
    label entropy, its accuracy above chance all the same: healthy, but at confidence 0.5 with
    advice (a margin read on the threshold's far side grew with the overconfidence)."""
    from nasdepth.diagnosis.groundtruth import Case, _hidden, mlp
    from nasdepth.train import TrainConfig

    case = Case("band_overconfident", "healthy",
                mlp("residual", 2, 128, norm="batch", skip=True, init="kaiming", dropout=0.3),
                _hidden("band"), TrainConfig(lr=3e-3, batch_size=32, weight_decay=0.1,
                                             patience=3), 30)
    d = run_case(case, 0)
    s = d.signals
    assert s["val_loss_norm_min"] > THRESHOLDS["val_loss_norm_min"]
    assert s["skill_z"] > THRESHOLDS["skill_z"], s
    assert d.verdict == "healthy" and d.confidence == 0.5, (d.verdict, d.confidence)
    assert "overconfident" in d.advice[0], d.advice


def test_too_big_for_this_data_advice() -> None:
    """A stalled candidate much larger and deeper than the trial that learned is told so, with
    both sizes (and the learning curve where it ran); a similar-sized one is not."""
    from nasdepth.diagnosis.capable import too_big_advice

    peer = {"trial": 2, "summary": "depth 2, residual", "val_accuracy": 0.9,
            "chance_accuracy": 0.25, "z": 30.0, "skill": 0.87, "params": 5_000, "depth": 2}
    controls = {"peers": {"learned": [peer]},
                "learning_curve": {"fractions": [0.25, 0.5, 1.0],
                                   "val_accuracy": [0.25, 0.26, 0.25]}}
    text = too_big_advice({"params": 400_000, "depth": 16}, controls, {"kind": "trial", **peer})
    assert text is not None and "larger and deeper than trial 2" in text
    assert "400,000 vs 5,000 parameters, depth 16 vs 2" in text and "learning curve" in text
    assert too_big_advice({"params": 6_000, "depth": 2}, controls,
                          {"kind": "trial", **peer}) is None


def test_bad_reference_budget_is_a_clear_error() -> None:
    from nasdepth import diagnose
    from nasdepth.cli import main
    from nasdepth.errors import ConfigError

    with pytest.raises(ConfigError, match="reference_budget.*>= 0"):
        diagnose([], None, reference_budget=-1)
    assert main(["diagnose", "--data", "sklearn:iris", "--arch", "resnet18",
                 "--reference-budget", "-5"]) == 2
