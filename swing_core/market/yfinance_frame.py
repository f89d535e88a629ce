"""What ``yf.download`` returns, as a bars frame: yfinance's column levels flattened to one
ticker's prices, its index as UTC bar open times, and the rows cleaned.

Shapes of yfinance 1.7 handled here (read from its source, ``multi.py`` and
``scrapers/history.py``):

* ``download()`` returns MultiIndex columns ``(Price, Ticker)`` even for one ticker (with
  ``multi_level_index=True``, the default; :mod:`~swing_core.market.yahoo` passes it
  explicitly); flat columns and frames of several tickers are understood too.
* With ``auto_adjust=False`` there is an ``Adj Close`` column, which is dropped.
* The index is tz-aware in the exchange's timezone for intraday bars; daily bars are tz-naive
  unless ``ignore_tz=False``.  Everything becomes UTC; daily bars are labelled by their trading
  date at 00:00 UTC.

:func:`pick_ticker_columns` also reads Parquet files saved from such a frame
(:mod:`~swing_core.market.file_table`).  Nothing here imports yfinance.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from swing_core.config import EXCHANGE_TZ
from swing_core.errors import MarketDataError
from swing_core.market._common import BAR_COLUMNS

__all__ = ["normalize_yfinance_frame", "pick_ticker_columns"]


def pick_ticker_columns(raw: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Flatten yfinance's columns to one level of price names for ``symbol``.

    The price level is the one named "Price", else the one holding "Close"; the ticker level
    picks ``symbol`` (or the only ticker).  Flat columns are returned as they are."""
    if not isinstance(raw.columns, pd.MultiIndex):
        return raw
    names = [n.lower() if isinstance(n, str) else n for n in raw.columns.names]
    if "price" in names:
        price_level = names.index("price")
    else:  # no names: the level holding "Close" is the price level
        price_level = next(
            (i for i in range(raw.columns.nlevels)
             if "close" in {str(v).lower() for v in raw.columns.get_level_values(i)}),
            0,
        )
    other = [i for i in range(raw.columns.nlevels) if i != price_level]
    if not other:
        return raw.droplevel(list(range(1, raw.columns.nlevels)), axis=1)
    ticker_level = other[0]
    tickers = list(dict.fromkeys(raw.columns.get_level_values(ticker_level)))
    match = [t for t in tickers if str(t).upper() == symbol.upper()]
    if match:
        chosen = match[0]
    elif len(tickers) == 1:
        chosen = tickers[0]
    else:
        raise MarketDataError(
            f"Yahoo returned columns for {', '.join(map(str, tickers))} but not {symbol}."
        )
    out = raw.xs(chosen, axis=1, level=ticker_level)
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = out.columns.get_level_values(0)
    return out


def _utc_index(index: pd.Index, interval: str, notes: list[str]) -> pd.DatetimeIndex:
    """yfinance's index as UTC bar open times (daily bars: the trading date at 00:00 UTC)."""
    idx = pd.DatetimeIndex(index)
    if interval == "1d":
        local = idx.tz_localize(None) if idx.tz is not None else idx
        return local.normalize().tz_localize("UTC")
    if idx.tz is None:
        notes.append(f"Yahoo returned timestamps without a timezone; taken as {EXCHANGE_TZ}.")
        idx = idx.tz_localize(EXCHANGE_TZ, ambiguous="NaT", nonexistent="shift_forward")
    return idx.tz_convert("UTC")


def normalize_yfinance_frame(raw: pd.DataFrame | None, symbol: str, interval: str, *,
                             auto_adjust: bool = True) -> tuple[pd.DataFrame, list[str]]:
    """Turn a ``yf.download`` frame into a bars frame (UTC index ``ts``, lower-case float64
    columns), sorted, duplicate timestamps resolved by keeping the last row, rows without
    prices dropped, high/low widened to contain open and close.  Returns (frame, notes)."""
    notes: list[str] = []
    if raw is None or len(raw) == 0:
        return pd.DataFrame(columns=list(BAR_COLUMNS)), notes
    flat = pick_ticker_columns(raw, symbol)
    rename = {c: str(c).strip().lower().replace(" ", "").replace("_", "") for c in flat.columns}
    flat = flat.rename(columns=rename)
    missing = [c for c in ("open", "high", "low", "close") if c not in flat.columns]
    if missing:
        raise MarketDataError(
            f"Yahoo's answer for {symbol} lacks column(s) {', '.join(missing)} "
            f"(got {', '.join(map(str, raw.columns))}); try again later or upload a file."
        )
    if "volume" not in flat.columns:
        flat = flat.assign(volume=0.0)
    frame = flat[list(BAR_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype("float64")
    frame.columns = pd.Index(BAR_COLUMNS)  # drop yfinance's "Price" level name
    frame.index = _utc_index(flat.index, interval, notes)
    frame = frame[frame.index.notna()]
    frame.index.name = "ts"
    frame = frame.sort_index(kind="stable")
    if frame.index.has_duplicates:
        dups = int(frame.index.duplicated(keep="last").sum())
        frame = frame[~frame.index.duplicated(keep="last")]
        notes.append(f"Yahoo sent {dups} duplicate timestamp(s); kept the latest version.")
    prices = frame[["open", "high", "low", "close"]].to_numpy()
    bad = np.isnan(prices).any(axis=1) | (prices <= 0).any(axis=1)
    if bad.all():
        return frame.iloc[0:0], notes
    if bad.any():
        notes.append(f"Dropped {int(bad.sum())} bar(s) without valid prices from Yahoo.")
        frame = frame[~bad]
    frame["volume"] = frame["volume"].fillna(0.0).clip(lower=0.0)
    top = frame[["open", "close"]].max(axis=1)
    bottom = frame[["open", "close"]].min(axis=1)
    fixed = int(((frame["high"] < top) | (frame["low"] > bottom)).sum())
    if fixed:
        frame["high"] = np.maximum(frame["high"], top)
        frame["low"] = np.minimum(frame["low"], bottom)
        notes.append(f"Widened high/low of {fixed} bar(s) to contain open and close.")
    return frame, notes
