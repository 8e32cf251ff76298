"""Diagnosis: the ground-truth suite (verdicts known by construction), controls, entry points
and errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from nasdepth import Diagnosis, diagnose
from nasdepth.data import CVConfig, Splits, from_arrays
from nasdepth.diagnosis import (
    CONTROLS,
    VERDICTS,
    controls_frame,
    gradient_frame,
    loss_frame,
    update_frame,
)
from nasdepth.diagnosis.groundtruth import (
    CASES,
    SEQUENCE_CASES,
    learnable,
    mlp,
    random_labels,
    run_case,
)
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.probes import ProbeHook
from nasdepth.train import TrainConfig, cross_validate

#: seeds of the ground-truth cases here: three for the under-trained ones, two for the others
#: (benchmarks/diagnose_thresholds.py runs five of every case)
SEEDS = (0, 1, 2)
SEEDS_EARLIER = (0, 1)


@pytest.fixture(autouse=True)
def _flush_denormals():
    # deep sigmoid nets produce subnormal gradients; their slow path would cost seconds
    old = torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(old if isinstance(old, bool) else False)


def test_ground_truth_suite_all_cases_all_seeds() -> None:
    rows = []
    for case in CASES:
        for seed in SEEDS if case.expected == "undertrained" else SEEDS_EARLIER:
            d = run_case(case, seed)
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence,
                         "advice": " ".join(d.advice), "basis": d.basis})
    df = pd.DataFrame(rows)
    matrix = pd.crosstab(df.expected, df.verdict)
    print("\nground-truth confusion matrix (rows: expected, columns: verdict)")
    print(matrix.to_string())
    wrong = df[df.expected != df.verdict]
    assert wrong.empty, wrong.to_string()
    # every verdict but "undecided" (no control ran) is exercised (through time: by the
    # sequence cases), with CNNs among them
    assert set(df.expected) | {c.expected for c in SEQUENCE_CASES} == set(VERDICTS) - {
        "undecided_plateau"}
    assert any(c.name.startswith("cnn_") for c in CASES)
    # exploding gradients also without NaN (the loss stays finite), on an MLP and a CNN
    finite = {r["case"] for r in rows if r["expected"] == "exploding_gradients"} - {
        "mlp_lr_far_too_large"}
    assert any(c.startswith("mlp_") for c in finite) and any(c.startswith("cnn_") for c in finite)
    # under-trained on learnable data, on an MLP, a 1-D CNN and a 2-D CNN, at lr 3e-5 and
    # 1e-4 and with a one-epoch budget: the advice says train longer, never "the data"
    under = df[df.expected == "undertrained"]
    assert {c.split("_")[0] for c in under.case} == {"mlp", "cnn1d", "cnn"}
    assert under.advice.str.contains("train longer").all()
    assert not under.advice.str.contains("more informative data").any()
    # a data-limited verdict always names the control behind it, with its figure
    limited = df[df.verdict == "data_limited_plateau"]
    assert all(b and all(x["figure"] for x in b) for b in limited.basis)
    # confidence means something: at >= 0.8 the verdict is right at least 95% of the time
    high = df[df.confidence >= 0.8]
    assert len(high) and (high.expected == high.verdict).mean() >= 0.95


def test_data_limited_needs_a_control() -> None:
    """Random labels: the probes alone cannot tell a data-limited plateau from a run that has
    not trained enough; the shallow baseline and the reference network (both on by default)
    decide, and say so; the shallow baseline alone leaves it undecided."""
    data = random_labels(0, 300)
    hook = ProbeHook()
    result = cross_validate(mlp("residual", 2, 16, norm="batch", skip=True), data, folds=2,
                            epochs=4, seed=0, hooks=[hook], training=TrainConfig(batch_size=32))
    alone = diagnose(result)  # no data: no control can run
    assert alone.verdict == "undecided_plateau" and not alone.basis
    assert any("shallow" in a for a in alone.advice)
    assert diagnose(result, data, controls="none").verdict == "undecided_plateau"
    shallow_only = diagnose(result, data, controls="shallow")
    assert shallow_only.verdict == "undecided_plateau"
    assert any("reference network" in a for a in shallow_only.advice)
    off = diagnose(result, data, reference_budget=0)
    assert off.verdict == "undecided_plateau" and "turned off" in " ".join(off.advice)
    d = diagnose(result, data)
    assert d.verdict == "data_limited_plateau"
    assert [b["control"] for b in d.basis] == ["shallow", "reference"]
    assert d.controls["reference"]["ran"] and d.controls["reference"]["seconds"] > 0
    assert "chance" in d.basis[0]["figure"] and "backed by:" in str(d)
    assert d.controls["shallow"]["splits"] == result.settings["splits"]["digest"]
    # the same run on data that carry signal: the baseline learns, the verdict is not "data"
    learn = learnable(0, 300)
    hook = ProbeHook()
    slow = cross_validate(mlp("residual", 2, 16, norm="batch", skip=True), learn, folds=2,
                          epochs=2, seed=0, hooks=[hook],
                          training=TrainConfig(optimizer="adamw", lr=3e-5, batch_size=32))
    u = diagnose(slow, learn)
    assert u.verdict == "undertrained", u
    assert any("train longer" in a and "raise the learning rate" in a for a in u.advice)


def _grouped(n: int = 120) -> object:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    y = (x[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(np.int64)
    return from_arrays(x, y, name="grouped", groups=np.repeat(np.arange(n // 4), 4))


@pytest.mark.parametrize("cv", [
    CVConfig(folds=3, seed=5, kind="group", group="g"),
    CVConfig(folds=2, seed=3, kind="repeated_stratified", repeats=2),
    CVConfig(folds=3, seed=11, test_size=0.25),
], ids=["group", "repeated", "test_part"])
def test_controls_train_on_exactly_the_runs_splits(cv: CVConfig, monkeypatch) -> None:
    """Group k-fold, repeated k-fold, a held-out test part, a split seed (5, 3, 11) different
    from the model seed (0): the controls train and score on the run's own splits, and the
    report's baselines use the same ones."""
    import nasdepth.diagnosis.controls as controls_mod
    from nasdepth.report.baselines import baseline_folds, study_splits

    data = _grouped()
    splits = cv.resolve(data)
    result = cross_validate(mlp("plain", 1, 8), data, cv=splits, epochs=1, seed=0,
                            hooks=[ProbeHook()], training=TrainConfig(batch_size=32))
    assert result.settings["splits"]["digest"] == splits.digest
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    real = controls_mod.fit_fold

    def spy(model, data_, tr, va, **kw):  # type: ignore[no-untyped-def]
        seen.append((np.asarray(tr), np.asarray(va)))
        return real(model, data_, tr, va, **kw)

    monkeypatch.setattr(controls_mod, "fit_fold", spy)
    d = diagnose(result, data, controls=["shallow", "shuffled"])
    expected = [(tr.tolist(), va.tolist()) for tr, va in splits]
    assert [(tr.tolist(), va.tolist()) for tr, va in seen] == expected
    assert d.controls["shallow"]["splits"] == splits.digest
    assert d.controls["shallow"]["n_val"] == sum(len(va) for _, va in splits)
    test = set(splits.test.tolist())
    assert all(not (test & set(tr.tolist()) or test & set(va.tolist())) for tr, va in seen)
    if cv.kind == "group":  # no group straddles a training and a validation fold
        g = data.groups
        assert all(not set(g[tr]) & set(g[va]) for tr, va in seen)
    # the report rebuilds the same splits from the study's stored config
    again = study_splits(data, {"cv": cv.to_dict()})
    assert again == splits
    base = baseline_folds(data, again)
    assert list(base[base.model == "logistic regression"]["n_val"]) == [len(v) for _, v in splits]


