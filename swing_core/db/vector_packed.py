"""The packed read of setup vectors: SQL and decoders (used by :mod:`~swing_core.db.vector_load`).

One aggregate query per id range packs each column of all matching rows into one long value
built inside the database, so Python decodes a handful of buffers with numpy/pyarrow instead of
building one object per row and column. PostgreSQL sends binary ``int8send`` / ``float8send`` /
``timestamptz_send`` strings (binary result format); SQLite comma-separated integers, its stored
ISO timestamp text, the vectors' bytes concatenated, and realized R split *exactly* into two
integers (SQLite's float-to-text conversion is not always exact; the few rows outside the
split's range are counted by the same query and re-read as REALs). Each label column travels as
one value, its rows separated by the record separator, and is dictionary-encoded by pyarrow (NULL
as the unit separator, checked against ``count(column)``), so labels stay codes into a handful of
distinct values whatever the number of their combinations. Every aggregate of one query sees the
rows in the same order, so the columns line up. What the packed form cannot carry (a label
holding the record separator, a stored value of an odd type, stored text that is not a plain
timestamp, …) raises :class:`_Unpackable`, and the load takes the plain per-row read instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from swing_core.db._bulk import (
    INT64_MIN,
    _big_endian,
    _csv_ints,
    _csv_stamps_ns,
    _dictionary_encoded,
    _fetch,
    _pg_stamps_ns,
    _Unpackable,
)
from swing_core.db._convert import _driver_datetimes
from swing_core.db.core import describe_database
from swing_core.errors import DatabaseError
from swing_core.models import VECTOR_BYTES, VECTOR_DIM

LABELS = ("symbol", "setup", "side", "trend", "vol_regime", "exit_reason")
_NULL_LABEL = "\x1f"  # a NULL label in the packed text (exit_reason is the nullable one)
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
    """The rows a load selects, as SQL for either driver; ``labels``: the label columns read
    (``interval`` is added when not filtered by it)."""

    dialect: str
    interval: str | None
    version: str
    known_only: bool
    symbol: str | None
    known_by: pd.Timestamp | None
    labels: tuple[str, ...] = LABELS

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
    def label_columns(self) -> tuple[str, ...]:
        return self.labels + (("interval",) if self.interval is None else ())


@dataclass
class _Columns:
    """Decoded columns of one read: ``ts``/``exit_ts`` int64 ns since the epoch (NaT as
    INT64_MIN), ``realized_r`` with NaN where ``r_null``, ``hold_bars`` values with a NULL mask,
    labels as (codes, distinct values) pairs (None for NULL)."""

    ids: np.ndarray
    ts: np.ndarray
    exit_ts: np.ndarray
    realized_r: np.ndarray
    r_null: np.ndarray
    hold: np.ndarray
    hold_null: np.ndarray
    matrix: np.ndarray
    labels: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    _ARRAYS = ("ids", "ts", "exit_ts", "realized_r", "r_null", "hold", "hold_null", "matrix")

    def take(self, rows: np.ndarray) -> _Columns:
        return _Columns(*[getattr(self, f).take(rows, axis=0) for f in self._ARRAYS],
                        {k: (codes.take(rows), u) for k, (codes, u) in self.labels.items()})

    @staticmethod
    def concat(parts: list[_Columns]) -> _Columns | None:
        if len(parts) <= 1:
            return parts[0] if parts else None
        labels = {}
        for name in parts[0].labels:  # re-encoded over the distinct values of all parts
            values = np.concatenate([u.take(c) for c, u in (p.labels[name] for p in parts)])
            labels[name] = _factorized(values)
        return _Columns(*[np.concatenate([getattr(p, f) for p in parts])
                          for f in _Columns._ARRAYS], labels)


def _factorized(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Object values as (codes, distinct values), NULL kept as a value."""
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    uniques = np.asarray(uniques, dtype=object)
    uniques[pd.isna(uniques)] = None  # (factorize gives NaN)
    return codes, uniques


def packed_sql(query: _Query, span: tuple[int, int] | None) -> tuple[str, list[Any]]:
    """One aggregate row: the row count, then each column of all matching rows packed into one
    value (every aggregate of the query sees the rows in the same order), then the checks."""
    where, params = query.where(span)
    null = " FILTER (WHERE realized_r IS NULL)"  # the ids of rows without an outcome
    if query.dialect == "sqlite":  # each aggregate costs ~70 ns per row: as few as possible
        labels = [f"json_group_array(coalesce({c}, char(31)))" if c == "exit_reason"
                  else f'json_group_array("{c}")' for c in query.label_columns]
        parts = ["count(*)", "group_concat(id)", "group_concat(ts)",
                 "group_concat(coalesce(exit_ts, 'NaT'))", f"group_concat({_SQLITE_A})",
                 f"group_concat({_SQLITE_B})", "group_concat(coalesce(hold_bars, ''))",
                 "NULL" if query.known_only else f"group_concat(id){null}",
                 "count(exit_reason)", *labels, "CAST(group_concat(vector, '') AS BLOB)",
                 f"count(*) FILTER (WHERE {_SQLITE_INEXACT})"]
    else:
        labels = [f"string_agg(coalesce({c}, chr(31)), chr(30))" if c == "exit_reason"
                  else f'string_agg("{c}", chr(30))' for c in query.label_columns]
        parts = ["count(*)", "string_agg(int8send(id), '')",
                 "string_agg(timestamptz_send(ts), '')",
                 f"string_agg(coalesce(timestamptz_send(exit_ts), {_PG_NULL8}), '')",
                 "string_agg(float8send(coalesce(realized_r, 'NaN')), '')",
                 f"string_agg(coalesce(int8send(hold_bars::int8), {_PG_NULL8}), '')",
                 "NULL" if query.known_only else f"string_agg(int8send(id), ''){null}",
                 "count(exit_reason)", *labels, "string_agg(vector, '')"]
    return f"SELECT {', '.join(parts)} FROM setup_vectors WHERE {where}", params


