"""The scikit-learn face (``nasdepth.sklearn``): scikit-learn's own estimator checks on
``ArchClassifier`` and ``NASClassifier``, and the compositions users build from them."""

from __future__ import annotations

import numpy as np
import pytest
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
