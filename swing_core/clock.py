"""One clock for the whole engine: every "what time / what month / what day is it" asks here.

A :data:`Clock` is any zero-argument callable returning a timezone-aware UTC ``datetime``.
Components that reason about the current time (the advisor's monthly budget and cache TTL,
performance retention and windows, bar freshness, the demo generator's last bar, default
backtest ranges) take ``clock=`` or ``now=`` and fall back on :func:`system_clock`, so a test
pins time by passing a :class:`FixedClock` instead of depending on today's date.

Why not freezegun-style patching: patching ``datetime`` globally also freezes the libraries we
call (SQLAlchemy pools, HTTP clients, Streamlit); an explicit argument freezes only our logic.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable

import pandas as pd

from swing_core.config import EXCHANGE_TZ

UTC = dt.UTC

#: A source of the current time: returns a timezone-aware UTC ``datetime``.
Clock = Callable[[], dt.datetime]


def system_clock() -> dt.datetime:
    """The real current time, timezone-aware UTC."""
    return dt.datetime.now(UTC)


def utc_now(clock: Clock | None = None) -> dt.datetime:
    """The current UTC time from ``clock`` (default :func:`system_clock`)."""
    now = (clock or system_clock)()
    if now.tzinfo is None:
        raise ValueError("a Clock must return a timezone-aware datetime")
    return now.astimezone(UTC)


def utc_timestamp(clock: Clock | None = None) -> pd.Timestamp:
    """:func:`utc_now` as a pandas ``Timestamp`` (UTC)."""
    return pd.Timestamp(utc_now(clock))


def exchange_today(clock: Clock | None = None) -> dt.date:
    """Today's date in exchange time (New York): the trading date a trader means by "today"."""
    return utc_timestamp(clock).tz_convert(EXCHANGE_TZ).date()


def warmup_lookback_days(start: dt.date | dt.datetime | pd.Timestamp, *, bars_per_day: int,
                         warmup_bars: int, clock: Clock | None = None) -> int:
    """Calendar days of history to load so that bars from ``start`` to now have ``warmup_bars``
    bars before them (5 trading days a week, plus 5 days of slack for holidays)."""
    begin = pd.Timestamp(start)
    begin = begin.tz_localize(UTC) if begin.tzinfo is None else begin.tz_convert(UTC)
    warm_days = math.ceil(warmup_bars / bars_per_day * 7 / 5) + 5
    return max(1, (utc_timestamp(clock) - begin).days + warm_days)


def month_start(now: dt.datetime) -> dt.datetime:
    """Midnight UTC on the first day of ``now``'s calendar month (UTC)."""
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: dt.datetime) -> dt.datetime:
    """Midnight UTC on the first day of the calendar month after ``now``'s (UTC)."""
    start = month_start(now)
    return (start + dt.timedelta(days=32)).replace(day=1)


class FixedClock:
    """A clock that stands still until moved: ``clock()``, ``clock.set(t)``, ``clock.advance(s)``.

    For tests and reproducible runs (benchmarks, the self-benchmark): pass it as ``clock=``.
    """

    def __init__(self, now: dt.datetime) -> None:
        self.set(now)

    def set(self, now: dt.datetime) -> None:
        if now.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware datetime")
        self._now = now.astimezone(UTC)

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        return self._now

    def __call__(self) -> dt.datetime:
        return self._now

    def __repr__(self) -> str:
        return f"FixedClock({self._now.isoformat()})"


__all__ = ["EXCHANGE_TZ", "UTC", "Clock", "FixedClock", "exchange_today", "month_start",
           "next_month_start", "system_clock", "utc_now", "utc_timestamp",
           "warmup_lookback_days"]
