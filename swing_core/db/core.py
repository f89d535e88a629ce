"""Engines (SQLite WAL / PostgreSQL pool), clear database errors, schema versions (Alembic;
the head check, its config and lock in :mod:`swing_core.db.schema_version`)."""

from __future__ import annotations

import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL

from swing_core.config import Settings, get_settings
from swing_core.db.schema_version import (
    SCHEMA_HEAD,
    alembic_config,
    at_schema_head,
    migration_lock,
)
from swing_core.errors import DatabaseError
from swing_core.perf.timers import timed

#: Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a PostgreSQL server to accept a connection.
PG_CONNECT_TIMEOUT_S = 5

_P = ParamSpec("_P")
_R = TypeVar("_R")

_engines: dict[tuple[str, str | None, int], Engine] = {}
_engines_lock = threading.Lock()
_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines whose schema is at head
_migrate_lock = threading.Lock()


# --------------------------------------------------------------------------- URLs and errors


def _parse_url(url: str | URL) -> URL:
    """Parse ``url`` and pin the psycopg 3 driver for PostgreSQL URLs."""
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception as exc:  # sqlalchemy.exc.ArgumentError and friends
        raise DatabaseError(
            f"The database URL is not valid ({exc.__class__.__name__}). Set SWING_DATABASE_URL to "
            "e.g. postgresql+psycopg://user:password@host:5432/dbname, or unset it to use SQLite."
        ) from None
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed
    raise DatabaseError(
        f"Unsupported database {backend!r} in SWING_DATABASE_URL: SwingDesk supports SQLite "
        "(the default) and PostgreSQL (postgresql+psycopg://…)."
    )


def describe_database(url: str | URL | Engine | None = None) -> str:
    """Name the database for messages: ``SQLite file /path/x.sqlite`` or
    ``PostgreSQL postgres@host:5432/db``. Never contains the password."""
    if isinstance(url, Engine):
        url = url.url
    if url is None:
        url = get_settings().effective_database_url
    try:
        parsed = make_url(url) if isinstance(url, str) else url
    except Exception:
        return "an unparseable database URL"
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        db = parsed.database or ""
        return "SQLite in memory" if db in ("", ":memory:") else f"SQLite file {db}"
    user = f"{parsed.username}@" if parsed.username else ""
    port = f":{parsed.port}" if parsed.port else ""
    name = "PostgreSQL" if backend in ("postgresql", "postgres") else backend
    return f"{name} {user}{parsed.host or 'localhost'}{port}/{parsed.database or ''}"


def _reason(exc: BaseException, url: URL | None) -> str:
    """The driver's first message line, with any password scrubbed out."""
    orig = getattr(exc, "orig", None) or exc
    text = (str(orig).strip().splitlines() or [orig.__class__.__name__])[0]
    if url is not None and url.password:
        text = text.replace(str(url.password), "***")
    return text


def _sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of a driver error (psycopg), or None."""
    return getattr(getattr(exc, "orig", None) or exc, "sqlstate", None)


def _server_limit_error(exc: BaseException, where: str, url: URL | None) -> DatabaseError | None:
    """The message for a PostgreSQL session limit that stopped ``exc`` (statement timeout,
    idle-in-transaction timeout, a missing privilege), or None for any other error."""
    code, reason = _sqlstate(exc), _reason(exc, url)
    settings = get_settings()
    if code == "57014" and "statement timeout" in reason:
        return DatabaseError(
            f"A query on {where} ran longer than the statement timeout "
            f"({settings.db_statement_timeout_ms:,} ms) and was cancelled; a write in progress "
            "was rolled back whole. Retry; if this operation needs longer, raise "
            "SWING_DB_STATEMENT_TIMEOUT_MS (0 = no limit).")
    if code == "25P03" or "idle-in-transaction timeout" in reason:
        return DatabaseError(
            f"{where} closed a connection that stayed idle inside a transaction longer than "
            f"{settings.db_idle_in_transaction_timeout_ms:,} ms; its uncommitted work was "
            "rolled back. Retry; if this keeps happening, raise "
            "SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS (0 = no limit).")
    if code == "42501":
        return DatabaseError(
            f"Database error on {where}: {reason}. The database role lacks a privilege: grant "
            "it CONNECT, TEMPORARY on the database, USAGE on the schema, SELECT, INSERT, UPDATE, "
            "DELETE on its tables and USAGE, SELECT on its sequences (README: Deploying on "
            "PostgreSQL with least privilege).")
    return None


def _database_error(exc: BaseException, engine_or_url: Engine | URL | None) -> DatabaseError:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    where = describe_database(url) if url is not None else "the database"
    limit = _server_limit_error(exc, where, url)
    if limit is not None:
        return limit
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError):
        hint = (
            "Check that the server is running and SWING_DATABASE_URL is right."
            if url is not None and url.get_backend_name() != "sqlite"
            else "Check that the file's folder is writable (SWING_DATA_DIR) and not on a "
            "network share."
        )
        return DatabaseError(f"Cannot use {where}: {_reason(exc, url)}. {hint}")
    return DatabaseError(f"Database error on {where}: {_reason(exc, url)}.")


def _db_errors(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn SQLAlchemy/driver errors escaping ``func`` into one clear DatabaseError."""

    @functools.wraps(func)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except sa.exc.SQLAlchemyError as exc:
            engine = args[0] if args and isinstance(args[0], Engine) else None
            raise _database_error(exc, engine) from exc

    return wrapper


