"""``run_study``: one worker in this process, or several local worker processes on one
study storage.

Each worker is a fresh (spawned) process running :func:`run_worker` on the same storage; the
budget accounting of the runner makes them stop together at exactly the budget. On the CPU the
cores are divided between workers (one intra-op pool each: two processes that each use every
core can run many times slower, see PERF_NOTES); with several GPUs each worker sees one GPU.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import optuna
import torch
from tqdm.auto import tqdm

from nasdepth.errors import NasdepthError
from nasdepth.study.distinct import ENV, claim_worker_indexes, index_from_env
from nasdepth.study.runner import (
    _requeue_interrupted,
    count_trials,
    effective_budget,
    open_study,
    prepare,
    run_worker,
)
from nasdepth.study.study_file import StudyConfig, load_study

JOIN_AFTER_INTERRUPT_S = 120


def run_study(
    study: str | Path | StudyConfig,
    *,
    trials: int | None = None,
    storage: str | None = None,
    progress: bool = True,
    workers: int = 1,
    probes: bool = True,
    max_failures: int = 5,
    allow_changes: bool = False,
    run_id: str | None = None,
    worker_index: int | None = None,
) -> optuna.Study:
    """Run ``study`` (a YAML path or a loaded config) until ``trials`` trials have finished in
    its storage (the budget counts the trials of earlier runs: a rerun resumes).

    ``workers > 1`` starts that many local worker processes on the same storage
    (:func:`run_workers`). A worker stops after ``max_failures`` failed trials in a row (a
    broken setup should not loop). Ctrl-C records the running trial as failed (it is queued
    again on resume) and raises ``KeyboardInterrupt``. ``allow_changes`` accepts a resume
    under other data, CV or training settings (see :mod:`nasdepth.study.identity`);
    ``run_id`` is stored with every trial this run starts (see
    :func:`nasdepth.study.runner.run_outcome`). ``worker_index`` picks this worker's sampler
    stream (see :mod:`nasdepth.study.distinct`; default: ``NASDEPTH_WORKER_INDEX``, else
    claimed in the storage).
    """
    if isinstance(study, StudyConfig):
        cfg = replace(study, trials=trials or study.trials, storage=storage or study.storage)
    else:
        cfg = load_study(study, {"budget": {"trials": trials}, "storage": storage})
    if worker_index is not None and workers > 1:
        raise NasdepthError("--worker-index names one worker; --workers N numbers its N "
                            "workers itself. Give one of them.")
    if workers > 1:
        return run_workers(cfg, workers=workers, progress=progress, probes=probes,
                           max_failures=max_failures, allow_changes=allow_changes,
                           run_id=run_id)
    with _env(**{ENV: None if worker_index is None else str(worker_index)}):
        if worker_index is not None:
            index_from_env("--worker-index")  # checked here, named as the flag
        return run_worker(cfg, progress=progress, probes=probes, max_failures=max_failures,
                          allow_changes=allow_changes, run_id=run_id)


def _worker_main(cfg: StudyConfig, workers: int, probes: bool, max_failures: int,
                 allow_changes: bool = False, run_id: str | None = None) -> None:
    try:
        run_worker(cfg, progress=False, probes=probes, max_failures=max_failures,
                   threads_for=workers, requeue=False, allow_changes=allow_changes,
                   run_id=run_id)
    except KeyboardInterrupt:
        pass  # the running trial is recorded failed (and retried on resume)


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    """Environment for a child about to start (spawned children copy it at start)."""
    old = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        if v is not None:
            os.environ[k] = v
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def worker_env(index: int, workers: int, device: str) -> dict[str, str | None]:
    """Threads and GPU of worker ``index``: one GPU per worker where there are several."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env: dict[str, str | None] = {"OMP_NUM_THREADS": str(max(1, (cores or 1) // workers))}
    gpus = torch.cuda.device_count() if device in ("auto", "cuda") else 0
    if gpus > 1 and "CUDA_VISIBLE_DEVICES" not in os.environ:
        env["CUDA_VISIBLE_DEVICES"] = str(index % gpus)
    return env


def run_workers(cfg: StudyConfig, *, workers: int, progress: bool = True, probes: bool = True,
                max_failures: int = 5, allow_changes: bool = False, run_id: str | None = None
                ) -> optuna.Study:
    """Start ``workers`` local processes on ``cfg``'s storage and wait for them."""
    # checked and created once, before the workers race to it
    study = open_study(cfg, data=prepare(cfg), allow_changes=allow_changes)
    run_id = run_id or uuid.uuid4().hex
    _requeue_interrupted(study)
    # one sampler stream per worker: indexes claimed here, in order (docs/workers.md)
    indexes = claim_worker_indexes(study, workers)
    ctx = mp.get_context("spawn")  # fork after torch/threads are up is unsafe
    procs = []
    for i in range(workers):
        with _env(**worker_env(i, workers, cfg.training.device), **{ENV: str(indexes[i])}):
            p = ctx.Process(target=_worker_main, name=f"nasdepth-worker-{i}",
                            args=(cfg, workers, probes, max_failures, allow_changes, run_id))
            p.start()
        procs.append(p)
    budget = effective_budget(cfg)
    bar = tqdm(total=budget, desc=f"{cfg.name} trials ({workers} workers)", unit="trial",
               disable=not progress, dynamic_ncols=True)
    try:
        while any(p.is_alive() for p in procs):
            bar.n = min(count_trials(study)[0], budget)
            bar.refresh()
            time.sleep(1.0)
    except KeyboardInterrupt:
        for p in procs:  # a terminal sends SIGINT to all; `kill -INT` to us only: forward it
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(JOIN_AFTER_INTERRUPT_S)
        raise
    finally:
        bar.n = min(count_trials(study)[0], budget)
        bar.close()
    for p in procs:
        p.join()
    return study
