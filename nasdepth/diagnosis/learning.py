"""The reading of "still learning": is the run's loss still falling when its budget ends?

Read from the run's own trace, per fold, then the median over folds (as every signal):

- ``val_loss_fall_last`` / ``train_loss_fall_last``: how much the validation / training loss
  (in label entropies) fell per epoch over the last two epochs (positive: still falling);
- ``loss_gone``: the share of the starting loss gone by the last epoch (the starting loss is
  the first epoch's mean training loss, at least the label entropy: what predicting the class
  frequencies costs);
- ``end_below_mean``: the mean training loss of the last epoch minus the validation loss at its
  end; positive where the model at the end of the epoch beats its own average over the epoch,
  the one sign of progress a one-epoch run leaves;
- ``update_ratio_median`` (from the probes): the typical ``||ΔW||/||W||`` of one step; healthy
  runs sit near 1e-3, a learning rate far too small leaves it 10-100x below.

A run is *still learning* when its validation loss still falls by more than
``THRESHOLDS["still_falling"]`` label entropies per epoch at the end, or, with a single epoch,
its end-of-epoch loss lies ``THRESHOLDS["end_below_mean"]`` below its epoch mean.
"""

from __future__ import annotations

from collections.abc import Sequence

from nasdepth.probes.summary import finite, median_of
from nasdepth.probes.trace import Trace


def _fall(values: list[float]) -> float | None:
    """Fall per epoch over the last two epochs (one where there are only two)."""
    if len(values) < 2:
        return None
    k = min(2, len(values) - 1)
    return (values[-1 - k] - values[-1]) / k


def fold_learning(trace: Trace) -> dict[str, float | None]:
    tl = finite(trace.scalar("train_loss_norm"))
    vl = finite(trace.scalar("val_loss_norm"))
    start = max(1.0, tl[0]) if tl else None
    return {
        "val_loss_fall_last": _fall(vl),
        "train_loss_fall_last": _fall(tl),
        "loss_gone": None if start is None or not tl else 1.0 - tl[-1] / start,
        "end_below_mean": None if not tl or not vl else tl[-1] - vl[-1],
    }


def learning_signals(traces: Sequence[Trace]) -> dict[str, float | None]:
    """The median over folds of :func:`fold_learning`."""
    per_fold = [fold_learning(t) for t in traces if t.epochs]
    return {key: median_of([f[key] for f in per_fold]) for key in
            ("val_loss_fall_last", "train_loss_fall_last", "loss_gone", "end_below_mean")}


def still_learning(s: dict[str, float | None], th: dict[str, float]) -> bool:
    """The run's loss was still falling when its budget ended (see the module docstring)."""
    fall = s.get("val_loss_fall_last")
    if fall is not None:
        return fall > th["still_falling"]
    below = s.get("end_below_mean")
    return below is not None and below > th["end_below_mean"]


def learning_advice(s: dict[str, float | None], th: dict[str, float]) -> str:
    """What to change: more epochs, a larger learning rate, or both, with the figures."""
    epochs = int(s.get("epochs") or 0)
    fall, gone = s.get("val_loss_fall_last"), s.get("loss_gone")
    upd = s.get("update_ratio_median")
    parts = []
    if fall is not None and fall > th["still_falling"]:
        parts.append(f"the validation loss still fell by {fall:.3f} label entropies per epoch "
                     f"at epoch {epochs}")
    elif epochs <= 1:
        parts.append("one epoch is too short to see the loss settle")
    if gone is not None:
        parts.append(f"only {max(0.0, gone):.0%} of the starting loss is gone")
    text = "train longer (several times the epochs)"
    if upd is not None and upd < th["update_ratio_small"]:
        text += f" or raise the learning rate: steps change the weights by {upd:.1e} of their " \
                "norm (healthy runs: about 1e-3)"
    return text + ("; " + ", ".join(parts) if parts else "")
