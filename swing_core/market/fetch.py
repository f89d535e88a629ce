"""``fetch_bars`` / ``fetch_many``: the one way to get bars, from the chosen source, with
fallbacks.

Which provider answers:

* ``offline`` (``SWING_OFFLINE=1`` when not given): Yahoo is never asked; "auto" serves the
  local library, else demo bars, which say so loudly (``attrs["source"] == "demo"`` and a
  note); "yahoo" is refused.
* a file or demo provider passed in: that provider directly (never cached).
* otherwise the ``source`` choice (:mod:`~swing_core.market.sources`): Yahoo goes through the
  bar cache when an ``engine`` is given (:mod:`~swing_core.market.cache`: hit, miss or
  top-up).
* Yahoo unreachable (network error): stale cached bars when there are any (note), else demo
  bars when ``demo_fallback`` (note, ``source == "demo"``, never stored), else
  :class:`YahooUnreachableError`.  Rate limits are retried inside the Yahoo provider.

Demo bars are never written to the cache, so they can never be mistaken for real prices later.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd

from swing_core.clock import utc_timestamp
from swing_core.config import YAHOO_MAX_DAYS, get_settings, validate_interval
from swing_core.errors import DatabaseError, MarketDataError
from swing_core.market._common import (
    CACHE_STATS,
    DEFAULT_LOOKBACK_DAYS,
    normalize_symbol,
    relabel,
    yahoo_limit_note,
)
from swing_core.market.cache import through_cache
from swing_core.market.demo import DemoProvider
from swing_core.market.sources import (
    BarProvider,
    check_source,
    demo_instead,
    direct,
    resolve_provider,
)
from swing_core.market.validate import validate_bars
from swing_core.market.yahoo import UnknownSymbolError, YahooUnreachableError
from swing_core.perf import timed_fn

__all__ = ["fetch_bars", "fetch_many"]

log = logging.getLogger(__name__)


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
    ``source``: where bars come from (:data:`~swing_core.market.sources.SOURCES`; default
    "auto").
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
    source = resolve_provider(provider)
    notes: list[str] = []
    if offline and source.name not in ("demo", "file"):
        days = lookback_days or DEFAULT_LOOKBACK_DAYS[interval]
        frame = DemoProvider().fetch(symbol, interval, lookback_days=days, now=now)
        frame.attrs["notes"] = []
        notes.append("DEMO DATA, NOT REAL PRICES: offline mode (SWING_OFFLINE=1) serves "
                     "synthetic bars.")
        frame = relabel(frame, notes, cache="off", now=now)
    elif source.name == "file":
        frame = relabel(source.fetch(symbol, interval, lookback_days=lookback_days, now=now),
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
            frame = through_cache(engine, source, symbol, interval, days, now, notes,
                                  demo_fallback=demo_fallback)
        else:
            frame = direct(source, symbol, interval, days, now, notes,
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
    from swing_core import db  # lazy: only a call with an engine needs SQLAlchemy

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
    return relabel(bars, notes, cache="library", now=now, source="local")


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
        return relabel(frame, notes, cache="off", now=now, source="demo")
    return demo_instead(symbol, interval, days, now, notes, unreachable)


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


