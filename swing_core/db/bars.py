"""The bar cache: OHLCV bars keyed by (symbol, interval, UTC open time)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from swing_core.db._convert import (
    _columns,
    _raw,
    _upsert,
    _utc_index,
    _utc_stamp,
)
from swing_core.db.core import _db_errors, _ready, write_transaction
from swing_core.models import (
    Bar,
    utc_now,
)

BAR_COLUMNS = ["open", "high", "low", "close", "volume"]


# --------------------------------------------------------------------------- bars (the cache)


def _empty_bars(symbol: str, interval: str) -> pd.DataFrame:
    df = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                      index=pd.DatetimeIndex([], tz="UTC", name="ts"))
    df.attrs.update(source="cache", symbol=symbol, interval=interval)
    return df


@_db_errors
def upsert_bars(engine: Engine, symbol: str, interval: str, bars: pd.DataFrame, *,
                source: str) -> int:
    """Insert or replace the bars of ``symbol``/``interval`` (keyed by UTC open time ``ts``) in one
    transaction. ``bars``: a bars frame (open, high, low, close, volume; UTC index of open times;
    a naive index is taken as UTC). Rows with a NaN price are skipped. Returns rows written."""
    _ready(engine)
    if bars is None or len(bars) == 0:
        return 0
    missing = [c for c in ("open", "high", "low", "close") if c not in bars.columns]
    if missing:
        raise ValueError(f"upsert_bars: the bars frame lacks column(s) {', '.join(missing)}.")
    frame = bars.dropna(subset=["open", "high", "low", "close"])
    if len(frame) == 0:
        return 0
    if "volume" not in frame.columns:
        frame = frame.assign(volume=0.0)
    frame = frame.assign(ts=frame.index, symbol=symbol, interval=interval, source=source)
    rows = _columns(frame, Bar, skip=(), fixed={"fetched_at": utc_now()},
                    driver=engine.dialect.name)
    with write_transaction(engine) as conn:
        _upsert(conn, Bar.__table__, rows, ["symbol", "interval", "ts"],
                ["open", "high", "low", "close", "volume", "source", "fetched_at"])
    return len(frame)


@_db_errors
def load_bars(engine: Engine, symbol: str, interval: str, *, start: Any = None,
              end: Any = None) -> pd.DataFrame:
    """The cached bars of ``symbol``/``interval`` with open time in ``[start, end]`` (inclusive,
    UTC; naive values are taken as UTC), oldest first, as a bars frame with
    ``attrs["source"] == "cache"`` and ``attrs["cache_sources"]`` (the original sources).
    An empty frame with the right columns when nothing is cached."""
    _ready(engine)
    t = Bar.__table__
    stmt = sa.select(_raw(t.c.ts), t.c.open, t.c.high, t.c.low, t.c.close, t.c.volume,
                     t.c.source).where(t.c.symbol == symbol, t.c.interval == interval)
    if start is not None:
        stmt = stmt.where(t.c.ts >= _utc_stamp(start).to_pydatetime())
    if end is not None:
        stmt = stmt.where(t.c.ts <= _utc_stamp(end).to_pydatetime())
    with engine.connect() as conn:
        rows = conn.execute(stmt.order_by(t.c.ts)).all()
    if not rows:
        return _empty_bars(symbol, interval)
    ts, o, h, lo, c, v, src = zip(*rows, strict=True)
    df = pd.DataFrame(
        {"open": np.asarray(o, dtype="float64"), "high": np.asarray(h, dtype="float64"),
         "low": np.asarray(lo, dtype="float64"), "close": np.asarray(c, dtype="float64"),
         "volume": np.asarray(v, dtype="float64")},
        index=_utc_index(list(ts)).rename("ts"),
    )
    df.attrs.update(source="cache", symbol=symbol, interval=interval,
                    cache_sources=sorted(set(src)))
    return df


@_db_errors
def bar_cache_summary(engine: Engine) -> pd.DataFrame:
    """One row per cached (symbol, interval, source): ``bars`` (count), ``first_ts`` and
    ``last_ts`` (UTC bar open times) and ``fetched_at`` (UTC time of the latest write)."""
    _ready(engine)
    t = Bar.__table__
    stmt = (
        sa.select(t.c.symbol, t.c.interval, t.c.source, sa.func.count().label("bars"),
                  _raw(sa.func.min(t.c.ts).label("first_ts")),
                  _raw(sa.func.max(t.c.ts).label("last_ts")),
                  _raw(sa.func.max(t.c.fetched_at).label("fetched_at")))
        .group_by(t.c.symbol, t.c.interval, t.c.source)
        .order_by(t.c.symbol, t.c.interval, t.c.source)
    )
    with engine.connect() as conn:
        rows = conn.execute(stmt).all()
    cols = ["symbol", "interval", "source", "bars", "first_ts", "last_ts", "fetched_at"]
    df = pd.DataFrame(rows, columns=cols)
    for col in ("first_ts", "last_ts", "fetched_at"):
        df[col] = _utc_index(df[col].tolist())
    df["bars"] = df["bars"].astype("int64")
    return df


@_db_errors
def delete_bars(engine: Engine, *, symbol: str | None = None, interval: str | None = None) -> int:
    """Delete cached bars (all, or of one symbol and/or interval). Returns rows deleted."""
    _ready(engine)
    t = Bar.__table__
    stmt = sa.delete(t)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(t.c.interval == interval)
    with write_transaction(engine) as conn:
        return int(conn.execute(stmt).rowcount or 0)