# --------------------------------------------------------------------------- engines


def _sqlite_setup(engine: Engine) -> None:
    """WAL + synchronous=NORMAL + busy timeout + foreign keys; explicit BEGIN so that write
    transactions can take the write lock up front (``BEGIN IMMEDIATE``)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
            if engine.url.database not in (None, "", ":memory:"):
                cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.execute("PRAGMA foreign_keys = ON")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def _pg_options(parsed: URL, settings: Settings, schema: str | None) -> str:
    """libpq ``options`` of every PostgreSQL connection: the URL's own ``options``, then the
    session timeouts of the settings (0 = no limit), then the ``schema``'s search path."""
    given = parsed.query.get("options") or ()
    parts = [given] if isinstance(given, str) else list(given)
    parts += [f"-c statement_timeout={settings.db_statement_timeout_ms}",
              "-c idle_in_transaction_session_timeout="
              f"{settings.db_idle_in_transaction_timeout_ms}"]
    if schema:
        parts.append(f"-c search_path={schema}")
    return " ".join(parts)


def make_engine(url: str | URL | None = None, *, schema: str | None = None) -> Engine:
    """A new (uncached) engine for ``url`` (default: the settings' database).

    ``schema`` (PostgreSQL only) sets the connection's ``search_path``: tables, the Alembic
    version table and queries all live in that schema (tests use a random one). Every PostgreSQL
    connection runs with ``statement_timeout`` and ``idle_in_transaction_session_timeout`` set
    from ``SWING_DB_STATEMENT_TIMEOUT_MS`` / ``SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS``.
    Nothing connects yet; a failing connection raises DatabaseError on first use.
    """
    settings = get_settings()
    parsed = _parse_url(url if url is not None else settings.effective_database_url)
    if parsed.get_backend_name() == "sqlite":
        if schema:
            raise DatabaseError("A schema can only be chosen on PostgreSQL, not on SQLite.")
        db = parsed.database
        if db and db != ":memory:" and not db.startswith("file:"):
            path = Path(db).expanduser()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise DatabaseError(
                    f"Cannot create the folder of SQLite file {path}: {exc.strerror}. Set "
                    "SWING_DATA_DIR to a writable folder."
                ) from None
        engine = sa.create_engine(
            parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
        )
        _sqlite_setup(engine)
        return engine
    connect_args = {"connect_timeout": PG_CONNECT_TIMEOUT_S,
                    "options": _pg_options(parsed, settings, schema)}
    return sa.create_engine(
        parsed,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_pre_ping=True,
        pool_recycle=settings.db_pool_recycle_s,
        connect_args=connect_args,
    )


def get_engine(url: str | URL | None = None, *, schema: str | None = None) -> Engine:
    """The shared engine for ``url`` (default: ``SWING_DATABASE_URL`` or the SQLite file under
    ``SWING_DATA_DIR``), cached per URL, schema and process (an engine is never reused across a
    fork)."""
    if url is None:
        url = get_settings().effective_database_url
    key = (str(url) if isinstance(url, str) else url.render_as_string(hide_password=False),
           schema, os.getpid())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = make_engine(url, schema=schema)
        return engine


