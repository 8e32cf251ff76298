"""Screening: a finite space's candidates trained briefly on one fold, then run in order of
promise.

A study whose budget covers every candidate of a finite space runs them all anyway; only the
order is left to choose, and the order decides how soon the study has a good answer (a user who
stops early, a ``timeout:``, the progress bar's ``best``). The default sampler cannot order
them: TPE draws its first ``startup_trials`` (10) at random, which on a 12-point space is the
whole space in a random order. So before the first trial, each candidate trains on the study's
first split for :func:`screen_epochs` epochs (its own recipe, the schedule fitted to the short
budget, the same seed as that fold of its full CV) and the candidates are queued
(``enqueue_trial``) best first. The trials then run exactly as they would have, full CV,
probes and diagnosis included: results are unchanged, only their order is. The screen costs
``screen_epochs / (folds x epochs)`` of a study (8% at 5 folds x 5 epochs). Measured on the
digits CNN grid, the first trial after the screen was within 0.5 points of the grid's best
(``docs/studies.md``, "Screening").

``screen: auto`` (default) screens where that holds: a finite space of at most
:data:`AUTO_LIMIT` candidates that the trial budget covers, one objective, single-task
candidates trained from scratch at the study's resolution, a sampler that chooses an order
(not ``grid``/``bruteforce``, which enumerate on purpose), at least 3 epochs (a shorter budget
leaves no shorter screen), and a fresh study. ``screen: on`` also screens a finite space larger
than the budget, where the screen costs less than the study's trials would, and queues its
best ``budget`` candidates (the rest is left to the sampler);
``screen: off`` never screens. The screen's scores are stored with the study (user attribute
``screen``); the runner and the report read them from there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import optuna

from nasdepth.data import Dataset
from nasdepth.data.folds import Splits
from nasdepth.study.study_file import StudyConfig
from nasdepth.train import LOWER_IS_BETTER, cross_validate

#: the study user attribute that holds the screen's scores
SCREEN_ATTR = "screen"
#: ``auto`` screens spaces of at most this many candidates
AUTO_LIMIT = 256
#: samplers that enumerate a grid in an order of their own: ``auto`` leaves them alone
ENUMERATING = ("grid", "bruteforce")


def screen_epochs(epochs: int) -> int:
    """The screen's epochs for a study of ``epochs``: a quarter, at least 2 (after one epoch
    most candidates are still near chance, deep plain CNNs on digits at 0.11-0.25, so the order
    below the top is mostly noise: on the 12-CNN digits grid a 1-epoch screen put the grid's
    three answers at ranks 1, 5 and 8, a 2-epoch screen at 1, 5 and 6)."""
    return max(2, math.ceil(epochs / 4))


def screen_plan(cfg: StudyConfig, budget: int) -> tuple[list[dict[str, Any]], str]:
    """The candidates (Optuna parameters, encoded as the study stores them) a study screens,
    with the reason; an empty list and why not where it does not screen."""
    mode = cfg.screen
    if mode == "off":
        return [], "screen: off"
    if len(cfg.objectives) > 1:
        return [], "several objectives"
    if cfg.tasks is not None or cfg.transfer is not None or cfg.space.scaling is not None:
        return [], "multitask, transfer and scaling studies are not screened"
    if cfg.training.epochs < 3:
        return [], f"{cfg.training.epochs} epochs leave no shorter screen"
    if mode == "auto" and cfg.sampler in ENUMERATING:
        return [], f"the {cfg.sampler} sampler enumerates the space itself"
    bound = cfg.space.bound()
    if bound is None:
        return [], "the space is infinite"
    if bound > AUTO_LIMIT and mode == "auto":
        return [], f"more than {AUTO_LIMIT} candidates"
    # in fold-epochs: a screen that costs more than the study itself is no shortcut
    study_cost = budget * cfg.cv.n_splits * cfg.training.epochs
    if bound * screen_epochs(cfg.training.epochs) > study_cost:
        return [], (f"screening up to {bound} candidates would cost more than the study's "
                    f"{budget} trials")
    combos = cfg.space.grid(limit=max(AUTO_LIMIT, bound)) or []
    params = {p.key: p for p in cfg.space.params}
    grid = [{k: params[k].encode(v) for k, v in c.items() if params[k].kind != "fixed"}
            for c in combos]
    if mode == "auto" and len(grid) > budget:
        return [], f"the budget ({budget} trials) covers {budget} of {len(grid)} candidates"
    return grid, "screened"


def run_screen(study: optuna.Study, cfg: StudyConfig, data: Dataset, splits: Splits,
               budget: int, *, progress: Callable[[int, int, float | None], None] | None = None,
               run_id: str | None = None, deadline: float | None = None
               ) -> dict[str, Any] | None:
    """Screen ``cfg``'s candidates and queue them best first in ``study``; the screen's record
    (also stored as the study's ``screen`` attribute), or None where the study is not screened
    (:func:`screen_plan`), already was, or has trials (a resume, another worker's). Past
    ``deadline`` (``time.monotonic()``; the study's ``timeout:``) no further candidate is
    screened: those screened are queued, the rest is left to the sampler."""
    from nasdepth.study.candidates import recipe_params, suggest_candidate

    if SCREEN_ATTR in study.user_attrs:
        return None
    grid, _ = screen_plan(cfg, budget)
    if not grid or study.get_trials(deepcopy=False):
        return None
    one = splits.with_folds(splits.folds[:1])
    lower = cfg.objective.endswith(LOWER_IS_BETTER)
    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    for i, params in enumerate(grid):
        if i and deadline is not None and time.monotonic() > deadline:
            break
        trial = optuna.trial.FixedTrial(params)
        training = cfg.space.training(recipe_params(cfg, params), cfg.training)
        training = replace(training, epochs=screen_epochs(training.epochs))
        t0 = time.perf_counter()
        score: float | None
        failed: str | None = None
        try:
            cand = suggest_candidate(cfg, trial, data)
            result = cross_validate(cand, data, cv=one, seed=cfg.cv_seed, training=training,
                                    source=str(cfg.path))
            score = float(result.mean(cfg.objective))
            if not math.isfinite(score):
                score = None
        except Exception as exc:  # the trial itself will fail and record why
            score, failed = None, f"{type(exc).__name__}: {str(exc)[:200]}"
        rows.append({"params": params, "score": score, "epochs": training.epochs,
                     "seconds": time.perf_counter() - t0,
                     **({"failed": failed} if failed else {})})
        if progress is not None:
            progress(i, len(grid), score)

    def rank_key(item: tuple[int, dict[str, Any]]) -> tuple[int, float, int]:
        i, row = item
        s = row["score"]
        return (s is None, 0.0 if s is None else (s if lower else -s), i)

    order = [i for i, _ in sorted(enumerate(rows), key=rank_key)]
    for rank, i in enumerate(order):
        rows[i]["rank"] = rank
    out = {"epochs": screen_epochs(cfg.training.epochs), "split": 0,
           "objective": cfg.objective, "seconds": time.perf_counter() - start,
           "queued": min(len(order), budget), "run_id": run_id, "candidates": len(grid),
           "rows": rows}
    study.set_user_attr(SCREEN_ATTR, out)
    taken = [t.params for t in study.get_trials(deepcopy=False)]
    for i in order[:budget]:  # another worker may have started some meanwhile
        if rows[i]["params"] not in taken:
            study.enqueue_trial(rows[i]["params"], skip_if_exists=True)
    return out


def screen_line(screen: dict[str, Any]) -> str:
    """One line on a stored screen (the study's ``screen`` attribute) for the command line."""
    rows = screen.get("rows") or []
    top = min(rows, key=lambda r: r["rank"])
    shown = ", ".join(f"{k}={v}" for k, v in top["params"].items())
    score = "failed" if top["score"] is None else f"{top['score']:.4f}"
    return (f"Screened {len(rows)} candidates on split {screen.get('split', 0)} for "
            f"{screen['epochs']} epochs in {screen['seconds']:.1f} s; queued best first "
            f"(first: {shown}, screen {screen['objective']} {score}).")


def screen_of_run(study: optuna.Study, run_id: str) -> dict[str, Any] | None:
    """The study's screen where the run ``run_id`` made it, else None."""
    screen = study.user_attrs.get(SCREEN_ATTR) or {}
    return screen if screen.get("run_id") == run_id else None
