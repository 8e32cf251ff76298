"""The scikit-learn face (``nasdepth.sklearn``): scikit-learn's own estimator checks on
``ArchClassifier`` and ``NASClassifier``, and the compositions users build from them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import parametrize_with_checks

from nasdepth.sklearn import ArchClassifier, NASClassifier, expected_failed_checks

#: tiny and fast: every check fits several times
FAST_ARCH = ArchClassifier(depth=1, width=16, epochs=8, lr=0.01, batch_size=32, device="cpu",
                           random_state=0)
#: a tiny budget: two trials of 2-fold CV, probes and verdicts on
FAST_NAS = NASClassifier(depth=[1, 2], width=16, block="plain", n_trials=2, cv=2, epochs=5,
                         lr=0.01, batch_size=32, device="cpu", baseline=False)


@parametrize_with_checks([FAST_ARCH, FAST_NAS], expected_failed_checks=expected_failed_checks)
def test_scikit_learn_checks(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:600], y[:600]


def test_string_and_non_contiguous_labels_come_back_as_given(digits) -> None:
    X, y = digits
    keep = np.isin(y, [1, 5, 7])
    labels = np.array(["one", "five", "seven"])[np.searchsorted([1, 5, 7], y[keep])]
    clf = ArchClassifier(depth=1, width=16, epochs=6, lr=0.01, device="cpu", random_state=0)
    clf.fit(X[keep], labels)
    assert list(clf.classes_) == ["five", "one", "seven"]
    assert set(clf.predict(X[keep])) <= set(labels)
    assert clf.score(X[keep], labels) > 0.9
    gaps = clf.fit(X[keep], y[keep]).predict(X[keep])  # ints 1, 5, 7: not renumbered
    assert set(gaps) <= {1, 5, 7} and clf.score(X[keep], y[keep]) > 0.9
    with pytest.raises(TypeError):  # refused: the engine's loss has no per-sample weights
        clf.fit(X[keep], labels, sample_weight=np.ones(keep.sum()))


def test_lr_auto_trains_at_the_rate_the_range_test_chose(digits) -> None:
    """``lr="auto"``: the estimator runs the same range test as ``cross_validate`` (its
    training rows, its network's initialization) and trains at the rate it chose."""
    from nasdepth import find_lr
    from nasdepth.arch import ArchConfig
    from nasdepth.data import from_arrays
    from nasdepth.train import TrainConfig
    from nasdepth.train.candidate import as_candidate
    from nasdepth.train.lr_find import candidate_range_test

    X, y = digits
    clf = ArchClassifier(depth=2, width=16, epochs=2, lr="auto", device="cpu",
                         random_state=0).fit(X[:400], y[:400])
    data = from_arrays(X[:400].astype(np.float32), y[:400], name="fit")
    arch = ArchConfig.from_dict(clf.arch_.to_dict())
    training = clf.training_config()
    found = candidate_range_test(as_candidate(arch), data, np.arange(400), training=training,
                                 seed=clf.model_.metadata["refit"]["seed"],
                                 device=torch.device("cpu"))
    assert clf.lr_ == found.lr != TrainConfig().lr
    assert clf.history_[0]["lr"] <= found.lr  # warm-up from the chosen peak
    assert find_lr(arch, data, training=training).lr > 0


def test_images_as_arrays_or_flat_rows_train_the_same_cnn(digits) -> None:
    X, y = digits
    params = dict(depth=2, width=8, block="residual", epochs=3, device="cpu", random_state=0)
    flat = ArchClassifier(input_shape=(1, 8, 8), **params).fit(X, y)
    images = ArchClassifier(**params).fit(X.reshape(-1, 1, 8, 8), y)
    assert flat.input_shape_ == images.input_shape_ == (1, 8, 8)
    assert flat.n_features_in_ == images.n_features_in_ == 64
    np.testing.assert_allclose(flat.predict_proba(X[:50]),
                               images.predict_proba(X[:50].reshape(-1, 1, 8, 8)), atol=1e-6)
    with pytest.raises(ValueError, match="input_shape"):
        ArchClassifier(input_shape=(1, 7, 7), **params).fit(X, y)


def test_diagnose_gives_the_verdict_of_the_fit(digits) -> None:
    X, y = digits
    clf = ArchClassifier(depth=2, width=16, epochs=4, lr=0.01, device="cpu", random_state=0)
    with pytest.raises(ValueError, match="probes"):
        clf.fit(X, y).diagnose()
    clf.set_params(probes=True).fit(X, y)
    verdict = clf.diagnose(X, y)
    assert verdict.verdict == "healthy", verdict.evidence


# --- composition ------------------------------------------------------------------------

def _tiny_arch(**params) -> ArchClassifier:
    return ArchClassifier(**{"depth": 1, "width": 32, "epochs": 10, "lr": 0.01,
                             "batch_size": 32, "device": "cpu", "random_state": 0, **params})


def _tiny_nas(**params) -> NASClassifier:
    return NASClassifier(**{"depth": [1, 2], "width": 16, "block": "plain", "n_trials": 2,
                            "cv": 2, "epochs": 8, "lr": 0.01, "batch_size": 32,
                            "device": "cpu",
                            "baseline": False, **params})


def test_both_run_inside_a_pipeline(digits) -> None:
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = digits
    pipe = make_pipeline(StandardScaler(), _tiny_arch()).fit(X, y)
    assert pipe.score(X, y) > 0.9
    assert pipe[-1].n_features_in_ == 64
    pipe = make_pipeline(PCA(n_components=20, random_state=0), _tiny_nas()).fit(X, y)
    nas = pipe[-1]
    assert nas.n_features_in_ == 20 and nas.best_estimator_.n_features_in_ == 20
    assert pipe.score(X, y) > 0.8


def test_cross_val_score_of_both(digits) -> None:
    from sklearn.model_selection import cross_val_score

    X, y = digits
    scores = cross_val_score(_tiny_arch(), X, y, cv=3)
    assert scores.shape == (3,) and scores.min() > 0.8
    nested = cross_val_score(_tiny_nas(n_trials=1), X[:300], y[:300], cv=2)  # nested CV
    assert nested.shape == (2,) and nested.min() > 0.5


def test_grid_and_randomized_search_over_flat_parameters(digits) -> None:
    from scipy.stats import randint
    from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

    X, y = digits
    grid = GridSearchCV(_tiny_arch(epochs=4), {"depth": [1, 2], "block": ["plain", "residual"]},
                        cv=2).fit(X, y)
    assert len(grid.cv_results_["params"]) == 4
    assert grid.best_estimator_.arch_.depth == grid.best_params_["depth"]
    rand = RandomizedSearchCV(_tiny_arch(epochs=6), {"width": randint(8, 33), "lr": [0.003, 0.01]},
                              n_iter=2, cv=2, random_state=0).fit(X, y)
    assert rand.best_estimator_.arch_.width == rand.best_params_["width"]
    assert rand.best_score_ > 0.6  # 10 classes: chance is 0.1


def test_clone_keeps_the_parameters_and_drops_the_fit(digits) -> None:
    from sklearn.base import clone

    X, y = digits
    clf = _tiny_arch(block="residual", depth=3, stages=2).fit(X, y)
    twin = clone(clf)
    assert twin.get_params() == clf.get_params()
    assert not hasattr(twin, "model_")
    np.testing.assert_array_equal(twin.fit(X, y).predict_proba(X), clf.predict_proba(X))
    nas = clone(_tiny_nas(depth=[1, 2, 3]))
    assert nas.get_params()["depth"] == [1, 2, 3] and not hasattr(nas, "study_")


def test_pickle_and_joblib_keep_the_fitted_network(digits, tmp_path) -> None:
    import pickle

    import joblib

    X, y = digits
    clf = _tiny_arch().fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    nas = _tiny_nas().fit(X[:300], y[:300])
    joblib.dump(nas, tmp_path / "nas.joblib")
    loaded = joblib.load(tmp_path / "nas.joblib")
    np.testing.assert_array_equal(loaded.predict(X), nas.predict(X))
    assert len(loaded.study_.trials) == 2 and loaded.best_params_ == nas.best_params_


def test_an_exported_trial_becomes_an_estimator_and_back(tmp_path) -> None:
    """``nasdepth export`` of a real study trial -> ArchClassifier -> a model file again."""
    from sklearn.base import clone
    from sklearn.datasets import load_digits

    from nasdepth.export import export_model, load_model
    from nasdepth.study import run_study
    from tests.conftest import write_study

    path = write_study(tmp_path, name="skl", budget={"trials": 1},
                       training={"epochs": 3, "batch_size": 64, "lr": 0.01})
    run_study(path, progress=False, probes=False)
    exported = export_model(path, "best", tmp_path / "model.pt")
    X, y = load_digits(return_X_y=True)
    clf = ArchClassifier.from_export(exported.path)
    assert list(clf.classes_) == list(range(10)) and clf.input_shape_ == (1, 8, 8)
    assert clf.arch_.to_dict() == exported.metadata["arch"]
    direct = load_model(exported.path).predict_proba(X.reshape(-1, 1, 8, 8)).numpy()
    np.testing.assert_allclose(clf.predict_proba(X), direct, rtol=1e-6)
    assert clf.score(X, y) > 0.5  # 3 epochs, chance 0.1
    assert clone(clf).get_params()["epochs"] == 3  # a clone refits the same candidate
    # the refit's seed: refitting gives the exported network again
    np.testing.assert_allclose(clone(clf).fit(X, y).predict_proba(X), direct, atol=1e-6)

    clf.to_export(tmp_path / "again.pt")
    back = ArchClassifier.from_export(tmp_path / "again.pt")
    np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    fitted = _tiny_arch().fit(X, np.array(["a", "b", "c"] * 599))  # labels survive the file
    fitted.to_export(tmp_path / "labels.pt")
    assert list(ArchClassifier.from_export(tmp_path / "labels.pt").classes_) == ["a", "b", "c"]
    assert load_model(tmp_path / "labels.pt").class_names == ["a", "b", "c"]


def test_nas_results_in_scikit_learn_layout_with_a_verdict_each(digits, tmp_path) -> None:
    from optuna.distributions import IntDistribution

    from nasdepth.data import CVConfig, from_arrays
    from nasdepth.study.record import read_record

    X, y = digits
    space = tmp_path / "space.yaml"
    space.write_text("stages: 1\nblock: {type: categorical, choices: [plain, residual]}\n"
                     "width: 16\n")
    nas = _tiny_nas(space=str(space), depth=IntDistribution(1, 3), block=None, n_trials=2,
                    cv=3, epochs=5, random_state=7, baseline=True).fit(X, y)
    res = nas.cv_results_
    for key in ("mean_fit_time", "std_fit_time", "params", "split0_test_score",
                "split2_test_score", "mean_test_score", "std_test_score", "rank_test_score",
                "param_depth", "param_block", "verdict", "state"):
        assert len(res[key]) == 2, key
    assert res["rank_test_score"][nas.best_index_] == 1
    assert nas.best_score_ == np.max(res["mean_test_score"])
    assert nas.best_params_ == res["params"][nas.best_index_]
    assert nas.best_estimator_.arch_.depth == nas.best_params_["depth"]
    assert all(v in ("healthy", "undertrained", "undecided") for v in res["verdict"]), res
    assert nas.diagnose()["verdict"] == res["verdict"][nas.best_index_]
    # the splits a study file's ``cv: {folds: 3, seed: 7}`` makes on the same data
    data = from_arrays(X, y, name="digits")
    digest = CVConfig(folds=3, seed=7).resolve(data).digest
    assert read_record(nas.best_trial_).splits["digest"] == digest
    html = nas.report(tmp_path / "report")
    assert html.name == "index.html" and "depth" in html.read_text()
    # best_estimator_ is the network `nasdepth export` makes of the best trial
    from nasdepth.export import export_model

    exported = export_model(nas.study_, "best", tmp_path / "best.pt",
                            data=from_arrays(X, y, name="arrays"))
    np.testing.assert_allclose(ArchClassifier.from_export(exported.path).predict_proba(X),
                               nas.predict_proba(X), atol=1e-6)


def test_nas_groups_splitters_and_a_shared_storage(digits, tmp_path) -> None:
    from sklearn.model_selection import GroupKFold

    from nasdepth.study.record import read_record

    X, y = digits
    groups = np.arange(len(y)) % 5
    splitter = GroupKFold(n_splits=2)
    import optuna

    sampler = optuna.samplers.RandomSampler(seed=3)  # Optuna objects as well as names
    nas = _tiny_nas(cv=splitter, n_trials=1, probes=False, sampler=sampler,
                    pruner=optuna.pruners.NopPruner()).fit(X, y, groups=groups)
    assert nas.study_.sampler is sampler
    rows = read_record(nas.best_trial_).cv_folds
    want = [len(va) for _, va in splitter.split(X, y, groups)]
    assert [r["n_val"] for r in rows] == want
    nas = _tiny_nas(cv=2, n_trials=1, probes=False).fit(X, y, groups=groups)
    assert nas.study_.user_attrs["config"]["cv"]["kind"] == "group"
    journal = str(tmp_path / "nas.journal")
    first = _tiny_nas(storage=journal, n_trials=2, probes=False).fit(X, y)
    again = _tiny_nas(storage=journal, n_trials=2, probes=False).fit(X, y)  # resumes: no trial
    assert len(again.study_.trials) == 2 and again.best_params_ == first.best_params_
