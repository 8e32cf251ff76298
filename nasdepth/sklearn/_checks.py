"""The scikit-learn estimator checks our estimators are known to fail, each with its reason:
one place, read by ``tests/test_sklearn.py`` and by users running ``check_estimator``."""

from __future__ import annotations

from typing import Any

#: estimator class name -> {check name: why it fails}
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "ArchClassifier": {},
}


def expected_failed_checks(estimator: Any) -> dict[str, str]:
    """The dict ``parametrize_with_checks(..., expected_failed_checks=expected_failed_checks)``
    and ``check_estimator(est, expected_failed_checks=...)`` take, for ``estimator``."""
    return dict(EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {}))
