"""The rules that turn probe traces (and optional controls) into a :class:`Diagnosis`.

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
4. ``data_limited_plateau``: the validation loss never gets below ``val_loss_norm_min`` of the
   label entropy (no skill above chance) although the gradients reach every block, whether or
   not the training loss falls (memorizing).
5. ``overfitting``: real skill, but the validation loss rose by ``val_loss_rise`` (in label
   entropies) from its minimum while the training accuracy runs ``gap_accuracy`` ahead.
6. ``healthy`` otherwise.

Thresholds come from ``benchmarks/diagnose_thresholds.py`` (ground-truth cases over seeds; see
``docs/diagnose.md`` for the measured separation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd

from nasdepth.diagnosis.diagnosis import Diagnosis, Evidence
from nasdepth.diagnosis.through_time import TIME_THRESHOLDS, decide_through_time, time_note
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
    **TIME_THRESHOLDS,  # gradients through time (recurrent blocks): diagnosis/through_time.py
}


def _ev(signal: str, value: float | None, threshold: float | None, meaning: str) -> Evidence:
    return Evidence(signal, None if value is None else float(value), threshold, meaning)


def _margin(value: float | None, threshold: float, scale: float) -> float:
    """Confidence from how far ``value`` lies past ``threshold`` (``scale`` units = sure)."""
    if value is None:
        return 0.5
    return max(0.5, min(0.97, 0.55 + 0.42 * abs(value - threshold) / scale))


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
) -> Diagnosis:
    """Verdict from per-fold traces (``Trace`` objects or their dicts), an optional fold table
    (for skill above chance) and optional control results (see ``controls.run_controls``)."""
    th = {**THRESHOLDS, **(thresholds or {})}
    tr = [t if isinstance(t, Trace) else Trace.from_dict(t) for t in traces]
    if not tr or not any(t.epochs for t in tr):
        raise ValueError("no probe traces to diagnose: train with probes first "
                         "(cross_validate(..., hooks=[ProbeHook()]) or diagnose(model, data))")
    s = trace_signals(tr)
    s.update(skill_from_folds(folds, tr[0].chance_accuracy))
    controls = controls or {}
    verdict, conf, ev, advice = _decide(s, th, controls)
    conf, ev2, advice2, new_verdict = _weigh_controls(verdict, conf, s, th, controls)
    if new_verdict != verdict:  # the controls overturned the probes: their advice stands
        advice, verdict = [], new_verdict
    advice2 += time_note(s, th, verdict, controls)
    return Diagnosis(verdict=verdict, confidence=round(conf, 3), evidence=ev + ev2,
                     advice=advice + advice2, controls=controls,
                     signals={k: (None if v is None else round(float(v), 6))
                              for k, v in s.items()})


def _decide(s: dict[str, float | None], th: dict[str, float], controls: dict[str, Any]
            ) -> tuple[str, float, list[Evidence], list[str]]:
    ev: list[Evidence] = []
    nonfinite = s.get("nonfinite") or 0.0
    growth, upd_med = s.get("grad_growth_log10"), s.get("update_ratio_median")
    ev.append(_ev("nonfinite_folds", nonfinite, 0.0,
                  "fraction of folds whose loss or gradients became NaN/inf"))
    if nonfinite > 0:
        return ("exploding_gradients", 0.9 if nonfinite >= 0.5 else 0.75, ev, [
            "lower the learning rate (by 10x), clip gradients (norm 1.0) or add normalization: "
            "the loss or the gradients overflowed"])
    peak, upd_max = s.get("grad_peak_log10"), s.get("update_ratio_max")
    loss_max = s.get("train_loss_norm_max")
    ev.append(_ev("grad_growth_log10", growth, th["grad_growth_log10"],
                  "decades the largest block gradient grew from the first to the last epoch"))
    ev.append(_ev("grad_peak_log10", peak, th["grad_peak_log10"],
                  "decades the largest block gradient of any epoch lies above the largest at "
                  "the first step"))
    ev.append(_ev("update_ratio_median", upd_med, th["update_ratio_high"],
                  "typical ||ΔW||/||W|| of one step (healthy runs: about 1e-3)"))
    ev.append(_ev("update_ratio_max", upd_max, th["update_ratio_blowup"],
                  "largest ||ΔW||/||W|| per step of any block in any epoch"))
    ev.append(_ev("train_loss_norm_max", loss_max, th["train_loss_blowup"],
                  "largest epoch training loss / label entropy (1 = predicting class "
                  "frequencies)"))
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
            "add normalization"])

    tl = s.get("train_loss_norm_last")
    dead = s.get("dead_frac_max")
    flat = tl is None or tl > th["train_loss_flat"]
    ev.append(_ev("update_ratio_max", upd_max, th["update_ratio_low"],
                  "largest ||ΔW||/||W|| per step of any block in any epoch (stuck below)"))
    ev.append(_ev("train_loss_norm_last", tl, th["train_loss_flat"],
                  "training loss / label entropy (1 = predicting class frequencies)"))
    if upd_max is not None and upd_max < th["update_ratio_low"] and flat:
        return ("optimization_problem", _margin(math.log10(max(upd_max, 1e-30)),
                                                math.log10(th["update_ratio_low"]), 2.0), ev, [
            f"raise the learning rate: no block changes by more than {upd_max:.1e} of its "
            "norm per step, so the training loss stays at the baseline"])
    ev.append(_ev("dead_frac_max", dead, th["dead_frac"],
                  "fraction of ReLU units that never fire on the probe batch (worst block)"))
    if dead is not None and dead >= th["dead_frac"] and flat:
        return ("optimization_problem", 0.8, ev, [
            "the network is dead (ReLU units never fire): lower the learning rate, use He "
            "initialization or a leaky activation"])

    # recurrent blocks: vanishing or exploding through time, told apart from depth
    hit, ev_time = decide_through_time(s, th, controls)
    ev += ev_time
    if hit is not None:
        return hit[0], hit[1], ev, hit[2]

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
            f"receives 10^{depth:.1f} of the last hidden block's gradient"])

    ev.append(_ev("val_loss_norm_min", vmin, th["val_loss_norm_min"],
                  "best validation loss / label entropy (below 1 = skill above chance)"))
    if "skill_z" in s:
        ev.append(_ev("skill_z", s["skill_z"], th["skill_z"],
                      "validation accuracy above chance in binomial standard deviations"))
    skill_z = s.get("skill_z")
    significant = skill_z is not None and skill_z > th["skill_z"]
    if vmin is not None and vmin > th["val_loss_norm_min"] and not significant:
        memorizing = tl is not None and tl < th["train_loss_flat"]
        advice = ["the gradients reach every block, yet validation never beats predicting the "
                  "class frequencies: the data, not the depth, limits you; check features "
                  "and labels, or collect more informative data"]
        if memorizing:
            advice.append("the training loss still falls while validation stays at chance: "
                          "the model memorizes noise; more depth or epochs will not help")
        return ("data_limited_plateau", _margin(vmin, th["val_loss_norm_min"], 0.1), ev, advice)

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
            "smaller model: validation loss rises while training accuracy keeps climbing"])
    conf = _margin(vmin, th["val_loss_norm_min"], 0.5)
    return ("healthy", conf, ev, ["training is healthy: compare depths and widths on the "
                                  "validation score"])


def _weigh_controls(verdict: str, conf: float, s: dict[str, float | None],
                    th: dict[str, float], controls: dict[str, Any]
                    ) -> tuple[float, list[Evidence], list[str], str]:
    """Controls confirm or overturn the verdict read from the probes."""
    ev: list[Evidence] = []
    advice: list[str] = []
    same = th["control_same"]
    skill = s.get("skill_best")
    sh, cf = controls.get("shuffled"), controls.get("counterfactual")
    shallow, lc = controls.get("shallow"), controls.get("learning_curve")
    if sh and skill is not None and sh.get("skill_best") is not None:
        diff = skill - sh["skill_best"]
        ev.append(_ev("shuffled_skill_difference", diff, same,
                      "skill of the model minus the same model on permuted labels"))
        if verdict == "data_limited_plateau":
            conf += 0.1 if diff < same else -0.2
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
                shallow_best = max([v for v in ((shallow or {}).get("logistic_skill"),
                                                (shallow or {}).get("depth2_skill"))
                                    if v is not None], default=None)
                if shallow_best is not None and shallow_best < same:
                    verdict, conf = "data_limited_plateau", 0.7
                    advice.append("the counterfactual with healthy gradients and the shallow "
                                  "models also stay at chance: the data, not the vanishing "
                                  "gradients, limits this model")
                else:
                    conf -= 0.15
                    advice.append("the counterfactual did not learn either within this budget: "
                                  "run the shallow control to rule out data without signal")
        elif verdict == "data_limited_plateau" and gain > 2 * same:
            verdict, conf = "optimization_problem", 0.6
            advice.append(f"the counterfactual with {cf.get('change')} learns (skill "
                          f"+{gain:.2f}): the data carries signal this model fails to fit")
    if shallow:
        for name in ("logistic", "depth2"):
            if shallow.get(f"{name}_skill") is not None and skill is not None:
                ev.append(_ev(f"{name}_skill_difference", skill - shallow[f"{name}_skill"],
                              same, f"skill of the model minus the {name} control"))
        best = max([v for v in (shallow.get("logistic_skill"), shallow.get("depth2_skill"))
                    if v is not None], default=None)
        if verdict == "data_limited_plateau" and best is not None and best < same:
            conf += 0.1
            advice.append("a depth-2 network and logistic regression score the same: the data, "
                          "not the depth, limits you")
        elif (verdict == "data_limited_plateau" and best is not None
              and best > (skill or 0.0) + 2 * same):
            # a shallow model finds signal the probed model missed: not the data's fault
            verdict, conf = "optimization_problem", 0.7
            advice.append(f"a shallow control reaches skill {best:.2f} on the same folds: the "
                          "data has signal this model fails to fit; train longer, tune the "
                          "learning rate or use a smaller model")
    if lc and lc.get("slope") is not None:
        ev.append(_ev("learning_curve_slope", lc["slope"], 0.02,
                      "validation accuracy gained per doubling of the training data"))
        if lc["slope"] < 0.02:
            advice.append("more data of this kind will not help: the learning curve is flat")
        else:
            advice.append(f"more data should help: each doubling adds {lc['slope']:.3f} "
                          "validation accuracy")
    return max(0.05, min(0.99, conf)), ev, advice, verdict
