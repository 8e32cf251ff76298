"""The rules that turn probe traces (and controls) into a :class:`Diagnosis`.

The rules are read in a fixed order; the first that fires decides the verdict, the signals read
before it join the evidence (showing what was ruled out):

1. ``exploding_gradients``: a non-finite loss or gradient; or, with everything finite,
   gradients growing by ``grad_growth_log10`` decades over training or rising
   ``grad_peak_log10`` decades above their size at the first step, typical steps changing
   weights by more than ``update_ratio_high`` of their norm, any block's steps by more than
   ``update_ratio_blowup`` (a step half as large as the weights), or the training loss above
   ``train_loss_blowup`` label entropies (confidently wrong: blown-up logits).
2. ``optimization_problem``: no block moves (``update_ratio_low``: learning rate far too small)
   or nearly every ReLU unit is dead, while the training loss stays at the baseline.
3. ``vanishing_through_time`` (recurrent blocks; :mod:`nasdepth.diagnosis.through_time`): the
   first steps of the sequence get orders of magnitude less gradient than the last one, the
   model stalls and a control shows the data carry signal; exploding through time (advice:
   clip gradients) joins rule 1 there.
   ``vanishing_gradients``: the first block receives less than ``10**grad_depth_log10`` of the
   last hidden block's gradient (per parameter), unless the controls show that the data, not the
   depth, limits the model.
4. A plateau: the validation loss never gets below ``val_loss_norm_min`` of the label entropy
   (no skill above chance, or barely above it while the shallow baseline or a capable network
   scores ``shallow_gap`` more skill) although the gradients reach every block. The controls
   decide which (:mod:`nasdepth.diagnosis.plateau`): ``data_limited_plateau`` only where every
   learner that ran fails, ``undertrained`` or ``undecided_plateau``.
5. ``overfitting``: real skill, but the validation loss rose by ``val_loss_rise`` (in label
   entropies) from its minimum while the training accuracy runs ``gap_accuracy`` ahead.
6. ``healthy`` otherwise; at the lowest confidence (0.5, with advice) where the accuracy is
   real but the validation loss never fell below ``val_loss_norm_min`` (overconfident).

Whatever the verdict, ``Diagnosis.still_learning`` says whether the loss was still falling when
the budget ended (:mod:`nasdepth.diagnosis.learning`). Controls then confirm or overturn the
verdict (:mod:`nasdepth.diagnosis.weigh`).

Thresholds come from ``benchmarks/diagnose_thresholds.py`` (ground-truth cases over seeds; see
``docs/diagnose.md`` for the measured separation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from nasdepth.diagnosis.capable import capable_reading
from nasdepth.diagnosis.diagnosis import Diagnosis, Evidence
from nasdepth.diagnosis.learning import learning_signals, still_learning
from nasdepth.diagnosis.plateau import decide_plateau, shallow_reading
from nasdepth.diagnosis.scoring import ev as _ev
from nasdepth.diagnosis.scoring import margin as _margin
from nasdepth.diagnosis.through_time import TIME_THRESHOLDS, decide_through_time, time_note
from nasdepth.diagnosis.weigh import weigh_controls
from nasdepth.probes.summary import signals as trace_signals
from nasdepth.probes.trace import Trace

#: decision thresholds (chosen in benchmarks/diagnose_thresholds.py, explained in docs)
THRESHOLDS: dict[str, float] = {
    "grad_depth_log10": -2.0,  # first/last hidden block gradient, log10 (vanishing below)
    "grad_growth_log10": 2.0,  # max gradient growth over training, decades (exploding above)
    "grad_peak_log10": 2.0,  # largest epoch gradient / first step's, decades (exploding above)
    "update_ratio_high": 0.1,  # median ||ΔW||/||W|| per step (exploding above)
    "update_ratio_blowup": 0.5,  # largest block ||ΔW||/||W|| per step (exploding above)
    "train_loss_blowup": 10.0,  # largest training loss / label entropy (exploding above)
    "update_ratio_low": 1e-4,  # largest block ||ΔW||/||W|| per step (stuck below)
    "dead_frac": 0.95,  # fraction of dead ReLU units in the worst block
    "train_loss_flat": 0.95,  # training loss / label entropy: not learning above
    "val_loss_norm_min": 0.98,  # best validation loss / label entropy: no skill above
    "skill_z": 3.0,  # CV accuracy above chance in binomial SDs: real skill above
    "val_loss_rise": 0.10,  # rise of validation loss from its minimum (label entropies)
    "gap_accuracy": 0.10,  # train (probe batch) minus validation accuracy
    "loss_gap": 0.40,  # validation minus training loss (label entropies), last epoch
    "control_same": 0.05,  # skill difference below which a control "scores the same"
    "shallow_z": 3.0,  # shallow baseline accuracy above chance in binomial SDs: at chance below
    "shallow_skill": 0.05,  # ... and "learns" needs this skill above chance besides
    "shallow_gap": 0.3,  # shallow skill minus the model's: a loss at chance "far behind" above
    "learning_curve_flat": 0.02,  # accuracy gained per doubling of the data: flat below
    "still_falling": 0.01,  # validation loss fall per epoch at the end: still learning above
    "end_below_mean": 0.02,  # one epoch: end-of-epoch loss this far below the epoch mean
    "update_ratio_small": 1e-3,  # median ||ΔW||/||W||: steps too small for the budget below
    "settled_epochs": 3,  # fewer epochs than this cannot show a settled loss
    **TIME_THRESHOLDS,  # gradients through time (recurrent blocks): diagnosis/through_time.py
}


def skill_from_folds(folds: pd.DataFrame | None, chance: float) -> dict[str, float | None]:
    """Validation skill above chance from a CV fold table, with its z-score against the
    binomial spread of a chance-level classifier."""
    if folds is None or "val_accuracy" not in folds or not len(folds):
        return {}
    n = float(folds["n_val"].sum()) if "n_val" in folds else float("nan")
    acc = float((folds["val_accuracy"] * folds.get("n_val", 1)).sum()
                / (n if math.isfinite(n) else len(folds)))
    out: dict[str, float | None] = {"cv_val_accuracy": acc}
    if "train_accuracy" in folds:
        out["cv_gap_accuracy"] = float(folds["train_accuracy"].mean()) - acc
    if math.isfinite(n) and 0 < chance < 1:
        out["skill_z"] = (acc - chance) / math.sqrt(chance * (1 - chance) / n)
    return out


def diagnose_traces(
    traces: Sequence[Trace | dict[str, Any]],
    *,
    folds: pd.DataFrame | None = None,
    controls: dict[str, Any] | None = None,
    thresholds: dict[str, float] | None = None,
    size: dict[str, Any] | None = None,
) -> Diagnosis:
    """Verdict from per-fold traces (``Trace`` objects or their dicts), an optional fold table
    (for skill above chance) and optional control results (see ``controls.run_controls``;
    ``peers``: trials of the study that learned, :mod:`nasdepth.study.peers`). ``size``:
    the diagnosed model's ``params`` and ``depth`` (for "too big for this data" advice)."""
    th = {**THRESHOLDS, **(thresholds or {})}
    tr = [t if isinstance(t, Trace) else Trace.from_dict(t) for t in traces]
    if not tr or not any(t.epochs for t in tr):
        raise ValueError("no probe traces to diagnose: train with probes first "
                         "(cross_validate(..., hooks=[ProbeHook()]) or diagnose(model, data))")
    s = trace_signals(tr)
    s.update(learning_signals(tr))
    s.update(skill_from_folds(folds, tr[0].chance_accuracy))
    controls = controls or {}
    verdict, conf, ev, advice, basis = _decide(s, th, controls, size)
    conf, ev2, advice2, new_verdict, basis2 = weigh_controls(verdict, conf, s, th, controls)
    if new_verdict != verdict:  # the controls overturned the probes: their advice stands
        advice, verdict, basis = [], new_verdict, []
    advice2 += time_note(s, th, verdict, controls)
    learning = still_learning(s, th)
    ev3 = [_ev("val_loss_fall_last", s.get("val_loss_fall_last"), th["still_falling"],
               "validation loss fall per epoch over the last epochs (label entropies; "
               "still learning above)")]
    if learning and verdict in ("healthy", "overfitting"):
        fall, below = s.get("val_loss_fall_last"), s.get("end_below_mean")
        how = (f"the validation loss still fell by {fall:.3f} label entropies per epoch at "
               "the last epoch" if fall is not None else
               f"after its one epoch the loss at the end lies {below or 0:.3f} label "
               "entropies below the epoch's mean")
        advice2.append(f"still learning: {how}; train longer before comparing this candidate")
    return Diagnosis(verdict=verdict, confidence=round(conf, 3), evidence=ev + ev2 + ev3,
                     advice=advice + advice2, controls=controls,
                     signals={k: (None if v is None else round(float(v), 6))
                              for k, v in s.items()},
                     basis=basis + basis2, still_learning=learning)


