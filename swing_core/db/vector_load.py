"""Setup vectors read back: :class:`VectorRows` and the fast matrix load.

:func:`load_vector_matrix` keeps 100,000 vectors cheap on both databases
(``benchmarks/bench_storage.py``): one aggregate query per id range packs each column of all
matching rows into one long value built inside the database, so Python decodes a handful of
buffers with numpy/pyarrow instead of building one object per row and column. PostgreSQL sends
binary ``int8send`` / ``float8send`` / ``timestamptz_send`` strings (binary result format);
SQLite comma-separated integers, its stored ISO timestamp text, the vectors' bytes concatenated,
and realized R split *exactly* into two integers (SQLite's float-to-text conversion is not always
exact; the few rows outside the split's range are counted by the same query and re-read as
REALs). The labels of all rows travel as one value and are dictionary-encoded, so only their
distinct combinations are parsed. Every aggregate of one query sees the rows in the same order,
so the columns line up; the result is then sorted by (ts, id). What the packed form cannot carry
(a label containing its separator, stored text that is not a plain timestamp, …) sends that load
through the plain per-row read instead.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from swing_core.db._bulk import (
    INT64_MIN,
    _big_endian,
    _csv_ints,
    _csv_stamps_ns,
    _dictionary_encoded,
    _fetch,
    _pg_stamps_ns,
    _quoted,
    _Unpackable,
)
from swing_core.db._convert import _driver_datetimes, _utc_index, _utc_stamp
from swing_core.db.core import _db_errors, _ready, describe_database
from swing_core.errors import DatabaseError
from swing_core.models import VECTOR_BYTES, VECTOR_DIM


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


_VECTOR_META = ["id", "symbol", "interval", "ts", "version", "setup", "side", "trend",
                "vol_regime", "realized_r", "exit_reason", "exit_ts", "hold_bars"]
_LABELS = ["symbol", "setup", "side", "trend", "vol_regime", "exit_reason"]
#: Ids per packed read: bounds each aggregated value (64 MiB of vectors at most).
_PACKED_CHUNK_IDS = 1 << 20
_PG_NULL8 = "decode('8000000000000000', 'hex')"  # INT64_MIN: NULL in packed int8/timestamps
#: SQLite sends realized R as a * 2**-20 + b * 2**-82 with a and b integers: scaling by powers
#: of two, subtracting the integer part and truncating are exact in IEEE arithmetic, so this
#: is exact for 2**-30 <= |r| < 2**43 (SQLite's own float-to-text is not always exact). The
#: same query counts the rows outside that range, which are then re-read as REALs.
_SQLITE_R = "coalesce(realized_r, 0.0)"
_SQLITE_A = f"CAST({_SQLITE_R} * 1048576.0 AS INTEGER)"
_SQLITE_B = f"CAST(({_SQLITE_R} * 1048576.0 - {_SQLITE_A}) * 4611686018427387904.0 AS INTEGER)"
_SQLITE_INEXACT = ("realized_r <> 0 AND (realized_r BETWEEN -9.313225746154785e-10 AND "
                   "9.313225746154785e-10 OR realized_r >= 8796093022208.0 OR "
                   "realized_r <= -8796093022208.0)")


@dataclass(frozen=True)
class _Query:
    """The rows a load selects, as SQL for either driver."""

    dialect: str
    interval: str | None
    version: str
    known_only: bool
    symbol: str | None
    known_by: pd.Timestamp | None

    def where(self, span: tuple[int, int] | None = None) -> tuple[str, list[Any]]:
        mark = "?" if self.dialect == "sqlite" else "%s"
        clauses, params = [f"version = {mark}"], [self.version]
        if self.interval is not None:
            clauses.append(f'"interval" = {mark}')
            params.append(self.interval)
        if self.symbol is not None:
            clauses.append(f"symbol = {mark}")
            params.append(self.symbol)
        if self.known_only:
            clauses.append("realized_r IS NOT NULL")
        if self.known_by is not None:
            clauses.append(f"exit_ts <= {mark}")
            params.append(_driver_datetimes(pd.Series([self.known_by]), self.dialect)[0])
        if span is not None:
            clauses.append(f"id >= {mark} AND id < {mark}")
            params += list(span)
        return " AND ".join(clauses), params

    @property
    def extras(self) -> list[str]:
        """What the packed labels carry after the six labels: SQLite also hold_bars and, unless
        every row has one, whether realized R is NULL; PostgreSQL whether exit_reason is NULL;
        both the interval when not filtered by it."""
        if self.dialect == "sqlite":
            extras = ["hold_bars"] + ([] if self.known_only else ["r_null"])
        else:
            extras = ["reason_null"]
        return extras + ([] if self.interval is not None else ["interval"])


@dataclass
class _Columns:
    """Decoded columns of one read: ``ts``/``exit_ts`` int64 ns since the epoch (NaT as
    INT64_MIN), ``hold_bars`` values with a NULL mask, labels as object arrays."""

    ids: np.ndarray
    ts: np.ndarray
    exit_ts: np.ndarray
    realized_r: np.ndarray
    hold: np.ndarray
    hold_null: np.ndarray
    labels: dict[str, np.ndarray]
    matrix: np.ndarray


def _label_sql(query: _Query) -> str:
    """The labels and extras of every row as one value: SQLite a JSON array of JSON arrays
    (NULLs and quoting for free, and cheaper than printf), PostgreSQL unit-separated strings
    joined by the record separator."""
    if query.dialect == "sqlite":
        extra = {"hold_bars": "hold_bars", "r_null": "realized_r IS NULL",
                 "interval": '"interval"'}
        values = _LABELS + [extra[e] for e in query.extras]
        return f"json_group_array(json_array({', '.join(values)}))"
    extra = {"reason_null": "(exit_reason IS NULL)::int", "interval": '"interval"'}
    values = [c if c != "exit_reason" else "coalesce(exit_reason, '')" for c in _LABELS]
    values += [extra[e] for e in query.extras]
    return f"string_agg(concat_ws(chr(31), {', '.join(values)}), chr(30))"


def _packed_sql(query: _Query, span: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """One aggregate row: the row count, then each column of all matching rows packed into one
    value (every aggregate of the query sees the rows in the same order)."""
    where, params = query.where(span)
    if query.dialect == "sqlite":
        parts = ["count(*)", "group_concat(id)", "group_concat(ts)",
                 "group_concat(coalesce(exit_ts, 'NaT'))", f"group_concat({_SQLITE_A})",
                 f"group_concat({_SQLITE_B})", _label_sql(query),
                 "CAST(group_concat(vector, '') AS BLOB)",
                 f"count(*) FILTER (WHERE {_SQLITE_INEXACT})"]
    else:
        parts = ["count(*)", "string_agg(int8send(id), '')",
                 "string_agg(timestamptz_send(ts), '')",
                 f"string_agg(coalesce(timestamptz_send(exit_ts), {_PG_NULL8}), '')",
                 f"string_agg(coalesce(int8send(hold_bars::int8), {_PG_NULL8}), '')",
                 "string_agg(float8send(coalesce(realized_r, 'NaN')), '')",
                 _label_sql(query), "string_agg(vector, '')"]
    return f"SELECT {', '.join(parts)} FROM setup_vectors WHERE {where}", params


def _decode_labels(text: str, n: int, query: _Query) -> tuple[np.ndarray, dict[str, list[Any]]]:
    """The packed labels: per-row codes into the distinct combinations, and the labels and
    extras of each combination (so only those are parsed)."""
    names = _LABELS + query.extras
    if query.dialect == "sqlite":  # [[…],[…],…]: split at "],[" (a label holding it: count)
        if not (text.startswith("[[") and text.endswith("]]")):
            raise _Unpackable("unexpected JSON")
        codes, uniques = _dictionary_encoded(text[2:-2], "],[", n)
        parts = [json.loads(f"[{u}]") for u in uniques]
    else:
        codes, uniques = _dictionary_encoded(text, "\x1e", n)
        parts = [u.split("\x1f") for u in uniques]
    if any(len(p) != len(names) for p in parts):
        raise _Unpackable("a label contains the unit separator")
    values = {name: [p[j] for p in parts] for j, name in enumerate(names)}
    if "reason_null" in values:
        values["exit_reason"] = [None if null == "1" else reason for reason, null in zip(
            values["exit_reason"], values.pop("reason_null"), strict=True)]
    return codes, values


def _taken(codes: np.ndarray, values: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    return {name: np.array(v, dtype=object).take(codes) for name, v in values.items()}


def _matrix(blob: bytes, n: int, conn: Connection) -> np.ndarray:
    if len(blob) != n * VECTOR_BYTES:
        raise DatabaseError(f"Corrupt setup vectors in {describe_database(conn.engine)}: "
                            f"expected {VECTOR_BYTES} bytes per row.")
    return np.frombuffer(blob, dtype="<f4").reshape(n, VECTOR_DIM)


def _exact_realized_r(conn: Connection, query: _Query, span: tuple[int, int] | None,
                      ids: np.ndarray, r: np.ndarray) -> None:
    """Overwrite (in place) the realized R of the rows the integer split cannot carry exactly
    with their stored REALs."""
    where, params = query.where(span)
    rows = _fetch(conn, f"SELECT id, realized_r FROM setup_vectors WHERE {where} AND "
                        f"({_SQLITE_INEXACT})", params)
    if rows:
        order = np.argsort(ids)
        patch = np.array(rows, dtype=object)
        r[order[np.searchsorted(ids, patch[:, 0].astype(np.int64), sorter=order)]] = \
            patch[:, 1].astype(np.float64)


def _sqlite_columns(row: Any, query: _Query, conn: Connection,
                    span: tuple[int, int] | None) -> _Columns:
    n, ids, ts, exit_ts, a, b, labels, vectors, inexact = row
    ids = _csv_ints(ids, n)
    codes, values = _decode_labels(labels, n, query)
    r = np.ldexp(_csv_ints(a, n).astype(np.float64), -20) + np.ldexp(
        _csv_ints(b, n).astype(np.float64), -82)
    if inexact:
        _exact_realized_r(conn, query, span, ids, r)
    if "r_null" in values:
        r[np.array([v == 1 for v in values.pop("r_null")], dtype=bool).take(codes)] = np.nan
    hold = values.pop("hold_bars")
    if not all(v is None or type(v) is int for v in hold):  # a stored non-integer
        raise _Unpackable("hold_bars")
    return _Columns(ids, _csv_stamps_ns(ts, n), _csv_stamps_ns(exit_ts, n), r,
                    np.array([v or 0 for v in hold], dtype=np.int64).take(codes),
                    np.array([v is None for v in hold], dtype=bool).take(codes),
                    _taken(codes, values), _matrix(vectors, n, conn))


def _pg_columns(row: Any, query: _Query, conn: Connection,
                span: tuple[int, int] | None) -> _Columns:
    n, ids, ts, exit_ts, hold, r, labels, vectors = row
    hold = _big_endian(hold, ">i8", n)
    return _Columns(_big_endian(ids, ">i8", n), _pg_stamps_ns(ts, n), _pg_stamps_ns(exit_ts, n),
                    _big_endian(r, ">f8", n), hold, hold == INT64_MIN,
                    _taken(*_decode_labels(labels, n, query)), _matrix(vectors, n, conn))


def _id_spans(conn: Connection) -> list[tuple[int, int] | None]:
    """Id ranges of at most _PACKED_CHUNK_IDS ids covering the table ([None]: one read)."""
    (low, high), = _fetch(conn, "SELECT (SELECT min(id) FROM setup_vectors), "
                                "(SELECT max(id) FROM setup_vectors)", [])
    if low is None:
        return []
    if high - low < _PACKED_CHUNK_IDS:
        return [None]
    return [(lo, lo + _PACKED_CHUNK_IDS) for lo in range(low, high + 1, _PACKED_CHUNK_IDS)]


def _concat(parts: list[_Columns]) -> _Columns | None:
    if len(parts) <= 1:
        return parts[0] if parts else None
    return _Columns(*[np.concatenate([getattr(p, f) for p in parts])
                      for f in ("ids", "ts", "exit_ts", "realized_r", "hold", "hold_null")],
                    {k: np.concatenate([p.labels[k] for p in parts]) for k in parts[0].labels},
                    np.concatenate([p.matrix for p in parts]))


def _read_packed(conn: Connection, query: _Query) -> _Columns | None:
    """The selected rows through packed aggregate reads (see the module docstring). Raises
    _Unpackable when they cannot be carried exactly that way."""
    sqlite = query.dialect == "sqlite"
    if sqlite and (sqlite3.sqlite_version_info < (3, 30)  # aggregate FILTER clauses
                   or _fetch(conn, "PRAGMA encoding", [])[0][0] != "UTF-8"):  # blobs as text
        raise _Unpackable("needs SQLite >= 3.30 and a UTF-8 database")
    parts = []
    for span in _id_spans(conn):
        sql, params = _packed_sql(query, span)
        try:
            (row,) = _fetch(conn, sql, params, binary=True)
        except sa.exc.OperationalError as exc:  # SQLite: no JSON functions, a BLOB label, …
            if not sqlite:
                raise
            raise _Unpackable(str(exc)) from None
        if row[0]:
            parts.append((_sqlite_columns if sqlite else _pg_columns)(row, query, conn, span))
    return _concat(parts)


def _read_rows(conn: Connection, query: _Query) -> _Columns | None:
    """The selected rows through a plain per-row read (the fallback of the packed one)."""
    where, params = query.where()
    labels = _LABELS + [e for e in query.extras if e == "interval"]
    names = ["id", "ts", "exit_ts", "realized_r", "hold_bars", *labels, "vector"]
    rows = _fetch(conn, f"SELECT {', '.join(_quoted(names))} FROM setup_vectors WHERE {where}",
                  params)
    if not rows:
        return None
    table = np.array(rows, dtype=object)  # (n, k): much cheaper than zip(*rows) for big k
    del rows
    column = {name: table[:, j] for j, name in enumerate(names)}
    hold = pd.array(pd.to_numeric(column["hold_bars"]), dtype="Int64")
    return _Columns(
        column["id"].astype(np.int64),
        _utc_index(column["ts"]).as_unit("ns").asi8,
        _utc_index(column["exit_ts"]).as_unit("ns").asi8,
        pd.to_numeric(column["realized_r"]).astype(np.float64),
        hold.to_numpy(dtype=np.int64, na_value=0), np.asarray(hold.isna()),
        {name: np.array(column[name], dtype=object) for name in labels},
        _matrix(b"".join(column["vector"]), len(table), conn),
    )


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


def _constant(value: Any, n: int) -> np.ndarray:
    return np.repeat(np.array([value], dtype=object), n)  # np.full is ~20x slower for objects


def _vector_rows(cols: _Columns | None, query: _Query) -> VectorRows:
    """The decoded columns as VectorRows, ordered by (ts, id)."""
    if cols is None or len(cols.ids) == 0:
        return _empty_vector_rows()
    n = len(cols.ids)
    step_ts, step_id = np.diff(cols.ts), np.diff(cols.ids)
    if ((step_ts > 0) | ((step_ts == 0) & (step_id > 0))).all():
        def put(values: np.ndarray) -> np.ndarray:
            return values
        matrix = cols.matrix.copy()  # writable, owns its memory
    else:
        order = np.lexsort((cols.ids, cols.ts))

        def put(values: np.ndarray) -> np.ndarray:
            return values.take(order, axis=0)
        matrix = put(cols.matrix)
    data = {name: put(values) for name, values in cols.labels.items()}
    if "interval" not in data:
        data["interval"] = _constant(query.interval, n)
    data.update({
        "id": put(cols.ids),
        "ts": pd.DatetimeIndex(put(cols.ts).view("M8[ns]")).tz_localize("UTC"),
        "version": _constant(query.version, n),
        "realized_r": put(cols.realized_r),
        "exit_ts": pd.DatetimeIndex(put(cols.exit_ts).view("M8[ns]")).tz_localize("UTC"),
        "hold_bars": pd.arrays.IntegerArray(put(cols.hold).astype(np.int64),
                                            put(cols.hold_null).astype(bool)),
    })
    # copy=False: every array is fresh and owned by the frame (a copy costs ~20 ms per 100k)
    meta = pd.DataFrame({name: data[name] for name in _VECTOR_META}, copy=False)
    return VectorRows(meta, matrix)


@_db_errors
def load_vector_matrix(engine: Engine, *, interval: str | None = None, version: str = "v1",
                       known_only: bool = True, symbol: str | None = None,
                       known_by: Any = None) -> VectorRows:
    """Setup vectors as one float32 matrix plus their metadata, oldest ``ts`` first (ties by id).

    ``known_only``: only rows with a realized R. ``known_by`` (UTC): only outcomes known by then
    (``exit_ts <= known_by``, the point-in-time rule). Built for speed: each column of all rows
    comes packed into one value by the database and is decoded with numpy (see the module
    docstring); the vectors with one ``np.frombuffer`` over the joined bytes."""
    _ready(engine)
    query = _Query(engine.dialect.name, interval, version, known_only, symbol,
                   None if known_by is None else _utc_stamp(known_by))
    with engine.connect() as conn:
        try:
            columns = _read_packed(conn, query)
        except _Unpackable:
            columns = _read_rows(conn, query)
    return _vector_rows(columns, query)
