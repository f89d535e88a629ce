"""The persistent bar cache in front of Yahoo: served from the database while fresh, topped
up with only the missing bars otherwise, stale bars when Yahoo is unreachable.

For one (symbol, interval) and an engine:

- nothing cached → fetch the whole lookback and store it (a *miss*);
- cached and fetched by this process within the interval's freshness window
  (:data:`~swing_core.market.FRESHNESS`), and the newest cached bar has not closed since →
  served from the database (a *hit*, ``source == "cache"``);
- otherwise only what is missing is fetched: from the last cached bar on (which also
  refreshes the newest, possibly still-forming bar), plus older bars when a longer lookback
  is asked than is cached (a *miss* and a *top-up*);
- Yahoo unreachable: the cached bars, marked STALE (``cache == "stale"``); with nothing cached,
  demo bars when ``demo_fallback`` (never stored).

Fetch times are kept per process, weakly keyed by engine (:func:`clear_cache_state` forgets
them); one fetch at a time per key.  The counters are :data:`~swing_core.market.CACHE_STATS`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import pandas as pd

from swing_core.config import INTERVAL_DELTA
from swing_core.errors import DatabaseError
from swing_core.market._common import CACHE_STATS, FRESHNESS, relabel
from swing_core.market.sources import demo_instead, direct
from swing_core.market.yahoo import UnknownSymbolError, YahooUnreachableError
from swing_core.timefmt import bar_time_text

__all__ = ["clear_cache_state", "through_cache"]

log = logging.getLogger(__name__)

#: A cached range counts as covering the requested start when its first bar is at most this
#: much later (weekends and holidays leave gaps of up to four days).
_COVERAGE_SLACK = pd.Timedelta(days=4)


@dataclass
class _CacheState:
    last_fetch: pd.Timestamp  # when this process last asked the provider for the newest bars
    earliest: pd.Timestamp  # the earliest start it asked the provider for


class _CacheRegistry:
    """Per engine and (symbol, interval): fetch times and a lock (one fetch at a time per key).

    Kept per process (weakly keyed by engine): a new process tops up once, then uses the
    freshness window.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], _CacheState]] = (
            weakref.WeakKeyDictionary())
        self._locks: weakref.WeakKeyDictionary[Any, dict[tuple[str, str], threading.Lock]] = (
            weakref.WeakKeyDictionary())

    def lock(self, engine: Any, key: tuple[str, str]) -> threading.Lock:
        with self._lock:
            return self._locks.setdefault(engine, {}).setdefault(key, threading.Lock())

    def get(self, engine: Any, key: tuple[str, str]) -> _CacheState | None:
        with self._lock:
            return self._states.get(engine, {}).get(key)

    def put(self, engine: Any, key: tuple[str, str], state: _CacheState) -> None:
        with self._lock:
            self._states.setdefault(engine, {})[key] = state

    def clear(self) -> None:
        with self._lock:
            self._states.clear()


_REGISTRY = _CacheRegistry()


def through_cache(engine: Any, source: Any, symbol: str, interval: str, days: int,
                  now: pd.Timestamp, notes: list[str], *, demo_fallback: bool) -> pd.DataFrame:
    """``source``'s bars of the last ``days`` days through ``engine``'s bar cache: a hit, a miss
    or a top-up (module docstring); fetched without the cache (a note) when it is unreadable."""
    from swing_core import db  # lazy: only a call with an engine needs SQLAlchemy

    key = (symbol, interval)
    start = now - pd.Timedelta(days=days)
    with _REGISTRY.lock(engine, key):
        try:
            cached = db.load_bars(engine, symbol, interval, start=start)
        except DatabaseError as exc:
            notes.append(f"Bar cache unavailable ({exc}); fetched without it.")
            return direct(source, symbol, interval, days, now, notes,
                          demo_fallback=demo_fallback)
        if len(cached) == 0:
            return _cache_miss(engine, source, symbol, interval, start, now, notes,
                               demo_fallback=demo_fallback, days=days)
        state = _REGISTRY.get(engine, key)
        # fresh: fetched recently, and the newest cached bar has not closed since (else its
        # cached values are a half-built bar that would now be labelled complete)
        last_close = cached.index[-1] + INTERVAL_DELTA[interval]
        fresh = (state is not None and now - state.last_fetch < FRESHNESS[interval]
                 and not state.last_fetch < last_close <= now)
        need_older = (cached.index[0] - start > _COVERAGE_SLACK
                      and (state is None or state.earliest > start))
        if fresh and not need_older:
            CACHE_STATS.incr("hits")
            return relabel(cached, notes, cache="hit", now=now, source="cache")
        return _top_up(engine, source, cached, start, now, notes, fresh=fresh,
                       need_older=need_older, state=state)


