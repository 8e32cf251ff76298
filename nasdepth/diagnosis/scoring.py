"""Small helpers every rule module shares: one piece of evidence, confidence from a margin."""

from __future__ import annotations

from nasdepth.diagnosis.diagnosis import Evidence


def ev(signal: str, value: float | None, threshold: float | None, meaning: str) -> Evidence:
    return Evidence(signal, None if value is None else float(value), threshold, meaning)


def margin(value: float | None, threshold: float, scale: float) -> float:
    """Confidence from how far ``value`` lies past ``threshold`` (``scale`` units = sure)."""
    if value is None:
        return 0.5
    return max(0.5, min(0.97, 0.55 + 0.42 * abs(value - threshold) / scale))
