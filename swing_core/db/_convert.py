"""Row conversion between pandas frames and driver-ready values (timestamps, records, column
values for binding), and the statement helpers every table module shares: executemany inserts,
upserts, outcome updates and table reads. Driver-level bulk transfer (packed reads, binary COPY)
is in :mod:`swing_core.db._bulk`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from swing_core.errors import DataError
from swing_core.models import UTCDateTime

# --------------------------------------------------------------------------- time helpers


def _utc_index(values: Any) -> pd.DatetimeIndex:
    """Timestamps read back from either dialect (SQLite text or datetime objects), as UTC."""
    if len(values) == 0:
        return pd.DatetimeIndex([], tz="UTC")
    first = next((v for v in values if v is not None), None)
    if isinstance(first, int):  # epoch microseconds
        return pd.DatetimeIndex(pd.to_datetime(np.asarray(values, dtype="float64"), unit="us",
                                               utc=True))
    if isinstance(first, str):
        return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="ISO8601"))
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _utc_stamp(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_datetimes(values: Any) -> pd.DatetimeIndex:
    """Timestamps of any form (naive = UTC) as a UTC DatetimeIndex; values that already have a
    datetime dtype skip ``pd.to_datetime`` (which builds one Timestamp per value to decide on
    caching)."""
    dtype = getattr(values, "dtype", None)
    if dtype is not None and (isinstance(dtype, pd.DatetimeTZDtype)
                              or pd.api.types.is_datetime64_dtype(dtype)):
        idx = pd.DatetimeIndex(values)
        return idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True, format="mixed"))


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


def _insert(conn: Connection, table: sa.Table) -> Any:
    """The dialect's INSERT (with ``on_conflict_do_update``) for ``table``."""
    return (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(table)


def _driver_datetimes(series: Any, dialect_name: str) -> list[Any]:
    """UTC timestamps as the driver stores them (no per-row SQLAlchemy processing): SQLite text
    in SQLAlchemy's own format (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC, so text order is time
    order and equality holds), PostgreSQL aware datetimes. None for NaT."""
    idx = _utc_datetimes(series)
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


def _driver_sql(stmt: Any, dialect: sa.Dialect, names: list[str], *,
                many: bool = False) -> tuple[str, list[str]]:
    """``stmt`` compiled for ``dialect`` as driver SQL with positional parameters, and the
    names of its parameters in order (``names``: the INSERT's columns). Compile once and reuse:
    compiling costs far more than running a one-row statement."""
    compiled = stmt.compile(dialect=dialect, column_keys=names, for_executemany=many)
    sql = str(compiled)
    if compiled.positional:
        order = list(compiled.positiontup)
    else:  # pyformat (psycopg): switch to positional %s so rows can stay tuples
        order = _NAMED_PARAM.findall(sql)
        sql = _NAMED_PARAM.sub("%s", sql)
    if set(order) - set(names):
        raise ValueError(f"missing values for {sorted(set(order) - set(names))}")
    return sql, order


def _executemany(conn: Connection, stmt: Any, columns: Columns, *,
                 chunk: int = 20_000) -> None:
    """Run ``stmt`` (an INSERT) for every row through the driver's executemany (sqlite3: a C
    loop; psycopg 3: pipeline mode, no round trip per row), with plain tuples: no per-row
    SQLAlchemy parameter processing, so values must already be driver-ready (``_columns``)."""
    names = list(columns)
    if not names or not columns[names[0]]:
        return
    sql, order = _driver_sql(stmt, conn.dialect, names, many=True)
    rows = list(zip(*(columns[name] for name in order), strict=True))
    for i in range(0, len(rows), chunk):
        conn.exec_driver_sql(sql, rows[i:i + chunk])


def _upsert(conn: Connection, table: sa.Table, columns: Columns, keys: list[str],
            update: list[str], *, keep: tuple[str, ...] = ()) -> None:
    """``INSERT … ON CONFLICT (keys) DO UPDATE`` as one executemany: columns in ``update`` take
    the new value; columns in ``keep`` take it only when it is not NULL (a known value is never
    erased)."""
    _executemany(conn, _upsert_statement(conn, table, keys, update, keep=keep), columns)


def _upsert_statement(conn: Connection, table: sa.Table, keys: list[str], update: list[str], *,
                      keep: tuple[str, ...] = ()) -> Any:
    """The ``INSERT … ON CONFLICT (keys) DO UPDATE`` of :func:`_upsert`."""
    stmt = _insert(conn, table)
    set_ = {c: stmt.excluded[c] for c in update}
    set_.update({c: sa.func.coalesce(stmt.excluded[c], table.c[c]) for c in keep})
    return stmt.on_conflict_do_update(index_elements=keys, set_=set_)


# --------------------------------------------------------------------------- record conversion


def _model_default(model: type, name: str) -> Any:
    """The SQLModel field default of ``name`` (None when it has none)."""
    info = model.model_fields.get(name)
    if info is None:
        return None
    if info.default_factory is not None:
        return info.default_factory()
    return None if info.is_required() else info.default


def _refuse_nul(strings: list[Any], column: str, table: str | None = None) -> None:
    """Raise :class:`DataError` naming the field if a string in ``strings`` holds a NUL
    character (``\\x00``). One rule on both databases: PostgreSQL cannot store NUL in text
    ("A string literal cannot contain NUL") while SQLite would, so it is refused before any
    row is written rather than kept on one and failing on the other. (JSON-encoded values
    carry it escaped as ``\\u0000``, which both store.)"""
    if "\x00" in "".join(v for v in strings if isinstance(v, str)):
        where = f"{column!r} of {table}" if table else repr(column)
        raise DataError(f"The field {where} contains a NUL character (\\x00), which the "
                        "database cannot store in text: remove it (e.g. retype the text "
                        "instead of pasting it) and save again. Nothing was saved.")


def _column_values(series: pd.Series, column: sa.Column, driver: str | None = None) -> list[Any]:
    """One column of a frame as plain Python values for binding: None for NaN/NaT/None, UTC
    datetimes (driver-ready for dialect ``driver`` when given), ints, floats, bools, strings
    (dicts and lists JSON-encoded), bytes. Text with a NUL character raises
    :class:`~swing_core.errors.DataError` (see :func:`_refuse_nul`)."""
    kind = column.type
    if isinstance(kind, UTCDateTime):
        if driver is not None:
            return _driver_datetimes(series, driver)
        return _py_datetimes(_utc_datetimes(series))
    if isinstance(kind, sa.Float):
        floats = pd.to_numeric(series, errors="coerce").astype("float64").tolist()
        return [None if v != v else v for v in floats]
    if isinstance(kind, sa.Boolean):
        return [_bool_value(v) for v in series.tolist()]
    if isinstance(kind, sa.Integer):
        floats = pd.to_numeric(series, errors="coerce").astype("float64").tolist()
        return [None if v != v else int(v) for v in floats]
    if isinstance(kind, sa.LargeBinary):
        return [None if v is None else bytes(v) for v in series.tolist()]
    table = getattr(column, "table", None)
    if series.dtype == object and pd.api.types.infer_dtype(series, skipna=False) == "string":
        strings = series.tolist()  # fast path: plain strings, no missing values
        _refuse_nul(strings, column.name, getattr(table, "name", None))
        return strings
    out = [_text_value(v) for v in series.tolist()]
    _refuse_nul(out, column.name, getattr(table, "name", None))
    return out


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _bool_value(v: Any) -> bool | None:
    return None if _missing(v) else bool(v)


def _text_value(v: Any) -> str | None:
    if _missing(v):
        return None
    return json.dumps(v, default=str) if isinstance(v, dict | list | tuple) else str(v)


#: Timestamps a one-row write converts without pandas: pandas' nanosecond range, whole µs.
_PLAIN_YEARS = range(1678, 2262)


def _bind_value(value: Any, column: sa.Column, driver: str | None = None) -> Any:
    """One value as :func:`_column_values` binds it in a frame column (the same result), without
    building a Series for the usual Python types (None, str, bytes, bool, whole-µs datetimes,
    floats, ints up to 2**53); anything else goes through :func:`_column_values` itself."""
    kind = column.type
    if value is None:
        return None
    if isinstance(kind, UTCDateTime):
        if (isinstance(value, datetime) and value.year in _PLAIN_YEARS
                and not getattr(value, "nanosecond", 0)):
            utc = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            if isinstance(utc, pd.Timestamp):
                utc = utc.to_pydatetime()
            if driver == "sqlite":  # _driver_datetimes' text: naive UTC, microseconds
                return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            return utc
    elif isinstance(kind, sa.Boolean):
        return _bool_value(value)
    elif isinstance(kind, sa.Float | sa.Integer):
        exact = isinstance(value, float) or (type(value) is int and abs(value) <= 2 ** 53)
        if exact:
            if value != value:
                return None
            return int(value) if isinstance(kind, sa.Integer) else float(value)
    elif isinstance(kind, sa.LargeBinary):
        if type(value) is bytes:
            return value
    elif type(value) is str:
        table = getattr(column, "table", None)
        _refuse_nul([value], column.name, getattr(table, "name", None))
        return value
    return _column_values(pd.Series([value]), column, driver)[0]


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
            columns[name] = [_bind_value(fixed[name], col, driver)] * n
            continue
        values = (_column_values(frame[name], col, driver) if name in frame.columns
                  else [None] * n)
        if not col.nullable and any(v is None for v in values):
            default = _default_value(model, col, driver)
            values = [default if v is None else v for v in values]
        columns[name] = values
    return columns


def _default_value(model: type, column: sa.Column, driver: str | None) -> Any:
    """The bound model default of NOT NULL ``column`` (for a missing or NULL value)."""
    default = _model_default(model, column.name)
    if default is None:
        raise ValueError(f"{model.__table__.name}: column {column.name!r} is required but "
                         "missing.")
    return _bind_value(default, column, driver)


def _row(record: dict[str, Any], model: type, *, skip: tuple[str, ...] = ("id",),
         fixed: dict[str, Any] | None = None, driver: str | None = None) -> dict[str, Any]:
    """The values of one ``record`` for every column of ``model``'s table: what
    :func:`_columns` gives for a frame of this one row, without building the frame."""
    fixed = fixed or {}
    row: dict[str, Any] = {}
    for col in model.__table__.columns:
        name = col.name
        if name in skip:
            continue
        value = _bind_value(fixed[name] if name in fixed else record.get(name), col, driver)
        if value is None and not col.nullable:
            value = _default_value(model, col, driver)
        row[name] = value
    return row


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
