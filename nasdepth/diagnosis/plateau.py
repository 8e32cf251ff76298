"""Which plateau: the validation loss stays at chance although the gradients reach every block.

Such a run looks the same in the probes whether the data carry no signal for this model or the
model has not trained enough, so the verdict is read from the controls (the shallow baseline,
on by default, answers in seconds):

- ``data_limited_plateau`` only where every learner that ran failed on the same splits: the
  shallow baseline at chance (its accuracy less than ``shallow_z`` binomial standard
  deviations above chance; "learns" needs that and a skill of ``shallow_skill``) or, for a
  run that trained long enough to tell (``settled``), shuffled labels scoring the same or a
  flat learning curve; **and** a network that could see what shallow models cannot (the
  reference network of the input's rank) at chance too, with no trial of the study that
  learned (:mod:`nasdepth.diagnosis.capable`). Each such control is named in
  ``Diagnosis.basis`` with its figure. Where the capable learner did not run (turned off,
  over budget) the plateau is ``undecided``, never data-limited on the shallow baseline alone.
- ``undertrained`` also where the shallow baseline is at chance but a capable learner (a
  trial of the study, the reference network) learned: the advice names it with its score,
  and says "too big or too deep for this data" where this model is much larger or deeper.
- ``undertrained`` where the shallow baseline finds signal the network missed. The advice says
  train longer or raise the learning rate, with the figures (steps below
  ``update_ratio_small`` of the weights, fewer than ``settled_epochs`` epochs, a loss still
  falling). A run whose loss had gone flat with healthy steps (``settled``) gets a lower
  confidence: sigmoid networks, for one, sit at chance for many epochs before they take off,
  but a run that stays at chance several times longer points at the recipe or the
  initialization (the advice says so). Runs whose steps are far too small to move any weight,
  or whose ReLU units are dead, were decided before (``optimization_problem``).
- ``undecided_plateau`` where no control decides; the advice says what is open and which
  control would settle it.
"""

from __future__ import annotations

from typing import Any

from nasdepth.diagnosis.baseline import SHALLOW_NAMES, best_shallow
from nasdepth.diagnosis.capable import (
    capable_basis,
    capable_evidence,
    capable_reading,
    learner_figure,
    too_big_advice,
    undecided_advice,
)
from nasdepth.diagnosis.diagnosis import Evidence
from nasdepth.diagnosis.learning import learning_advice
from nasdepth.diagnosis.scoring import ev, margin

Plateau = tuple[str, float, list[Evidence], list[str], list[dict[str, Any]]]


def settled(s: dict[str, float | None], th: dict[str, float]) -> bool:
    """Trained long enough, with steps large enough, for a flat loss to mean something."""
    epochs = s.get("epochs") or 0
    upd = s.get("update_ratio_median")
    falling = (s.get("train_loss_fall_last") or 0.0) > th["still_falling"] and not (
        (s.get("train_loss_norm_last") or 1.0) < th["train_loss_flat"])
    return epochs >= th["settled_epochs"] and upd is not None and \
        upd >= th["update_ratio_small"] and not falling


def shallow_reading(shallow: dict[str, Any] | None, th: dict[str, float]
                    ) -> tuple[str, str | None, float | None, float | None]:
    """(``at_chance`` | ``learns`` | ``inconclusive`` | ``missing``, model, skill, z)."""
    name, skill, z = best_shallow(shallow)
    if skill is None:
        return "missing", None, None, None
    # "at chance" is a statistical statement (z below shallow_z: not distinguishable from
    # the class frequencies on these many validation samples); "learns" also needs a skill
    # worth the name, so a huge data set's significant but tiny skill stays inconclusive
    if (z is not None and z < th["shallow_z"]) or (z is None and skill < th["shallow_skill"]):
        return "at_chance", name, skill, z
    if skill >= th["shallow_skill"] and (z is None or z >= th["shallow_z"]):
        return "learns", name, skill, z
    return "inconclusive", name, skill, z


def shallow_figure(shallow: dict[str, Any], name: str | None) -> str:
    """``logistic regression 0.36 vs chance 0.34 (skill 0.03, z 0.8)``, for reports."""
    if name is None:
        return ""
    z = shallow.get(f"{name}_z")
    return (f"{SHALLOW_NAMES.get(name, name)} {shallow.get(f'{name}_accuracy', 0):.3f} vs "
            f"chance {shallow.get('chance_accuracy', 0):.3f} (skill "
            f"{shallow.get(f'{name}_skill', 0):.2f}" + (f", z {z:.1f})" if z is not None
                                                        else ")"))


def _undertrained(evidence: list[Evidence], advice: list[str], is_settled: bool,
                  z: float | None, z_min: float, then: str) -> Plateau:
    """``undertrained``, as sure as the learner's ``z`` lies past ``z_min``; a run whose loss
    had gone flat with healthy steps gets 0.65 and the advice ``then``."""
    if not is_settled:
        conf = margin(z, z_min, 10.0) if z is not None else 0.6
        return ("undertrained", conf, evidence, advice, [])
    flat = "the loss had gone flat with healthy step sizes: "
    return ("undertrained", 0.65, evidence, [*advice, flat + then], [])


