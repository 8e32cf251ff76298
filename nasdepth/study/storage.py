"""Storages: a journal file by default (safe for several local processes), PostgreSQL/MySQL/
SQLite through Optuna's RDB storage with heartbeats, Redis through a journal backend.

Errors name the URL with its password masked, in one line: URLs end up in shell histories and
CI logs, their passwords must not end up in our messages too.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from nasdepth.errors import ConfigError, NasdepthError

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
REDIS_SCHEMES = ("redis", "rediss")
CONNECT_TIMEOUT_S = 5


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)


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
    """``postgres(ql)://`` with the driver that is installed: SQLAlchemy 2.1 picks psycopg 3
    for a bare ``postgresql://``, while many installs (ours) have psycopg2 only."""
    scheme, rest = url.split("://", 1)
    if scheme not in ("postgresql", "postgres"):
        return url
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
        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(url))
    _check_url(url)
    if kind == "rdb":
        url = _driver_url(url)
    try:
        if kind == "redis":
            import redis

            client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_S)
            client.ping()
            with warnings.catch_warnings():  # chosen on purpose: no "experimental" noise
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return JournalStorage(JournalRedisBackend(url))
        engine_kwargs = {}
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
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                              **heartbeat)  # type: ignore[arg-type]
    except NasdepthError:
        raise
    except Exception as exc:  # driver errors differ per backend; all mean "cannot use it"
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        secret = urlsplit(url).password
        if secret:
            detail = detail.replace(secret, "***")
        raise NasdepthError(f"Cannot open the storage {redact(url)}: {detail[:200]}") from None
