"""Storage: the engine factory, schema versions (Alembic) and the bar cache.

- SQLite by default: one file under ``SWING_DATA_DIR`` (``data/swingdesk.sqlite``), created on
  first use, in WAL mode with ``synchronous=NORMAL``, a busy timeout and foreign keys on. Write
  transactions start with ``BEGIN IMMEDIATE`` so that two processes writing at once queue on the
  busy timeout instead of failing with "database is locked".
- PostgreSQL when ``SWING_DATABASE_URL`` is a ``postgresql`` URL (driver: psycopg 3), with a
  connection pool sized by the ``SWING_DB_*`` settings.

Every public function raises :class:`~swing_core.errors.DatabaseError` with a message naming the
database (host or file, never the password) when it cannot be reached or used. Functions that
touch tables bring the schema up to date first (once per engine), see :func:`init_db`.

Vectors, signals and backtest storage live in :mod:`swing_core.store` and are re-exported here.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.url import URL

from swing_core.config import get_settings
from swing_core.errors import DatabaseError
from swing_core.models import Bar, metadata, utc_now

#: Seconds a SQLite writer waits for another writer's lock before giving up.
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Seconds to wait for a PostgreSQL server to accept a connection.
PG_CONNECT_TIMEOUT_S = 5

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]
_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_P = ParamSpec("_P")
_R = TypeVar("_R")

_engines: dict[tuple[str, str | None, int], Engine] = {}
_engines_lock = threading.Lock()
_migrated: set[int] = set()
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


def _database_error(exc: BaseException, engine_or_url: Engine | URL | None) -> DatabaseError:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else engine_or_url
    where = describe_database(url) if url is not None else "the database"
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


def make_engine(url: str | URL | None = None, *, schema: str | None = None) -> Engine:
    """A new (uncached) engine for ``url`` (default: the settings' database).

    ``schema`` (PostgreSQL only) sets the connection's ``search_path``: tables, the Alembic
    version table and queries all live in that schema (tests use a random one). Nothing connects
    yet; a failing connection raises DatabaseError on first use.
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
    connect_args: dict[str, Any] = {"connect_timeout": PG_CONNECT_TIMEOUT_S}
    if schema:
        connect_args["options"] = f"-csearch_path={schema}"
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
            _migrated.discard(id(engine))
            engine.dispose()
        _engines.clear()


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside one write transaction: committed on success, rolled back on any
    error (no partial batch survives). On SQLite it starts with ``BEGIN IMMEDIATE``, which
    waits (busy timeout) for another process's write instead of failing later."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            conn.execution_options(sqlite_begin="IMMEDIATE")
        with conn.begin():
            yield conn


# --------------------------------------------------------------------------- migrations


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Any:
    """An Alembic ``Config`` pointing at ``swing_core/migrations`` (works from any working
    directory and when installed). ``connection`` is handed to ``env.py``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def migration_lock(conn: Connection) -> None:
    """Serialize schema upgrades: on PostgreSQL a transaction-scoped advisory lock per schema;
    on SQLite the ``BEGIN IMMEDIATE`` of the surrounding transaction already holds the write
    lock. Call inside the migration transaction, before reading the current revision."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext('swingdesk-migrate:' || current_schema()))"
        )


@functools.cache
def _head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


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


@_db_errors
def init_db(engine: Engine | None = None) -> str | None:
    """Bring the schema up to date (Alembic ``upgrade head``); idempotent and cheap when
    already current. Concurrent callers in several processes are serialized (SQLite write lock
    / PostgreSQL advisory lock): one upgrades, the others find it done. Returns the revision."""
    engine = engine if engine is not None else get_engine()
    head = _head_revision()
    with engine.connect() as conn:
        current = _current_revision(conn)
    if current != head:
        from alembic import command

        with write_transaction(engine) as conn:
            migration_lock(conn)
            command.upgrade(alembic_config(conn), "head")
    with _migrate_lock:
        _migrated.add(id(engine))
    return head


def _ready(engine: Engine) -> None:
    """Upgrade the schema once per engine before the first table access."""
    if id(engine) not in _migrated:
        init_db(engine)


# --------------------------------------------------------------------------- time helpers


def _utc_index(values: Any) -> pd.DatetimeIndex:
    """Timestamps read back from either dialect (SQLite text or datetime objects), as UTC."""
    if len(values) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    first = next((v for v in values if v is not None), None)
    if isinstance(first, str):
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _utc_stamp(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _py_datetimes(index: Any) -> list[Any]:
    """UTC python datetimes (None for NaT) for binding."""
    idx = pd.DatetimeIndex(index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    out = idx.to_pydatetime().tolist()
    return [None if pd.isna(v) else v for v in out] if idx.hasnans else out


def _raw(column: Any) -> Any:
    """Select a column without its Python-side result processing (bulk reads convert whole
    columns with pandas instead)."""
    return sa.type_coerce(column, sa.types.NullType()).label(column.key)


def _upsert(conn: Connection, table: sa.Table, rows: list[dict[str, Any]],
            keys: list[str], update: list[str], *, chunk: int = 5000) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET update = excluded.update`` as executemany."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=keys, set_={c: stmt.excluded[c] for c in update}
    )
    for i in range(0, len(rows), chunk):
        conn.execute(stmt, rows[i:i + chunk])


# --------------------------------------------------------------------------- bars (the cache)


def _empty_bars(symbol: str, interval: str) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                      index=pd.DatetimeIndex([], tz="UTC", name="ts"))
    df.attrs.update(source="cache", symbol=symbol, interval=interval)
    return df


