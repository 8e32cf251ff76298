"""Linear classifier probes per block (Alain & Bengio 2016) on real data and small models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from nasdepth.arch import ArchConfig, build_model
from nasdepth.data import CVConfig, load_data
from nasdepth.probes import LinearProbeHook, fit_linear_probe, saturation
from nasdepth.train import TrainConfig, cross_validate
from nasdepth.train.fit import fit_fold

TRAINING = TrainConfig(epochs=4, batch_size=64, lr=0.01)


@pytest.fixture(scope="module")
def digits():
    return load_data("sklearn:digits")


def _arch(depth: int) -> ArchConfig:
    return ArchConfig.from_dict({"stages": [{"depth": depth, "width": 32, "block": "plain"}]})


def test_blocks_frozen_at_identity_add_nothing(digits) -> None:
    """Known answer: blocks 2..4 are identities, so their outputs are block 1's and their
    probes must score exactly what block 1's scores; the trained block 1 is far above
    chance, and the saturation statement puts the curve's end at block 1."""
    splits = CVConfig(folds=3, seed=0).resolve(digits)
    torch.manual_seed(0)
    model = build_model(_arch(4), digits.input_shape, digits.num_classes)
    for i in (1, 2, 3):  # frozen at identity: nothing to train, output = input
        model.blocks[i] = nn.Identity()
    hook = LinearProbeHook(digits, splits)
    tr, va = splits[0]
    fit_fold(model, digits, tr, va, training=TRAINING, seed=0, device=torch.device("cpu"),
             fold=0, hooks=[hook])
    summary = hook.summary()
    assert summary is not None
    assert summary["units"][0] == "stem" or summary["units"][0].startswith("block0")
    acc = summary["val_accuracy"]
    b0 = summary["units"].index("block0.PlainBlock")
    assert acc[b0] > 0.8  # the one trained block carries the digits
    assert acc[b0 + 1:] == [acc[b0]] * (len(acc) - b0 - 1)  # identities add exactly nothing
    sat = saturation(acc)
    assert sat is not None and sat["unit"] <= b0 and sat["added_after"] <= 1e-9 + (
        acc[-1] - acc[sat["unit"]])


def test_probe_curve_through_cross_validate(digits) -> None:
    """Every fold probed, one accuracy per unit, the training result unchanged."""
    splits = CVConfig(folds=2, seed=0).resolve(digits)
    hook = LinearProbeHook(digits, splits)
    training = TRAINING.with_epochs(2)
    with_probes = cross_validate(_arch(3), digits, cv=splits, training=training, hooks=[hook],
                                 parallel="off")
    without = cross_validate(_arch(3), digits, cv=splits, training=training, parallel="off")
    assert np.allclose(with_probes.folds["val_accuracy"], without.folds["val_accuracy"])
    summary = hook.summary()
    assert summary is not None and len(summary["folds"]) == 2
    assert len(summary["val_accuracy"]) == len(summary["units"]) == 4  # stem + 3 blocks
    assert all(0.0 <= a <= 1.0 for a in summary["val_accuracy"])
    # the last block's probe reads what the head reads, fitted to convergence: at least
    # about the network's own score after 2 epochs
    assert summary["val_accuracy"][-1] > with_probes.mean() - 0.05
    assert summary["seconds"] > 0


def test_linear_probe_separates_and_fails_on_noise() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 3, (600,), generator=g)
    signal = torch.nn.functional.one_hot(y, 3).float() * 3 + torch.randn(600, 3, generator=g)
    noise = torch.randn(600, 3, generator=g)
    _, good = fit_linear_probe(signal[:400], y[:400], signal[400:], y[400:], 3)
    _, bad = fit_linear_probe(noise[:400], y[:400], noise[400:], y[400:], 3)
    assert good > 0.9 and bad < 0.5


