"""Storage: the engine factory, schema versions (Alembic), the bar cache, setup vectors, signals
and backtest runs.

- SQLite by default: one file under ``SWING_DATA_DIR`` (``data/swingdesk.sqlite``), created on
  first use, in WAL mode with ``synchronous=NORMAL``, a busy timeout and foreign keys on. Write
  transactions start with ``BEGIN IMMEDIATE`` so that two processes writing at once queue on the
  busy timeout instead of failing with "database is locked".
- PostgreSQL when ``SWING_DATABASE_URL`` is a ``postgresql`` URL (driver: psycopg 3), with a
  connection pool sized by the ``SWING_DB_*`` settings.

Every public function raises :class:`~swing_core.errors.DatabaseError` with a message naming the
database (host or file, never the password) when it cannot be reached or used. Functions that
touch tables bring the schema up to date first (once per engine), see :func:`init_db`.
Batch writes run in one transaction each: a batch that fails half-way leaves no rows behind.
"""

from __future__ import annotations

import functools
import json
import os
import re
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
from swing_core.models import (
    VECTOR_BYTES,
    VECTOR_DIM,
    BacktestRun,
    BacktestTrade,
    Bar,
    SetupVector,
    Signal,
    UTCDateTime,
    metadata,
    utc_now,
)

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
    if isinstance(first, int):  # epoch microseconds (see _raw_ts)
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(values, dtype="float64"), unit="us",
                                               utc=True))
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


def _raw_ts(column: Any, engine: Engine) -> Any:
    """A timestamp column for bulk reads: SQLite's stored text as is; on PostgreSQL integer
    microseconds since the epoch (much cheaper to fetch than one datetime object per row)."""
    if engine.dialect.name == "postgresql":
        micros = sa.cast(sa.func.extract("epoch", column) * 1_000_000, sa.BigInteger)
        return sa.type_coerce(micros, sa.types.NullType()).label(column.key)
    return _raw(column)


def _raw(column: Any) -> Any:
    """Select a column without its Python-side result processing (bulk reads convert whole
    columns with pandas instead)."""
    return sa.type_coerce(column, sa.types.NullType()).label(column.key)


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_update``) for ``table``."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def _driver_datetimes(series: Any, dialect_name: str) -> list[Any]:
    """UTC timestamps as the driver stores them (no per-row SQLAlchemy processing): SQLite text
    in SQLAlchemy's own format (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC, so text order is time
    order and equality holds), PostgreSQL aware datetimes. None for NaT."""
    idx = pd.DatetimeIndex(pd.to_datetime(series, utc=True, format="mixed"))
    if dialect_name != "sqlite":
        return _py_datetimes(idx)
    text = np.datetime_as_string(idx.tz_localize(None).to_numpy("datetime64[us]"), unit="us")
    out = np.char.replace(text, "T", " ").tolist()
    if idx.hasnans:
        out = [None if missing else v for v, missing in zip(out, idx.isna(), strict=True)]
    return out


#: Column name -> driver-ready values, one per row (see ``_columns``).
Columns = dict[str, list[Any]]

_NAMED_PARAM = re.compile(r"%\((\w+)\)s")


