"""Cached engine calls: signal views (one symbol, several, a scan) and bars for drawing a
backtest's trades. ``st.cache_data`` with a time-to-live by interval (a 15m chart goes stale
sooner than a daily one), keyed by the database and data mode too (:func:`db_key`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from pages._resources import cached_runtime, db_key
from pages._state import current_source
from swing_core import agent, views
from swing_core.backtest import BacktestConfig, gather_bars
from swing_core.config import INTERVALS, StrategyParams, validate_interval
from swing_core.errors import MarketDataError, SwingError

T = TypeVar("T")

#: How long a cached view stays fresh, by interval (seconds).
TTL_S: dict[str, int] = {"15m": 5 * 60, "30m": 10 * 60, "1h": 20 * 60, "1d": 6 * 3600}


def _per_interval_cache(fn: Callable[..., T], name: str) -> dict[str, Callable[..., T]]:
    """One ``st.cache_data`` wrapper of ``fn`` per interval, each with that interval's TTL
    (Streamlit keys a cache by the function's qualified name, so each gets its own)."""
    cached: dict[str, Callable[..., T]] = {}
    for interval in INTERVALS:
        def call(*args: Any, _fn: Callable[..., T] = fn, **kwargs: Any) -> T:
            return _fn(*args, **kwargs)

        call.__qualname__ = call.__name__ = f"{name}_{interval.replace('m', 'min')}"
        cached[interval] = st.cache_data(ttl=TTL_S[interval], max_entries=64,
                                         show_spinner=False)(call)
    return cached


def _analysis_uncached(symbol: str, interval: str, lookback_days: int | None, source: str,
                       key: str) -> Any:
    runtime = cached_runtime(key, interval)
    return agent.analysis(symbol, interval, lookback_days=lookback_days, params=StrategyParams(),
                          engine=runtime.engine, prior_provider=runtime.prior_provider,
                          source=source)


_ANALYSES = _per_interval_cache(_analysis_uncached, "analysis")


def signal_view(symbol: str, interval: str, lookback_days: int | None = None,
                source: str | None = None) -> views.SignalView:
    """The cached :class:`~swing_core.agent.Analysis` (frame + signal + notes) of ``symbol`` on
    ``interval``, from ``source`` (default: the sidebar's "Bars from")."""
    validate_interval(interval)
    return _ANALYSES[interval](symbol, interval, lookback_days, source or current_source(),
                               db_key())


def signal_views(symbols: list[str], interval: str, lookback_days: int | None = None, *,
                 progress: Callable[[int, int, str], None] | None = None
                 ) -> dict[str, views.SignalView | str]:
    """Cached views of several symbols (a symbol's own problem maps to its error message; a bug
    is raised), calling ``progress(done, total, symbol)`` after each."""
    out: dict[str, views.SignalView | str] = {}
    for done, symbol in enumerate(symbols, start=1):
        try:
            out[symbol] = signal_view(symbol, interval, lookback_days)
        except SwingError as exc:
            out[symbol] = str(exc)
        if progress is not None:
            progress(done, len(symbols), symbol)
    return out


def scan(symbols: list[str], interval: str, lookback_days: int | None = None, *,
         progress: Callable[[int, int, str], None] | None = None) -> list[Any]:
    """Scan ``symbols`` through the cached per-symbol views (so the Explorer opens warm): one
    ``agent.ScanResult`` per symbol, a failing symbol's error kept, ``progress`` after each."""
    found = signal_views(symbols, interval, lookback_days, progress=progress)
    return [agent.ScanResult(symbol=s, signal=v.signal) if isinstance(v, views.SignalView)
            else agent.ScanResult(symbol=s, signal=None, error=v) for s, v in found.items()]


def _chart_bars_uncached(symbol: str, interval: str, start: str | None, source: str,
                         key: str) -> Any:
    config = BacktestConfig(interval=interval, start=start)
    bars, errors = gather_bars([symbol], config, engine=cached_runtime(key, None).engine,
                               source=source)
    if symbol not in bars:
        raise MarketDataError(errors.get(symbol) or f"No bars for {symbol} {interval}.")
    return bars[symbol]


_CHART_BARS = _per_interval_cache(_chart_bars_uncached, "chart_bars")


def chart_bars(symbol: str, interval: str, start: Any = None, source: str | None = None) -> Any:
    """Cached bars of ``symbol`` from ``start`` (minus warm-up) for drawing a backtest's trades,
    from ``source`` (default: the sidebar's "Bars from")."""
    validate_interval(interval)
    start_text = None if start is None else str(start)
    return _CHART_BARS[interval](symbol, interval, start_text, source or current_source(),
                                 db_key())
