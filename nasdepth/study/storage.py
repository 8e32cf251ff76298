"""Storages: a journal file by default (safe for several local processes), PostgreSQL/MySQL/
SQLite through Optuna's RDB storage with heartbeats, Redis through a journal backend.

Errors name the URL with its password masked, in one line: URLs end up in shell histories and
CI logs, their passwords must not end up in our messages too (:mod:`nasdepth.redact`).

Workers that start at the same instant on a fresh PostgreSQL database would each create the
schema at once (``UniqueViolation ... pg_type_typname_nsp_index``): the storage is created under
a PostgreSQL advisory lock, and any backend retries a schema race a few times. A journal file is
checked on open (:mod:`nasdepth.study.journal`): a damaged last record is set aside with a
backup, never appended to.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from nasdepth.errors import ConfigError, NasdepthError
from nasdepth.redact import redact, scrub
from nasdepth.study.journal import check_journal, locate_damage

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
REDIS_SCHEMES = ("redis", "rediss")
CONNECT_TIMEOUT_S = 5
#: one key for the schema lock of every nasdepth worker ("nasdepth" in ASCII)
SCHEMA_LOCK_KEY = 0x6E61736465707468 % 2**63
SCHEMA_RACE_RETRIES = 5

__all__ = ["make_storage", "redact", "storage_kind"]


def storage_kind(url: str) -> str:
    """``journal``, ``rdb`` or ``redis`` (raises on anything else)."""
    if "://" not in url:
        return "journal"
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower()
    if scheme in RDB_SCHEMES:
        return "rdb"
    if scheme in REDIS_SCHEMES:
        return "redis"
    raise ConfigError("the study", "storage", redact(url),
                      "a journal file path or a postgresql://, mysql://, sqlite:///, "
                      "redis:// URL")


def _check_url(url: str) -> None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError("the study", "storage", redact(url), "a well-formed URL") from None
    if parts.scheme.split("+")[0] != "sqlite" and not parts.hostname:
        raise ConfigError("the study", "storage", redact(url), "a URL with a host name")


def _driver_url(url: str) -> str:
    """The URL as the driver needs it: the password percent-encoded (a password may hold
    ``@`` or ``:``; drivers split at the first ``@``, we at the last), and ``postgres(ql)://``
    with the driver that is installed (SQLAlchemy 2.1 picks psycopg 3 for a bare
    ``postgresql://``, while many installs, ours, have psycopg2 only)."""
    scheme, rest = url.split("://", 1)
    head, sep, query = rest.partition("?")
    at = head.rfind("@")
    if at >= 0 and ":" in head[:at]:
        user, password = head[:at].split(":", 1)
        head = f"{user}:{quote(unquote(password), safe='')}{head[at:]}"
    rest = head + sep + query
    if scheme not in ("postgresql", "postgres"):
        return f"{scheme}://{rest}"
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def make_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None, max_retry: int = 3
                 ) -> optuna.storages.BaseStorage:
    """``path/to/file.journal`` (or any path without ``://``) -> journal file storage;
    ``postgresql://``, ``mysql://``, ``sqlite:///`` -> RDB storage (with heartbeats when
    ``heartbeat_interval`` is given: a trial whose worker died is failed after
    ``grace_period`` seconds and queued again, at most ``max_retry`` times);
    ``redis://`` -> journal storage on Redis."""
    kind = storage_kind(url)
    if kind == "journal":
        return _journal_storage(url)
    _check_url(url)
    given = url
    url = _driver_url(url)
    try:
        if kind == "redis":
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
            client.ping()
            with warnings.catch_warnings():  # chosen on purpose: no "experimental" noise
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return JournalStorage(JournalRedisBackend(url))
        engine_kwargs: dict[str, Any] = {}
        if url.startswith(("postgres", "mysql")):
            engine_kwargs = {"connect_args": {"connect_timeout": CONNECT_TIMEOUT_S}}
        with warnings.catch_warnings():  # heartbeats are "experimental" since Optuna 2.8
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            heartbeat = {}
            if heartbeat_interval is not None and not url.startswith("sqlite"):
                heartbeat = {
                    "heartbeat_interval": heartbeat_interval,
                    "grace_period": grace_period or 3 * heartbeat_interval,
                    "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(
                        max_retry=max_retry),
                }

            def create() -> optuna.storages.BaseStorage:
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  **heartbeat)  # type: ignore[arg-type]

            return _create_schema_safely(url, create, engine_kwargs)
    except NasdepthError:
        raise
    except Exception as exc:  # driver errors differ per backend; all mean "cannot use it"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        detail = scrub(scrub(detail, url), given)
        raise NasdepthError(f"Cannot open the storage {redact(given)}: {detail[:200]}") from None


def _journal_storage(path: str) -> JournalStorage:
    """A journal file, its folder created; a damaged file is set aside or refused first."""
    where = Path(path)
    if where.is_dir():
        raise NasdepthError(f"The storage {path} is a folder; give a journal file path such as "
                            f"{where / 'study.journal'}.")
    try:
        where.parent.mkdir(parents=True, exist_ok=True)
        backend = JournalFileBackend(path)
    except OSError as exc:
        raise NasdepthError(f"Cannot create the journal file {path}: "
                            f"{exc.strerror or type(exc).__name__}"
                            f"{f' ({exc.filename})' if exc.filename else ''}.") from None
    check_journal(where, backend._lock)
    try:
        return JournalStorage(backend)
    except (ValueError, KeyError, IndexError, TypeError) as exc:  # what a bad record raises
        damage = locate_damage(where)
        if damage is not None:
            raise damage from None
        raise NasdepthError(f"The journal {path} cannot be read ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); is it an Optuna journal file?") from None


def _is_schema_race(exc: BaseException) -> bool:
    """Two workers created the same table or type at once (any driver, any backend)."""
    text = f"{type(exc).__name__} {exc}".lower()
    return any(s in text for s in ("uniqueviolation", "already exists", "duplicate key",
                                   "pg_type_typname_nsp_index", "duplicatetable"))


def _create_schema_safely(url: str, create: Callable[[], optuna.storages.BaseStorage],
                          engine_kwargs: dict[str, Any]) -> optuna.storages.BaseStorage:
    """``create()`` (which makes the tables where missing) under a PostgreSQL advisory lock,
    retried on a schema race elsewhere: simultaneous workers on a fresh database all start."""
    for attempt in range(SCHEMA_RACE_RETRIES):
        try:
            if url.startswith("postgres"):
                with _advisory_lock(url, engine_kwargs):
                    return create()
            return create()
        except Exception as exc:
            if not _is_schema_race(exc) or attempt == SCHEMA_RACE_RETRIES - 1:
                raise
            time.sleep(0.2 * (attempt + 1))  # the other worker finishes its schema meanwhile
    raise AssertionError("unreachable")


@contextmanager
def _advisory_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """``pg_advisory_lock`` on a connection of its own, held while the schema is created (the
    lock goes with the connection, so a worker killed meanwhile releases it too)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool, **engine_kwargs)
    try:
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": SCHEMA_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:k)"),
                             {"k": SCHEMA_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()
