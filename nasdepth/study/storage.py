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

import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import optuna
from optuna.storages import JournalStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

from nasdepth.errors import ConfigError, NasdepthError, UnknownNameError
from nasdepth.redact import KEYWORD_RE, redact, scrub
from nasdepth.study.journal import check_journal, locate_damage

RDB_SCHEMES = ("postgresql", "postgres", "mysql", "sqlite")
REDIS_SCHEMES = ("redis", "rediss")
CONNECT_TIMEOUT_S = 5
#: one key for the schema lock of every nasdepth worker ("nasdepth" in ASCII)
SCHEMA_LOCK_KEY = 0x6E61736465707468 % 2**63
SCHEMA_RACE_RETRIES = 5

__all__ = ["make_storage", "redact", "storage_kind", "storage_url"]


#: libpq's connection keywords (PostgreSQL 17, "Parameter Key Words")
LIBPQ_KEYWORDS = (
    "host", "hostaddr", "port", "dbname", "user", "password", "passfile", "require_auth",
    "channel_binding", "connect_timeout", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "replication", "gssencmode", "sslmode",
    "requiressl", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword",
    "sslcertmode", "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "requirepeer",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "krbsrvname", "gsslib",
    "gssdelegation", "service", "target_session_attrs", "load_balance_hosts")


def _keyword_pairs(text: str) -> list[tuple[str, str]] | None:
    """``[(key, value), ...]`` of a libpq keyword/value string (``host=db dbname=x``, values
    quoted '...' with backslash escapes), or None where ``text`` is not one."""
    pairs, pos, text = [], 0, text.strip()
    while pos < len(text):
        m = KEYWORD_RE.match(text, pos)
        if m is None or not m.group(2):
            return None
        value = m.group(3)
        if value.startswith("'"):
            if len(value) < 2 or not value.endswith("'"):
                return None
            value = value[1:-1]
        pairs.append((m.group(1), re.sub(r"\\(.)", r"\1", value)))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return pairs or None


def storage_url(text: str) -> str:
    """``text`` as a storage URL: libpq's keyword/value form (``host=db port=5432 dbname=x
    user=u password=...``, as ``psql`` takes it) becomes the ``postgresql://`` URI it means;
    URIs and journal paths come back as they are. A string with a password that is neither is
    refused: it would otherwise become a journal file named after the password."""
    if "://" in text or "=" not in text:
        return text
    pairs = _keyword_pairs(text)
    keys = [k for k, _ in pairs or []]
    if pairs is None or keys[0] not in LIBPQ_KEYWORDS:
        if any(w in text.lower() for w in ("password", "passwd", "secret", "token")):
            if pairs is not None:  # a misspelt first keyword ("hots=db password=...")
                raise UnknownNameError("the storage", "connection keyword", keys[0],
                                       LIBPQ_KEYWORDS)
            raise ConfigError("the storage", "storage", redact(text),
                              "a journal file path, a URL (postgresql://...), or libpq "
                              "keywords such as 'host=db dbname=x user=u password=...'")
        return text  # a file name that holds '=' (runs/lr=0.1.journal)
    for key in keys:
        if key not in LIBPQ_KEYWORDS:
            raise UnknownNameError("the storage", "connection keyword", key, LIBPQ_KEYWORDS)
    given = dict(pairs)
    netloc = ""
    if "user" in given:
        netloc = quote(given.pop("user"), safe="")
        if "password" in given:
            netloc += ":" + quote(given.pop("password"), safe="")
        netloc += "@"
    host, port = given.get("host", ""), given.get("port", "")
    if "," not in host and "," not in port and not host.startswith("/"):
        given.pop("host", None)
        given.pop("port", None)
        netloc += quote(host, safe=".-_[]:") + (f":{port}" if port else "")
    path = "/" + quote(given.pop("dbname"), safe="") if "dbname" in given else "/"
    query = urlencode(given) if given else ""
    return f"postgresql://{netloc}{path}{'?' + query if query else ''}"


def storage_kind(url: str) -> str:
    """``journal``, ``rdb`` or ``redis`` (raises on anything else)."""
    url = storage_url(url)
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
    scheme = parts.scheme.split("+")[0]
    # libpq: no host is the local socket, or the host is in the query (several hosts)
    if scheme != "sqlite" and not parts.hostname and not scheme.startswith("postgres"):
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
    ``redis://`` -> journal storage on Redis; libpq's ``host=... dbname=...`` keyword form ->
    the PostgreSQL storage it names (:func:`storage_url`)."""
    url = storage_url(url)
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