def _store(engine: Any, frame: pd.DataFrame, notes: list[str]) -> None:
    from swing_core import db  # lazy: only a call with an engine needs SQLAlchemy

    try:
        db.upsert_bars(engine, frame.attrs["symbol"], frame.attrs["interval"], frame,
                       source=frame.attrs.get("source", "yahoo"))
    except DatabaseError as exc:
        notes.append(f"Could not store the bars in the cache ({exc}).")


def _cache_miss(engine: Any, source: Any, symbol: str, interval: str, start: pd.Timestamp,
                now: pd.Timestamp, notes: list[str], *, demo_fallback: bool, days: int
                ) -> pd.DataFrame:
    CACHE_STATS.incr("misses")
    try:
        frame = source.fetch_range(symbol, interval, start=start, now=now)
    except YahooUnreachableError as exc:
        if not demo_fallback:
            raise
        return demo_instead(symbol, interval, days, now, notes, exc)
    _store(engine, frame, notes)
    _REGISTRY.put(engine, (symbol, interval), _CacheState(last_fetch=now, earliest=start))
    return relabel(frame, notes, cache="miss", now=now)


def _top_up(engine: Any, source: Any, cached: pd.DataFrame, start: pd.Timestamp,
            now: pd.Timestamp, notes: list[str], *, fresh: bool, need_older: bool,
            state: _CacheState | None) -> pd.DataFrame:
    """Fetch only what the cache lacks: older bars before its first bar (when a longer lookback
    is asked for) and the bars from its last bar on (refreshing that bar too)."""
    from swing_core import db  # lazy: only a call with an engine needs SQLAlchemy

    symbol, interval = cached.attrs["symbol"], cached.attrs["interval"]
    CACHE_STATS.incr("misses")
    CACHE_STATS.incr("topups")
    first, last = cached.index[0], cached.index[-1]
    earliest = state.earliest if state is not None else first
    last_fetch = state.last_fetch if state is not None else None
    try:
        if need_older:
            try:
                older = source.fetch_range(symbol, interval, start=start, end=first, now=now)
                _store(engine, older, notes)
                notes.extend(n for n in older.attrs.get("notes", []) if n not in notes)
            except UnknownSymbolError:
                pass  # nothing older exists (a recent listing, or beyond Yahoo's limit)
            earliest = min(earliest, start)
        if not fresh:
            try:
                newer = source.fetch_range(symbol, interval, start=last, now=now)
                _store(engine, newer, notes)
            except UnknownSymbolError:
                notes.append(f"No bars newer than {bar_time_text(last, interval)} from Yahoo.")
            last_fetch = now
    except YahooUnreachableError as exc:
        CACHE_STATS.incr("fallbacks")
        log.warning("Yahoo unreachable for %s; serving cached bars: %s", symbol, exc)
        notes.insert(0, f"STALE: Yahoo Finance is unreachable ({exc.detail or exc}); showing "
                        f"cached bars up to {bar_time_text(last, interval)}.")
        return relabel(cached, notes, cache="stale", now=now, source="cache")
    _REGISTRY.put(engine, (symbol, interval),
                  _CacheState(last_fetch=last_fetch if last_fetch is not None else now,
                              earliest=earliest))
    try:
        frame = db.load_bars(engine, symbol, interval, start=start)
    except DatabaseError as exc:
        notes.append(f"Bar cache unreadable after the update ({exc}).")
        frame = cached
    return relabel(frame, notes, cache="topup", now=now, source="yahoo")


def clear_cache_state() -> None:
    """Forget this process's cache fetch times (the stored bars stay)."""
    _REGISTRY.clear()