Decision = tuple[str, float, list[Evidence], list[str], list[dict[str, Any]]]


def _decide(s: dict[str, float | None], th: dict[str, float], controls: dict[str, Any],
            size: dict[str, Any] | None = None) -> Decision:
    ev: list[Evidence] = []
    nonfinite = s.get("nonfinite") or 0.0
    growth, upd_med = s.get("grad_growth_log10"), s.get("update_ratio_median")
    ev.append(_ev("nonfinite_folds", nonfinite, 0.0,
                  "fraction of folds whose loss or gradients became NaN/inf"))
    if nonfinite > 0:
        return ("exploding_gradients", 0.9 if nonfinite >= 0.5 else 0.75, ev, [
            "lower the learning rate (by 10x), clip gradients (norm 1.0) or add normalization: "
            "the loss or the gradients overflowed"], [])
    peak, upd_max = s.get("grad_peak_log10"), s.get("update_ratio_max")
    loss_max = s.get("train_loss_norm_max")
    ev += [_ev(signal, s.get(signal), th[key], meaning) for signal, key, meaning in (
        ("grad_growth_log10", "grad_growth_log10",
         "decades the largest block gradient grew from the first to the last epoch"),
        ("grad_peak_log10", "grad_peak_log10", "decades the largest block gradient of any "
         "epoch lies above the largest at the first step"),
        ("update_ratio_median", "update_ratio_high",
         "typical ||ΔW||/||W|| of one step (healthy runs: about 1e-3)"),
        ("update_ratio_max", "update_ratio_blowup",
         "largest ||ΔW||/||W|| per step of any block in any epoch"),
        ("train_loss_norm_max", "train_loss_blowup",
         "largest epoch training loss / label entropy (1 = predicting class frequencies)"))]
    # (signal, threshold, scale for the confidence) of every finite sign of a blow-up; a log
    # scale for the ratios, which span decades
    signs = [(growth, th["grad_growth_log10"], 3.0), (peak, th["grad_peak_log10"], 3.0)]
    signs += [(None if v is None else math.log10(max(v, 1e-30)), math.log10(t), 2.0)
              for v, t in ((upd_med, th["update_ratio_high"]),
                           (upd_max, th["update_ratio_blowup"]),
                           (loss_max, th["train_loss_blowup"]))]
    fired = [_margin(v, t, scale) for v, t, scale in signs if v is not None and v > t]
    if fired:
        what = (f"one step changes a block's weights by up to {upd_max:.2g} of their norm"
                if upd_max is not None else "the gradients blew up")
        if peak is not None and peak > th["grad_peak_log10"]:
            what += f" and the gradients rose 10^{peak:.1f}-fold above their initial size"
        return ("exploding_gradients", max(fired), ev, [
            f"lower the learning rate (by 10x or more): {what}; clip gradients (norm 1.0) or "
            "add normalization"], [])

    tl = s.get("train_loss_norm_last")
    dead = s.get("dead_frac_max")
    flat = tl is None or tl > th["train_loss_flat"]
    ev.append(_ev("update_ratio_max", upd_max, th["update_ratio_low"],
                  "largest ||ΔW||/||W|| per step of any block in any epoch (stuck below)"))
    ev.append(_ev("train_loss_norm_last", tl, th["train_loss_flat"],
                  "training loss / label entropy (1 = predicting class frequencies)"))
    if upd_max is not None and upd_max < th["update_ratio_low"] and flat:
        conf = _margin(math.log10(max(upd_max, 1e-30)), math.log10(th["update_ratio_low"]), 2.0)
        return ("optimization_problem", conf, ev, [
            f"raise the learning rate: no block changes by more than {upd_max:.1e} of its "
            "norm per step, so the training loss stays at the baseline"], [])
    ev.append(_ev("dead_frac_max", dead, th["dead_frac"],
                  "fraction of ReLU units that never fire on the probe batch (worst block)"))
    if dead is not None and dead >= th["dead_frac"] and flat:
        return ("optimization_problem", 0.8, ev, [
            "the network is dead (ReLU units never fire): lower the learning rate, use He "
            "initialization or a leaky activation"], [])

    # recurrent blocks: vanishing or exploding through time, told apart from depth
    hit, ev_time = decide_through_time(s, th, controls)
    ev += ev_time
    if hit is not None:
        return hit[0], hit[1], ev, hit[2], hit[3]

    depth = s.get("grad_depth_log10")
    ev.append(_ev("grad_depth_log10", depth, th["grad_depth_log10"],
                  "log10 of the first block's gradient over the last hidden block's "
                  "(per parameter)"))
    vmin = s.get("val_loss_norm_min")
    if depth is not None and depth < th["grad_depth_log10"]:
        ev.append(_ev("saturated_frac_mean", s.get("saturated_frac_mean"), None,
                      "fraction of saturated sigmoid/tanh outputs (last epoch)"))
        return ("vanishing_gradients", _margin(depth, th["grad_depth_log10"], 4.0), ev, [
            f"add skip connections or normalization (or He initialization): the first block "
            f"receives 10^{depth:.1f} of the last hidden block's gradient"], [])

    ev.append(_ev("val_loss_norm_min", vmin, th["val_loss_norm_min"],
                  "best validation loss / label entropy (below 1 = skill above chance)"))
    if "skill_z" in s:
        ev.append(_ev("skill_z", s["skill_z"], th["skill_z"],
                      "validation accuracy above chance in binomial standard deviations"))
    skill_z = s.get("skill_z")
    significant = skill_z is not None and skill_z > th["skill_z"]
    # a validation loss at chance with an accuracy barely above it, where the shallow baseline
    # scores far more: a plateau too (the run has hardly begun to fit learnable data)
    reading, _, shallow_best, _ = shallow_reading(controls.get("shallow"), th)
    far_behind = reading == "learns" and shallow_best is not None and (
        shallow_best - (s.get("skill_best") or 0.0) > th["shallow_gap"])
    capable, learner = capable_reading(controls, th)
    if capable == "learns" and learner is not None and learner.get("skill") is not None:
        far_behind = far_behind or (
            learner["skill"] - (s.get("skill_best") or 0.0) > th["shallow_gap"])
    if vmin is not None and vmin > th["val_loss_norm_min"] and (not significant or far_behind):
        verdict, conf, ev_plateau, advice, basis = decide_plateau(s, th, controls, size)
        return verdict, conf, ev + ev_plateau, advice, basis

    rise, gap = s.get("val_loss_rise"), s.get("gap_accuracy")
    ev.append(_ev("val_loss_rise", rise, th["val_loss_rise"],
                  "rise of the validation loss from its best epoch (label entropies)"))
    ev.append(_ev("gap_accuracy", gap, th["gap_accuracy"],
                  "training (probe batch) minus validation accuracy"))
    loss_gap = s.get("loss_gap")
    ev.append(_ev("loss_gap", loss_gap, th["loss_gap"],
                  "validation minus training loss at the end (label entropies)"))
    if rise is not None and rise > th["val_loss_rise"] and (
            (gap is not None and gap > th["gap_accuracy"])
            or (loss_gap is not None and loss_gap > th["loss_gap"])):
        return ("overfitting", _margin(rise, th["val_loss_rise"], 0.5), ev, [
            "stop earlier, add regularization (weight decay, dropout, augmentation) or use a "
            "smaller model: validation loss rises while training accuracy keeps climbing"], [])
    if vmin is not None and vmin > th["val_loss_norm_min"]:
        # real accuracy (the plateau rule let it through) but probabilities worse than the
        # class frequencies at every epoch: no margin to be sure of (a margin read past the
        # threshold on its far side would grow with how overconfident the model is)
        return ("healthy", 0.5, ev, [
            f"the accuracy is above chance (z {skill_z:.1f}) but the validation loss never fell "
            f"below the label entropy (best {vmin:.2f}): the predictions are overconfident; "
            "add regularization (weight decay, dropout) or data before comparing it on a "
            "probability score (log loss); its accuracy compares as it is"], [])
    conf = _margin(vmin, th["val_loss_norm_min"], 0.5)
    return ("healthy", conf, ev, ["training is healthy: compare depths and widths on the "
                                  "validation score"], [])
