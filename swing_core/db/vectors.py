"""Setup vectors written: float32 bytes, idempotent upserts keyed by (symbol, interval, ts,
version), and outcomes set later. Reading them back is :mod:`~swing_core.db.vector_load`.

SQLite upserts with the driver's executemany (a C loop, already fast), as do batches that repeat
a key (applied in order, the last one wins). PostgreSQL stages the rows with one binary ``COPY``
and upserts them with one statement (:mod:`~swing_core.db.vector_copy`), which keeps 100,000
vectors cheap (``benchmarks/bench_storage.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection, Engine

from swing_core.db._convert import (
    Columns,
    _as_frame,
    _column_values,
    _columns,
    _outcome_updates,
    _upsert,
)
from swing_core.db.core import _db_errors, _ready, write_transaction
from swing_core.db.vector_copy import _stage_rows, _staged_upsert
from swing_core.models import (
    VECTOR_BYTES,
    VECTOR_DIM,
    SetupVector,
    utc_now,
)

VECTOR_COLUMNS = [f"vec_{i:02d}" for i in range(VECTOR_DIM)]
_VECTOR_KEYS = ["symbol", "interval", "ts", "version"]
_OUTCOME_COLUMNS = ("realized_r", "exit_reason", "exit_ts", "hold_bars")
_REWRITTEN = ("setup", "side", "trend", "vol_regime", "vector")  # what an upsert replaces


def _vector_matrix(frame: pd.DataFrame) -> np.ndarray:
    if "vector" in frame.columns:
        return _vectors_matrix(frame["vector"].tolist())
    if all(c in frame.columns for c in VECTOR_COLUMNS):
        return _vectors_matrix(frame[VECTOR_COLUMNS].to_numpy(dtype=np.float32))
    raise ValueError("Setup vectors need a 'vector' column or the columns vec_00 … vec_15.")


def _vectors_matrix(values: Any) -> np.ndarray:
    """Setup vectors (a list of 16-number sequences, or a matrix) as a checked little-endian
    float32 matrix: 16 finite values each, else ValueError."""
    if isinstance(values, list):
        try:  # one C loop when every value is a flat sequence of 16 numbers
            matrix = np.array(values, dtype=np.float32)
        except (TypeError, ValueError):  # ragged or odd values: checked one by one below
            matrix = np.empty(0)
        if matrix.ndim != 2:
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1)
                               for v in values]) if len(values) else \
                np.empty((0, VECTOR_DIM), np.float32)
    else:
        matrix = np.asarray(values, dtype=np.float32)
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


def _kept_outcomes(present: set[str]) -> tuple[str, ...]:
    """The outcome columns a batch carries: an upsert takes their non-NULL values and keeps the
    stored ones otherwise (the other outcome columns are left alone)."""
    return tuple(c for c in _OUTCOME_COLUMNS if c in present)


def _upsert_vector_columns(conn: Connection, columns: Columns, present: set[str]) -> None:
    """Executemany upsert of driver-ready rows (any dialect; applied in row order)."""
    _upsert(conn, SetupVector.__table__, columns, _VECTOR_KEYS, list(_REWRITTEN),
            keep=_kept_outcomes(present))


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
            _staged_upsert(conn, staged, replaced=_REWRITTEN, kept=_kept_outcomes(present))
    if staged is not None and len(frame) >= _ANALYZE_ROWS:
        _analyze(engine)
    return len(frame)


#: Rows of one PostgreSQL upsert from which the table's planner statistics are refreshed.
_ANALYZE_ROWS = 10_000


def _analyze(engine: Engine) -> None:
    """Fresh planner statistics of the columns reads filter on, after a bulk write (as
    PostgreSQL advises after bulk loads): until autovacuum gets to it (up to a minute later),
    a freshly filled table is estimated at a few rows, and the loads of the whole library
    (``PatternIndex.from_db``) are planned as index scans that fetch every row from the heap
    (~0.3 s instead of a ~0.05 s scan per 100,000 rows). Only these columns: ~0.1 s per 100,000
    rows, a fifth of a full ANALYZE. A role that does not own the table gets a warning."""
    with engine.connect() as conn:
        conn.exec_driver_sql('ANALYZE setup_vectors (version, "interval", symbol, realized_r, '
                             'exit_ts)')
        conn.commit()


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
