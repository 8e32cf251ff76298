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
from nasdepth.diagnosis import (
    VERDICTS,
    controls_frame,
    diagnose_traces,
    gradient_frame,
    loss_frame,
    run_controls,
    update_frame,
)
from nasdepth.diagnosis.groundtruth import CASES, SEQUENCE_CASES, learnable, mlp, random_labels
from nasdepth.errors import ConfigError, UnknownNameError
from nasdepth.probes import ProbeHook
from nasdepth.train import NonFiniteLossError, TrainConfig, cross_validate

SEEDS = (0, 1, 2)


@pytest.fixture(autouse=True)
def _flush_denormals():
    # deep sigmoid nets produce subnormal gradients; their slow path would cost seconds
    old = torch.set_flush_denormal(True)
    yield
    torch.set_flush_denormal(old if isinstance(old, bool) else False)


def test_ground_truth_suite_all_cases_all_seeds() -> None:
    rows = []
    for case in CASES:
        for seed in SEEDS:
            hook = ProbeHook()
            try:
                result = cross_validate(case.arch, case.data(seed), folds=2,
                                        epochs=case.epochs, seed=seed,
                                        training=case.training, hooks=[hook])
                d = diagnose(result)
            except NonFiniteLossError as exc:
                hook.close(str(exc))
                d = diagnose(hook)
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "confidence": d.confidence})
    df = pd.DataFrame(rows)
    matrix = pd.crosstab(df.expected, df.verdict)
    print("\nground-truth confusion matrix (rows: expected, columns: verdict)")
    print(matrix.to_string())
    wrong = df[df.expected != df.verdict]
    assert wrong.empty, wrong.to_string()
    # every verdict is exercised by at least one case (through time: the sequence cases), with
    # CNNs among them
    assert set(df.expected) | {c.expected for c in SEQUENCE_CASES} == set(VERDICTS)
    assert any(c.name.startswith("cnn_") for c in CASES)
    # exploding gradients also without NaN (the loss stays finite), on an MLP and a CNN
    finite = {r["case"] for r in rows if r["expected"] == "exploding_gradients"} - {
        "mlp_lr_far_too_large"}
    assert any(c.startswith("mlp_") for c in finite) and any(c.startswith("cnn_") for c in finite)


@pytest.mark.slow  # 15 runs of 100-step recurrent models: about a minute on one core
def test_ground_truth_through_time_all_seeds() -> None:
    """100-step sequences: a tanh RNN stalls with its gradient vanishing through time, an LSTM
    of the same width learns, both are data-limited on labels independent of the input (the
    shallow control tells), a relu RNN at a far too large learning rate explodes."""
    rows = []
    shared: dict[tuple[str, tuple[str, ...]], dict] = {}  # one control run per data set
    for case in SEQUENCE_CASES:
        for seed in SEEDS:
            data, hook = case.data(seed), ProbeHook()
            try:
                result = cross_validate(case.arch, data, folds=2, epochs=case.epochs, seed=seed,
                                        training=case.training, hooks=[hook])
            except NonFiniteLossError as exc:
                hook.close(str(exc))
                d = diagnose(hook)
            else:
                key = (data.name, case.controls)
                if key not in shared:
                    shared[key] = run_controls(
                        case.controls, data=data, folds=2, seed=seed, arch=case.arch,
                        training=case.training.with_epochs(case.epochs),
                        chance=hook.traces[0].chance_accuracy)
                d = diagnose_traces(result.traces, folds=result.folds, controls=shared[key])
            rows.append({"case": case.name, "seed": seed, "expected": case.expected,
                         "verdict": d.verdict, "grad_time_log10": d.signals["grad_time_log10"],
                         "advice": " ".join(d.advice)})
    df = pd.DataFrame(rows)
    print("\nthrough-time ground truth\n" + df.drop(columns="advice").to_string())
    wrong = df[df.expected != df.verdict]
    assert wrong.empty, wrong.to_string()
    # the tanh RNN's first step gets a vanishing share; told apart from depth in the advice
    stalls = df[df.case == "rnn_tanh_long_range"]
    assert (stalls.grad_time_log10 < -10).all()
    assert stalls.advice.str.contains("gated cells").all()
    exploding = df[df.case == "rnn_relu_lr_far_too_large"]
    assert exploding.advice.str.contains("clip gradients").all()


def test_controls_confirm_a_data_limited_plateau() -> None:
    data = random_labels(0, 160)
    arch = mlp("residual", 2, 16, norm="batch", skip=True)
    d = diagnose(arch, data, controls="all", folds=2, epochs=3, batch_size=32, lr=3e-3)
    assert d.verdict == "data_limited_plateau"
    assert set(d.controls) == {"shuffled", "counterfactual", "shallow", "learning_curve"}
    assert abs(d.controls["shallow"]["logistic_skill"]) < 0.2
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
    stored = study.trials[0].user_attrs
    assert main(["diagnose", "--study", str(tiny_study), "--trial", "0"]) == 0
    out = capsys.readouterr().out
    assert "verdict:" in out and "grad_depth_log10" in out
    if "diagnosis" in stored:  # the study stores the same verdict for the same run
        assert f"verdict: {stored['diagnosis']['verdict']}" in out
    assert main(["diagnose", "--study", str(tiny_study), "--trial", "7"]) == 2