def test_splits_round_trip_and_refuse_other_data() -> None:
    data = _grouped()
    splits = CVConfig(folds=3, seed=2, test_size=0.2).resolve(data)
    full = Splits.from_dict(json.loads(json.dumps(splits.to_dict(indices=True))))
    assert full == splits and len(full) == 3 and len(full.test) == len(splits.test)
    assert Splits.from_dict(splits.to_dict(), data) == splits  # re-resolved, digest checked
    other = _grouped(160)
    with pytest.raises(ConfigError, match="digest"):
        Splits.from_dict(splits.to_dict(), other)
    hook = ProbeHook()
    result = cross_validate(mlp("plain", 1, 8), data, cv=splits, epochs=1, seed=0,
                            hooks=[hook], training=TrainConfig(batch_size=32))
    with pytest.raises(ConfigError, match="digest"):
        diagnose(result, other)
    with pytest.raises(ConfigError, match="splits"):
        cross_validate(mlp("plain", 1, 8), other, cv=splits, epochs=1)


def test_older_diagnosis_records_still_load() -> None:
    old = {"verdict": "data_limited_plateau", "confidence": 0.8,
           "evidence": [{"signal": "val_loss_norm_min", "value": 1.01, "threshold": 0.98}],
           "advice": ["collect more informative data"], "controls": {}}
    d = Diagnosis.from_dict(old)
    assert d.basis == [] and d.still_learning is None
    assert Diagnosis.from_dict(d.to_dict()).to_dict() == d.to_dict()


