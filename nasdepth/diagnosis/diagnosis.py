"""``Diagnosis``: a verdict, how sure it is, the evidence that decided it and what to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("vanishing_gradients", "exploding_gradients", "data_limited_plateau", "overfitting",
            "healthy", "optimization_problem", "vanishing_through_time")


@dataclass
class Evidence:
    """One signal compared with one threshold; ``meaning`` says what the comparison shows."""

    signal: str
    value: float | None
    threshold: float | None
    meaning: str

    def to_dict(self) -> dict[str, Any]:
        return {"signal": self.signal, "value": self.value, "threshold": self.threshold,
                "meaning": self.meaning}


@dataclass
class Diagnosis:
    """``verdict`` is one of :data:`VERDICTS`; ``confidence`` in [0, 1]; ``evidence`` lists the
    signals in the order the rules read them; ``controls`` holds each control run's result."""

    verdict: str
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    controls: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "confidence": round(float(self.confidence), 3),
            "evidence": [e.to_dict() for e in self.evidence],
            "advice": list(self.advice),
            "controls": self.controls,
            "signals": self.signals,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnosis:
        return cls(
            verdict=d["verdict"], confidence=float(d.get("confidence", 0.0)),
            evidence=[Evidence(e["signal"], e.get("value"), e.get("threshold"),
                               e.get("meaning", "")) for e in d.get("evidence", [])],
            advice=list(d.get("advice", [])), controls=dict(d.get("controls", {})),
            signals=dict(d.get("signals", {})),
        )

    def evidence_table(self) -> str:
        """The evidence as an aligned plain-text table (the CLI prints it)."""
        rows = [("signal", "value", "threshold", "meaning")]
        for e in self.evidence:
            rows.append((e.signal, _fmt(e.value), _fmt(e.threshold), e.meaning))
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}"
                         for r in rows)

    def __str__(self) -> str:
        lines = [f"verdict: {self.verdict} (confidence {self.confidence:.2f})", "",
                 self.evidence_table()]
        if self.advice:
            lines += ["", "advice:"] + [f"- {a}" for a in self.advice]
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"
