"""Shared pieces of the market-data layer: constants, the bars-frame shape, symbols, counters.

A *bars frame* has float64 columns ``open high low close volume`` and a tz-aware UTC
``DatetimeIndex`` named ``ts`` holding bar OPEN times (Yahoo's labels); a bar labelled ``t`` is
known at ``t + INTERVAL_DELTA[interval]``.  Daily bars are labelled by their session date at
00:00 UTC (so ``ts.date()`` is the trading date and the bar is known from the next midnight UTC,
after the 16:00 New York close).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator, Mapping

import pandas as pd

from swing_core.clock import utc_timestamp
from swing_core.config import INTERVAL_DELTA, YAHOO_MAX_DAYS
from swing_core.errors import MarketDataError

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")

#: Lookback used when ``fetch_bars(lookback_days=None)``: Yahoo's maximum for intraday bars,
#: five years of daily bars.
DEFAULT_LOOKBACK_DAYS: dict[str, int] = {"15m": 59, "30m": 59, "1h": 729, "1d": 5 * 365}
#: The longest lookback accepted: 100 years of calendar days (Yahoo's oldest daily bars, ^GSPC's,
#: start in 1927).
MAX_LOOKBACK_DAYS = 36_500

#: How long cached newest bars count as fresh before the cache asks the provider again.
FRESHNESS: dict[str, pd.Timedelta] = {
    "15m": pd.Timedelta(minutes=5),
    "30m": pd.Timedelta(minutes=10),
    "1h": pd.Timedelta(minutes=20),
    "1d": pd.Timedelta(hours=6),
}

#: The longest ticker accepted (Yahoo's are shorter: ``EURUSD=X``, ``BRK-B``, ``^GSPC``).
MAX_SYMBOL_CHARS = 15
_SYMBOL_RE = re.compile(rf"^[A-Z0-9.\-^=]{{1,{MAX_SYMBOL_CHARS}}}$")
#: What a message quotes of a user's text at most (a pasted paragraph is not echoed whole).
_ECHO_CHARS = 20


def echo_text(text: object, *, limit: int = _ECHO_CHARS) -> str:
    """``text`` quoted for a message: whitespace runs as one space, control characters escaped,
    at most ``limit`` characters, then ``…`` and the full length (``'AAAA…' (200 characters)``).
    """
    flat = " ".join(str(text).split())
    if len(flat) <= limit:
        return repr(flat)
    return f"{flat[:limit]!r}… ({len(flat):,} characters)"


def symbol_label(text: object, *, limit: int = _ECHO_CHARS) -> str:
    """A symbol as typed, for a table cell or a ``SYMBOL: message`` line even when it is not a
    valid ticker: stripped, uppercased, at most ``limit`` characters then ``…``."""
    flat = " ".join(str(text).split()).upper()
    return flat if len(flat) <= limit else flat[:limit] + "…"


def normalize_symbol(text: str) -> str:
    """Uppercase and validate a ticker: letters, digits, ``. - ^ =``, 1–15 characters.

    Examples of valid symbols: ``AAPL``, ``brk-b`` → ``BRK-B``, ``^GSPC``, ``EURUSD=X``,
    ``BTC-USD``, ``SAP.DE``.  Raises :class:`MarketDataError` otherwise; the message quotes at
    most the first 20 characters of ``text`` (:func:`echo_text`).
    """
    if not isinstance(text, str):
        raise MarketDataError(f"A symbol must be text, got {type(text).__name__}.")
    symbol = text.strip().upper()
    if not symbol:
        raise MarketDataError("No symbol given: type a ticker such as AAPL, SPY or ^GSPC.")
    if not _SYMBOL_RE.match(symbol):
        raise MarketDataError(
            f"{echo_text(text.strip())} is not a valid ticker: a symbol is 1 to "
            f"{MAX_SYMBOL_CHARS} letters, digits and . - ^ = (for example AAPL, BRK-B, ^GSPC, "
            "EURUSD=X)."
        )
    return symbol


def check_lookback_days(days: object) -> int:
    """``days`` as a lookback in calendar days: a whole number from 1 to
    :data:`MAX_LOOKBACK_DAYS`; raises :class:`MarketDataError` otherwise (0 is refused like
    -5: "no lookback" is ``None``, never 0)."""
    whole = None
    if isinstance(days, int | float | str) and not isinstance(days, bool):
        try:
            number = float(days)
        except ValueError:
            number = float("nan")
        if number.is_integer():
            whole = int(number)
    if whole is None or not 1 <= whole <= MAX_LOOKBACK_DAYS:
        raise MarketDataError(
            f"The lookback must be a whole number of calendar days from 1 to "
            f"{MAX_LOOKBACK_DAYS:,} (got {echo_text(days)}); omit it for the interval's default.")
    return whole


def last_bar_complete(index: pd.DatetimeIndex, interval: str, *, now: pd.Timestamp | None = None
                      ) -> bool:
    """True when the last bar has closed: ``now >= last open + INTERVAL_DELTA[interval]``."""
    if len(index) == 0:
        return True
    now = utc_timestamp() if now is None else pd.Timestamp(now)
    return bool(now >= index[-1] + INTERVAL_DELTA[interval])


def label(df: pd.DataFrame, *, symbol: str, interval: str, source: str,
          notes: list[str] | None = None, now: pd.Timestamp | None = None) -> pd.DataFrame:
    """Set the standard ``attrs`` on a bars frame (in place) and return it."""
    df.attrs["source"] = source
    df.attrs["symbol"] = symbol
    df.attrs["interval"] = interval
    df.attrs["last_bar_complete"] = last_bar_complete(df.index, interval, now=now)
    df.attrs["notes"] = list(notes or [])
    return df


def relabel(frame: pd.DataFrame, notes: list[str], *, cache: str, now: pd.Timestamp,
            source: str | None = None) -> pd.DataFrame:
    """Standard attrs, with ``notes`` (the caller's first, then the provider's)."""
    extra = [n for n in frame.attrs.get("notes", []) if n not in notes]
    keep = {k: v for k, v in frame.attrs.items()
            if k not in ("source", "symbol", "interval", "notes", "last_bar_complete")}
    frame = label(frame, symbol=frame.attrs.get("symbol", ""),
                  interval=frame.attrs.get("interval", ""),
                  source=source or frame.attrs.get("source", "yahoo"), notes=notes + extra,
                  now=now)
    frame.attrs.update(keep)
    frame.attrs["cache"] = cache
    return frame


def yahoo_limit_note(interval: str) -> str:
    max_days = YAHOO_MAX_DAYS.get(interval)
    if max_days is None:
        return ""
    return f"Yahoo keeps about {max_days + 1} days of {interval} bars"


class CacheCounter(Mapping[str, int]):
    """Thread-safe named counters (``hits``, ``misses``, …) readable like a dict.

    ``CACHE_STATS["hits"]``, ``dict(CACHE_STATS)``, ``CACHE_STATS.incr("misses")``,
    ``CACHE_STATS.reset()``.  ``subscribe(fn)`` registers ``fn(name, amount)``, called after each
    increment (outside the lock), so the performance layer can persist the counts.
    """

    def __init__(self, *names: str) -> None:
        self._lock = threading.Lock()
        self._names = names
        self._counts: dict[str, int] = dict.fromkeys(names, 0)
        self._listeners: list[Callable[[str, int], None]] = []

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + amount
            listeners = list(self._listeners)
        for listener in listeners:
            listener(name, amount)

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(self._names, 0)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def subscribe(self, listener: Callable[[str, int], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0) if name in self._names else self._counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)

    def __repr__(self) -> str:
        return f"CacheCounter({self.snapshot()})"


#: Bar-cache counters: ``hits`` (served without asking a provider), ``misses`` (nothing cached),
#: ``topups`` (only the missing/newest bars fetched), ``fallbacks`` (stale cache or demo served
#: because Yahoo was unreachable).
CACHE_STATS = CacheCounter("hits", "misses", "topups", "fallbacks")