def _labels(texts: tuple[str, ...], n: int, n_reasons: int,
            query: _Query) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each packed label column as (codes, distinct values); NULL exit reasons as None. SQLite
    sends JSON arrays of strings (a BLOB label makes the query fail, a NULL is the unit
    separator): inside them '","' only ever separates two values, and only distinct values
    holding a backslash need decoding."""
    out = {}
    sqlite = query.dialect == "sqlite"
    for name, text in zip(query.label_columns, texts, strict=True):
        if sqlite:
            if not (text.startswith('["') and text.endswith('"]')):
                raise _Unpackable("unexpected JSON")
            codes, uniques = _dictionary_encoded(text[2:-2], '","', n)
            uniques = [json.loads(f'"{u}"') if "\\" in u else u for u in uniques]
        else:
            codes, uniques = _dictionary_encoded(text, "\x1e", n)
        values = np.empty(len(uniques), dtype=object)
        values[:] = uniques
        if name == "exit_reason" and _NULL_LABEL in uniques:
            null = uniques.index(_NULL_LABEL)
            if int((codes == null).sum()) != n - n_reasons:  # a stored "\x1f" is not NULL
                raise _Unpackable("an exit reason equal to the NULL marker")
            values[null] = None
        out[name] = (codes, values)
    return out


def _optional_ints(text: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` comma-separated integers, an empty field for NULL: (values with 0 for NULL,
    NULL mask). Anything that is not an integer raises _Unpackable."""
    import pyarrow as pa  # lazy, as in _bulk
    import pyarrow.compute as pc

    fields = pc.split_pattern(pa.array([text], type=pa.large_string()), ",").flatten()
    if len(fields) != n:
        raise _Unpackable(f"expected {n} integers, got {len(fields)}")
    null = pc.equal(fields, "")
    try:
        values = pc.cast(pc.if_else(null, "0", fields), pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise _Unpackable(str(exc)) from None
    return values.to_numpy(), null.to_numpy(zero_copy_only=False)


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


def _null_r(ids: np.ndarray, null_ids: np.ndarray) -> np.ndarray:
    if len(null_ids) == 0:
        return np.zeros(len(ids), dtype=bool)
    return np.isin(ids, null_ids)


def sqlite_columns(row: Any, query: _Query, conn: Connection,
                   span: tuple[int, int] | None) -> _Columns:
    n, ids, ts, exit_ts, a, b, hold, null_ids, n_reasons, *labels, vectors, inexact = row
    ids = _csv_ints(ids, n)
    r = np.ldexp(_csv_ints(a, n).astype(np.float64), -20) + np.ldexp(
        _csv_ints(b, n).astype(np.float64), -82)
    if inexact:
        _exact_realized_r(conn, query, span, ids, r)
    r_null = _null_r(ids, np.fromstring(null_ids or "", sep=",", dtype=np.int64))
    r[r_null] = np.nan
    hold, hold_null = _optional_ints(hold, n)
    return _Columns(ids, _csv_stamps_ns(ts, n), _csv_stamps_ns(exit_ts, n), r, r_null,
                    hold, hold_null, _matrix(vectors, n, conn),
                    _labels(tuple(labels), n, n_reasons, query))


def pg_columns(row: Any, query: _Query, conn: Connection,
               span: tuple[int, int] | None) -> _Columns:
    n, ids, ts, exit_ts, r, hold, null_ids, n_reasons, *labels, vectors = row
    ids = _big_endian(ids, ">i8", n)
    hold = _big_endian(hold, ">i8", n)
    hold_null = hold == INT64_MIN
    r_null = _null_r(ids, np.frombuffer(null_ids or b"", dtype=">i8"))
    return _Columns(ids, _pg_stamps_ns(ts, n), _pg_stamps_ns(exit_ts, n),
                    _big_endian(r, ">f8", n), r_null, np.where(hold_null, 0, hold), hold_null,
                    _matrix(vectors, n, conn), _labels(tuple(labels), n, n_reasons, query))
