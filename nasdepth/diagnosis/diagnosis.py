"""``Diagnosis``: a verdict, how sure it is, the evidence that decided it and what to do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: every verdict (docs/diagnose.md explains each). ``undertrained``: no skill yet on data that
#: carry signal (the shallow baseline learns), the budget ended before the loss settled;
#: ``undecided_plateau``: no skill, and no control says whether data or training is at fault.
VERDICTS = ("vanishing_gradients", "exploding_gradients", "data_limited_plateau", "overfitting",
            "healthy", "optimization_problem", "undertrained", "undecided_plateau",
            "vanishing_through_time")
#: verdicts of a run whose validation loss stayed at chance with gradients reaching every block
PLATEAUS = ("data_limited_plateau", "undertrained", "undecided_plateau")
#: the control runs a diagnosis may ask for (``nasdepth.diagnosis.controls`` runs them)
CONTROLS = ("shuffled", "counterfactual", "shallow", "learning_curve", "reference")
#: the controls every diagnosis runs unless told otherwise: the shallow baseline (seconds, no
#: network trained) and the reference network, which trains only where the verdict would
#: otherwise be data-limited (:mod:`nasdepth.diagnosis.reference`)
DEFAULT_CONTROLS = ("shallow", "reference")


@dataclass
class Evidence:
    """One signal compared with one threshold; ``meaning`` says what the comparison shows."""

    signal: str
    value: float | None
    threshold: float | None
    meaning: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Diagnosis:
    """``verdict`` is one of :data:`VERDICTS`; ``confidence`` in [0, 1]; ``evidence`` lists the
    signals in the order the rules read them; ``controls`` holds each control run's result.

    ``basis``: the controls that back a ``data_limited_plateau`` verdict, one dict each
    (``control``, ``signal``, ``value``, ``figure``: the control's result in words); a
    data-limited verdict is never given without one. ``still_learning``: the loss was still
    falling when the budget ended (None in records older than this reading).
    """

    verdict: str
    confidence: float
    evidence: list[Evidence] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    controls: dict[str, Any] = field(default_factory=dict)
    signals: dict[str, float | None] = field(default_factory=dict)
    basis: list[dict[str, Any]] = field(default_factory=list)
    still_learning: bool | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}; valid: {', '.join(VERDICTS)}")

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "confidence": round(float(self.confidence), 3)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Diagnosis:
        return cls(
            verdict=d["verdict"], confidence=float(d.get("confidence", 0.0)),
            evidence=[Evidence(e["signal"], e.get("value"), e.get("threshold"),
                               e.get("meaning", "")) for e in d.get("evidence", [])],
            advice=list(d.get("advice", [])), controls=dict(d.get("controls", {})),
            signals=dict(d.get("signals", {})),
            basis=[dict(b) for b in d.get("basis") or []],
            still_learning=d.get("still_learning"),
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
        if self.basis:
            lines += ["", "backed by:"] + [f"- {b['control']}: {b['figure']}" for b in self.basis]
        if self.advice:
            lines += ["", "advice:"] + [f"- {a}" for a in self.advice]
        return "\n".join(lines)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3g}"
