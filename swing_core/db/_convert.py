"""Row conversion between pandas frames and driver-ready values, bulk statement helpers, and the
decoders of packed bulk reads and PostgreSQL binary COPY payloads."""

from __future__ import annotations

import json
import re
import warnings
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from swing_core.models import (
    UTCDateTime,
)

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
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


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
        return _py_datetimes(_utc_datetimes(series))
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


# --------------------------------------------------------------------------- packed bulk reads
# A bulk read can ask the database for one aggregate row in which each column of all matching
# rows is packed into one long value (every aggregate of one query sees the rows in the same
# order), and decode those values with numpy/pyarrow: no Python object per row and column.


class _Unpackable(Exception):
    """Packed values that cannot be decoded exactly: read the rows one by one instead."""


def _fetch(conn: Connection, sql: str, params: list[Any] | tuple[Any, ...], *,
           binary: bool = False) -> list[Any]:
    """Plain driver tuples of ``sql`` (``binary``: PostgreSQL's binary result format, e.g.
    ``bytea`` without hex text). Driver errors surface as SQLAlchemy's DBAPIError."""
    if binary and conn.dialect.name == "postgresql":
        dbapi_error = conn.dialect.loaded_dbapi.Error
        try:
            with conn.connection.driver_connection.cursor(binary=True) as cur:
                cur.execute(sql, params)
                return cur.fetchall()
        except dbapi_error as exc:
            raise sa.exc.DBAPIError.instance(sql, params, exc, dbapi_error) from exc
    result = conn.exec_driver_sql(sql, tuple(params))
    try:
        return result.cursor.fetchall()  # no per-row Row objects
    finally:
        result.close()


def _csv_ints(text: str, n: int) -> np.ndarray:
    """``n`` comma-separated integers (SQLite's ``group_concat``) as int64."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns (not raises) on trailing garbage
            values = np.fromstring(text, sep=",", dtype=np.int64)
    except (ValueError, Warning) as exc:
        raise _Unpackable(str(exc)) from None
    if len(values) != n:
        raise _Unpackable(f"expected {n} integers, got {len(values)}")
    return values


def _csv_stamps_ns(text: str, n: int) -> np.ndarray:
    """``n`` comma-separated naive UTC timestamps (SQLite's stored text; 'NaT' for NULL) as
    int64 ns since the epoch (NaT: INT64_MIN). The usual fixed width (``YYYY-MM-DD
    HH:MM:SS.ffffff``, what :func:`_driver_datetimes` and SQLAlchemy write) is parsed as one
    fixed-width byte array; anything else value by value."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # e.g. text with a UTC offset
            if len(text) == 27 * n - 1 and text.isascii():
                grid = np.frombuffer(text.encode("ascii") + b",", dtype=np.uint8).reshape(n, 27)
                if (grid[:, 26] == ord(",")).all():
                    stamps = np.ascontiguousarray(grid[:, :26]).view("S26").ravel()
                    return stamps.astype("datetime64[us]").astype("datetime64[ns]").view(
                        np.int64)
            values = text.split(",")
            if len(values) != n:
                raise _Unpackable(f"expected {n} timestamps, got {len(values)}")
            return np.array(values, dtype="datetime64[us]").astype("datetime64[ns]").view(
                np.int64)
    except (ValueError, Warning) as exc:
        raise _Unpackable(str(exc)) from None


def _big_endian(blob: bytes, kind: str, n: int) -> np.ndarray:
    """``n`` big-endian values (PostgreSQL's ``int8send``/``float8send``) in native order."""
    values = np.frombuffer(blob, dtype=kind)
    if len(values) != n:
        raise _Unpackable(f"expected {n} values, got {len(values)}")
    return values.astype(kind.replace(">", "="))


#: Microseconds from 1970-01-01 to 2000-01-01, PostgreSQL's timestamp epoch.
PG_EPOCH_US = 946_684_800_000_000
INT64_MIN = int(np.iinfo(np.int64).min)


def _pg_stamps_ns(blob: bytes, n: int) -> np.ndarray:
    """``n`` binary timestamptz values (``timestamptz_send``: µs since 2000, INT64_MIN for
    NULL) as int64 ns since 1970 (NaT: INT64_MIN)."""
    micros = _big_endian(blob, ">i8", n)
    null = micros == INT64_MIN
    unix = np.where(null, 0, micros + PG_EPOCH_US)
    if (np.abs(unix) >= 9_000_000_000_000_000).any():  # ±infinity, beyond pandas' ns range
        raise _Unpackable("timestamp out of range")
    return np.where(null, INT64_MIN, unix * 1000)


def _dictionary_encoded(text: str, separator: str, n: int) -> tuple[np.ndarray, list[str]]:
    """``text`` split at ``separator`` into ``n`` records and dictionary-encoded (pyarrow, no
    Python object per record): per-record codes (intp) and the distinct records."""
    import pyarrow as pa
    import pyarrow.compute as pc

    records = pc.split_pattern(pa.array([text], type=pa.large_string()), separator).flatten()
    if len(records) != n:
        raise _Unpackable("a value contains the record separator")
    encoded = records.dictionary_encode()
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp),
            encoded.dictionary.to_pylist())


