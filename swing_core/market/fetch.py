"""``fetch_bars`` / ``fetch_many``: providers behind the persistent bar cache, with fallbacks.

Which provider answers:

* ``offline`` (``SWING_OFFLINE=1`` when not given): the demo provider, no network, no cache;
  the frame says so loudly (``attrs["source"] == "demo"`` and a note).
* a file or demo provider passed in: that provider directly (never cached).
* otherwise Yahoo, through the bar cache when an ``engine`` is given:

  - nothing cached → fetch the whole lookback and store it (a *miss*);
  - cached and fetched by this process within the interval's freshness window
    (:data:`FRESHNESS`), and the newest cached bar has not closed since → served from the
    database (a *hit*, ``source == "cache"``);
  - otherwise only what is missing is fetched: from the last cached bar on (which also
    refreshes the newest, possibly still-forming bar), plus older bars when a longer lookback
    is asked than is cached (a *miss* and a *top-up*).

* Yahoo unreachable (network error): stale cached bars when there are any (note), else demo
  bars when ``demo_fallback`` (note, ``source == "demo"``, never stored), else
  :class:`YahooUnreachableError`.  Rate limits are retried inside the Yahoo provider.

Demo bars are never written to the cache, so they can never be mistaken for real prices later.

Where bars come from is one choice, ``source`` (:data:`SOURCES`), made once (the sidebar and
``?source=`` in the app, ``--source`` on the CLI, ``source=`` in the API) and passed down to
every fetch, including the benchmark and other-timeframe context of a signal:

* ``"yahoo"``: Yahoo through the bar cache (stale cached bars with a note when unreachable;
  never demo bars).
* ``"local"``: the local bar library only (uploaded or imported files and earlier Yahoo
  fetches, i.e. every real bar stored in the ``bars`` table); the lookback counts back from the
  newest stored bar, so a file that ends years ago is served whole.
* ``"demo"``: the deterministic demo generator, labelled DEMO everywhere.
* ``"auto"`` (default): Yahoo; when it is off (``SWING_OFFLINE=1``), unreachable or does not
  know the symbol, the local library (with a note saying how old its newest bar is); else demo
  bars (labelled), unless ``demo_fallback=False``.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import pandas as pd

from swing_core.clock import utc_timestamp
from swing_core.config import INTERVAL_DELTA, YAHOO_MAX_DAYS, get_settings, validate_interval
from swing_core.errors import DatabaseError, MarketDataError
from swing_core.market._common import (
    CACHE_STATS,
    DEFAULT_LOOKBACK_DAYS,
    FRESHNESS,
    label,
    normalize_symbol,
    yahoo_limit_note,
)
from swing_core.market.demo import DemoProvider
from swing_core.market.validate import validate_bars
from swing_core.market.yahoo import UnknownSymbolError, YahooProvider, YahooUnreachableError
from swing_core.perf import timed_fn
from swing_core.timefmt import bar_time_text

log = logging.getLogger(__name__)

#: A cached range counts as covering the requested start when its first bar is at most this
#: much later (weekends and holidays leave gaps of up to four days).
_COVERAGE_SLACK = pd.Timedelta(days=4)


#: Where bars may come from (see the module docstring); "auto" picks the first that has bars.
SOURCES: tuple[str, ...] = ("auto", "yahoo", "local", "demo")

#: One line per source for selectors and help texts.
SOURCE_LABELS: dict[str, str] = {
    "auto": "Automatic: Yahoo, else your local bars, else demo",
    "yahoo": "Yahoo Finance (through the bar cache)",
    "local": "Local bar library (your files and earlier fetches)",
    "demo": "Demo data (synthetic, offline)",
}

#: Older spellings accepted from bookmarks and scripts.
_SOURCE_ALIASES = {"cache": "local", "file": "local", "library": "local", "automatic": "auto"}


def check_source(source: str | None) -> str:
    """``source`` as one of :data:`SOURCES` (None → "auto"; older spellings accepted), or a
    :class:`MarketDataError` naming the choices."""
    if source is None:
        return "auto"
    key = str(source).strip().lower()
    key = _SOURCE_ALIASES.get(key, key)
    if key not in SOURCES:
        raise MarketDataError(f"Unknown data source {source!r}: choose one of "
                              f"{', '.join(SOURCES)}.")
    return key


class BarProvider(Protocol):
    """What ``fetch_bars`` needs from a provider (Yahoo adds ``fetch_range`` for the cache)."""

    name: str
    cacheable: bool

    def fetch(self, symbol: str, interval: str, *, lookback_days: int | None = None,
              now: pd.Timestamp | None = None) -> pd.DataFrame: ...


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


def _resolve_provider(provider: BarProvider | str | None) -> BarProvider:
    if provider is None or provider == "yahoo":
        return YahooProvider()
    if provider == "demo":
        return DemoProvider()
    if isinstance(provider, str):
        raise MarketDataError(f"Unknown provider {provider!r}: use 'yahoo', 'demo' or a "
                              "FileProvider for an uploaded file.")
    return provider


def _utc_now(now: Any) -> pd.Timestamp:
    if now is None:
        return utc_timestamp()
    ts = pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@timed_fn("fetch")
def fetch_bars(symbol: str, interval: str = "30m", *, lookback_days: int | None = None,
               engine: Any = None, offline: bool | None = None,
               provider: BarProvider | str | None = None, demo_fallback: bool = True,
               min_bars: int = 1, now: pd.Timestamp | None = None,
               source: str | None = None) -> pd.DataFrame:
    """Validated bars of ``symbol`` for the last ``lookback_days`` calendar days.

    Returns a bars frame (UTC index ``ts`` of bar open times; float64 open, high, low, close,
    volume) with ``attrs``: ``source`` ("yahoo", "cache", "demo" or "file"), ``symbol``,
    ``interval``, ``last_bar_complete`` (False while the last bar is still forming, i.e. now <
    its open + interval), ``notes`` (list of sentences for the user: clamps, fallbacks, repairs)
    and ``cache`` ("hit", "miss", "topup", "stale" or "off").

    ``lookback_days``: default :data:`DEFAULT_LOOKBACK_DAYS` (Yahoo's intraday maximum, five
    years of daily bars); clamped to Yahoo's limits (``config.YAHOO_MAX_DAYS``) with a note.
    ``engine``: a SQLAlchemy engine for the persistent bar cache (None: no cache).
    ``source``: where bars come from (:data:`SOURCES`, module docstring; default "auto").
    ``offline``: default ``Settings.offline`` (``SWING_OFFLINE``); True → Yahoo is never asked
    ("auto" serves local bars, else demo bars; "yahoo" is refused).
    ``provider``: a provider object such as ``FileProvider`` (overrides ``source``); the
    strings "yahoo" and "demo" are the sources of the same names.
    ``demo_fallback``: serve demo bars (loudly labelled) when Yahoo is unreachable and nothing is
    cached; False raises :class:`YahooUnreachableError` instead.  ``min_bars``: passed to
    :func:`validate_bars`.  ``now``: the clock (UTC), for replays and tests.
    Raises :class:`MarketDataError` (unknown symbol, no data, unusable bars, too few bars).
    """
    symbol = normalize_symbol(symbol)
    validate_interval(interval)
    if lookback_days is not None and lookback_days < 1:
        raise MarketDataError(f"lookback_days must be at least 1 (got {lookback_days}).")
    now = _utc_now(now)
    offline = get_settings().offline if offline is None else offline
    if isinstance(provider, str) or provider is None:
        chosen = check_source(provider if provider is not None else source)
        if chosen == "local":
            frame = _from_library(engine, symbol, interval, lookback_days, now, [])
            return validate_bars(frame, symbol=symbol, interval=interval, min_bars=min_bars)
        if chosen == "auto":
            frame = _auto(symbol, interval, lookback_days=lookback_days, engine=engine,
                          offline=offline, demo_fallback=demo_fallback, now=now)
            return validate_bars(frame, symbol=symbol, interval=interval, min_bars=min_bars)
        if chosen == "yahoo" and offline:
            raise YahooUnreachableError(
                "Yahoo Finance is switched off (SWING_OFFLINE=1): choose the local bar library "
                "or demo data as the source, or unset SWING_OFFLINE.")
        provider = chosen
        demo_fallback = demo_fallback and chosen != "yahoo"
    source = _resolve_provider(provider)
    notes: list[str] = []
    if offline and source.name not in ("demo", "file"):
        days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
        frame = DemoProvider().fetch(symbol, interval, lookback_days=days, now=now)
        frame.attrs["notes"] = []
        notes.append("DEMO DATA, NOT REAL PRICES: offline mode (SWING_OFFLINE=1) serves "
                     "synthetic bars.")
        frame = _relabel(frame, notes, cache="off", now=now)
    elif source.name == "file":
        frame = _relabel(source.fetch(symbol, interval, lookback_days=lookback_days, now=now),
                         notes, cache="off", now=now)
    else:
        days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
        max_days = YAHOO_MAX_DAYS.get(interval)
        if source.name == "yahoo" and max_days is not None and days > max_days:
            notes.append(f"Lookback clamped from {days} to {max_days} days: "
                         f"{yahoo_limit_note(interval)} (use 1h for up to two years, 1d for "
                         "longer, or upload a file).")
            days = max_days
        if engine is not None and getattr(source, "cacheable", False):
            frame = _through_cache(engine, source, symbol, interval, days, now, notes,
                                   demo_fallback=demo_fallback)
        else:
            frame = _direct(source, symbol, interval, days, now, notes,
                            demo_fallback=demo_fallback)
    return validate_bars(frame, symbol=symbol, interval=interval, min_bars=min_bars)


def _age_text(last_bar: pd.Timestamp, now: pd.Timestamp) -> str:
    days = (now - last_bar).days
    if days <= 1:
        return "up to date"
    return f"{days:,} days old" if days < 730 else f"{days / 365.25:.1f} years old"


def _from_library(engine: Any, symbol: str, interval: str, lookback_days: int | None,
                  now: pd.Timestamp, notes: list[str]) -> pd.DataFrame:
    """The local bar library's bars (``source == "local"``): the last ``lookback_days``
    calendar days before the newest stored bar (all of them when None)."""
    from swing_core import db

    if engine is None:
        raise DatabaseError("The local bar library needs the database, which is unavailable: "
                            "check SWING_DATABASE_URL / SWING_DATA_DIR.")
    bars = db.load_bars(engine, symbol, interval)
    if len(bars) == 0:
        raise MarketDataError(
            f"No local {interval} bars for {symbol}: import a CSV/Parquet file on the Data page "
            f"or with `python -m swing_core data import FILE`, or choose another source.")
    origin = ", ".join(bars.attrs.get("cache_sources", [])) or "unknown"
    if lookback_days:
        bars = bars.loc[bars.index >= bars.index[-1] - pd.Timedelta(days=lookback_days)]
    notes.append(f"Bars from the local library (originally from: {origin}); newest bar "
                 f"{_age_text(bars.index[-1], now)}.")
    CACHE_STATS.incr("hits")
    return _relabel(bars, notes, cache="library", now=now, source="local")


def _auto(symbol: str, interval: str, *, lookback_days: int | None, engine: Any,
          offline: bool, demo_fallback: bool, now: pd.Timestamp) -> pd.DataFrame:
    """Yahoo (through the cache); else the local library; else demo bars (labelled)."""
    notes: list[str] = []
    unreachable: YahooUnreachableError | None = None
    if not offline:
        try:
            return fetch_bars(symbol, interval, lookback_days=lookback_days, engine=engine,
                              offline=False, provider="yahoo", demo_fallback=False, now=now)
        except YahooUnreachableError as exc:
            unreachable = exc
            why = f"Yahoo Finance is unreachable ({exc.detail or exc})"
        except UnknownSymbolError as exc:
            if engine is None:
                raise
            try:
                return _from_library(engine, symbol, interval, lookback_days, now,
                                     [f"Yahoo Finance does not know {symbol}."])
            except MarketDataError:
                raise UnknownSymbolError(
                    f"{exc} The local library has no {interval} bars of {symbol} either: "
                    "check the ticker, or import a file of its bars.", symbol=symbol) from None
    else:
        why = "offline mode (SWING_OFFLINE=1)"
    if engine is not None:
        try:
            return _from_library(engine, symbol, interval, lookback_days, now,
                                 [f"Yahoo not used: {why}."])
        except MarketDataError:
            pass  # nothing local for this symbol: demo, below
    if not demo_fallback:
        detail = unreachable.detail if unreachable is not None else ""
        raise YahooUnreachableError(
            f"{unreachable or symbol + ': ' + why + '.'} The local library has no {interval} "
            f"bars of {symbol} either: import a file of its bars on the Data page.",
            detail=detail)
    days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
    if unreachable is None:
        frame = DemoProvider().fetch(symbol, interval, lookback_days=days, now=now)
        frame.attrs["notes"] = []
        notes.append("DEMO DATA, NOT REAL PRICES: offline mode (SWING_OFFLINE=1) and no local "
                     f"{interval} bars of {symbol}; these bars are synthetic.")
        return _relabel(frame, notes, cache="off", now=now, source="demo")
    return _demo_instead(symbol, interval, days, now, notes, unreachable)


def _relabel(frame: pd.DataFrame, notes: list[str], *, cache: str, now: pd.Timestamp,
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


def _demo_instead(symbol: str, interval: str, days: int, now: pd.Timestamp, notes: list[str],
                  exc: YahooUnreachableError) -> pd.DataFrame:
    log.warning("Yahoo unreachable for %s; serving demo bars: %s", symbol, exc)
    CACHE_STATS.incr("fallbacks")
    notes.insert(0, "DEMO DATA, NOT REAL PRICES: Yahoo Finance is unreachable "
                    f"({exc.detail or exc}); these bars are synthetic. Check the connection, "
                    "or upload a CSV/Parquet file.")
    frame = DemoProvider().fetch(symbol, interval, lookback_days=days, now=now)
    frame.attrs["notes"] = []
    return _relabel(frame, notes, cache="off", now=now, source="demo")


def _direct(source: BarProvider, symbol: str, interval: str, days: int, now: pd.Timestamp,
            notes: list[str], *, demo_fallback: bool) -> pd.DataFrame:
    try:
        frame = source.fetch(symbol, interval, lookback_days=days, now=now)
    except YahooUnreachableError as exc:
        if not demo_fallback:
            raise
        return _demo_instead(symbol, interval, days, now, notes, exc)
    return _relabel(frame, notes, cache="off", now=now)


def _through_cache(engine: Any, source: Any, symbol: str, interval: str, days: int,
                   now: pd.Timestamp, notes: list[str], *, demo_fallback: bool) -> pd.DataFrame:
    from swing_core import db

    key = (symbol, interval)
    start = now - pd.Timedelta(days=days)
    with _REGISTRY.lock(engine, key):
        try:
            cached = db.load_bars(engine, symbol, interval, start=start)
        except DatabaseError as exc:
            notes.append(f"Bar cache unavailable ({exc}); fetched without it.")
            return _direct(source, symbol, interval, days, now, notes,
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
            return _relabel(cached, notes, cache="hit", now=now, source="cache")
        return _top_up(engine, source, cached, start, now, notes, fresh=fresh,
                       need_older=need_older, state=state)


def _store(engine: Any, frame: pd.DataFrame, notes: list[str]) -> None:
    from swing_core import db

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
        return _demo_instead(symbol, interval, days, now, notes, exc)
    _store(engine, frame, notes)
    _REGISTRY.put(engine, (symbol, interval), _CacheState(last_fetch=now, earliest=start))
    return _relabel(frame, notes, cache="miss", now=now)


def _top_up(engine: Any, source: Any, cached: pd.DataFrame, start: pd.Timestamp,
            now: pd.Timestamp, notes: list[str], *, fresh: bool, need_older: bool,
            state: _CacheState | None) -> pd.DataFrame:
    """Fetch only what the cache lacks: older bars before its first bar (when a longer lookback
    is asked for) and the bars from its last bar on (refreshing that bar too)."""
    from swing_core import db

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
        return _relabel(cached, notes, cache="stale", now=now, source="cache")
    _REGISTRY.put(engine, (symbol, interval),
                  _CacheState(last_fetch=last_fetch if last_fetch is not None else now,
                              earliest=earliest))
    try:
        frame = db.load_bars(engine, symbol, interval, start=start)
    except DatabaseError as exc:
        notes.append(f"Bar cache unreadable after the update ({exc}).")
        frame = cached
    return _relabel(frame, notes, cache="topup", now=now, source="yahoo")


def fetch_many(symbols: Iterable[str], interval: str = "30m", *,
               lookback_days: int | None = None, engine: Any = None,
               offline: bool | None = None, provider: BarProvider | str | None = None,
               demo_fallback: bool = True, min_bars: int = 1, max_workers: int | None = None,
               now: pd.Timestamp | None = None, source: str | None = None
               ) -> dict[str, pd.DataFrame | MarketDataError]:
    """:func:`fetch_bars` for several symbols in parallel (at most ``max_workers`` threads,
    default ``Settings.fetch_workers``).  One symbol's failure never stops the others: its value
    is the :class:`MarketDataError`.  Keys are the normalized symbols (the raw text for an
    invalid one), in the order given, duplicates once.  Rate-limited symbols are retried with
    back-off by the Yahoo provider.
    """
    results: dict[str, pd.DataFrame | MarketDataError] = {}
    wanted: list[str] = []
    for text in symbols:
        try:
            sym = normalize_symbol(text)
        except MarketDataError as exc:
            results[str(text)] = exc
            continue
        if sym not in wanted:
            wanted.append(sym)
    if not wanted:
        return results
    if provider is not None and not isinstance(provider, str):
        shared: Any = provider  # one provider object shared by the workers
    else:
        shared = None
        source = check_source(provider if provider is not None else source)
    workers = max(1, min(max_workers or get_settings().fetch_workers, len(wanted)))
    options = dict(lookback_days=lookback_days, engine=engine, offline=offline, provider=shared,
                   demo_fallback=demo_fallback, min_bars=min_bars, now=now, source=source)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="swing-fetch") as pool:
        futures = {sym: pool.submit(fetch_bars, sym, interval, **options) for sym in wanted}
        for sym, future in futures.items():
            try:
                results[sym] = future.result()
            except MarketDataError as exc:
                results[sym] = exc
            except Exception as exc:  # a bug or a database failure must not sink the batch
                log.exception("fetch of %s failed", sym)
                error = MarketDataError(f"{sym}: {type(exc).__name__}: {exc}")
                error.__cause__ = exc
                results[sym] = error
    return results


def clear_cache_state() -> None:
    """Forget this process's cache fetch times (the stored bars stay)."""
    _REGISTRY.clear()
