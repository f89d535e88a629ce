"""Backtest runs and their trades."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from swing_core.db._convert import (
    _as_frame,
    _columns,
    _executemany,
    _read_frame,
    _records,
    _select_table,
)
from swing_core.db.core import _db_errors, _ready, write_transaction
from swing_core.models import (
    BacktestRun,
    BacktestTrade,
)

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
    """Insert trade rows; an iterable of frames is written slice by slice (bounded memory)."""
    frames = [trades] if trades is None or isinstance(trades, pd.DataFrame) else trades
    for part in frames:
        frame = _as_frame(part) if part is not None else pd.DataFrame()
        if len(frame):
            _executemany(conn, sa.insert(BacktestTrade.__table__), _columns(
                frame, BacktestTrade, fixed={"run_id": run_id}, driver=engine.dialect.name))


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
def load_backtest_run(engine: Engine, run_hash: str) -> StoredBacktest | None:
    """The saved run with this hash and its trades (ordered by entry time), or None."""
    _ready(engine)
    t_run, t_trade = BacktestRun.__table__, BacktestTrade.__table__
    with engine.connect() as conn:
        runs = _read_frame(conn, _select_table(t_run).where(t_run.c.run_hash == run_hash), t_run)
        if len(runs) == 0:
            return None
        run_id = int(runs["id"].iloc[0])
        trades = _read_frame(conn, _select_table(t_trade).where(t_trade.c.run_id == run_id)
                             .order_by(t_trade.c.entry_ts, t_trade.c.id), t_trade)
    row = runs.iloc[0].to_dict()
    return StoredBacktest(_decode_run(row), trades)


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
