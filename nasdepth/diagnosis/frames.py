"""Tidy tables behind the diagnosis figures (the report draws them; tests check the data).

- ``gradient_frame``: gradient RMS by block and epoch (the depth heatmap);
- ``update_frame``: ||ΔW||/||W|| per block and epoch;
- ``loss_frame``: training/validation loss over the label entropy, with the baseline at 1;
- ``controls_frame``: the model's skill above chance beside each control's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from nasdepth.diagnosis.diagnosis import Diagnosis
from nasdepth.probes.trace import Trace


def _traces(traces: Sequence[Trace | dict[str, Any]]) -> list[Trace]:
    return [t if isinstance(t, Trace) else Trace.from_dict(t) for t in traces]


def block_frame(traces: Sequence[Trace | dict[str, Any]], series: str) -> pd.DataFrame:
    """One row per fold x epoch x block: ``fold, epoch, depth, block, value``."""
    rows = []
    for t in _traces(traces):
        for e in t.epochs:
            for i, (name, v) in enumerate(zip(t.blocks, e.get(series) or [], strict=False)):
                rows.append({"fold": t.fold, "epoch": e.get("epoch"), "depth": i,
                             "block": name, "value": v})
    return pd.DataFrame(rows, columns=["fold", "epoch", "depth", "block", "value"])


def gradient_frame(traces: Sequence[Trace | dict[str, Any]]) -> pd.DataFrame:
    return block_frame(traces, "grad_rms").rename(columns={"value": "grad_rms"})


def update_frame(traces: Sequence[Trace | dict[str, Any]]) -> pd.DataFrame:
    return block_frame(traces, "update_ratio").rename(columns={"value": "update_ratio"})


def loss_frame(traces: Sequence[Trace | dict[str, Any]]) -> pd.DataFrame:
    """One row per fold x epoch x split: ``fold, epoch, split, loss_norm, baseline``."""
    rows = []
    for t in _traces(traces):
        for e in t.epochs:
            for split in ("train", "val"):
                rows.append({"fold": t.fold, "epoch": e.get("epoch"), "split": split,
                             "loss_norm": e.get(f"{split}_loss_norm"), "baseline": 1.0})
    return pd.DataFrame(rows, columns=["fold", "epoch", "split", "loss_norm", "baseline"])


def controls_frame(diagnosis: Diagnosis) -> pd.DataFrame:
    """``run, skill, val_accuracy``: the model beside each control (skill = accuracy above
    chance over 1 - chance; 0 is chance)."""
    rows = [{"run": "model", "skill": diagnosis.signals.get("skill_best"),
             "val_accuracy": diagnosis.signals.get("cv_val_accuracy")}]
    c = diagnosis.controls
    for name in ("shuffled", "counterfactual"):
        if name in c:
            label = name if name == "shuffled" else f"counterfactual ({c[name].get('change')})"
            rows.append({"run": label, "skill": c[name].get("skill_best"),
                         "val_accuracy": c[name].get("val_accuracy")})
    if "shallow" in c:
        for name in ("logistic", "depth2"):
            rows.append({"run": name, "skill": c["shallow"].get(f"{name}_skill"),
                         "val_accuracy": c["shallow"].get(f"{name}_accuracy")})
    if "learning_curve" in c:
        lc = c["learning_curve"]
        for frac, acc in zip(lc["fractions"], lc["val_accuracy"], strict=True):
            rows.append({"run": f"{int(frac * 100)}% of training data", "skill": None,
                         "val_accuracy": acc})
    return pd.DataFrame(rows, columns=["run", "skill", "val_accuracy"])