@pytest.mark.slow  # 15 runs of 100-step recurrent models: about a minute on one core
def test_ground_truth_through_time_all_seeds() -> None:
    """100-step sequences: a tanh RNN stalls with its gradient vanishing through time, an LSTM
    of the same width learns, both are data-limited on labels independent of the input (the
    default shallow baseline tells), a relu RNN at a far too large learning rate explodes."""
    rows = []
    for case in SEQUENCE_CASES:
        for seed in SEEDS:
            d = run_case(case, seed)
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "grad_time_log10": d.signals["grad_time_log10"],
                         "advice": " ".join(d.advice),
                         "basis": " ".join(b["control"] for b in d.basis)})
    df = pd.DataFrame(rows)
    print("\nthrough-time ground truth\n" + df.drop(columns="advice").to_string())
    wrong = df[df.expected != df.verdict]
    assert wrong.empty, wrong.to_string()
    # the tanh RNN's first step gets a vanishing share; the shallow baseline is the basis
    stalls = df[df.case == "rnn_tanh_long_range"]
    assert (stalls.grad_time_log10 < -10).all()
    assert stalls.advice.str.contains("gated cells").all() and (stalls.basis == "shallow").all()
    exploding = df[df.case == "rnn_relu_lr_far_too_large"]
    assert exploding.advice.str.contains("clip gradients").all()


def test_controls_confirm_a_data_limited_plateau() -> None:
    data = random_labels(0, 160)
    arch = mlp("residual", 2, 16, norm="batch", skip=True)
    d = diagnose(arch, data, controls="all", folds=2, epochs=3, batch_size=32, lr=3e-3)
    assert d.verdict == "data_limited_plateau"
    assert set(d.controls) == set(CONTROLS)
    assert abs(d.controls["shallow"]["logistic_skill"]) < 0.2
    assert {b["control"] for b in d.basis} >= {"shallow"}
    assert all(c["seconds"] >= 0 for c in d.controls.values())
    assert len(d.controls["learning_curve"]["val_accuracy"]) == 3
    signals = {e.signal for e in d.evidence}
    assert {"shuffled_skill_difference", "logistic_skill_difference",
            "learning_curve_slope"} <= signals
    frame = controls_frame(d)
    assert list(frame["run"])[:2] == ["model", "shuffled"]
    json.dumps(d.to_dict())


def test_counterfactual_learns_where_vanishing_gradients_stall() -> None:
    d = diagnose(mlp("plain", 12, 32, act="sigmoid"), learnable(0),
                 controls=["counterfactual"], folds=2, epochs=6, batch_size=32, lr=3e-3)
    assert d.verdict == "vanishing_gradients"
    cf = d.controls["counterfactual"]
    assert "BatchNorm" in cf["change"]
    assert cf["grad_depth_log10"] > -2 and cf["skill_best"] > 0.2
    assert any("first block receives 10^" in a for a in d.advice)


def test_users_own_module_deep_sigmoid_vs_he_relu() -> None:
    data = learnable(1, 300)

    def net(act: type[nn.Module], depth: int, he: bool) -> nn.Module:
        torch.manual_seed(0)
        layers: list[nn.Module] = [nn.Linear(16, 32), act()]
        for _ in range(depth):
            layers += [nn.Linear(32, 32), act()]
        model = nn.Sequential(*layers, nn.Linear(32, 3))
        if he:
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        return model

    sick = net(nn.Sigmoid, 10, he=False)
    before = [p.detach().clone() for p in sick.parameters()]
    d = diagnose(sick, data, epochs=5, lr=3e-3, optimizer="adamw", batch_size=32, folds=2,
                 seed=0)
    assert d.verdict == "vanishing_gradients"
    assert all(torch.equal(a, b) for a, b in zip(before, sick.parameters(), strict=True))
    ok = diagnose(net(nn.ReLU, 4, he=True), data, epochs=5, lr=3e-3, batch_size=32, folds=2)
    assert ok.verdict == "healthy", ok


