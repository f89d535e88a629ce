"""Backtest runs and their trades."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from swing_core.db._bulk import INT64_MIN, _binary_copy, _copy_in, _pg_micros, _quoted, _text_codes
from swing_core.db._convert import (
    _as_frame,
    _columns,
    _executemany,
    _read_frame,
    _records,
    _select_table,
)
from swing_core.db.core import _db_errors, _ready, write_transaction
from swing_core.models import BacktestRun, BacktestTrade, UTCDateTime

# --------------------------------------------------------------------------- backtest runs

_RUN_JSON = ("params", "settings", "metrics", "lookahead")


@dataclass(frozen=True)
class StoredBacktest:
    """A saved backtest run: ``run`` (the run's columns; ``params``, ``settings``, ``metrics``,
    ``lookahead`` decoded from JSON; ``symbols`` as a list) and its ``trades`` (one row per trade,
    timestamps tz-aware UTC)."""

    run: dict[str, Any]
    trades: pd.DataFrame


def _run_record(run: dict[str, Any]) -> dict[str, Any]:
    values = dict(run)
    if not values.get("run_hash"):
        raise ValueError("save_backtest_run: the run needs a 'run_hash'.")
    for name in _RUN_JSON:
        if name in values and f"{name}_json" not in values:
            values[f"{name}_json"] = values.pop(name)
    symbols = values.get("symbols")
    if isinstance(symbols, list | tuple):
        values["symbols"] = ",".join(map(str, symbols))
    return _records(pd.DataFrame([values]), BacktestRun)[0]


@_db_errors
def save_backtest_run(engine: Engine, run: dict[str, Any],
                      trades: pd.DataFrame | Iterable[pd.DataFrame] | None) -> int:
    """Save a backtest run and its trades in one transaction; returns the run id.

    ``run``: ``run_hash`` (required, identifies the inputs) and any BacktestRun column; dict
    values for params/settings/metrics/lookahead (or their ``*_json`` text) and a list of symbols
    are accepted. Saving a run_hash again replaces that run's row and trades (same id).
    ``trades``: BacktestTrade columns (unknown columns ignored), or an iterable of such frames
    (written one after the other in the same transaction: bounded memory for big runs)."""
    _ready(engine)
    record = _run_record(run)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with write_transaction(engine) as conn:
        run_id, existed = _insert_run_once(conn, record)
        if existed:  # same inputs again: replace in place, keep the id and the first created_at
            if "created_at" not in run:
                record.pop("created_at")
            conn.execute(sa.update(t_run).where(t_run.c.id == run_id).values(record))
            conn.execute(sa.delete(t_trade).where(t_trade.c.run_id == run_id))
        _insert_trades(conn, engine, int(run_id), trades)
    return int(run_id)


def _insert_run_once(conn: Any, record: dict[str, Any]) -> tuple[int, bool]:
    """The id of the run row with ``record``'s run_hash, inserting ``record`` when there is
    none; the flag says whether the row existed already."""
    t_run = BacktestRun.__table__
    run_id = conn.execute(sa.select(t_run.c.id).where(
        t_run.c.run_hash == record["run_hash"])).scalar()
    if run_id is not None:
        return int(run_id), True
    return int(conn.execute(sa.insert(t_run).returning(t_run.c.id), record).scalar_one()), False


def _insert_trades(conn: Any, engine: Engine, run_id: int,
                   trades: pd.DataFrame | Iterable[pd.DataFrame] | None) -> None:
    """Insert trade rows; an iterable of frames is written slice by slice (bounded memory).
    PostgreSQL: one binary COPY per slice (:func:`_copy_trades`); SQLite (or rows COPY cannot
    take): the driver's executemany."""
    frames = [trades] if trades is None or isinstance(trades, pd.DataFrame) else trades
    for part in frames:
        frame = _as_frame(part) if part is not None else pd.DataFrame()
        if not len(frame):
            continue
        if engine.dialect.name == "postgresql" and _copy_trades(conn, run_id, frame):
            continue
        _executemany(conn, sa.insert(BacktestTrade.__table__), _columns(
            frame, BacktestTrade, fixed={"run_id": run_id}, driver=engine.dialect.name))


