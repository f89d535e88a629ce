"""Validation of bars frames, with errors a user can act on."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np
import pandas as pd

from swing_core.config import YAHOO_MAX_DAYS
from swing_core.errors import MarketDataError
from swing_core.market._common import BAR_COLUMNS
from swing_core.timefmt import bar_time_text, looks_daily

_PRICE_COLUMNS = ("open", "high", "low", "close")
_MAX_SHOWN = 3


def _where(index: pd.Index, mask: np.ndarray, interval: str | None) -> str:
    """Describe where ``mask`` is true: the count and the first few bar times, by the one rule
    of :mod:`swing_core.timefmt` (a daily bar's trading date, an intraday bar's New York time)."""
    positions = np.flatnonzero(mask)
    if interval is None and isinstance(index, pd.DatetimeIndex):
        interval = "1d" if looks_daily(index) else None
    shown = []
    for pos in positions[:_MAX_SHOWN]:
        ts = index[pos]
        shown.append(bar_time_text(ts, interval) if isinstance(ts, pd.Timestamp) else str(ts))
    more = f" and {len(positions) - _MAX_SHOWN} more" if len(positions) > _MAX_SHOWN else ""
    return f"{len(positions)} row(s), first at {', '.join(shown)}{more}"


def _what(symbol: str | None, interval: str | None) -> str:
    parts = [p for p in (symbol, interval) if p]
    return " ".join(parts) if parts else "these bars"


def _more_bars_hint(interval: str | None) -> str:
    hints = []
    max_days = YAHOO_MAX_DAYS.get(interval or "")
    if max_days is not None:
        hints.append(f"a longer lookback (Yahoo keeps up to about {max_days + 1} days of "
                     f"{interval} bars)")
    else:
        hints.append("a longer lookback")
    if interval != "1d":
        hints.append("a daily interval (1d, years of history)")
    hints.append("uploading a CSV/Parquet file with more history")
    return ", ".join(hints[:-1]) + " or " + hints[-1] if len(hints) > 1 else hints[0]


def _check_values(df: pd.DataFrame, what: str, where: Callable[[np.ndarray], str]) -> None:
    """The value checks of :func:`validate_bars`: no NaN or ±inf, prices > 0, volume >= 0,
    high/low bracket open and close; ``where(mask)`` names the offending bars."""
    values = {c: df[c].to_numpy(dtype="float64", na_value=np.nan) for c in BAR_COLUMNS}
    for col in BAR_COLUMNS:
        nan = np.isnan(values[col])
        if nan.any():
            raise MarketDataError(
                f"{what}: missing values (NaN) in '{col}', {where(nan)}. Remove or "
                "fill those rows (Yahoo sometimes leaves gaps: try again later or another range)."
            )
    for col in BAR_COLUMNS:
        bad = np.isinf(values[col])
        if bad.any():
            raise MarketDataError(
                f"{what}: infinite values in '{col}', {where(bad)}. Prices and volumes must be "
                "finite numbers: fix or remove those rows in the file.")
    for col in _PRICE_COLUMNS:
        bad = values[col] <= 0
        if bad.any():
            raise MarketDataError(f"{what}: non-positive '{col}' prices, {where(bad)}; "
                                  "prices must be above zero.")
    bad = values["volume"] < 0
    if bad.any():
        raise MarketDataError(f"{what}: negative volume, {where(bad)}.")
    bad = values["high"] < values["low"]
    if bad.any():
        raise MarketDataError(f"{what}: high below low, {where(bad)}; check the "
                              "column order (open, high, low, close).")
    top = np.maximum(values["open"], values["close"])
    bottom = np.minimum(values["open"], values["close"])
    bad = (values["high"] < top) | (values["low"] > bottom)
    if bad.any():
        raise MarketDataError(
            f"{what}: high/low do not contain open and close, {where(bad)}; check the "
            "column order (open, high, low, close)."
        )


def validate_bars(df: pd.DataFrame | None, *, symbol: str | None = None,
                  interval: str | None = None, min_bars: int = 1) -> pd.DataFrame:
    """Check a bars frame and return it unchanged, or raise :class:`MarketDataError`.

    Checks, in order: there is data; the columns ``open high low close volume`` exist (missing
    ones are named); the index is a sorted, duplicate-free ``DatetimeIndex``; no NaNs (the
    column and the first timestamps are named); no ±inf; prices > 0 and volume >= 0; ``high >= low`` and
    high/low bracket open and close; at least ``min_bars`` rows (the message says how many are
    needed, how many there are and how to get more). Bar times in messages follow
    :mod:`swing_core.timefmt`: daily bars by trading date, intraday bars in New York time.
    """
    what = _what(symbol, interval)
    if df is None or len(df) == 0:
        sym = f" for {symbol}" if symbol else ""
        raise MarketDataError(
            f"No data{sym}{f' at {interval}' if interval else ''}: nothing came back for this "
            "range. Check the symbol on finance.yahoo.com, try a longer lookback or the 1d "
            "interval, or upload a CSV/Parquet file."
        )
    missing = [c for c in BAR_COLUMNS if c not in df.columns]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise MarketDataError(
            f"{what}: missing column(s) {', '.join(missing)} (found: {found}). A bars table needs "
            "open, high, low, close and volume; rename the columns or export them from your "
            "data source."
        )
    if not isinstance(df.index, pd.DatetimeIndex):
        raise MarketDataError(
            f"{what}: the rows are not indexed by timestamps (got {type(df.index).__name__}); "
            "give a Date/Datetime column."
        )
    where = partial(_where, df.index, interval=interval)
    if df.index.hasnans:
        raise MarketDataError(f"{what}: {where(df.index.isna())} have no timestamp.")
    if df.index.has_duplicates:
        dup = df.index.duplicated(keep=False)
        raise MarketDataError(f"{what}: duplicate timestamps, {where(dup)}; keep one "
                              "bar per timestamp.")
    if not df.index.is_monotonic_increasing:
        raise MarketDataError(f"{what}: the bars are not in time order; sort them by timestamp.")

    _check_values(df, what, where)
    if len(df) < min_bars:
        raise MarketDataError(
            f"{what}: {len(df)} bars, but at least {min_bars} are needed. Get more with "
            f"{_more_bars_hint(interval)}."
        )
    return df