def dispose_engines() -> None:
    """Close every cached engine's connections and forget them (tests, shutdown)."""
    with _engines_lock:
        for engine in _engines.values():
            _migrated.discard(engine)
            engine.dispose()
        _engines.clear()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one write transaction: committed on success, rolled back on any
    error (no partial batch survives). On SQLite it starts with ``BEGIN IMMEDIATE``, which
    waits (busy timeout) for another process's write instead of failing later."""
    with timed("db_write"), engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


# --------------------------------------------------------------------------- migrations


@functools.cache
def _revisions() -> tuple[str | None, frozenset[str]]:
    """The code's head revision and every revision it knows."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def _head_revision() -> str | None:
    return _revisions()[0]


def _current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class DatabaseStatus:
    """Where the database is and whether its schema is at the code's head revision."""

    description: str
    dialect: str
    current_revision: str | None
    head_revision: str | None

    @property
    def up_to_date(self) -> bool:
        return self.current_revision == self.head_revision


@_db_errors
def database_status(engine: Engine) -> DatabaseStatus:
    """Connect and report the schema revision (does not change anything)."""
    with engine.connect() as conn:
        current = _current_revision(conn)
    return DatabaseStatus(describe_database(engine), engine.dialect.name, current,
                          _head_revision())


def _schema_error(engine: Engine, current: str | None, why: str) -> DatabaseError:
    """The schema is not at the code's head and this process may not (or cannot) upgrade it."""
    where, head = describe_database(engine), _head_revision()
    if current is not None and current not in _revisions()[1]:
        return DatabaseError(
            f"The database schema of {where} is at revision {current}, which this version of "
            f"SwingDesk (revision {head}) does not know: a newer version upgraded it. Run the "
            "newer SwingDesk, or point SWING_DATABASE_URL at another database.")
    return DatabaseError(
        f"The database schema of {where} is at revision {current or 'none (no tables yet)'}, "
        f"this version needs {head}: run `python -m swing_core db upgrade` as the database "
        f"owner ({why}).")


@_db_errors
def init_db(engine: Engine | None = None, *, upgrade: bool | None = None) -> str | None:
    """Bring the schema up to date (Alembic ``upgrade head``); idempotent and cheap when
    already current (a read of the version table: no DDL, so a role with DML rights only works).
    Concurrent callers in several processes are serialized (SQLite write lock / PostgreSQL
    advisory lock): one upgrades, the others find it done. Returns the revision.

    ``upgrade``: may a schema behind the code be upgraded here: True for ``db upgrade``; None
    (the app at start) follows ``SWING_DB_AUTO_MIGRATE``. Raises DatabaseError naming both
    revisions and the command to run when it may not, or when the role lacks the privilege."""
    engine = engine if engine is not None else get_engine()
    # at the head (the common case): one plain SELECT, no Alembic import
    head = SCHEMA_HEAD if at_schema_head(engine) else _upgrade_to_head(engine, upgrade)
    with _migrate_lock:
        _migrated.add(engine)
    return head


def _upgrade_to_head(engine: Engine, upgrade: bool | None) -> str | None:
    """:func:`init_db` on a schema not known to be at the head, with Alembic."""
    head = _head_revision()
    with engine.connect() as conn:
        current = _current_revision(conn)
    if current != head:
        if current is not None and current not in _revisions()[1]:
            raise _schema_error(engine, current, "")
        if not (get_settings().db_auto_migrate if upgrade is None else upgrade):
            raise _schema_error(engine, current, "SWING_DB_AUTO_MIGRATE is off")
        from alembic import command

        try:
            with write_transaction(engine) as conn:
                migration_lock(conn)
                command.upgrade(alembic_config(conn), "head")
        except sa.exc.DBAPIError as exc:
            if _sqlstate(exc) != "42501":  # insufficient_privilege: a DML-only app role
                raise
            raise _schema_error(engine, current, "this database role may not change the "
                                f"schema: {_reason(exc, engine.url)}") from exc
    return head


def _ready(engine: Engine) -> None:
    """Check (and, with ``SWING_DB_AUTO_MIGRATE``, upgrade) the schema once per engine before
    the first table access."""
    if engine not in _migrated:
        init_db(engine)