@_db_errors
def upsert_bars(engine: Engine, symbol: str, interval: str, bars: pd.DataFrame, *,
                source: str) -> int:
    """Insert or replace the bars of ``symbol``/``interval`` (keyed by UTC open time ``ts``) in one
    transaction. ``bars``: a bars frame (open, high, low, close, volume; UTC index of open times;
    a naive index is taken as UTC). Rows with a NaN price are skipped. Returns rows written."""
    _ready(engine)
    if bars is None or len(bars) == 0:
        return 0
    missing = [c for c in ("open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise ValueError(f"upsert_bars: the bars frame lacks column(s) {', '.join(missing)}.")
    frame = bars.dropna(subset=["open", "high", "low", "close"])
    if len(frame) == 0:
        return 0
    volume = frame["volume"] if "volume" in frame.columns else pd.Series(0.0, index=frame.index)
    fetched_at = utc_now()
    columns = {
        "ts": _py_datetimes(frame.index),
        "open": frame["open"].astype("float64").tolist(),
        "high": frame["high"].astype("float64").tolist(),
        "low": frame["low"].astype("float64").tolist(),
        "close": frame["close"].astype("float64").tolist(),
        "volume": volume.astype("float64").fillna(0.0).tolist(),
    }
    rows = [
        {"symbol": symbol, "interval": interval, "source": source, "fetched_at": fetched_at,
         "ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v}
        for ts, o, h, lo, c, v in zip(columns["ts"], columns["open"], columns["high"],
                                      columns["low"], columns["close"], columns["volume"],
                                      strict=True)
    ]
    with write_transaction(engine) as conn:
        _upsert(conn, Bar.__table__, rows, ["symbol", "interval", "ts"],
                ["open", "high", "low", "close", "volume", "source", "fetched_at"])
    return len(rows)


@_db_errors
def load_bars(engine: Engine, symbol: str, interval: str, *, start: Any = None,
              end: Any = None) -> pd.DataFrame:
    """The cached bars of ``symbol``/``interval`` with open time in ``[start, end]`` (inclusive,
    UTC; naive values are taken as UTC), oldest first, as a bars frame with
    ``attrs["source"] == "cache"`` and ``attrs["cache_sources"]`` (the original sources).
    An empty frame with the right columns when nothing is cached."""
    _ready(engine)
    t = Bar.__table__
    stmt = sa.select(_raw(t.c.ts), t.c.open, t.c.high, t.c.low, t.c.close, t.c.volume,
                     t.c.source).where(t.c.symbol == symbol, t.c.interval == interval)
    if start is not None:
        stmt = stmt.where(t.c.ts >= _utc_stamp(start).to_pydatetime())
    if end is not None:
        stmt = stmt.where(t.c.ts <= _utc_stamp(end).to_pydatetime())
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.c.ts)).all()
    if not rows:
        return _empty_bars(symbol, interval)
    ts, o, h, lo, c, v, src = zip(*rows, strict=True)
    df = pd.DataFrame(
        {"open": np.asarray(o, dtype="float64"), "high": np.asarray(h, dtype="float64"),
         "low": np.asarray(lo, dtype="float64"), "close": np.asarray(c, dtype="float64"),
         "volume": np.asarray(v, dtype="float64")},
        index=_utc_index(list(ts)).rename("ts"),
    )
    df.attrs.update(source="cache", symbol=symbol, interval=interval,
                    cache_sources=sorted(set(src)))
    return df


@_db_errors
def bar_cache_summary(engine: Engine) -> pd.DataFrame:
    """One row per cached (symbol, interval, source): ``bars`` (count), ``first_ts`` and
    ``last_ts`` (UTC bar open times) and ``fetched_at`` (UTC time of the latest write)."""
    _ready(engine)
    t = Bar.__table__
    stmt = (
        sa.select(t.c.symbol, t.c.interval, t.c.source, sa.func.count().label("bars"),
                  _raw(sa.func.min(t.c.ts).label("first_ts")),
                  _raw(sa.func.max(t.c.ts).label("last_ts")),
                  _raw(sa.func.max(t.c.fetched_at).label("fetched_at")))
        .group_by(t.c.symbol, t.c.interval, t.c.source)
        .order_by(t.c.symbol, t.c.interval, t.c.source)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = ["symbol", "interval", "source", "bars", "first_ts", "last_ts", "fetched_at"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("first_ts", "last_ts", "fetched_at"):
        df[col] = _utc_index(df[col].tolist())
    df["bars"] = df["bars"].astype("int64")
    return df


@_db_errors
def delete_bars(engine: Engine, *, symbol: str | None = None, interval: str | None = None) -> int:
    """Delete cached bars (all, or of one symbol and/or interval). Returns rows deleted."""
    _ready(engine)
    t = Bar.__table__
    stmt = sa.delete(t)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(t.c.interval == interval)
    with write_transaction(engine) as conn:
        return int(conn.execute(stmt).rowcount or 0)


__all__ = [
    "BAR_COLUMNS",
    "DatabaseStatus",
    "alembic_config",
    "bar_cache_summary",
    "database_status",
    "delete_bars",
    "describe_database",
    "dispose_engines",
    "get_engine",
    "init_db",
    "load_bars",
    "make_engine",
    "metadata",
    "migration_lock",
    "upsert_bars",
    "write_transaction",
]