def test_saturation_statement_numbers() -> None:
    sat = saturation([0.5, 0.9, 0.97, 0.975, 0.98])
    assert sat is not None and sat["unit"] == 2 and sat["added_after"] == pytest.approx(0.01)
    assert saturation([None]) is None


def test_a_study_records_the_probe_curve(tiny_study) -> None:
    from nasdepth.study import run_study
    from nasdepth.study.record import read_record

    study = run_study(tiny_study, trials=1, progress=False)
    rec = read_record(study.trials[0])
    lp = rec.linear_probes
    assert lp is not None and len(lp["folds"]) == 2  # the tiny study's 2 folds
    assert len(lp["val_accuracy"]) == len(lp["units"]) >= 2
    assert lp["seconds"] < rec.wall_time  # type: ignore[operator]


def test_auxiliary_heads_get_their_own_accuracy(digits) -> None:
    splits = CVConfig(folds=2, seed=0).resolve(digits)
    arch = ArchConfig.from_dict({"stages": [{"depth": 1, "width": 16, "block": "plain"},
                                            {"depth": 1, "width": 16, "block": "plain"}],
                                 "aux_heads": [0]})
    hook = LinearProbeHook(digits, splits)
    cross_validate(arch, digits, cv=splits, training=TRAINING.with_epochs(2), hooks=[hook],
                   parallel="off")
    summary = hook.summary()
    assert summary is not None and list(summary["aux_accuracy"]) == ["block0.PlainBlock"]
    assert 0.2 < summary["aux_accuracy"]["block0.PlainBlock"] <= 1.0  # trained: above chance


def test_googlenet_aux_carries_torchvisions_two_auxiliary_classifiers() -> None:
    """``googlenet_aux``: InceptionAux after 4a and 4d as torchvision's ``aux_logits=True``;
    the auxiliary parameters equal torchvision's exactly, both heads run in training only."""
    torchvision = pytest.importorskip("torchvision")
    from nasdepth.arch import count_parameters, preset

    shape = (3, 224, 224)
    with torch.device("meta"):
        ours = [count_parameters(build_model(preset(n, shape, 10), shape, 10))
                for n in ("googlenet_aux", "googlenet")]
        theirs = [count_parameters(torchvision.models.googlenet(
            weights=None, aux_logits=a, init_weights=False, num_classes=10))
            for a in (True, False)]
    assert ours[0] - ours[1] == theirs[0] - theirs[1] > 0
    small = build_model(preset("googlenet_aux", (3, 32, 32), 10), (3, 32, 32), 10)
    assert sorted(small.aux) == ["2", "5"]  # after inception 4a (stage 2) and 4d (stage 5)
    small.train()
    small(torch.randn(2, 3, 32, 32))
    assert [t.shape for t in small.aux_logits] == [(2, 10), (2, 10)]
    small.eval()
    small(torch.randn(2, 3, 32, 32))
    assert small.aux_logits == []


def test_fold_scaler_in_chunks_equals_the_engines(monkeypatch, digits) -> None:
    import nasdepth.probes.linear as linear
    from nasdepth.data import Standardizer

    tr = np.arange(0, len(digits), 2)
    whole = Standardizer.fit(digits.x[torch.as_tensor(tr)])
    monkeypatch.setattr(linear, "WHOLE_FIT", 0)
    chunked = linear.fold_scaler(digits.x, tr, torch.device("cpu"), chunk=100)
    assert torch.allclose(whole.mean, chunked.mean, atol=1e-5)
    assert torch.allclose(whole.std, chunked.std, rtol=1e-4, atol=1e-5)


def test_batched_probes_match_separate_fits() -> None:
    from nasdepth.probes.linear import fit_linear_probes

    g = torch.Generator().manual_seed(1)
    y = torch.randint(0, 4, (500,), generator=g)
    good = torch.nn.functional.one_hot(y, 4).float() * 2 + torch.randn(500, 4, generator=g)
    wide = torch.cat([good, torch.randn(500, 12, generator=g)], dim=1)
    noise = torch.randn(500, 6, generator=g)
    together = fit_linear_probes([good, wide, noise], y[:400], y[400:], 400, 4, steps=200)
    for f, (tr, va) in zip([good, wide, noise], together, strict=True):
        a, b = fit_linear_probe(f[:400], y[:400], f[400:], y[400:], 4, steps=200)
        assert abs(va - b) <= 0.02 and abs(tr - a) <= 0.02


