"""The study as its own control: trials that learned on the same splits.

Any trial that reached real skill (its pooled validation accuracy ``skill_z`` binomial standard
deviations above chance, with a skill of ``shallow_skill``) proves the data carry signal for
some network of the space; a stalled trial of the same study is then never data-limited
(:mod:`nasdepth.diagnosis.capable` reads the ``peers`` control this module builds).

:func:`study_peers` reads the study as it stands (every COMPLETE trial's ``TrialRecord``, of
any worker, on the same splits digest), so it serves the diagnosis at a trial's end,
``diagnose --study`` and reports rebuilt later alike; ``task`` picks one task's scores in a
multitask study. :func:`reread_verdict` updates a stored plateau verdict with peers found
later (a report rebuilt after more trials finished).
"""

from __future__ import annotations

import math
from typing import Any

import optuna

from nasdepth.diagnosis.rules import THRESHOLDS
from nasdepth.study.record import TrialRecord, read_record, stored

#: at most this many learners are kept (best first)
KEEP = 5


def _pooled(rows: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    acc = [(float(r[key]), int(r.get("n_val") or 0)) for r in rows
           if isinstance(r.get(key), int | float) and math.isfinite(float(r[key]))]
    n = sum(k for _, k in acc)
    if not acc or n <= 0:
        return None
    return sum(a * k for a, k in acc) / n, n


def _describe(rec: TrialRecord) -> str:
    s = rec.summary or {}
    parts = [f"depth {s['depth']}" if "depth" in s else None,
             str(s["block"]) if s.get("block") else None,
             f"width {s['width']}" if "width" in s else None]
    return ", ".join(p for p in parts if p)


def peer_entry(rec: TrialRecord, chance: float, task: str | None = None,
               th: dict[str, float] | None = None) -> dict[str, Any] | None:
    """The trial's pooled score against ``chance`` if it learned, else None."""
    th = {**THRESHOLDS, **(th or {})}
    key = f"{task}.val_accuracy" if task else "val_accuracy"
    pooled = _pooled(rec.cv_folds or [], key)
    if pooled is None or not 0 < chance < 1:
        return None
    acc, n = pooled
    z = (acc - chance) / math.sqrt(chance * (1 - chance) / n)
    skill = (acc - chance) / (1 - chance)
    if z < th["skill_z"] or skill < th["shallow_skill"]:
        return None
    depth = (rec.summary or {}).get("depth")
    params = (rec.summary or {}).get("params") or (rec.costs or {}).get("params")
    return {"trial": rec.number, "summary": _describe(rec), "val_accuracy": acc,
            "chance_accuracy": chance, "n_val": n, "z": z, "skill": skill,
            "params": int(params) if isinstance(params, int | float) else None,
            "depth": int(depth) if isinstance(depth, int | float) else None}


def study_peers(study: optuna.Study, digest: str, chance: float, *,
                exclude: int | None = None, task: str | None = None) -> dict[str, Any]:
    """The ``peers`` control: the COMPLETE trials on splits ``digest`` that learned (best
    first), ``checked`` how many were read. ``chance``: the study's chance accuracy on those
    splits (the shallow baseline's)."""
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    same = [rec for rec in map(read_record, trials)
            if rec.number != exclude and (rec.splits or {}).get("digest") == digest]
    learned = sorted((e for rec in same if (e := peer_entry(rec, chance, task)) is not None),
                     key=lambda e: -e["val_accuracy"])
    return {"splits": digest, "checked": len(same), "learned": learned[:KEEP], "task": task}


def reread_verdict(diagnosis: dict[str, Any], peers: dict[str, Any],
                   size: dict[str, Any] | None = None) -> dict[str, Any]:
    """A stored diagnosis read again with the study as it stands: a data-limited or undecided
    plateau beside a trial that learned (on the same splits) becomes ``undertrained``, naming
    that trial; any other verdict is returned unchanged."""
    from nasdepth.diagnosis.capable import learner_figure, too_big_advice

    learned = peers.get("learned") or []
    if diagnosis.get("verdict") not in ("data_limited_plateau", "undecided_plateau") or \
            not learned:
        return diagnosis
    learner = {"kind": "trial", **learned[0]}
    advice = [f"the data carry signal: {learner_figure(learner)}; this run has not fitted "
              "it (read again with the study as it stands: it was "
              f"{diagnosis['verdict']})"]
    big = too_big_advice(size, {"peers": peers}, learner)
    if big:
        advice.append(big)
    controls = {**(diagnosis.get("controls") or {}), "peers": peers}
    return {**diagnosis, "verdict": "undertrained", "confidence": 0.8, "basis": [],
            "advice": advice + [a for a in diagnosis.get("advice", [])
                                if not a.startswith(("undecided", "the gradients reach"))],
            "controls": controls}


def splits_chance(data: Any, splits: Any) -> float:
    """The accuracy of predicting each training fold's majority class on its validation fold,
    pooled over ``splits`` (the shallow baseline's chance)."""
    import numpy as np

    y = data.y_numpy
    hits = n = 0
    for tr, va in splits:
        hits += int((y[va] == int(np.bincount(y[tr]).argmax())).sum())
        n += len(va)
    return hits / max(1, n)


def study_controls(study: optuna.Study, data: Any, splits: Any, *,
                   exclude: int | None = None) -> dict[str, Any]:
    """What ``diagnose --study`` passes as ``precomputed``: the study's trials that learned on
    ``splits`` (as it stands now) and the reference network's result where the study ran it."""
    out: dict[str, Any] = {"peers": study_peers(study, splits.digest,
                                                splits_chance(data, splits), exclude=exclude)}
    ref = stored(study, "reference", splits.digest)
    if ref is not None:
        out["reference"] = ref
    return out


def study_verdicts(study: optuna.Study) -> dict[int, dict[str, Any]]:
    """Stored plateau verdicts (data-limited, undecided) read again with the study as it
    stands: trial number -> the updated diagnosis, for the trials whose verdict a trial that
    learned later (on the same splits) overturns. A report rebuilt after more trials finished
    reads these instead of the stored ones."""
    out: dict[int, dict[str, Any]] = {}
    trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    records = [read_record(t) for t in trials]
    for rec in records:
        d = rec.diagnosis
        if not isinstance(d, dict) or d.get("verdict") not in ("data_limited_plateau",
                                                               "undecided_plateau"):
            continue
        digest = (rec.splits or {}).get("digest")
        chance = ((d.get("controls") or {}).get("shallow") or {}).get("chance_accuracy")
        if not digest or not isinstance(chance, int | float):
            continue
        learned = [e for r in records if r.number != rec.number
                   and (r.splits or {}).get("digest") == digest
                   for e in [peer_entry(r, float(chance))] if e is not None]
        if learned:
            learned.sort(key=lambda e: -e["val_accuracy"])
            size = {"params": (rec.summary or {}).get("params"),
                    "depth": (rec.summary or {}).get("depth")}
            out[rec.number] = reread_verdict(
                d, {"splits": digest, "learned": learned[:KEEP], "checked": len(records)},
                size)
    return out


def task_controls(study: optuna.Study, splits: Any, shallow: dict[str, dict[str, Any]], *,
                  exclude: int | None = None) -> dict[str, dict[str, Any]]:
    """A multitask study's ``precomputed`` per task: each task's shallow baseline and the
    trials that learned that task (its own fold column) on the same splits."""
    return {task: {"shallow": base,
                   "peers": study_peers(study, splits.digest,
                                        float(base.get("chance_accuracy") or 0.0),
                                        exclude=exclude, task=task)}
            for task, base in shallow.items()}
