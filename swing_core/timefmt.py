"""How bar times read: the one display rule for timestamps (DESIGN.md "Time").

Bars frames are indexed by UTC bar *open* times; daily bars are labelled by their trading date at
00:00 UTC. Every table, chart, error message, trade list, export and the journal shows a bar time
through this module:

* daily (and weekly) bars show their **trading date** only, ``2004-08-19``: the date of the
  00:00 UTC label, no clock time and no zone conversion (converted to New York it would read as
  the evening before, ``2004-08-18 20:00``, and a Monday bar as a Sunday);
* intraday bars show **New York exchange time** with its zone, ``2024-03-04 10:30 EST``.

Close times: a few stored stamps are the *close* of a bar rather than its label (``exit_ts`` is
the exit bar's label + the bar's length, see :mod:`swing_core.exits`). With ``close=True`` a daily
close shows the trading date of the bar that closed (``close - bar length``), never the next
calendar day (a Friday exit does not show on a Saturday); an intraday close shows as the clock
time it happened. Stored values are never changed: this module only decides how they read.

A low-level module (config and pandas only): the market layer's validation errors use it, and
``swing_core.views`` re-exports it for the pages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import EXCHANGE_TZ, INTERVAL_DELTA

__all__ = [
    "DAILY_INTERVALS",
    "MISSING",
    "bar_time_text",
    "bar_time_texts",
    "bar_times",
    "clock_text",
    "exchange_times",
    "file_times",
    "is_daily",
    "looks_daily",
]

#: Intervals whose bars are labelled by their trading date at 00:00 UTC.
DAILY_INTERVALS: frozenset[str] = frozenset({"1d", "1wk"})
_BAR_LENGTH: dict[str, pd.Timedelta] = {"1wk": pd.Timedelta(weeks=1), **INTERVAL_DELTA}
_DATE = "%Y-%m-%d"
_CLOCK = "%Y-%m-%d %H:%M %Z"
#: What a missing time reads as.
MISSING = "–"


def is_daily(interval: str | None) -> bool:
    """True for intervals whose bars are labelled by a trading date (``1d``, ``1wk``)."""
    return interval in DAILY_INTERVALS


def looks_daily(values: Any) -> bool:
    """True when ``values`` (UTC timestamps; naive ones are taken as UTC) has at least one time
    and every one is 00:00 UTC: daily bar labels. For callers not told the interval; no US
    intraday bar opens at midnight UTC (19:00 or 20:00 in New York)."""
    utc = _utc_index(values).dropna()
    return len(utc) > 0 and bool((utc == utc.normalize()).all())


def _utc_index(values: Any) -> pd.DatetimeIndex:
    if isinstance(values, pd.Timestamp | str) or not hasattr(values, "__len__"):
        values = [values]
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _daily(interval: str | None, values: Any) -> bool:
    return is_daily(interval) if interval is not None else looks_daily(values)


def exchange_times(values: Any) -> pd.DatetimeIndex:
    """UTC timestamps (naive ones taken as UTC) as naive New York wall-clock times: how intraday
    bars and moments that are not bars (a fetch, a log line) are drawn and tabulated."""
    return _utc_index(values).tz_convert(EXCHANGE_TZ).tz_localize(None)


def bar_times(values: Any, interval: str | None, *, close: bool = False) -> pd.DatetimeIndex:
    """Bar times (UTC) as the naive times a chart axis or a sortable table column shows.

    Daily bars (``interval`` ``1d``/``1wk``): the trading date at 00:00, no zone conversion.
    Intraday bars: New York wall-clock time (:func:`exchange_times`). ``close``: ``values`` are
    bar close times (``exit_ts``); a daily close maps to the date of the bar that closed, an
    intraday close stays the clock time it happened. ``interval`` None: daily when every value
    is 00:00 UTC (:func:`looks_daily`). Missing values stay NaT."""
    utc = _utc_index(values)
    if not _daily(interval, utc):
        return exchange_times(utc)
    if close:
        utc = utc - _BAR_LENGTH.get(interval or "1d", pd.Timedelta(days=1))
    return utc.tz_localize(None).normalize()


def bar_time_text(ts: Any, interval: str | None, *, close: bool = False) -> str:
    """One bar time as text: ``2004-08-19`` for a daily bar (its trading date), ``2024-03-04
    10:30 EST`` for an intraday bar (New York time and zone); ``–`` when missing. ``close`` and
    ``interval`` None as in :func:`bar_times`."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return MISSING
    utc = _utc_index(ts)
    if _daily(interval, utc):
        return bar_times(utc, interval or "1d", close=close)[0].strftime(_DATE)
    return utc.tz_convert(EXCHANGE_TZ)[0].strftime(_CLOCK)


def bar_time_texts(values: Any, interval: Any, *, close: bool = False) -> np.ndarray:
    """:func:`bar_time_text` of many bar times at once (an object array of strings; ``–`` for a
    missing one), without a Python call per value (the same formats: a test compares them value
    by value). ``interval``: one for all, or one per value (a table mixing intervals: each
    interval's values are formatted together; None per value as :func:`bar_time_text`)."""
    if interval is not None and not isinstance(interval, str):
        per_row = np.asarray(list(interval), dtype=object)
        stamps = np.asarray(list(values), dtype=object)
        out = np.full(len(stamps), MISSING, dtype=object)
        for each in dict.fromkeys(per_row.tolist()):
            at = np.flatnonzero(per_row == each) if each is not None else np.flatnonzero(
                np.array([v is None for v in per_row], dtype=bool))
            out[at] = ([bar_time_text(t, None, close=close) for t in stamps[at]] if each is None
                       else bar_time_texts(stamps[at], each, close=close))
        return out
    utc = _utc_index(values)
    if _daily(interval, utc):
        text = bar_times(utc, interval or "1d", close=close).strftime(_DATE)
    else:
        text = utc.tz_convert(EXCHANGE_TZ).strftime(_CLOCK)
    out = np.asarray(text, dtype=object)
    out[np.asarray(utc.isna())] = MISSING
    return out


def clock_text(ts: Any) -> str:
    """A moment that is not a bar (a refresh, a finished run; UTC, naive taken as UTC) as New
    York wall-clock time of day, ``15:04:05``; ``–`` when missing. The page says "New York"."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return MISSING
    return exchange_times(ts)[0].strftime("%H:%M:%S")


def file_times(values: Any, interval: str | None, *, text: bool) -> pd.Index:
    """Bar times as an exported file (CSV, Parquet) holds them, each reading back to the same
    bar: daily bars as their trading date (``text``: ``2004-08-19``; else a naive midnight);
    intraday bars in New York time with its offset (``text``: ISO 8601
    ``2024-03-04T10:30:00-05:00``; else tz-aware New York timestamps). ``interval`` None:
    daily when every value is 00:00 UTC."""
    utc = _utc_index(values)
    if _daily(interval, utc):
        days = bar_times(utc, interval or "1d")
        return pd.Index(days.strftime(_DATE)) if text else days
    local = utc.tz_convert(EXCHANGE_TZ)
    if not text:
        return local
    stamp = pd.Series(local.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return pd.Index(stamp.str[:-2] + ":" + stamp.str[-2:])  # -0500 -> -05:00 (ISO 8601)
