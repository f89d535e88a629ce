"""Real-shaped bars for tests: business-day daily bars from a seeded random walk, written the
way a trader's CSV from a broker or from yfinance looks (Date, Open, High, Low, Close,
Adj Close, Volume; dates only). Not the demo generator: these are the user's "own" bars."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def daily_bars(symbol: str, *, start: str = "2009-01-02", end: str = "2012-12-31",
               seed: int = 7, price: float = 50.0) -> pd.DataFrame:
    """Bars frame (UTC index at 00:00 of each business day, float64 OHLCV)."""
    days = pd.bdate_range(start, end, tz="UTC", name="ts")
    rng = np.random.default_rng(seed * 1_000_003 + sum(map(ord, symbol)))  # stable per symbol
    returns = rng.normal(0.0004, 0.017, len(days))
    close = price * np.exp(np.cumsum(returns))
    gap = rng.normal(0, 0.004, len(days))
    open_ = np.r_[price, close[:-1]] * np.exp(gap)
    span = np.abs(rng.normal(0, 0.012, len(days))) * close
    high = np.maximum(open_, close) + span * rng.uniform(0.2, 1.0, len(days))
    low = np.minimum(open_, close) - span * rng.uniform(0.2, 1.0, len(days))
    volume = rng.integers(400_000, 4_000_000, len(days)).astype("float64")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=days)


def write_daily_csv(path: Path, symbol: str, **kwargs: object) -> pd.DataFrame:
    """Write ``daily_bars(symbol, **kwargs)`` as a yfinance-style CSV at ``path``; returns the
    bars written."""
    bars = daily_bars(symbol, **kwargs)  # type: ignore[arg-type]
    table = pd.DataFrame({
        "Date": bars.index.strftime("%Y-%m-%d"), "Open": bars["open"].round(4),
        "High": bars["high"].round(4), "Low": bars["low"].round(4),
        "Close": bars["close"].round(4), "Adj Close": bars["close"].round(4),
        "Volume": bars["volume"].astype("int64")})
    path.write_text(table.to_csv(index=False))
    return bars
