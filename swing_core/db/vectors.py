"""Setup vectors: float32 bytes, idempotent upserts, outcomes, the fast matrix load."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from swing_core.db._convert import (
    Columns,
    _as_frame,
    _column_values,
    _columns,
    _outcome_updates,
    _raw,
    _raw_ts,
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