def test_diagnosis_round_trip_and_figure_frames() -> None:
    hook = ProbeHook()
    result = cross_validate(mlp("residual", 2, 16, norm="batch", skip=True), learnable(0, 200),
                            folds=2, epochs=2, seed=0, hooks=[hook],
                            training=TrainConfig(batch_size=32))
    d = diagnose(result)
    again = Diagnosis.from_dict(json.loads(json.dumps(d.to_dict())))
    assert again.to_dict() == d.to_dict()
    assert set(d.to_dict()) >= {"verdict", "confidence", "evidence", "advice", "controls"}
    assert all(set(e) == {"signal", "value", "threshold", "meaning"}
               for e in d.to_dict()["evidence"])
    blocks = len(result.traces[0]["blocks"])
    g = gradient_frame(result.traces)
    assert len(g) == 2 * 2 * blocks and (g["grad_rms"] > 0).all()
    assert len(update_frame(result.traces)) == len(g)
    lf = loss_frame(result.traces)
    assert set(lf["split"]) == {"train", "val"} and (lf["baseline"] == 1.0).all()
    assert "verdict:" in str(d) and "grad_depth_log10" in d.evidence_table()


def test_bad_input_is_a_clear_error() -> None:
    data = learnable(0, 120)
    with pytest.raises(UnknownNameError, match="Did you mean 'shuffled'"):
        diagnose(mlp("plain", 1, 8), data, controls="shufled", epochs=1)
    with pytest.raises(ConfigError, match="trainable parameters"):
        diagnose(nn.Sequential(nn.Flatten()), data, epochs=1)
    with pytest.raises(ConfigError, match="shape"):
        diagnose(nn.Sequential(nn.Linear(5, 3)), data, epochs=1)
    with pytest.raises(ConfigError, match="logits"):
        diagnose(nn.Sequential(nn.Linear(16, 7)), data, epochs=1)
    with pytest.raises(ConfigError, match="Dataset"):
        diagnose(nn.Sequential(nn.Linear(16, 3)), np.zeros((4, 16)), epochs=1)  # type: ignore
    empty = cross_validate(mlp("plain", 1, 8), data, folds=2, epochs=1)
    with pytest.raises(ConfigError, match="ProbeHook"):
        diagnose(empty)