# --------------------------------------------------------------------------- PostgreSQL COPY


def _text_codes(series: pd.Series) -> tuple[np.ndarray, list[str]]:
    """1-based int32 codes of ``series`` into its distinct values as bound strings (what
    :func:`_column_values` binds: ``str(v)``, JSON for dicts/lists), 0 for NULL (None, NaN).
    Raises TypeError for unhashable values."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object))
    strings = [json.dumps(u, default=str) if isinstance(u, dict | list | tuple) else str(u)
               for u in uniques]
    if not strings:
        return np.zeros(len(series), dtype=np.int32), []
    canon, dictionary = pd.factorize(np.asarray(strings, dtype=object))  # 1 and "1" meet
    return (np.where(codes >= 0, canon.take(codes) + 1, 0).astype(np.int32),
            [str(v) for v in dictionary])


def _pg_micros(series: pd.Series) -> np.ndarray:
    """Timestamps (naive = UTC) as PostgreSQL binary timestamptz: µs since 2000-01-01 UTC,
    INT64_MIN (= -infinity) for NaT."""
    idx = _utc_datetimes(series)
    micros = idx.as_unit("ns").asi8 // 1000 - PG_EPOCH_US
    return np.where(idx.isna(), INT64_MIN, micros)


def _binary_copy(fields: list[tuple[Any, np.ndarray]]) -> bytes:
    """A PostgreSQL binary COPY payload of fixed-width, non-NULL fields: ``(dtype, values)``
    per column in table order (big-endian dtypes, e.g. ``>i8``; ``("u1", k)`` for k raw bytes
    per row). Built as one numpy structured array, no Python object per row."""
    layout: list[tuple[str, Any]] = [("nfields", ">i2")]
    for j, (kind, _) in enumerate(fields):
        layout += [(f"size{j}", ">i4"), (f"f{j}", kind)]
    rows = np.empty(len(fields[0][1]), dtype=np.dtype(layout))
    rows["nfields"] = len(fields)
    for j, (_, values) in enumerate(fields):
        rows[f"size{j}"] = rows.dtype.fields[f"f{j}"][0].itemsize
        rows[f"f{j}"] = values
    return b"PGCOPY\n\xff\r\n\x00" + bytes(8) + rows.tobytes() + b"\xff\xff"


def _copy_in(conn: Connection, table: str, payload: bytes) -> None:
    """``COPY table FROM STDIN (FORMAT BINARY)`` with ``payload`` (see :func:`_binary_copy`),
    in the connection's transaction. Driver errors surface as SQLAlchemy's DBAPIError."""
    statement = f"COPY {table} FROM STDIN (FORMAT BINARY)"
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        with conn.connection.driver_connection.cursor() as cur, cur.copy(statement) as copy:
            view = memoryview(payload)
            for start in range(0, len(view), 1 << 22):
                copy.write(view[start:start + (1 << 22)])
    except dbapi_error as exc:
        raise sa.exc.DBAPIError.instance(statement, None, exc, dbapi_error) from exc
