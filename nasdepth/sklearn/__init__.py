"""The scikit-learn face of nasdepth: estimators that pass scikit-learn's estimator checks.

``ArchClassifier`` trains one architecture; ``NASClassifier`` searches depth and width with a
real study (k-fold CV, pruning, probes and verdicts) and refits the best candidate.
``EXPECTED_FAILED_CHECKS`` lists the scikit-learn checks they are known to fail, each with its
reason (the dict ``parametrize_with_checks(expected_failed_checks=...)`` takes).
"""

from nasdepth.sklearn._arch import ArchClassifier
from nasdepth.sklearn._checks import EXPECTED_FAILED_CHECKS, expected_failed_checks
from nasdepth.sklearn._search import NASClassifier

__all__ = ["ArchClassifier", "NASClassifier", "EXPECTED_FAILED_CHECKS", "expected_failed_checks"]