def _executemany(conn: Connection, stmt: Any, columns: Columns, *,
                 chunk: int = 20_000) -> None:
    """Run ``stmt`` (an INSERT) for every row through the driver's executemany (sqlite3: a C
    loop; psycopg 3: pipeline mode, no round trip per row), with plain tuples: no per-row
    SQLAlchemy parameter processing, so values must already be driver-ready (``_columns``)."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return
    compiled = stmt.compile(dialect=conn.dialect, column_keys=names, for_executemany=True)
    sql = str(compiled)
    if compiled.positional:
        order = list(compiled.positiontup)
    else:  # pyformat (psycopg): switch to positional %s so rows can stay tuples
        order = _NAMED_PARAM.findall(sql)
        sql = _NAMED_PARAM.sub("%s", sql)
    if set(order) - set(names):
        raise ValueError(f"missing values for {sorted(set(order) - set(names))}")
    rows = list(zip(*(columns[name] for name in order), strict=True))
    for i in range(0, len(rows), chunk):
        conn.exec_driver_sql(sql, rows[i:i + chunk])


def _upsert(conn: Connection, table: sa.Table, columns: Columns, keys: list[str],
            update: list[str], *, keep: tuple[str, ...] = ()) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` as one executemany: columns in ``update`` take
    the new value; columns in ``keep`` take it only when it is not NULL (a known value is never
    erased)."""
    stmt = _insert(conn, table)
    set_ = {c: stmt.excluded[c] for c in update}
    set_.update({c: sa.func.coalesce(stmt.excluded[c], table.c[c]) for c in keep})
    _executemany(conn, stmt.on_conflict_do_update(index_elements=keys, set_=set_), columns)


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
    if "volume" not in frame.columns:
        frame = frame.assign(volume=0.0)
    frame = frame.assign(ts=frame.index, symbol=symbol, interval=interval, source=source)
    rows = _columns(frame, Bar, skip=(), fixed={"fetched_at": utc_now()},
                    driver=engine.dialect.name)
    with write_transaction(engine) as conn:
        _upsert(conn, Bar.__table__, rows, ["symbol", "interval", "ts"],
                ["open", "high", "low", "close", "volume", "source", "fetched_at"])
    return len(frame)


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


# --------------------------------------------------------------------------- record conversion


def _model_default(model: type, name: str) -> Any:
    """The SQLModel field default of ``name`` (None when it has none)."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    if info.default_factory is not None:
        return info.default_factory()
    return None if info.is_required() else info.default


def _column_values(series: pd.Series, column: sa.Column, driver: str | None = None) -> list[Any]:
    """One column of a frame as plain Python values for binding: None for NaN/NaT/None, UTC
    datetimes (driver-ready for dialect ``driver`` when given), ints, floats, bools, strings
    (dicts and lists JSON-encoded), bytes."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        if driver is not None:
            return _driver_datetimes(series, driver)
        return _py_datetimes(pd.to_datetime(series, utc=True, format="mixed"))
    if isinstance(kind, sa.Float):
        floats = pd.to_numeric(series, errors="coerce").astype("float64").tolist()
        return [None if v != v else v for v in floats]
    if isinstance(kind, sa.Boolean):
        return [None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else bool(v)
                for v in series.tolist()]
    if isinstance(kind, sa.Integer):
        floats = pd.to_numeric(series, errors="coerce").astype("float64").tolist()
        return [None if v != v else int(v) for v in floats]
    if isinstance(kind, sa.LargeBinary):
        return [None if v is None else bytes(v) for v in series.tolist()]
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        return series.tolist()  # fast path: plain strings, no missing values
    out: list[Any] = []
    for v in series.tolist():
        if v is None or v is pd.NA or (isinstance(v, float) and v != v):
            out.append(None)
        elif isinstance(v, dict | list | tuple):
            out.append(json.dumps(v, default=str))
        else:
            out.append(str(v))
    return out


def _columns(frame: pd.DataFrame, model: type, *, skip: tuple[str, ...] = ("id",),
             fixed: dict[str, Any] | None = None, driver: str | None = None) -> Columns:
    """Column-wise values of ``frame`` for every column of ``model``'s table (unknown frame
    columns are ignored; missing or NULL values of NOT NULL columns take the model default;
    ``fixed`` values apply to every row). ``driver``: a dialect name, to get driver-ready values
    for :func:`_executemany`; None: values for SQLAlchemy statements."""
    table = model.__table__
    fixed = fixed or {}
    columns: Columns = {}
    n = len(frame)
    for col in table.columns:
        name = col.name
        if name in skip:
            continue
        if name in fixed:
            columns[name] = _column_values(pd.Series([fixed[name]]), col, driver) * n
            continue
        values = (_column_values(frame[name], col, driver) if name in frame.columns
                  else [None] * n)
        if not col.nullable and any(v is None for v in values):
            default = _model_default(model, name)
            if default is None:
                raise ValueError(f"{table.name}: column {name!r} is required but missing.")
            default = _column_values(pd.Series([default]), col, driver)[0]
            values = [default if v is None else v for v in values]
        columns[name] = values
    return columns


