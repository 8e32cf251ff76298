"""The shipped MNIST-1D paper studies express the paper's models and protocol
(docs/findings.md): the holdout split keeps the package's own train/test order, and each
study's one candidate has the paper's parameter count and 6,000 Adam steps of batch 100."""

from __future__ import annotations

import numpy as np
import pytest

from nasdepth.arch import build_model, count_parameters
from nasdepth.data import CVConfig, load_data
from nasdepth.errors import ConfigError
from nasdepth.study.study_file import load_study


def test_holdout_keeps_the_datas_order() -> None:
    cv = CVConfig.from_dict({"kind": "holdout", "folds": 5})
    assert cv.n_splits == 1
    data = load_data("sklearn:iris")
    splits = cv.resolve(data)
    assert len(splits) == 1
    tr, va = splits[0]
    assert np.array_equal(tr, np.arange(120)) and np.array_equal(va, np.arange(120, 150))
    with pytest.raises(ConfigError):
        CVConfig.from_dict({"kind": "holdout", "folds": 1})


@pytest.mark.parametrize("shuffled", ["", "_shuffled"])
@pytest.mark.parametrize("model,params", [("mlp", 15210), ("cnn", 5210), ("gru", 5134)])
def test_paper_studies_build_the_papers_models(model: str, params: int, shuffled: str) -> None:
    study = load_study(f"studies/mnist1d_paper_{model}{shuffled}.yaml")
    assert study.cv.kind == "holdout" and study.cv.folds == 5 and study.trials == 1
    t = study.training
    assert (t.optimizer, t.lr, t.weight_decay, t.batch_size) == ("adamw", 0.01, 0.0, 100)
    assert t.epochs * 4000 // t.batch_size == 6000  # the paper's 6,000 steps
    data = load_data(study.data)
    assert data.name.endswith(":shuffled") == bool(shuffled)
    tr, va = study.cv.resolve(data)[0]
    assert (len(tr), len(va)) == (4000, 1000)  # the package's own train and test parts
    arch = study.space.to_arch({}, input_shape=data.input_shape, num_classes=10)
    assert count_parameters(build_model(arch, data.input_shape, 10)) == params


def test_mnist1d_label_noise_on_the_training_part_only() -> None:
    clean = load_data({"source": "mnist1d", "n_samples": 500, "split": "all"})
    noisy = load_data({"source": "mnist1d", "n_samples": 500, "split": "all",
                       "label_noise": 0.2})
    changed = (clean.y != noisy.y).numpy()
    assert not changed[400:].any()  # the package's test part: clean
    # 80 of 400 training labels drawn again at random: about 9 in 10 of them change
    assert 55 <= changed[:400].sum() <= 80
    assert np.array_equal(noisy.y.numpy(), load_data(
        {"source": "mnist1d", "n_samples": 500, "split": "all", "label_noise": 0.2}).y.numpy())


def test_report_summary_names_the_holdout_split() -> None:
    from nasdepth.report.content import _cv_words

    assert _cv_words({"folds": 5, "cv_seed": 0, "cv": {"kind": "stratified"}}) == \
        "5-fold CV (seed 0)"
    assert _cv_words({"folds": 5, "cv_seed": 0, "cv": {"kind": "holdout"}}).startswith(
        "holdout: one split in the data's order, the last 1/5")
