"""Driver-level bulk transfer: the decoders of packed aggregate reads (one value per column of
all matching rows) and the encoder of PostgreSQL binary ``COPY`` payloads, with the plain driver
fetch they share. Used by the setup-vector modules (:mod:`~swing_core.db.vector_load`,
:mod:`~swing_core.db.vector_copy`)."""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from swing_core.db._convert import _refuse_nul, _utc_datetimes

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


def _quoted(names: list[str]) -> list[str]:
    """Column names as quoted SQL identifiers (``interval`` is a keyword)."""
    return [f'"{name}"' for name in names]


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
    HH:MM:SS.ffffff``, what :func:`~swing_core.db._convert._driver_datetimes` and SQLAlchemy
    write) is parsed as one fixed-width byte array; anything else value by value."""
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
    import pyarrow as pa  # lazy: only packed vector loads need it, not every database user
    import pyarrow.compute as pc

    records = pc.split_pattern(pa.array([text], type=pa.large_string()), separator).flatten()
    if len(records) != n:
        raise _Unpackable("a value contains the record separator")
    encoded = records.dictionary_encode()
    return (encoded.indices.to_numpy(zero_copy_only=False).astype(np.intp),
            encoded.dictionary.to_pylist())


# --------------------------------------------------------------------------- PostgreSQL COPY


def _text_codes(series: pd.Series, table: str | None = None) -> tuple[np.ndarray, list[str]]:
    """1-based int32 codes of ``series`` into its distinct values as bound strings (what
    :func:`~swing_core.db._convert._column_values` binds: ``str(v)``, JSON for dicts/lists), 0
    for NULL (None, NaN). Raises TypeError for unhashable values, DataError for text with a NUL
    character (the same rule as ``_column_values``)."""
    codes, uniques = pd.factorize(series.to_numpy(dtype=object))
    strings = [json.dumps(u, default=str) if isinstance(u, dict | list | tuple) else str(u)
               for u in uniques]
    if not strings:
        return np.zeros(len(series), dtype=np.int32), []
    _refuse_nul(strings, str(series.name), table)
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
