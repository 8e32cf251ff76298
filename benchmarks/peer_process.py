"""Where a benchmark runs the tool it compares against: a spawned child process of its own (the
default), or this process.

The engine tunes the process's ``malloc`` the first time it trains
(``nasdepth.train.host_memory``), which would speed up a peer in the same process too; a peer's
users run it without that, so the benchmarks run it apart. ``same_process=True`` (each
benchmark's ``--same-process``) runs it here instead, and so shows the engine's lead over a
peer that tunes ``malloc`` alike. Functions given to :meth:`PeerProcess.call` must be
module-level (they are pickled by name) and time themselves where they run.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any


class PeerProcess:
    """One worker process (or none) for a benchmark's peer; use it as a context manager."""

    def __init__(self, same_process: bool = False,
                 initializer: Callable[[], None] | None = None) -> None:
        self.pool = None if same_process else multiprocessing.get_context("spawn").Pool(
            1, initializer=initializer)

    @property
    def where(self) -> str:
        return "in this process" if self.pool is None else "in a child process"

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return fn(*args) if self.pool is None else self.pool.apply(fn, args)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
            self.pool.join()
            self.pool = None

    def __enter__(self) -> PeerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