def decide_plateau(s: dict[str, float | None], th: dict[str, float],
                   controls: dict[str, Any], size: dict[str, Any] | None = None) -> Plateau:
    evidence: list[Evidence] = []
    basis: list[dict[str, Any]] = []
    is_settled = settled(s, th)
    evidence.append(ev("update_ratio_median", s.get("update_ratio_median"),
                       th["update_ratio_small"], "typical ||ΔW||/||W|| of one step (too small "
                       "for the budget below)"))
    evidence.append(ev("loss_gone", s.get("loss_gone"), None,
                       "share of the starting training loss gone by the last epoch"))
    evidence.append(ev("train_loss_fall_last", s.get("train_loss_fall_last"),
                       th["still_falling"], "training loss fall per epoch over the last epochs"))

    shallow = controls.get("shallow") or {}
    reading, name, best, z = shallow_reading(shallow, th)
    if reading != "missing":
        evidence.append(ev("shallow_best_skill", best, th["shallow_skill"],
                           f"skill above chance of the better shallow model "
                           f"({SHALLOW_NAMES.get(name or '', name)}) on the same splits"))
        evidence.append(ev("shallow_best_z", z, th["shallow_z"],
                           "its accuracy above chance in binomial standard deviations"))
    if reading == "at_chance":
        basis.append({"control": "shallow", "signal": "shallow_best_skill", "value": best,
                      "figure": shallow_figure(shallow, name)})
    skill = s.get("skill_best")
    sh = controls.get("shuffled")
    if sh and sh.get("skill_best") is not None and skill is not None and is_settled:
        diff = skill - sh["skill_best"]
        if diff < th["control_same"]:
            basis.append({"control": "shuffled", "signal": "shuffled_skill_difference",
                          "value": diff, "figure": f"skill {skill:.2f} on the labels vs "
                          f"{sh['skill_best']:.2f} on shuffled labels"})
    lc = controls.get("learning_curve")
    if lc and lc.get("slope") is not None and is_settled and lc["slope"] < th[
            "learning_curve_flat"]:
        accs = ", ".join(f"{a:.3f}" for a in lc.get("val_accuracy", []))
        basis.append({"control": "learning_curve", "signal": "learning_curve_slope",
                      "value": lc["slope"], "figure": f"validation accuracy {accs} on "
                      f"{', '.join(f'{f:.0%}' for f in lc.get('fractions', []))} of the data "
                      f"({lc['slope']:+.3f} per doubling)"})

    capable, learner = capable_reading(controls, th)
    evidence += capable_evidence(controls, th)
    if reading == "learns":
        # a shallow model finds signal this network missed: not the data's fault
        figure = shallow_figure(shallow, name)
        advice = [learning_advice(s, th),
                  f"the data carry signal: {figure} on the same splits; validation stays at "
                  "chance because this run has not fitted it yet, not because of the data"]
        if capable == "learns" and learner is not None:
            advice.append(f"so does a network: {learner_figure(learner)}")
        return _undertrained(evidence, advice, is_settled, z, th["shallow_z"],
                             "if a run several times longer still sits at chance, change the "
                             "recipe (learning rate, warm-up) or the initialization rather "
                             "than the data")
    if capable == "learns" and learner is not None:
        # the shallow baseline is blind to this signal, but a network that could see it
        # learned on the same folds: the verdict is about this model
        advice = [learning_advice(s, th),
                  f"the data carry signal that shallow models cannot see: "
                  f"{learner_figure(learner)}; this run has not fitted it"]
        big = too_big_advice(size, controls, learner)
        if big:
            advice.append(big)
        if reading == "at_chance":
            advice.append(f"(the shallow baseline stays at chance: "
                          f"{shallow_figure(shallow, name)})")
        return _undertrained(evidence, advice, is_settled, learner.get("z"), th["skill_z"],
                             "change the recipe (learning rate, warm-up), the initialization "
                             "or the architecture toward the one that learned, rather than the "
                             "data")
    if basis and capable in ("fails", "pending"):  # pending: diagnose's first pass
        # every learner that ran failed on the same splits: the shallow baseline (or the
        # settled run's shuffled labels / flat learning curve) and a capable network
        if learner is not None:
            basis.append(capable_basis(learner))
        conf = 0.85
        if reading == "at_chance" and z is not None:
            conf = min(conf, margin(z, th["shallow_z"], 2.0) + 0.1)
        conf = min(0.97, conf + 0.03 * (len(basis) - 2))
        tl = s.get("train_loss_norm_last")
        advice = ["the gradients reach every block, yet validation never beats predicting the "
                  "class frequencies, and " + "; ".join(b["figure"] for b in basis) +
                  ": the data, not the depth, limits you; check features and labels, or "
                  "collect more informative data"]
        if tl is not None and tl < th["train_loss_flat"]:
            advice.append("the training loss still falls while validation stays at chance: "
                          "the model memorizes noise; more depth or epochs will not help")
        return ("data_limited_plateau", conf, evidence, advice, basis)
    advice = ["undecided: the gradients reach every block and validation stays at chance, "
              "but no control tells whether the data lack signal or the model has not "
              "trained enough"]
    if reading == "missing":
        advice.append("run the shallow baseline (controls: shallow, seconds): at chance it "
                      "shows that shallow models see no signal, above chance that this model "
                      "under-fits")
    elif basis:
        advice.append(undecided_advice(learner, capable))
    else:
        advice.append(f"the shallow baseline is inconclusive ({shallow_figure(shallow, name)}):"
                      " run the shuffled-labels and learning-curve controls after training "
                      "longer")
    if not is_settled:
        advice.append(learning_advice(s, th))
    return ("undecided_plateau", 0.5, evidence, advice, [])