def _records(frame: pd.DataFrame, model: type, **kwargs: Any) -> list[dict[str, Any]]:
    """Like :func:`_columns`, one dict per row."""
    columns = _columns(frame, model, **kwargs)
    names = list(columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def _as_frame(rows: pd.DataFrame | list[dict[str, Any]] | dict[str, Any]) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.reset_index(drop=True)
    if isinstance(rows, dict):
        rows = [rows]
    return pd.DataFrame(list(rows))


def _read_frame(conn: Connection, stmt: Any, table: sa.Table) -> pd.DataFrame:
    """Run ``stmt`` (selecting ``table``'s columns, timestamps raw) into a frame with UTC
    timestamp columns and nullable numbers as float NaN."""
    result = conn.execute(stmt)
    names = list(result.keys())
    df = pd.DataFrame(result.all(), columns=names)
    for name in names:
        if name in table.c and isinstance(table.c[name].type, UTCDateTime):
            df[name] = _utc_index(df[name].tolist())
    return df


def _select_table(table: sa.Table) -> Any:
    return sa.select(*[_raw(c) if isinstance(c.type, UTCDateTime) else c for c in table.columns])


# --------------------------------------------------------------------------- setup vectors

VECTOR_COLUMNS = [f"vec_{i:02d}" for i in range(VECTOR_DIM)]
_VECTOR_KEYS = ["symbol", "interval", "ts", "version"]
_OUTCOME_COLUMNS = ("realized_r", "exit_reason", "exit_ts", "hold_bars")


@dataclass(frozen=True)
class VectorRows:
    """Setup vectors read back: ``meta`` (id, symbol, interval, ts, version, setup, side, trend,
    vol_regime, realized_r, exit_reason, exit_ts, hold_bars; ``ts`` = UTC open time of the signal
    bar, ``exit_ts`` = UTC time the outcome became known) and ``matrix`` (float32, (n, 16)), row i
    of one matching row i of the other."""

    meta: pd.DataFrame
    matrix: np.ndarray

    def __len__(self) -> int:
        return int(self.matrix.shape[0])


def _vector_matrix(frame: pd.DataFrame) -> np.ndarray:
    if "vector" in frame.columns:
        matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1)
                           for v in frame["vector"].tolist()]) if len(frame) else \
            np.empty((0, VECTOR_DIM), np.float32)
    elif all(c in frame.columns for c in VECTOR_COLUMNS):
        matrix = frame[VECTOR_COLUMNS].to_numpy(dtype=np.float32)
    else:
        raise ValueError("Setup vectors need a 'vector' column or the columns vec_00 … vec_15.")
    if matrix.ndim != 2 or matrix.shape[1] != VECTOR_DIM:
        raise ValueError(f"Setup vectors must have {VECTOR_DIM} values each, got shape "
                         f"{matrix.shape}.")
    if not np.isfinite(matrix).all():
        raise ValueError("Setup vectors contain NaN or infinite values.")
    return np.ascontiguousarray(matrix, dtype="<f4")


def _vector_columns(frame: pd.DataFrame, driver: str) -> Columns:
    blob = _vector_matrix(frame).tobytes()
    base = frame.drop(columns=[c for c in ("vector", *VECTOR_COLUMNS) if c in frame.columns])
    blobs = [blob[i:i + VECTOR_BYTES] for i in range(0, len(blob), VECTOR_BYTES)]
    return _columns(base.assign(vector=blobs), SetupVector, fixed={"created_at": utc_now()},
                    driver=driver)