def test_cli_diagnose_data_and_arch_prints_json(capsys: pytest.CaptureFixture[str]) -> None:
    from nasdepth.cli import main

    arch = json.dumps({"stages": [{"block": "plain", "depth": 8, "width": 16,
                                   "activation": "sigmoid", "norm": "none"}], "skip": False})
    assert main(["diagnose", "--data", "sklearn:iris", "--arch", arch, "--epochs", "3",
                 "--folds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "vanishing_gradients"
    assert main(["diagnose", "--data", "sklearn:iris", "--arch", "{}",
                 "--controls", "shufled"]) == 2
    assert "Did you mean 'shuffled'" in capsys.readouterr().err


def test_cli_diagnose_reruns_a_stored_trial(tiny_study, capsys: pytest.CaptureFixture[str]
                                            ) -> None:
    from nasdepth.cli import main
    from nasdepth.study import run_study

    study = run_study(tiny_study, trials=1, progress=False)
    from nasdepth.study.record import read_record

    stored = read_record(study.trials[0])
    assert main(["diagnose", "--study", str(tiny_study), "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "verdict:" in out and "grad_depth_log10" in out
    if stored.diagnosis:  # the study stores the same verdict for the same run
        assert f"verdict: {stored.diagnosis['verdict']}" in out
    assert main(["diagnose", "--study", str(tiny_study), "--trial", "7"]) == 2


LEARNABLE_1D = {"source": "synthetic:classification", "n_samples": 400, "image_shape": [1, 32],
                "n_informative": 8, "class_sep": 1.5, "seed": 0}


def test_short_budget_study_lists_no_trial_as_data_limited(tmp_path, monkeypatch) -> None:
    """One epoch on learnable 1-D data: the candidates have not trained, the logistic
    baseline learns; the report must not call any of them data-limited. The shallow baseline
    runs once for the study and every trial's diagnosis reads it, on the study's splits."""
    import nasdepth.study.probing as probing
    from nasdepth.report import write_report
    from nasdepth.study import run_study
    from nasdepth.study.record import read_record, stored
    from tests.conftest import write_study

    calls = []
    real = probing.shallow_baseline
    monkeypatch.setattr(probing, "shallow_baseline",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    path = write_study(tmp_path, name="short", data=LEARNABLE_1D, cv={"folds": 2, "seed": 4},
                       training={"epochs": 1, "batch_size": 32, "lr": 0.001},
                       budget={"trials": 3})
    study = run_study(path, progress=False)
    assert len(calls) == 1  # once per study, not once per trial
    base = stored(study, "shallow")
    assert base is not None
    records = [read_record(t) for t in study.trials]
    assert all(r.diagnosis for r in records)
    for r in records:
        assert r.diagnosis["controls"]["shallow"] == base
        assert r.splits is not None and r.splits["digest"] == base["splits"]
        assert r.diagnosis["verdict"] != "data_limited_plateau", r.diagnosis
    out = tmp_path / "report"
    write_report(study, out)
    baselines = pd.read_csv(out / "baselines.csv")
    logistic = baselines[baselines.model == "logistic regression"]
    assert logistic.val_roc_auc.mean() > 0.9  # the data carry signal
    assert "data_limited_plateau" not in set(pd.read_csv(out / "diagnoses.csv").verdict)
    md = (out / "report.md").read_text()
    section = md.split("## Looks like vanishing gradients, but is data-limited")[1]
    section = section.split("\n## ")[0]
    assert "No trial was diagnosed as a data-limited plateau" in section
    assert "## Still improving at the last epoch" in md


def test_study_file_asks_for_costly_controls_on_plateaus(tmp_path) -> None:
    from nasdepth.study import run_study
    from nasdepth.study.record import read_record
    from nasdepth.study.runner import _show_best
    from tests.conftest import write_study

    noise = {**LEARNABLE_1D, "n_samples": 240, "label_noise": 1.0}  # every label random
    path = write_study(tmp_path, name="noise", data=noise, cv={"folds": 2},
                       training={"epochs": 3, "batch_size": 32, "lr": 0.003},
                       budget={"trials": 2},
                       diagnosis={"controls": ["shuffled"], "on": "plateau"})
    study = run_study(path, progress=False)
    records = [read_record(t) for t in study.trials]
    for r in records:
        d = r.diagnosis or {}
        assert d["verdict"] == "data_limited_plateau", d
        assert "shuffled" in d["controls"] and r.timings["controls"] > 0
        assert "shallow" in {b["control"] for b in d["basis"]}

    class Bar:
        postfix: dict[str, str] = {}

        def set_postfix(self, post: dict[str, str]) -> None:
            self.postfix = post

    bar = Bar()
    _show_best(study, bar)  # type: ignore[arg-type]
    assert bar.postfix["controls"].endswith("s")


def test_study_file_diagnosis_and_enqueue_errors(tmp_path) -> None:
    from nasdepth.study.study_file import STUDY_CONTROLS, load_study
    from tests.conftest import write_study

    assert set(STUDY_CONTROLS) == set(CONTROLS) - {"shallow", "reference"}
    cfg = load_study(write_study(tmp_path, diagnosis={"controls": "all", "on": "unhealthy"},
                                 enqueue=[{"depth": 2, "block": "plain", "skip": False}]))
    assert cfg.diagnosis.controls == STUDY_CONTROLS and cfg.diagnosis.on == "unhealthy"
    assert cfg.enqueue == ({"depth": 2, "block": "plain", "skip": False},)
    for bad, match in [
        ({"diagnosis": {"controls": ["shufled"]}}, "diagnosis.controls.*Did you mean 'shuffled'"),
        ({"diagnosis": {"on": "plateaus"}}, "diagnosis.on.*Did you mean 'plateau'"),
        ({"diagnosis": {"controls": ["shallow"]}}, "runs by default"),
        ({"diagnosis": {"baseline": "yes"}}, "diagnosis.baseline"),
        ({"diagnosis": {"contrls": []}}, "Did you mean 'controls'"),
        ({"enqueue": [{"dept": 2}]}, r"enqueue\[0\].*Did you mean 'depth'"),
        ({"enqueue": [{"depth": 2, "block": "dense", "skip": False}]}, r"enqueue\[0\]"),
    ]:
        with pytest.raises(ConfigError, match=match):
            load_study(write_study(tmp_path, **bad))