# --------------------------------------------------------------------------- PostgreSQL COPY
# Trades staged as fixed-width binary rows (labels as dictionary codes, NULLs as sentinels:
# NaN, -infinity, INT64_MIN, -1), then one INSERT ... SELECT: no Python object per row.

_TRADE_STAGE = "swing_trade_stage"


def _trade_fields() -> list[tuple[str, str]]:
    """(column, stage kind) of every ``backtest_trades`` column but id and run_id."""
    out = []
    for col in BacktestTrade.__table__.columns:
        if col.name in ("id", "run_id"):
            continue
        kind = col.type
        if isinstance(kind, UTCDateTime):
            out.append((col.name, "time"))
        elif isinstance(kind, sa.Boolean):
            out.append((col.name, "bool"))
        elif isinstance(kind, sa.Integer):
            out.append((col.name, "int"))
        elif isinstance(kind, sa.Float):
            out.append((col.name, "float"))
        else:
            out.append((col.name, "text"))
    return out


_STAGE_TYPES = {"time": ("timestamptz", ">i8"), "bool": ("int4", ">i4"),
                "int": ("int8", ">i8"), "float": ("float8", ">f8"), "text": ("int4", ">i4")}


def _stage_values(frame: pd.DataFrame, name: str, kind: str) -> tuple[np.ndarray, list[str]]:
    """Column ``name`` of ``frame`` as stage values (NULL as the kind's sentinel) and, for
    text, its dictionary (codes 1-based, 0 = NULL)."""
    n = len(frame)
    if name not in frame.columns:
        fill = {"time": INT64_MIN, "bool": -1, "int": INT64_MIN, "float": np.nan, "text": 0}
        return np.full(n, fill[kind]), []
    series = frame[name]
    if kind == "text":
        return _text_codes(series, "backtest_trades")
    if kind == "time":
        return _pg_micros(series), []
    values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64, na_value=np.nan)
    if kind == "float":
        return values, []
    missing = np.isnan(values)
    if kind == "bool":
        return np.where(missing, -1, values != 0).astype(np.int32), []
    if np.isinf(values).any():
        raise ValueError(f"backtest_trades: {name} must be finite.")
    return np.where(missing, INT64_MIN, np.nan_to_num(values).astype(np.int64)), []


def _copy_trades(conn: Any, run_id: int, frame: pd.DataFrame) -> bool:
    """Insert ``frame``'s trades of run ``run_id`` through one binary COPY into a staging
    table and one INSERT ... SELECT (PostgreSQL). False when the rows must take the
    executemany path instead (a missing symbol: it reports the error; unhashable labels)."""
    fields = _trade_fields()
    try:
        staged = {name: _stage_values(frame, name, kind) for name, kind in fields}
    except TypeError:
        return False
    if (staged["symbol"][0] == 0).any():
        return False
    payload = _binary_copy([(_STAGE_TYPES[kind][1], staged[name][0]) for name, kind in fields])
    source = []
    for name, kind in fields:
        if kind == "text":
            source.append(f"(%(d_{name})s::text[])[NULLIF(s.{name}, 0)]")
        elif kind == "time":
            source.append(f"NULLIF(s.{name}, '-infinity')")
        elif kind == "float":
            source.append(f"NULLIF(s.{name}, 'NaN')")
        elif kind == "bool":
            source.append(f"(NULLIF(s.{name}, -1) <> 0)")
        else:
            source.append(f"NULLIF(s.{name}, '{INT64_MIN}'::int8)::integer")
    names = [name for name, _ in fields]
    conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {_TRADE_STAGE} ("
                         + ", ".join(f"{name} {_STAGE_TYPES[kind][0]}" for name, kind in fields)
                         + ") ON COMMIT DROP")
    _copy_in(conn, f"pg_temp.{_TRADE_STAGE}", payload)
    conn.exec_driver_sql(
        f"INSERT INTO backtest_trades (run_id, {', '.join(_quoted(names))}) "
        f"SELECT %(run_id)s, {', '.join(source)} FROM pg_temp.{_TRADE_STAGE} AS s",
        {"run_id": run_id, **{f"d_{name}": staged[name][1] for name, kind in fields
                              if kind == "text"}})
    conn.exec_driver_sql(f"TRUNCATE pg_temp.{_TRADE_STAGE}")
    return True


