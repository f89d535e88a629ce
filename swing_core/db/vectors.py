"""Setup vectors: float32 bytes, idempotent upserts, outcomes, the fast matrix load.

Two bulk paths keep 100,000 vectors cheap on both databases (``benchmarks/bench_storage.py``):

- **Load** (:func:`load_vector_matrix`): one aggregate query per id range packs each column of
  all matching rows into one long value built inside the database, so Python decodes a handful
  of buffers with numpy/pyarrow instead of building one object per row and column. PostgreSQL
  sends binary ``int8send`` / ``float8send`` / ``timestamptz_send`` strings (binary result
  format); SQLite comma-separated integers, its stored ISO timestamp text, the vectors' bytes
  concatenated, and realized R split *exactly* into two integers (SQLite's float-to-text
  conversion is not always exact; the few rows outside the split's range are counted by the
  same query and re-read as REALs). The labels of all rows travel as one value and are
  dictionary-encoded, so only their distinct combinations are parsed. Every aggregate of one
  query sees the rows in the same order, so the columns line up; the result is then sorted by
  (ts, id). What the packed form cannot carry (a label containing its separator, stored text
  that is not a plain timestamp, …) sends that load through the plain per-row read instead.
- **PostgreSQL upsert** (:func:`upsert_vectors`): one binary ``COPY`` of fixed-width rows (labels
  as dictionary codes, NULLs as sentinels) into a temporary table, then one
  ``INSERT … SELECT … ON CONFLICT DO UPDATE`` (rows whose stored values would not change are
  left alone). SQLite keeps its executemany (a C loop, already fast), as do batches that repeat a
  key (applied in order, the last one wins).
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

from swing_core.db._convert import (
    INT64_MIN,
    Columns,
    _as_frame,
    _big_endian,
    _binary_copy,
    _column_values,
    _columns,
    _copy_in,
    _csv_ints,
    _csv_stamps_ns,
    _dictionary_encoded,
    _driver_datetimes,
    _fetch,
    _outcome_updates,
    _pg_micros,
    _pg_stamps_ns,
    _text_codes,
    _Unpackable,
    _upsert,
    _utc_index,
    _utc_stamp,
)
from swing_core.db.core import _db_errors, _ready, describe_database, write_transaction
from swing_core.errors import DatabaseError
from swing_core.models import (
    VECTOR_BYTES,
    VECTOR_DIM,
    SetupVector,
    utc_now,
)

# --------------------------------------------------------------------------- setup vectors

VECTOR_COLUMNS = [f"vec_{i:02d}" for i in range(VECTOR_DIM)]
_VECTOR_KEYS = ["symbol", "interval", "ts", "version"]
_OUTCOME_COLUMNS = ("realized_r", "exit_reason", "exit_ts", "hold_bars")
_REWRITTEN = ("setup", "side", "trend", "vol_regime", "vector")  # what an upsert replaces


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
        values = frame["vector"].tolist()
        try:  # one C loop when every value is a flat sequence of 16 numbers
            matrix = np.array(values, dtype=np.float32)
        except (TypeError, ValueError):  # ragged or odd values: checked one by one below
            matrix = np.empty(0)
        if matrix.ndim != 2:
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1)
                               for v in values]) if len(frame) else \
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


def _vector_columns(frame: pd.DataFrame, driver: str, *,
                    matrix: np.ndarray | None = None) -> Columns:
    """Driver-ready column values of setup-vector rows (for :func:`_upsert_vector_columns`)."""
    blob = (_vector_matrix(frame) if matrix is None else matrix).tobytes()
    base = frame.drop(columns=[c for c in ("vector", *VECTOR_COLUMNS) if c in frame.columns])
    blobs = [blob[i:i + VECTOR_BYTES] for i in range(0, len(blob), VECTOR_BYTES)]
    return _columns(base.assign(vector=blobs), SetupVector, fixed={"created_at": utc_now()},
                    driver=driver)


def _upsert_vector_columns(conn: Connection, columns: Columns, present: set[str]) -> None:
    """Executemany upsert of driver-ready rows (any dialect; applied in row order)."""
    outcome = tuple(c for c in _OUTCOME_COLUMNS if c in present)
    _upsert(conn, SetupVector.__table__, columns, _VECTOR_KEYS, list(_REWRITTEN), keep=outcome)


@_db_errors
def upsert_vectors(engine: Engine, rows: pd.DataFrame | list[dict[str, Any]]) -> int:
    """Insert or update setup vectors keyed by (symbol, interval, ts, version), in one transaction.

    ``rows``: columns symbol, interval, ts (UTC open time of the signal bar), version (default
    "v1"), setup, side, trend, vol_regime, and either ``vector`` (16 float32 values per row) or
    ``vec_00`` … ``vec_15``; optional outcome columns realized_r, exit_reason, exit_ts (UTC time
    the outcome became known), hold_bars. An upsert never erases a known outcome (NULL outcome
    values keep the stored ones). Returns rows written. On PostgreSQL the rows go through one
    binary COPY into a temporary table and one INSERT … SELECT … ON CONFLICT."""
    _ready(engine)
    frame = _as_frame(rows)
    if len(frame) == 0:
        return 0
    matrix = _vector_matrix(frame)
    present = set(frame.columns)
    staged = _stage_rows(frame, matrix) if engine.dialect.name == "postgresql" else None
    if staged is None:
        columns = _vector_columns(frame, engine.dialect.name, matrix=matrix)
    with write_transaction(engine) as conn:
        if staged is None:
            _upsert_vector_columns(conn, columns, present)
        else:
            _staged_upsert(conn, staged, present)
    return len(frame)


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


# --------------------------------------------------------------------------- PostgreSQL COPY

#: Text columns staged as 1-based codes into a dictionary (0 = NULL), with the value a NULL
#: takes (None: stays NULL, the column is nullable; _REQUIRED: an error).
_REQUIRED = object()
_CODED: dict[str, Any] = {"symbol": _REQUIRED, "interval": _REQUIRED, "version": "v1",
                          "setup": "none", "side": "none", "trend": "sideways",
                          "vol_regime": "M", "exit_reason": None}
_STAGE = "swing_vector_stage"
_STAGE_COLUMNS = ("ts timestamptz, exit_ts timestamptz, realized_r float8, hold_bars int8, "
                  "vector bytea, " + ", ".join(f"c_{name} int4" for name in _CODED))


@dataclass(frozen=True)
class _StagedRows:
    """Setup-vector rows as one binary COPY payload for :data:`_STAGE`, plus the label
    dictionaries its codes point into."""

    payload: bytes
    dictionaries: dict[str, list[str]]


def _label_codes(frame: pd.DataFrame, name: str) -> tuple[np.ndarray, list[str]]:
    """Codes of column ``name`` (see ``_text_codes``); NULLs of a NOT NULL column take the
    model default, or raise ValueError if it has none."""
    if name in frame.columns:
        codes, labels = _text_codes(frame[name])
    else:
        codes, labels = np.zeros(len(frame), dtype=np.int32), []
    default = _CODED[name]
    if default is not None and (codes == 0).any():
        if default is _REQUIRED:
            raise ValueError(f"setup_vectors: column {name!r} is required but missing.")
        labels = [*labels, default]
        codes = np.where(codes == 0, len(labels), codes).astype(np.int32)
    return codes, labels


def _numbers(frame: pd.DataFrame, name: str) -> np.ndarray:
    """Column ``name`` as float64, NaN for NULL (what ``_column_values`` binds as None)."""
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64,
                                                                 na_value=np.nan)


def _stage_rows(frame: pd.DataFrame, matrix: np.ndarray) -> _StagedRows | None:
    """The rows as fixed-width binary COPY rows (NULL outcomes as sentinels: NaN, -infinity,
    INT64_MIN), or None when they must take the executemany path (a key repeated in the batch:
    ON CONFLICT may not touch a row twice; unhashable label values)."""
    try:
        coded = {name: _label_codes(frame, name) for name in _CODED}
    except TypeError:
        return None
    ts = _pg_micros(frame["ts"]) if "ts" in frame.columns else np.full(len(frame), INT64_MIN)
    if (ts == INT64_MIN).any():
        raise ValueError("setup_vectors: column 'ts' is required but missing.")
    keys = pd.DataFrame({"symbol": coded["symbol"][0], "interval": coded["interval"][0],
                         "ts": ts, "version": coded["version"][0]})
    if keys.duplicated().any():
        return None
    hold = _numbers(frame, "hold_bars")
    if np.isinf(hold).any():
        raise ValueError("setup_vectors: hold_bars must be finite.")
    exit_ts = (_pg_micros(frame["exit_ts"]) if "exit_ts" in frame.columns
               else np.full(len(frame), INT64_MIN))
    payload = _binary_copy([
        (">i8", ts), (">i8", exit_ts), (">f8", _numbers(frame, "realized_r")),
        (">i8", np.where(np.isnan(hold), INT64_MIN, np.nan_to_num(hold).astype(np.int64))),
        (("u1", VECTOR_BYTES), matrix.view(np.uint8).reshape(-1, VECTOR_BYTES)),
        *[(">i4", codes) for codes, _ in coded.values()],
    ])
    return _StagedRows(payload, {name: labels for name, (_, labels) in coded.items()})


def _quoted(names: list[str]) -> list[str]:
    return [f'"{name}"' for name in names]


def _staged_upsert_sql(present: set[str]) -> str:
    """INSERT … SELECT from the staged rows … ON CONFLICT DO UPDATE: labels and vector replaced,
    outcome columns given in the batch COALESCEd (a NULL never erases a known outcome), other
    outcome columns untouched; rows that would not change are not rewritten."""
    source = {name: f"(%({name})s::text[])[s.c_{name}]" for name in _CODED}
    source.update({
        "ts": "s.ts", "vector": "s.vector", "exit_ts": "NULLIF(s.exit_ts, '-infinity')",
        "realized_r": "NULLIF(s.realized_r, 'NaN')", "created_at": "%(created_at)s",
        "hold_bars": f"NULLIF(s.hold_bars, '{INT64_MIN}'::int8)::integer",
    })
    targets = [c.name for c in SetupVector.__table__.columns if c.name != "id"]
    new = {c: f"excluded.{c}" for c in _REWRITTEN}
    new.update({c: f"COALESCE(excluded.{c}, setup_vectors.{c})"
                for c in _OUTCOME_COLUMNS if c in present})
    return (
        f"INSERT INTO setup_vectors ({', '.join(_quoted(targets))}) "
        f"SELECT {', '.join(source[c] for c in targets)} FROM pg_temp.{_STAGE} AS s "
        'ON CONFLICT (symbol, "interval", ts, version) DO UPDATE SET '
        + ", ".join(f"{c} = {v}" for c, v in new.items())
        + f" WHERE ({', '.join(f'setup_vectors.{c}' for c in new)}) IS DISTINCT FROM "
        f"({', '.join(new.values())})"
    )


def _staged_upsert(conn: Connection, staged: _StagedRows, present: set[str]) -> None:
    """Stage the rows with one binary COPY and upsert them with one statement (PostgreSQL)."""
    conn.exec_driver_sql(f"CREATE TEMP TABLE {_STAGE} ({_STAGE_COLUMNS}) ON COMMIT DROP")
    _copy_in(conn, f"pg_temp.{_STAGE}", staged.payload)
    conn.exec_driver_sql(_staged_upsert_sql(present),
                         {**staged.dictionaries, "created_at": utc_now()})


# --------------------------------------------------------------------------- matrix load

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
