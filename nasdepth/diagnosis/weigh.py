"""Controls confirm or overturn the verdict read from the probes (the plateau's controls are read
in :mod:`nasdepth.diagnosis.plateau`; their evidence rows are added here for every verdict)."""

from __future__ import annotations

from typing import Any

from nasdepth.diagnosis.baseline import SHALLOW_MODELS, SHALLOW_NAMES
from nasdepth.diagnosis.capable import capable_basis, capable_reading, learner_figure
from nasdepth.diagnosis.diagnosis import Evidence
from nasdepth.diagnosis.plateau import shallow_figure, shallow_reading
from nasdepth.diagnosis.scoring import ev as _ev

Weighed = tuple[float, list[Evidence], list[str], str, list[dict[str, Any]]]


def weigh_controls(verdict: str, conf: float, s: dict[str, float | None],
                   th: dict[str, float], controls: dict[str, Any]) -> Weighed:
    """Evidence rows of every control beside the model; the counterfactual confirms or
    overturns a vanishing-gradients verdict and overturns a data-limited one that a network
    with healthy gradients beats. Returns (confidence, evidence, advice, verdict, basis)."""
    ev: list[Evidence] = []
    advice: list[str] = []
    basis: list[dict[str, Any]] = []
    same = th["control_same"]
    skill = s.get("skill_best")
    sh, cf = controls.get("shuffled"), controls.get("counterfactual")
    shallow, lc = controls.get("shallow"), controls.get("learning_curve")
    if sh and skill is not None and sh.get("skill_best") is not None:
        ev.append(_ev("shuffled_skill_difference", skill - sh["skill_best"], same,
                      "skill of the model minus the same model on permuted labels"))
    if cf and cf.get("skill_best") is not None and skill is not None:
        gain = cf["skill_best"] - skill
        ev.append(_ev("counterfactual_skill_gain", gain, same,
                      f"skill gained by the same depth with {cf.get('change', 'skip+norm')}"))
        if verdict == "vanishing_gradients":
            if gain > same:
                conf += 0.1
                advice.append(f"the counterfactual with {cf.get('change')} learns "
                              f"(skill +{gain:.2f}): the depth's gradients were the problem")
            elif (cf.get("val_loss_norm_min") or 0) > th["val_loss_norm_min"]:
                # overturn only where a shallow model fails too: a counterfactual that merely
                # trains slowly must not turn a real gradient problem into "the data"
                reading, name, _, _ = shallow_reading(shallow, th)
                capable, learner = capable_reading(controls, th)
                if reading == "at_chance" and shallow and capable in ("fails", "pending"):
                    verdict, conf = "data_limited_plateau", 0.7
                    basis.append({"control": "shallow", "signal": "shallow_best_skill",
                                  "value": shallow.get(f"{name}_skill"),
                                  "figure": shallow_figure(shallow, name)})
                    if learner is not None:
                        basis.append(capable_basis(learner))
                    advice.append("the counterfactual with healthy gradients, the shallow "
                                  "baseline and the reference network also stay at chance: "
                                  "the data, not the vanishing gradients, limits this model")
                elif capable == "learns" and learner is not None:
                    advice.append("the counterfactual did not learn within this budget, but "
                                  f"{learner_figure(learner)}: the data carry signal")
                else:
                    conf -= 0.15
                    advice.append("the counterfactual did not learn either within this budget: "
                                  "run the shallow control to rule out data without signal")
        elif verdict == "data_limited_plateau" and gain > 2 * same:
            verdict, conf = "optimization_problem", 0.6
            advice.append(f"the counterfactual with {cf.get('change')} learns (skill "
                          f"+{gain:.2f}): the data carries signal this model fails to fit")
    if shallow:
        for name in (*SHALLOW_MODELS, "depth2"):
            if shallow.get(f"{name}_skill") is not None and skill is not None:
                ev.append(_ev(f"{name}_skill_difference", skill - shallow[f"{name}_skill"],
                              same, "skill of the model minus the "
                              f"{SHALLOW_NAMES.get(name, name)} baseline (same splits)"))
    capable, learner = capable_reading(controls, th)
    if capable == "learns" and learner is not None and verdict in (
            "optimization_problem", "vanishing_gradients", "vanishing_through_time",
            "exploding_gradients"):
        # a stalled run beside a learner on the same folds: name it as evidence
        advice.append(f"the data carry signal: {learner_figure(learner)}")
    if lc and lc.get("slope") is not None:
        ev.append(_ev("learning_curve_slope", lc["slope"], th["learning_curve_flat"],
                      "validation accuracy gained per doubling of the training data"))
        if lc["slope"] < th["learning_curve_flat"]:
            advice.append("more data of this kind will not help: the learning curve is flat")
        else:
            advice.append(f"more data should help: each doubling adds {lc['slope']:.3f} "
                          "validation accuracy")
    return max(0.05, min(0.99, conf)), ev, advice, verdict, basis