def _upsert_vector_columns(conn: Connection, columns: Columns, present: set[str]) -> None:
    outcome = tuple(c for c in _OUTCOME_COLUMNS if c in present)
    _upsert(conn, SetupVector.__table__, columns, _VECTOR_KEYS,
            ["setup", "side", "trend", "vol_regime", "vector"], keep=outcome)


@_db_errors
def upsert_vectors(engine: Engine, rows: pd.DataFrame | list[dict[str, Any]]) -> int:
    """Insert or update setup vectors keyed by (symbol, interval, ts, version), in one transaction.

    ``rows``: columns symbol, interval, ts (UTC open time of the signal bar), version (default
    "v1"), setup, side, trend, vol_regime, and either ``vector`` (16 float32 values per row) or
    ``vec_00`` … ``vec_15``; optional outcome columns realized_r, exit_reason, exit_ts (UTC time
    the outcome became known), hold_bars. An upsert never erases a known outcome (NULL outcome
    values keep the stored ones). Returns rows written."""
    _ready(engine)
    frame = _as_frame(rows)
    if len(frame) == 0:
        return 0
    columns = _vector_columns(frame, engine.dialect.name)
    with write_transaction(engine) as conn:
        _upsert_vector_columns(conn, columns, set(frame.columns))
    return len(frame)


def _outcome_updates(conn: Connection, table: sa.Table, frame: pd.DataFrame,
                     keys: list[str], values: dict[str, list[Any]]) -> int:
    """Executemany ``UPDATE table SET values WHERE keys`` (keys bound as ``k_<name>``)."""
    if len(frame) == 0:
        return 0
    key_values = {k: _column_values(frame[k], table.c[k]) for k in keys}
    stmt = (sa.update(table)
            .where(*[table.c[k] == sa.bindparam(f"k_{k}") for k in keys])
            .values({c: sa.bindparam(c) for c in values}))
    params = [
        {**{f"k_{k}": key_values[k][i] for k in keys}, **{c: v[i] for c, v in values.items()}}
        for i in range(len(frame))
    ]
    result = conn.execute(stmt, params)
    return int(result.rowcount) if result.rowcount is not None and result.rowcount >= 0 else 0


def _vector_outcome_values(frame: pd.DataFrame) -> dict[str, list[Any]]:
    table = SetupVector.__table__
    return {c: (_column_values(frame[c], table.c[c]) if c in frame.columns
                else [None] * len(frame)) for c in _OUTCOME_COLUMNS}


@_db_errors
def set_vector_outcomes(engine: Engine, rows: pd.DataFrame | list[dict[str, Any]]) -> int:
    """Store outcomes on existing setup vectors, in one transaction. ``rows``: either ``id`` or
    (symbol, interval, ts[, version="v1"]), plus realized_r, exit_reason, exit_ts (UTC time the
    outcome became known), hold_bars. Returns rows updated."""
    _ready(engine)
    frame = _as_frame(rows)
    if "id" not in frame.columns and "version" not in frame.columns:
        frame = frame.assign(version="v1")
    keys = ["id"] if "id" in frame.columns else _VECTOR_KEYS
    with write_transaction(engine) as conn:
        return _outcome_updates(conn, SetupVector.__table__, frame, keys,
                                _vector_outcome_values(frame))


_VECTOR_META = ["id", "symbol", "interval", "ts", "version", "setup", "side", "trend",
                "vol_regime", "realized_r", "exit_reason", "exit_ts", "hold_bars"]


def _empty_vector_rows() -> VectorRows:
    meta = pd.DataFrame({"id": pd.Series(dtype="int64")})
    for name in ("symbol", "interval", "ts", "version", "setup", "side", "trend", "vol_regime",
                 "realized_r", "exit_reason", "exit_ts", "hold_bars"):
        meta[name] = pd.Series(dtype=object)
    meta["ts"] = pd.DatetimeIndex([], tz="UTC")
    meta["exit_ts"] = pd.DatetimeIndex([], tz="UTC")
    meta["realized_r"] = meta["realized_r"].astype("float64")
    meta["hold_bars"] = meta["hold_bars"].astype("Int64")
    return VectorRows(meta, np.empty((0, VECTOR_DIM), dtype=np.float32))


