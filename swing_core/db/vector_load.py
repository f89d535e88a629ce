"""Setup vectors read back: VectorRows, the fast matrix load and the pattern library's load.

:func:`load_vector_matrix` keeps 100,000 vectors cheap on both databases
(``benchmarks/bench_storage.py``): one aggregate query per id range packs each column of all
matching rows into one long value built inside the database (:mod:`~swing_core.db.vector_packed`),
so Python decodes a handful of buffers with numpy/pyarrow instead of building one object per row
and column; the result is then sorted by (ts, id). What the packed form cannot carry sends that
load through the plain per-row read instead. :func:`load_vector_library` is the same read for the
pattern index (``PatternIndex.from_db``): labels as pandas categoricals (codes, no string per
row), and in the same query the marks of its incremental refresh (highest id, ids without an
outcome).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from swing_core.db._bulk import _fetch, _quoted, _Unpackable
from swing_core.db._convert import _utc_index, _utc_stamp
from swing_core.db.core import _db_errors, _ready
from swing_core.db.vector_packed import (
    LABELS,
    _Columns,
    _factorized,
    _matrix,
    _Query,
    packed_sql,
    pg_columns,
    sqlite_columns,
)
from swing_core.models import VECTOR_DIM


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


@dataclass(frozen=True)
class VectorLibrary:
    """What the pattern index loads (:func:`load_vector_library`): the ``rows`` with a known
    outcome (labels as pandas categoricals; no ``version``, ``trend``), the highest ``max_id``
    of all selected rows (0: none) and the ids of those ``pending`` an outcome, from one read."""

    rows: VectorRows
    max_id: int
    pending: np.ndarray


_VECTOR_META = ["id", "symbol", "interval", "ts", "version", "setup", "side", "trend",
                "vol_regime", "realized_r", "exit_reason", "exit_ts", "hold_bars"]
_LIBRARY_LABELS = tuple(c for c in LABELS if c != "trend")  # what the pattern index keeps
#: Ids per packed read: bounds each aggregated value (64 MiB of vectors at most).
_PACKED_CHUNK_IDS = 1 << 20


def _id_spans(conn: Connection) -> list[tuple[int, int] | None]:
    """Id ranges of at most _PACKED_CHUNK_IDS ids covering the table ([None]: one read)."""
    (low, high), = _fetch(conn, "SELECT (SELECT min(id) FROM setup_vectors), "
                                "(SELECT max(id) FROM setup_vectors)", [])
    if low is None:
        return []
    if high - low < _PACKED_CHUNK_IDS:
        return [None]
    return [(lo, lo + _PACKED_CHUNK_IDS) for lo in range(low, high + 1, _PACKED_CHUNK_IDS)]


def _read_packed(conn: Connection, query: _Query) -> _Columns | None:
    """The selected rows through packed aggregate reads (see the module docstring). Raises
    _Unpackable when they cannot be carried exactly that way."""
    sqlite = query.dialect == "sqlite"
    if sqlite and (sqlite3.sqlite_version_info < (3, 30)  # aggregate FILTER clauses
                   or _fetch(conn, "PRAGMA encoding", [])[0][0] != "UTF-8"):  # blobs as text
        raise _Unpackable("needs SQLite >= 3.30 and a UTF-8 database")
    parts = []
    for span in _id_spans(conn):
        sql, params = packed_sql(query, span)
        try:
            (row,) = _fetch(conn, sql, params, binary=True)
        except sa.exc.OperationalError as exc:  # SQLite: no JSON functions, a BLOB label, …
            if not sqlite:
                raise
            raise _Unpackable(str(exc)) from None
        if row[0]:
            parts.append((sqlite_columns if sqlite else pg_columns)(row, query, conn, span))
    return _Columns.concat(parts)


def _read_rows(conn: Connection, query: _Query) -> _Columns | None:
    """The selected rows through a plain per-row read (the fallback of the packed one)."""
    where, params = query.where()
    labels = list(query.label_columns)
    names = ["id", "ts", "exit_ts", "realized_r", "hold_bars", *labels, "vector"]
    rows = _fetch(conn, f"SELECT {', '.join(_quoted(names))} FROM setup_vectors WHERE {where}",
                  params)
    if not rows:
        return None
    table = np.array(rows, dtype=object)  # (n, k): much cheaper than zip(*rows) for big k
    del rows
    column = {name: table[:, j] for j, name in enumerate(names)}
    hold = pd.array(pd.to_numeric(column["hold_bars"]), dtype="Int64")
    r_null = np.array([v is None for v in column["realized_r"]], dtype=bool)
    return _Columns(
        column["id"].astype(np.int64),
        _utc_index(column["ts"]).as_unit("ns").asi8,
        _utc_index(column["exit_ts"]).as_unit("ns").asi8,
        pd.to_numeric(column["realized_r"]).astype(np.float64), r_null,
        hold.to_numpy(dtype=np.int64, na_value=0), np.asarray(hold.isna()),
        _matrix(b"".join(column["vector"]), len(table), conn),
        {name: _factorized(np.array(column[name], dtype=object)) for name in labels},
    )


def _read(engine: Engine, query: _Query) -> _Columns | None:
    with engine.connect() as conn:
        try:
            return _read_packed(conn, query)
        except _Unpackable:
            return _read_rows(conn, query)


def _categorical(codes: np.ndarray, values: np.ndarray) -> pd.Categorical:
    """Coded labels as a pandas Categorical (a NULL value as a missing code)."""
    null = pd.isna(values)
    if null.any():
        remap = np.where(null, -1, np.cumsum(~null) - 1)
        codes, values = remap.take(codes), values[~null]
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(pd.Index(values,
                                                                               dtype=object)))


def _labels(codes: np.ndarray, values: np.ndarray, coded: bool) -> Any:
    return _categorical(codes, values) if coded else values.take(codes)


def _empty_vector_rows(names: list[str]) -> VectorRows:
    meta = pd.DataFrame({name: pd.Series(dtype=object) for name in names})
    meta["id"] = meta["id"].astype("int64")
    meta["ts"] = pd.DatetimeIndex([], tz="UTC")
    meta["exit_ts"] = pd.DatetimeIndex([], tz="UTC")
    meta["realized_r"] = meta["realized_r"].astype("float64")
    meta["hold_bars"] = meta["hold_bars"].astype("Int64")
    return VectorRows(meta, np.empty((0, VECTOR_DIM), dtype=np.float32))


def _vector_rows(cols: _Columns | None, query: _Query, *, coded: bool = False) -> VectorRows:
    """The decoded columns as VectorRows, ordered by (ts, id); ``coded``: labels as pandas
    categoricals and only the columns of the query's labels (the pattern library's load)."""
    names = [c for c in _VECTOR_META if not coded or c in query.labels
             or c not in ("version", *LABELS)]
    if cols is None or len(cols.ids) == 0:
        return _empty_vector_rows(names)
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
    data = {name: _labels(put(codes), values, coded)
            for name, (codes, values) in cols.labels.items()}
    for name, value in (("interval", query.interval), ("version", query.version)):
        if name not in data:
            data[name] = _labels(np.zeros(n, np.int8), np.array([value], dtype=object), coded)
    data.update({
        "id": put(cols.ids),
        "ts": pd.DatetimeIndex(put(cols.ts).view("M8[ns]")).tz_localize("UTC"),
        "realized_r": put(cols.realized_r),
        "exit_ts": pd.DatetimeIndex(put(cols.exit_ts).view("M8[ns]")).tz_localize("UTC"),
        "hold_bars": pd.arrays.IntegerArray(put(cols.hold).astype(np.int64),
                                            put(cols.hold_null).astype(bool)),
    })
    # copy=False: every array is fresh and owned by the frame (a copy costs ~20 ms per 100k)
    meta = pd.DataFrame({name: data[name] for name in names}, copy=False)
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
    return _vector_rows(_read(engine, query), query)


@_db_errors
def load_vector_library(engine: Engine, *, interval: str | None = None,
                        version: str = "v1") -> VectorLibrary:
    """The setup vectors of one interval (None: all) and version as the pattern index loads
    them (:class:`VectorLibrary`): the rows with a realized R as :func:`load_vector_matrix` gives
    them, less ``version`` and ``trend`` and with categorical labels, plus the highest id and
    the ids without a realized R, all from one read of the table (one snapshot)."""
    _ready(engine)
    query = _Query(engine.dialect.name, interval, version, False, None, None, _LIBRARY_LABELS)
    cols = _read(engine, query)
    if cols is None or len(cols.ids) == 0:
        return VectorLibrary(_vector_rows(None, query, coded=True), 0, np.empty(0, np.int64))
    max_id, pending = int(cols.ids.max()), cols.ids[cols.r_null]
    if len(pending):
        cols = cols.take(np.flatnonzero(~cols.r_null))
    return VectorLibrary(_vector_rows(cols, query, coded=True), max_id, pending)
