"""Vanishing and exploding gradients through time, for models with recurrent blocks.

The probes record the gradient of the loss with respect to each recurrent layer's hidden state
at sampled steps (:mod:`nasdepth.probes.time`); ``grad_time_log10`` is log10 of the first
step's over the last step's (median over recurrent blocks, epochs and folds). The rule reads it
after the exploding and optimization checks and before vanishing through depth:

- ``exploding_gradients`` through time: in some epoch the first steps receive more than
  ``10**grad_time_explode_log10`` of the last step's gradient (the recurrence amplifies it);
  advice: clip gradients (also added where rule 1 already called a recurrent model exploding,
  say on a non-finite loss).
- ``vanishing_through_time``: the first steps receive less than ``10**grad_time_log10`` of the
  last step's gradient, the model has no skill above chance, and a control shows that the
  data carry signal (the shallow baseline, on by default, learns; or the gated counterfactual
  does). The probes alone cannot tell this from data without signal: a vanilla RNN's
  gradient vanishes through time on labels drawn at random just the same. Without such a
  control the other rules decide, and the advice names the time profile and the control that
  would tell.

Vanishing through depth (the first *layer* receives too little gradient) stays the
``vanishing_gradients`` rule: a deep stack of gated layers can have it while its gradient
through time is fine.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from nasdepth.arch import ArchConfig
from nasdepth.diagnosis.capable import capable_reading, learner_figure
from nasdepth.diagnosis.diagnosis import Evidence
from nasdepth.diagnosis.plateau import shallow_figure, shallow_reading
from nasdepth.diagnosis.scoring import ev as _ev
from nasdepth.diagnosis.scoring import margin

#: thresholds of this rule (joined to ``rules.THRESHOLDS``; chosen in
#: benchmarks/diagnose_thresholds.py on the long-range ground-truth cases)
TIME_THRESHOLDS: dict[str, float] = {
    "grad_time_log10": -4.0,  # first / last step hidden-state gradient, log10 (vanishing below)
    "grad_time_explode_log10": 3.0,  # the same ratio (exploding through time above)
}
#: the gated counterfactual of a vanilla RNN: LSTM cells with memory at initialization (a
#: forget-gate bias of 5 keeps 99% of the cell state per step; LSTM, not GRU, since PyTorch's
#: CPU GRU runs several times slower than its LSTM)
GATED_CELL = "lstm"
GATED_BIAS = 5.0
#: (verdict, confidence, advice, basis: the controls that decided, as ``Diagnosis.basis``)
Decision = tuple[str, float, list[str], list[dict[str, Any]]]


def data_signal(controls: dict[str, Any], th: dict[str, float]
                ) -> tuple[bool | None, list[dict[str, Any]]]:
    """Do the controls show that the data carry signal (True), that they do not (False), or
    can they not tell (None)? With the basis: the control that showed it, with its figure."""
    shallow, cf = controls.get("shallow") or {}, controls.get("counterfactual") or {}
    reading, name, best, _ = shallow_reading(shallow, th)
    if reading == "learns":
        return True, [{"control": "shallow", "signal": "shallow_best_skill", "value": best,
                       "figure": shallow_figure(shallow, name)}]
    capable, learner = capable_reading(controls, th)
    if capable == "learns" and learner is not None:
        return True, [{"control": "peers" if learner.get("kind") == "trial" else "reference",
                       "signal": "capable_z", "value": learner.get("z"),
                       "figure": learner_figure(learner)}]
    cf_skill = cf.get("skill_best")
    if cf_skill is not None and cf_skill > th["control_same"]:
        return True, [{"control": "counterfactual", "signal": "counterfactual_skill",
                       "value": cf_skill, "figure": f"skill {cf_skill:.2f} with "
                       f"{cf.get('change', 'the counterfactual')}"}]
    return (False if reading == "at_chance" else None), []


def decide_through_time(s: dict[str, float | None], th: dict[str, float],
                        controls: dict[str, Any]
                        ) -> tuple[Decision | None, list[Evidence]]:
    """(verdict, confidence, advice, basis) where the gradient through time decides, else
    None; and the evidence read (empty for models without recurrent blocks)."""
    g = s.get("grad_time_log10")
    if g is None:
        return None, []
    th = {**TIME_THRESHOLDS, **th}
    ev = [_ev("grad_time_log10", g, th["grad_time_log10"],
              "log10 of the hidden-state gradient at the first step over the last step's "
              "(recurrent blocks)")]
    gmax = s.get("grad_time_log10_max")
    if gmax is not None and gmax > th["grad_time_explode_log10"]:
        ev.append(_ev("grad_time_log10_max", gmax, th["grad_time_explode_log10"],
                      "the same ratio, largest over the epochs (exploding through time above)"))
        return ("exploding_gradients", margin(gmax, th["grad_time_explode_log10"], 6.0),
                [_clip_advice(gmax)], []), ev
    vmin, skill_z = s.get("val_loss_norm_min"), s.get("skill_z")
    # stalled as the plateau rule reads it: validation at chance, and no real skill (or far
    # behind a shallow baseline that learns)
    reading, _, shallow_best, _ = shallow_reading(controls.get("shallow"), th)
    far_behind = reading == "learns" and shallow_best is not None and (
        shallow_best - (s.get("skill_best") or 0.0) > th.get("shallow_gap", 0.3))
    stalled = (vmin is not None and vmin > th["val_loss_norm_min"]
               and (not (skill_z is not None and skill_z > th["skill_z"]) or far_behind))
    if not (g < th["grad_time_log10"] and stalled):
        return None, ev
    signal, basis = data_signal(controls, th)
    if signal:
        return ("vanishing_through_time", margin(g, th["grad_time_log10"], 8.0), [
            "use gated cells (lstm, gru; a gate_bias of 3-5 keeps 95-99% of the state per "
            "step, memory over ~100 steps from the start) or shorter sequences: the first "
            f"steps receive 10^{g:.1f} of the last step's gradient, so nothing early in the "
            "sequence can be learned, while a control shows the data carry signal"], basis), ev
    return None, ev


def time_note(s: dict[str, float | None], th: dict[str, float], verdict: str,
              controls: dict[str, Any]) -> list[str]:
    """Advice for a verdict decided elsewhere while the gradient vanished through time: what the
    profile says and which control tells whether it is the cause."""
    g, gmax = s.get("grad_time_log10"), s.get("grad_time_log10_max")
    th = {**TIME_THRESHOLDS, **th}
    if verdict == "exploding_gradients" and gmax is not None \
            and gmax > th["grad_time_explode_log10"]:
        return [_clip_advice(gmax)]
    if g is None or g >= th["grad_time_log10"] or verdict in ("vanishing_through_time",
                                                               "exploding_gradients"):
        return []
    if data_signal(controls, th)[0] is None and verdict != "healthy":
        return [f"the first steps receive 10^{g:.1f} of the last step's gradient (vanishing "
                "through time): run the shallow baseline (controls: shallow) to tell whether "
                "that or data without signal stalls this model"]
    return []


def gated_counterfactual(arch: ArchConfig) -> tuple[ArchConfig, str] | None:
    """The same stages with vanilla ``rnn`` layers swapped for gated ones of the same width
    (LSTM, memory at initialization); None where the architecture has no ``rnn`` stage."""
    if not any(st.block == "rnn" for st in arch.stages):
        return None
    stages = tuple(replace(st, block=GATED_CELL, gate_bias=GATED_BIAS) if st.block == "rnn"
                   else st for st in arch.stages)
    return replace(arch, stages=stages), f"gated cells ({GATED_CELL}, gate_bias {GATED_BIAS:g})"


def _clip_advice(gmax: float) -> str:
    return (f"clip gradients (training: {{grad_clip: 1.0}}): in some epoch the gradient grew "
            f"10^{gmax:.1f}-fold back through time (the recurrence amplifies it); a lower "
            "learning rate, tanh instead of relu, or gated cells (lstm, gru) also help")
