"""PostgreSQL bulk upsert of setup vectors: one binary ``COPY`` of fixed-width rows (labels as
dictionary codes, NULLs as sentinels) into a temporary table, then one
``INSERT … SELECT … ON CONFLICT DO UPDATE`` (rows whose stored values would not change are left
alone). Used by :func:`~swing_core.db.vectors.upsert_vectors`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Connection

from swing_core.db._bulk import (
    INT64_MIN,
    _binary_copy,
    _copy_in,
    _pg_micros,
    _quoted,
    _text_codes,
)
from swing_core.models import VECTOR_BYTES, SetupVector, utc_now

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


def _staged_upsert_sql(replaced: tuple[str, ...], kept: tuple[str, ...]) -> str:
    """INSERT … SELECT from the staged rows … ON CONFLICT DO UPDATE: the ``replaced`` columns
    (labels and vector) take the new value, the ``kept`` ones (outcome columns given in the
    batch) are COALESCEd (a NULL never erases a known outcome), other columns untouched; rows
    that would not change are not rewritten."""
    source = {name: f"(%({name})s::text[])[s.c_{name}]" for name in _CODED}
    source.update({
        "ts": "s.ts", "vector": "s.vector", "exit_ts": "NULLIF(s.exit_ts, '-infinity')",
        "realized_r": "NULLIF(s.realized_r, 'NaN')", "created_at": "%(created_at)s",
        "hold_bars": f"NULLIF(s.hold_bars, '{INT64_MIN}'::int8)::integer",
    })
    targets = [c.name for c in SetupVector.__table__.columns if c.name != "id"]
    new = {c: f"excluded.{c}" for c in replaced}
    new.update({c: f"COALESCE(excluded.{c}, setup_vectors.{c})" for c in kept})
    return (
        f"INSERT INTO setup_vectors ({', '.join(_quoted(targets))}) "
        f"SELECT {', '.join(source[c] for c in targets)} FROM pg_temp.{_STAGE} AS s "
        'ON CONFLICT (symbol, "interval", ts, version) DO UPDATE SET '
        + ", ".join(f"{c} = {v}" for c, v in new.items())
        + f" WHERE ({', '.join(f'setup_vectors.{c}' for c in new)}) IS DISTINCT FROM "
        f"({', '.join(new.values())})"
    )


def _staged_upsert(conn: Connection, staged: _StagedRows, *, replaced: tuple[str, ...],
                   kept: tuple[str, ...]) -> None:
    """Stage the rows with one binary COPY and upsert them with one statement (PostgreSQL; see
    :func:`_staged_upsert_sql` for ``replaced`` and ``kept``)."""
    conn.exec_driver_sql(f"CREATE TEMP TABLE {_STAGE} ({_STAGE_COLUMNS}) ON COMMIT DROP")
    _copy_in(conn, f"pg_temp.{_STAGE}", staged.payload)
    conn.exec_driver_sql(_staged_upsert_sql(replaced, kept),
                         {**staged.dictionaries, "created_at": utc_now()})