def test_batched_probes_need_no_torch_optim(monkeypatch) -> None:
    """The probes' solver constructs no ``torch.optim`` optimizer (the first one of a process
    imports ``torch._dynamo``, seconds the fold-parallel engine never pays) and reaches
    ``torch.optim.LBFGS``'s optimum: the same accuracies as the reference fit."""
    from nasdepth.probes.linear import fit_linear_probes

    g = torch.Generator().manual_seed(2)
    y = torch.randint(0, 5, (700,), generator=g)
    signal = torch.nn.functional.one_hot(y, 5).float()
    feats = [torch.cat([signal * s + 1.5 * torch.randn(700, 5, generator=g),
                        torch.randn(700, i, generator=g)], dim=1)
             for i, s in enumerate((0.5, 1.0, 2.0))]
    reference = [fit_linear_probe(f[:500], y[:500], f[500:], y[500:], 5, steps=300)
                 for f in feats]

    def refuse(*_a, **_k):
        raise AssertionError("a torch.optim optimizer was constructed")

    monkeypatch.setattr(torch.optim.Optimizer, "__init__", refuse)
    batched = fit_linear_probes(feats, y[:500], y[500:], 500, 5, steps=100)
    for (tr, va), (a, b) in zip(batched, reference, strict=True):
        assert abs(tr - a) <= 0.004 and abs(va - b) <= 0.005


def test_folds_probes_fitted_together_equal_each_folds_own() -> None:
    """``fit_probe_sets`` (the hook fits all folds' probes at the CV's end, in one batched
    solve per shape) gives every fold the accuracies of its own ``fit_linear_probes``; a set
    of another shape is solved apart."""
    from nasdepth.probes.linear import fit_linear_probes, fit_probe_sets

    g = torch.Generator().manual_seed(3)

    def fold(rows: int) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor, int]:
        y = torch.randint(0, 4, (rows,), generator=g)
        signal = torch.nn.functional.one_hot(y, 4).float()
        feats = [signal * s + torch.randn(rows, 4, generator=g) for s in (0.3, 1.0, 3.0)]
        feats.append(torch.randn(rows, 7, generator=g))  # a wider unit: padded in the stack
        n = rows * 4 // 5
        return feats, y[:n], y[n:], n

    sets = [fold(300), fold(300), fold(300), fold(250)]
    together = fit_probe_sets(sets, 4, steps=60)
    for s, got in zip(sets, together, strict=True):
        alone = fit_linear_probes(*s, num_classes=4, steps=60)
        assert len(got) == 4
        np.testing.assert_allclose(np.array(got), np.array(alone), atol=1e-6)


def test_probe_hook_fits_at_the_last_fold() -> None:
    """The hook keeps each fold's features and fits every fold's probes when the last fold
    ends (so the engine times the fits as the probes'), with rows for every fold."""
    from nasdepth.arch import StageConfig

    data = load_data("sklearn:digits").subset(np.arange(300))
    splits = CVConfig(folds=3, seed=0).resolve(data, "t")
    hook = LinearProbeHook(data, splits)
    arch = ArchConfig(stages=(StageConfig(block="plain", depth=2, width=8),))
    cross_validate(arch, data, cv=splits, training=TrainConfig(epochs=2), hooks=[hook])
    assert not hook._pending and len(hook._done) == 3  # fitted inside the CV
    assert [r["fold"] for r in hook.fold_rows] == [0, 1, 2]
    assert all(len(r["val_accuracy"]) == len(r["units"]) for r in hook.fold_rows)
    assert hook.summary()["seconds"] > 0