@_db_errors
def load_vector_matrix(engine: Engine, *, interval: str | None = None, version: str = "v1",
                       known_only: bool = True, symbol: str | None = None,
                       known_by: Any = None) -> VectorRows:
    """Setup vectors as one float32 matrix plus their metadata, oldest ``ts`` first (ties by id).

    ``known_only``: only rows with a realized R. ``known_by`` (UTC): only outcomes known by then
    (``exit_ts <= known_by``, the point-in-time rule). Built for speed: plain driver tuples (no
    per-row result processing), timestamps parsed per column, the vectors decoded with one
    ``np.frombuffer`` over the joined bytes."""
    _ready(engine)
    t = SetupVector.__table__
    fetched = ["id", "symbol", "ts", "setup", "side", "trend", "vol_regime", "realized_r",
               "exit_reason", "exit_ts", "hold_bars"] + ([] if interval else ["interval"])
    stmt = sa.select(*[_raw_ts(t.c[c], engine) if c in ("ts", "exit_ts") else _raw(t.c[c])
                       for c in fetched], _raw(t.c.vector))
    stmt = stmt.where(t.c.version == version)
    if interval is not None:
        stmt = stmt.where(t.c.interval == interval)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if known_only:
        stmt = stmt.where(t.c.realized_r.is_not(None))
    if known_by is not None:
        stmt = stmt.where(t.c.exit_ts <= _utc_stamp(known_by).to_pydatetime())
    with engine.connect() as conn:
        result = conn.execute(stmt)
        rows = result.cursor.fetchall()  # plain driver tuples: no per-row Row objects
        result.close()
    if not rows:
        return _empty_vector_rows()
    n = len(rows)
    table = np.array(rows, dtype=object)  # (n, k): much cheaper than zip(*rows) for big k
    del rows
    columns = {name: table[:, j] for j, name in enumerate([*fetched, "vector"])}
    blob = b"".join(columns.pop("vector"))
    if len(blob) != n * VECTOR_BYTES:
        raise DatabaseError(f"Corrupt setup vectors in {describe_database(engine)}: expected "
                            f"{VECTOR_BYTES} bytes per row.")
    matrix = np.frombuffer(blob, dtype="<f4").reshape(n, VECTOR_DIM)
    data: dict[str, Any] = dict(columns)
    data["id"] = columns["id"].astype(np.int64)
    data["ts"] = _utc_index(columns["ts"])
    data["exit_ts"] = _utc_index(columns["exit_ts"])
    data["realized_r"] = pd.to_numeric(columns["realized_r"]).astype(np.float64)
    data["hold_bars"] = pd.array(pd.to_numeric(columns["hold_bars"]), dtype="Int64")
    if interval is not None:
        data["interval"] = np.full(n, interval, dtype=object)
    data["version"] = np.full(n, version, dtype=object)
    meta = pd.DataFrame({name: data[name] for name in _VECTOR_META})
    stamps = data["ts"].asi8
    if n > 1 and not (np.diff(stamps) >= 0).all():  # index order is not always time order
        order = np.lexsort((data["id"], stamps))
        return VectorRows(meta.iloc[order].reset_index(drop=True), matrix[order])
    return VectorRows(meta, matrix.copy())


# --------------------------------------------------------------------------- signals

#: Friendlier input names accepted by record_signals.
_SIGNAL_ALIASES = {"trend": "trend_label", "ts": "asof", "source": "data_source",
                   "rsi_14": "rsi14", "vector_version": "version"}