@_db_errors
def save_backtest_chunk(engine: Engine, run: dict[str, Any], trades: pd.DataFrame, *,
                        replace_symbols: Sequence[str] = ()) -> int:
    """One chunk of a chunked run, in one transaction: insert the run row (or update the given
    columns of the row with this ``run_hash``), delete the run's trades of ``replace_symbols``
    (a chunk written again) and append ``trades``. Returns the run id. A chunk is either
    wholly stored or not at all."""
    _ready(engine)
    record = _run_record(run)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with write_transaction(engine) as conn:
        run_id, existed = _insert_run_once(conn, record)
        if existed:
            given = {k: v for k, v in record.items() if k in _run_record_keys(run)}
            conn.execute(sa.update(t_run).where(t_run.c.id == run_id).values(given))
        if replace_symbols:
            conn.execute(sa.delete(t_trade).where(t_trade.c.run_id == run_id,
                                                  t_trade.c.symbol.in_(list(replace_symbols))))
        _insert_trades(conn, engine, int(run_id), trades)
    return int(run_id)


def _run_record_keys(run: dict[str, Any]) -> set[str]:
    return {f"{k}_json" if k in _RUN_JSON else k for k in run}


def _decode_run(row: dict[str, Any]) -> dict[str, Any]:
    run = {k: v for k, v in row.items() if not k.endswith("_json")}
    for name in _RUN_JSON:
        text = row.get(f"{name}_json")
        run[name] = json.loads(text) if isinstance(text, str) and text else None
    run["symbols"] = [s for s in (row.get("symbols") or "").split(",") if s]
    return run


@_db_errors
def load_backtest_run(engine: Engine, run_hash: str, *,
                      trades: bool = True) -> StoredBacktest | None:
    """The saved run with this hash and its trades (ordered by entry time), or None.
    ``trades=False``: the run row only (``trades`` empty: e.g. a chunked run's progress)."""
    _ready(engine)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with engine.connect() as conn:
        runs = _read_frame(conn, _select_table(t_run).where(t_run.c.run_hash == run_hash), t_run)
        if len(runs) == 0:
            return None
        run_id = int(runs["id"].iloc[0])
        stmt = _select_table(t_trade).where(t_trade.c.run_id == run_id)
        if not trades:
            stmt = stmt.where(sa.false())
        rows = _read_frame(conn, stmt.order_by(t_trade.c.entry_ts, t_trade.c.id), t_trade)
    row = runs.iloc[0].to_dict()
    return StoredBacktest(_decode_run(row), rows)


@_db_errors
def list_backtest_runs(engine: Engine, *, limit: int | None = 200) -> pd.DataFrame:
    """Saved runs, newest first, with ``n_trade_rows``: the rows stored in ``backtest_trades``
    (every taken signal, NOT_FILLED and unsized ones included; not the run's ``# Trades``, which
    is in its statistics); JSON columns left as text."""
    _ready(engine)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    counts = (sa.select(t_trade.c.run_id, sa.func.count().label("n_trade_rows"))
              .group_by(t_trade.c.run_id).subquery())
    stmt = (sa.select(*_select_table(t_run).selected_columns,
                      sa.func.coalesce(counts.c.n_trade_rows, 0).label("n_trade_rows"))
            .outerjoin(counts, counts.c.run_id == t_run.c.id)
            .order_by(t_run.c.created_at.desc(), t_run.c.id.desc()))
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return _read_frame(conn, stmt, t_run)
