"""The capable-learner evidence: did a network that *could* see the signal find it?

"Data-limited" is a claim that no learner finds signal. A shallow model at chance shows only
that shallow models see nothing; a network that could see the kind of signal deep networks are
for must fail too, on the same splits. Two such learners are read here:

- ``peers``: trials of the same study, on the same splits, that reached real skill (their
  pooled validation accuracy ``skill_z`` binomial standard deviations above chance and a
  skill of ``shallow_skill``); :mod:`nasdepth.study.peers` finds them;
- ``reference``: the reference network of the input's rank
  (:mod:`nasdepth.diagnosis.reference`), trained with a sound recipe.

:func:`capable_reading` says ``learns`` (a learner, named with its score, proves the data carry
signal for some network: the stalled run's verdict is about the model), ``fails`` (the
reference ran and stayed at chance: it backs a data-limited verdict), ``inconclusive`` or
``missing`` (the reference was off or over its budget: the verdict is ``undecided_plateau``,
never data-limited on the shallow baseline alone). ``pending`` marks the first pass of
``diagnose``: would the verdict be data-limited if the reference failed? Only then is it run.
"""

from __future__ import annotations

from typing import Any

from nasdepth.diagnosis.diagnosis import Evidence
from nasdepth.diagnosis.scoring import ev

#: a stalled model this many times larger than the smallest learner is "much larger"
SIZE_RATIO = 4.0
#: ... or this many times deeper (blocks)
DEPTH_RATIO = 2.0


def _learned(z: float | None, skill: float | None, th: dict[str, float]) -> bool:
    return z is not None and skill is not None and z >= th["skill_z"] and \
        skill >= th["shallow_skill"]


def capable_reading(controls: dict[str, Any], th: dict[str, float]
                    ) -> tuple[str, dict[str, Any] | None]:
    """(``learns`` | ``fails`` | ``pending`` | ``inconclusive`` | ``missing``, the learner:
    the best peer that learned, else the reference's result)."""
    peers = (controls.get("peers") or {}).get("learned") or []
    if peers:
        return "learns", {"kind": "trial", **peers[0]}
    ref = controls.get("reference")
    if not isinstance(ref, dict):
        return "missing", None
    if ref.get("pending"):
        return "pending", None
    if not ref.get("ran"):
        return "missing", {"kind": "reference", **ref}
    learner = {"kind": "reference", **ref}
    if _learned(ref.get("z"), ref.get("skill"), th):
        return "learns", learner
    if ref.get("z") is None or ref["z"] < th["shallow_z"]:
        return "fails", learner
    return "inconclusive", learner


def learner_figure(learner: dict[str, Any]) -> str:
    """``trial 7 (depth 4, residual) reached 0.990 vs chance 0.260 (z 41.0) on the same
    folds`` / ``the reference network (residual+BatchNorm 2-D CNN ...) reached ...``."""
    if learner.get("kind") == "trial":
        who = f"trial {learner.get('trial')}" + (f" ({learner['summary']})"
                                                  if learner.get("summary") else "")
    else:
        who = f"the reference network ({learner.get('name', 'reference')})"
    z = learner.get("z")
    return (f"{who} reached {learner.get('val_accuracy', 0):.3f} vs chance "
            f"{learner.get('chance_accuracy', 0):.3f}" + (f" (z {z:.1f})" if z is not None
                                                          else "") + " on the same folds")


def capable_evidence(controls: dict[str, Any], th: dict[str, float]) -> list[Evidence]:
    reading, learner = capable_reading(controls, th)
    if learner is None or learner.get("z") is None:
        return []
    what = "the best trial of the study that learned" if learner["kind"] == "trial" else \
        "the reference network"
    return [ev("capable_z", learner.get("z"), th["skill_z"],
               f"validation accuracy above chance, in binomial standard deviations, of {what} "
               "(same splits)")]


def capable_basis(learner: dict[str, Any]) -> dict[str, Any]:
    return {"control": "reference" if learner.get("kind") != "trial" else "peers",
            "signal": "capable_z", "value": learner.get("z"),
            "figure": learner_figure(learner).replace(" reached ", " also stays at chance: ")
            if learner.get("kind") != "trial" else learner_figure(learner)}


def too_big_advice(size: dict[str, Any] | None, controls: dict[str, Any],
                   learner: dict[str, Any]) -> str | None:
    """Where the stalled model is much larger or deeper than a learner that learned on the
    same data: "too big / too deep for this data", with their sizes (and the learning curve
    where it ran)."""
    if not size:
        return None
    peers = (controls.get("peers") or {}).get("learned") or []
    learners = [*peers, *([learner] if learner.get("kind") != "trial" else [])]
    with_size = [p for p in learners if p.get("params")]
    if not with_size:
        return None
    small = min(with_size, key=lambda p: p["params"])
    params, depth = size.get("params"), size.get("depth")
    bigger = params is not None and params >= SIZE_RATIO * small["params"]
    deeper = depth is not None and small.get("depth") and depth >= DEPTH_RATIO * small["depth"]
    if not (bigger or deeper):
        return None
    who = f"trial {small['trial']}" if small.get("kind", "trial") == "trial" and \
        "trial" in small else "the reference network"
    what = " and ".join(w for w, on in (("larger", bigger), ("deeper", deeper)) if on)
    text = (f"this model is much {what} than {who}, which learned on the same folds "
            f"({params:,} vs {small['params']:,} parameters"
            + (f", depth {depth} vs {small.get('depth')}" if depth is not None
               and small.get("depth") else "") +
            "): it may be too big or too deep for the patterns this much data holds; simplify "
            "it (fewer or narrower blocks) or collect more data")
    lc = controls.get("learning_curve")
    if lc and lc.get("val_accuracy"):
        accs = ", ".join(f"{a:.3f}" for a in lc["val_accuracy"])
        fr = ", ".join(f"{f:.0%}" for f in lc.get("fractions", []))
        text += f"; its learning curve: validation accuracy {accs} on {fr} of the data"
    return text


def undecided_advice(learner: dict[str, Any] | None, reading: str) -> str:
    """What would settle a plateau that only the shallow baseline has judged."""
    if reading == "inconclusive" and learner is not None:
        return (f"the reference network is inconclusive ({learner_figure(learner)}): run it "
                "longer, or compare with a trial that learned")
    reason = (learner or {}).get("reason")
    why = f" ({reason})" if reason else " (it did not run)"
    return ("the shallow baseline stays at chance, but shallow models cannot see every kind of "
            "signal (a pattern anywhere in an image, a motif at any offset, an interaction "
            f"of features), and no network that could see it was tried{why}: run the reference "
            "network control (controls: reference; raise reference_budget) or a study in "
            "which some trial learns; either settles it")
