"""Distinct candidates across workers: one sampler stream per worker, and a candidate that a
running trial holds counts as taken.

Every worker on a study used to seed its sampler with the study's seed, so N workers drew the
same sequence and trained it N times at once. Now worker ``i`` seeds its sampler with
:func:`worker_seed` (``seed`` itself for worker 0, so one worker alone draws what it always
drew). The index comes from ``NASDEPTH_WORKER_INDEX`` (``--worker-index``, or set by
``--workers N`` for its children), else is claimed in the storage in the order workers open the
study (:func:`claim_worker_indexes`): the first worker of a fresh study is worker 0, a later run
(a resume) gets a stream of its own instead of redrawing the first run's candidates.

Even with distinct streams two workers can draw the same candidate (a small space, TPE
converging). A trial whose parameters another RUNNING trial already holds under the same
settings gives the candidate up (:class:`CandidateTaken`: recorded failed with its reason, not
counted in the budget) and the worker draws again; after :data:`MAX_REDRAWS` such draws in a row
(the space is nearly exhausted) it waits for the holder instead and copies its scores as a twin.
See ``docs/workers.md``.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable

import optuna
from optuna.trial import TrialState

from nasdepth.errors import ConfigError
from nasdepth.study.study_file import StudyConfig

ENV = "NASDEPTH_WORKER_INDEX"
#: the study system attribute prefix of a claimed worker slot
SLOT_PREFIX = "nasdepth_worker:"
#: candidates given up in a row before a worker waits for the holder instead
MAX_REDRAWS = 5
TAKEN = "candidate taken by running trial"
POLL_S = 0.5

#: this process's worker index and sampler seed, once known (stored in every trial's record)
CURRENT: dict[str, int] = {}
_redraws = [0]


class CandidateTaken(Exception):
    """Another running trial trains this candidate under the same settings."""


def worker_seed(seed: int, index: int) -> int:
    """The sampler seed of worker ``index`` on a study seeded ``seed``: ``seed`` for worker 0,
    else a stable hash of both (the same on every machine and Python)."""
    if index == 0:
        return seed
    digest = hashlib.blake2b(f"nasdepth-worker:{seed}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 2**31


def index_from_env(source: str = f"the environment variable {ENV}") -> int | None:
    """The worker index given by ``NASDEPTH_WORKER_INDEX`` (``--worker-index``), if any."""
    raw = os.environ.get(ENV)
    if raw is None or raw.strip() == "":
        return None
    try:
        index = int(raw)
    except ValueError:
        index = -1
    if index < 0 or index > 1_000_000:
        raise ConfigError(source, "worker index", raw, "an int from 0 to 1000000")
    return index


def claim_worker_indexes(study: optuna.Study, n: int = 1) -> list[int]:
    """``n`` worker slots of ``study``, claimed in its storage: ranks in the order the claims
    were written (workers that start at once on one host get distinct, dense ranks)."""
    storage, sid = study._storage, study._study_id
    mine = [f"{SLOT_PREFIX}{uuid.uuid4().hex}" for _ in range(n)]
    for key in mine:
        storage.set_study_system_attr(sid, key, time.time())
    slots = sorted((float(v), k) for k, v in storage.get_study_system_attrs(sid).items()
                   if k.startswith(SLOT_PREFIX))
    order = [k for _, k in slots]
    return [order.index(k) for k in mine]


def use_worker_sampler(study: optuna.Study, cfg: StudyConfig, index: int | None = None) -> int:
    """Give ``study`` this worker's sampler: the study's sampler seeded for this worker's
    index (``index``, else the environment, else claimed in the storage). Returns the index."""
    from nasdepth.study.registry import SamplerContext, make_sampler

    if index is None:
        index = index_from_env()
    if index is None:
        index = claim_worker_indexes(study)[0]
    own = worker_seed(cfg.seed, index)
    ctx = SamplerContext(seed=own, space=cfg.space)
    study.sampler = make_sampler(cfg.sampler, cfg.sampler_options, ctx, str(cfg.path))
    CURRENT.clear()
    CURRENT.update({"index": index, "sampler_seed": own})
    return index


def same_candidate(trial: optuna.Trial, state: TrialState,
                   usable: Callable[[optuna.trial.FrozenTrial], bool] = lambda t: True
                   ) -> optuna.trial.FrozenTrial | None:
    """Another trial in ``state`` with exactly this trial's parameters, trained under the same
    settings (``settings_id``: data, CV, recipe), where ``usable``."""
    from nasdepth.study.record import read_record

    params, settings = trial.params, read_record(trial).settings_id
    return next((t for t in trial.study.get_trials(deepcopy=False, states=(state,))
                 if t.number != trial.number and t.params == params
                 and read_record(t).settings_id == settings and usable(t)), None)


def worker_alive(t: optuna.trial.FrozenTrial) -> bool:
    """False when ``t``'s worker ran on this host and its process is gone (SIGKILL, OOM
    killer); another user's process counts as alive."""
    from nasdepth.study.record import read_record

    w = read_record(t).worker or {}
    if w.get("host") != socket.gethostname() or not isinstance(w.get("pid"), int):
        return True
    try:
        os.kill(w["pid"], 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def claim_candidate(trial: optuna.Trial) -> None:
    """Call once the trial's parameters are drawn: raises :class:`CandidateTaken` when another
    running trial holds them (at most :data:`MAX_REDRAWS` times in a row in this process), else
    waits until that trial has finished (then its scores are copied as a twin)."""
    holder = same_candidate(trial, TrialState.RUNNING)
    if holder is None:
        _redraws[0] = 0
        return
    if _redraws[0] < MAX_REDRAWS:
        _redraws[0] += 1
        raise CandidateTaken(f"{TAKEN} {holder.number}; this worker draws another")
    # the lower number keeps the candidate: two workers never wait for each other
    while holder is not None and holder.number < trial.number and worker_alive(holder):
        time.sleep(POLL_S)
        holder = same_candidate(trial, TrialState.RUNNING)
    _redraws[0] = 0


def is_yielded(reason: object) -> bool:
    """Whether a trial's recorded failure reason is a candidate given up to a running twin
    (not a failure of the setup: workers do not count it)."""
    return TAKEN in str(reason or "")