def _allocate_ids(conn: Connection, table: sa.Table, n: int) -> list[int]:
    """``n`` new primary keys for ``table``, in order, inside a write transaction: PostgreSQL
    draws them from the id sequence (safe under concurrency); SQLite continues after the
    largest id, safe because ``BEGIN IMMEDIATE`` holds the only write lock until commit."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n) ORDER BY 1"), {"table": table.name, "n": n})
        return [int(r[0]) for r in rows]
    last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return list(range(int(last) + 1, int(last) + 1 + n))


def _vector_ids(conn: Connection, columns: Columns) -> list[int | None]:
    """Ids of the setup vectors with the keys in driver-ready ``columns`` (None where none)."""
    t = SetupVector.__table__
    keys = list(zip(*(columns[k] for k in _VECTOR_KEYS), strict=True))
    found: dict[tuple[Any, ...], int] = {}
    raw_ts = sa.type_coerce(t.c.ts, sa.types.NullType())
    for i in range(0, len(keys), 2000):
        chunk = keys[i:i + 2000]
        stmt = sa.select(t.c.id, t.c.symbol, t.c.interval, raw_ts, t.c.version).where(
            sa.tuple_(t.c.symbol, t.c.interval, raw_ts, t.c.version).in_(chunk))
        for vid, *key in conn.execute(stmt):
            found[tuple(key)] = vid
    return [found.get(k) for k in keys]


@_db_errors
def record_signals(engine: Engine, signals: list[dict[str, Any]] | pd.DataFrame, *,
                   run_id: str | None = None) -> list[int]:
    """Insert signals in one transaction (one driver executemany) and return their ids, in input
    order.

    Each signal has the :class:`~swing_core.models.Signal` columns (``symbol`` and ``asof``, the
    UTC open time of the signal bar, are required; aliases: trend, ts, source); dict/list values of
    ``*_json`` columns are JSON-encoded. ``run_id`` overrides the rows' run id (default "live").
    A signal carrying a ``vector`` (16 floats) also upserts its setup vector (key: symbol,
    interval, asof, version) in the same transaction and links it through ``vector_id``."""
    _ready(engine)
    frame = _as_frame(signals).rename(columns=_SIGNAL_ALIASES)
    if len(frame) == 0:
        return []
    for required in ("symbol", "asof"):
        if required not in frame.columns or frame[required].isna().any():
            raise ValueError(f"record_signals: every signal needs {required!r}.")
    if run_id is not None:
        frame["run_id"] = run_id
    with_vector = (frame["vector"].notna().to_numpy() if "vector" in frame.columns
                   else np.zeros(len(frame), dtype=bool))
    driver = engine.dialect.name
    columns = _columns(frame, Signal, driver=driver)
    t = Signal.__table__
    with write_transaction(engine) as conn:
        if with_vector.any():
            vec_frame = frame.loc[with_vector].assign(ts=frame.loc[with_vector, "asof"])
            if "trend_label" in vec_frame.columns and "trend" not in vec_frame.columns:
                vec_frame["trend"] = vec_frame["trend_label"]
            vec_columns = _vector_columns(vec_frame, driver)
            _upsert_vector_columns(conn, vec_columns, set(vec_frame.columns))
            for pos, vid in zip(np.flatnonzero(with_vector), _vector_ids(conn, vec_columns),
                                strict=True):
                columns["vector_id"][pos] = vid
        ids = _allocate_ids(conn, t, len(frame))
        _executemany(conn, sa.insert(t), {"id": ids, **columns})
    return ids


@_db_errors
def list_signals(engine: Engine, *, symbol: str | None = None, since: Any = None,
                 until: Any = None, trend: str | None = None, evaluated: bool | None = None,
                 run_id: str | None = "live", interval: str | None = None,
                 limit: int | None = 1000) -> pd.DataFrame:
    """Stored signals, newest ``asof`` first, filtered by symbol, signal-bar time (``since`` <=
    asof <= ``until``, UTC), trend label, evaluation state and run id (None: every run).
    Columns: every :class:`~swing_core.models.Signal` column, timestamps tz-aware UTC."""
    _ready(engine)
    t = Signal.__table__
    stmt = _select_table(t)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(t.c.interval == interval)
    if since is not None:
        stmt = stmt.where(t.c.asof >= _utc_stamp(since).to_pydatetime())
    if until is not None:
        stmt = stmt.where(t.c.asof <= _utc_stamp(until).to_pydatetime())
    if trend is not None:
        stmt = stmt.where(t.c.trend_label == trend)
    if evaluated is not None:
        stmt = stmt.where(t.c.evaluated == evaluated)
    if run_id is not None:
        stmt = stmt.where(t.c.run_id == run_id)
    stmt = stmt.order_by(t.c.asof.desc(), t.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        df = _read_frame(conn, stmt, t)
    for col in ("realized_r", "exit_price"):
        df[col] = df[col].astype("float64")
    return df


@_db_errors
def set_signal_outcomes(engine: Engine, outcomes: pd.DataFrame) -> int:
    """Store evaluated outcomes on signals and on their setup vectors, in one transaction.

    ``outcomes``: ``id`` (signal id), exit_reason, exit_price, exit_ts (UTC close time of the exit
    bar), realized_r, hold_bars; ``evaluated`` defaults to True. The vector is the one linked by
    ``vector_id``, else the one keyed (symbol, interval, asof, "v1"). Returns signals updated."""
    _ready(engine)
    frame = _as_frame(outcomes)
    if len(frame) == 0:
        return 0
    if "evaluated" not in frame.columns:
        frame = frame.assign(evaluated=True)
    t = Signal.__table__
    values = {c: _column_values(frame[c], t.c[c]) if c in frame.columns else [None] * len(frame)
              for c in ("evaluated", "exit_reason", "exit_price", "exit_ts", "realized_r",
                        "hold_bars")}
    with write_transaction(engine) as conn:
        updated = _outcome_updates(conn, t, frame, ["id"], values)
        ids = [int(i) for i in frame["id"]]
        links = pd.DataFrame(
            conn.execute(sa.select(t.c.id, t.c.vector_id, t.c.symbol, t.c.interval,
                                   _raw(t.c.asof)).where(t.c.id.in_(ids))).all(),
            columns=["id", "vector_id", "symbol", "interval", "asof"])
        merged = frame.drop(columns=["symbol", "interval", "vector_id"], errors="ignore").merge(
            links, on="id")
        linked = merged[merged["vector_id"].notna()]
        linked = linked.assign(id=linked["vector_id"].astype("int64")).reset_index(drop=True)
        _outcome_updates(conn, SetupVector.__table__, linked, ["id"],
                         _vector_outcome_values(linked))
        unlinked = merged[merged["vector_id"].isna()].reset_index(drop=True)
        unlinked = unlinked.assign(ts=_utc_index(unlinked["asof"].tolist()), version="v1")
        _outcome_updates(conn, SetupVector.__table__, unlinked, _VECTOR_KEYS,
                         _vector_outcome_values(unlinked))
    return updated


# --------------------------------------------------------------------------- backtest runs

_RUN_JSON = ("params", "settings", "metrics", "lookahead")


@dataclass(frozen=True)
class StoredBacktest:
    """A saved backtest run: ``run`` (the run's columns; ``params``, ``settings``, ``metrics``,
    ``lookahead`` decoded from JSON; ``symbols`` as a list) and its ``trades`` (one row per trade,
    timestamps tz-aware UTC)."""

    run: dict[str, Any]
    trades: pd.DataFrame


def _run_record(run: dict[str, Any]) -> dict[str, Any]:
    values = dict(run)
    if not values.get("run_hash"):
        raise ValueError("save_backtest_run: the run needs a 'run_hash'.")
    for name in _RUN_JSON:
        if name in values and f"{name}_json" not in values:
            values[f"{name}_json"] = values.pop(name)
    symbols = values.get("symbols")
    if isinstance(symbols, list | tuple):
        values["symbols"] = ",".join(map(str, symbols))
    return _records(pd.DataFrame([values]), BacktestRun)[0]


@_db_errors
def save_backtest_run(engine: Engine, run: dict[str, Any], trades: pd.DataFrame) -> int:
    """Save a backtest run and its trades in one transaction; returns the run id.

    ``run``: ``run_hash`` (required, identifies the inputs) and any BacktestRun column; dict
    values for params/settings/metrics/lookahead (or their ``*_json`` text) and a list of symbols
    are accepted. Saving a run_hash again replaces that run's row and trades (same id).
    ``trades``: BacktestTrade columns (unknown columns ignored)."""
    _ready(engine)
    record = _run_record(run)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with write_transaction(engine) as conn:
        run_id = conn.execute(sa.select(t_run.c.id).where(
            t_run.c.run_hash == record["run_hash"])).scalar()
        if run_id is None:
            run_id = conn.execute(sa.insert(t_run).returning(t_run.c.id), record).scalar_one()
        else:  # same inputs again: replace in place, keep the id and the first created_at
            if "created_at" not in run:
                record.pop("created_at")
            conn.execute(sa.update(t_run).where(t_run.c.id == run_id).values(record))
            conn.execute(sa.delete(t_trade).where(t_trade.c.run_id == run_id))
        frame = _as_frame(trades) if trades is not None else pd.DataFrame()
        if len(frame):
            _executemany(conn, sa.insert(t_trade), _columns(
                frame, BacktestTrade, fixed={"run_id": int(run_id)}, driver=engine.dialect.name))
    return int(run_id)


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    run = {k: v for k, v in row.items() if not k.endswith("_json")}
    for name in _RUN_JSON:
        text = row.get(f"{name}_json")
        run[name] = json.loads(text) if isinstance(text, str) and text else None
    run["symbols"] = [s for s in (row.get("symbols") or "").split(",") if s]
    return run


@_db_errors
def load_backtest_run(engine: Engine, run_hash: str) -> StoredBacktest | None:
    """The saved run with this hash and its trades (ordered by entry time), or None."""
    _ready(engine)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with engine.connect() as conn:
        runs = _read_frame(conn, _select_table(t_run).where(t_run.c.run_hash == run_hash), t_run)
        if len(runs) == 0:
            return None
        run_id = int(runs["id"].iloc[0])
        trades = _read_frame(conn, _select_table(t_trade).where(t_trade.c.run_id == run_id)
                             .order_by(t_trade.c.entry_ts, t_trade.c.id), t_trade)
    row = runs.iloc[0].to_dict()
    return StoredBacktest(_decode_run(row), trades)


@_db_errors
def list_backtest_runs(engine: Engine, *, limit: int | None = 200) -> pd.DataFrame:
    """Saved runs, newest first, with ``n_trades``; JSON columns left as text."""
    _ready(engine)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    counts = (sa.select(t_trade.c.run_id, sa.func.count().label("n_trades"))
              .group_by(t_trade.c.run_id).subquery())
    stmt = (sa.select(*_select_table(t_run).selected_columns,
                      sa.func.coalesce(counts.c.n_trades, 0).label("n_trades"))
            .outerjoin(counts, counts.c.run_id == t_run.c.id)
            .order_by(t_run.c.created_at.desc(), t_run.c.id.desc()))
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return _read_frame(conn, stmt, t_run)


__all__ = [
    "BAR_COLUMNS",
    "VECTOR_COLUMNS",
    "DatabaseStatus",
    "StoredBacktest",
    "VectorRows",
    "alembic_config",
    "bar_cache_summary",
    "database_status",
    "delete_bars",
    "describe_database",
    "dispose_engines",
    "get_engine",
    "init_db",
    "list_backtest_runs",
    "list_signals",
    "load_backtest_run",
    "load_vector_matrix",
    "record_signals",
    "save_backtest_run",
    "set_signal_outcomes",
    "set_vector_outcomes",
    "upsert_vectors",
    "load_bars",
    "make_engine",
    "metadata",
    "migration_lock",
    "upsert_bars",
    "write_transaction",
]
