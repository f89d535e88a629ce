"""``analysis(symbol)`` and ``analyze(symbol)``: bars -> signal frame -> last row -> typed signal.

The signal of a symbol is the last row of its signal frame (bars <= the last bar), enriched with
pattern priors (outcomes known by that bar's close); the benchmarks and other timeframes of the
frame's context come from the same source as the symbol's own bars (:func:`load_context`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from swing_core import market
from swing_core.agent.signals import PriorProvider, Signal, signal_from_frame
from swing_core.config import StrategyParams, validate_interval
from swing_core.errors import SwingError
from swing_core.frame import MTF_INTERVALS, FrameContext, build_signal_frame, min_bars_required
from swing_core.perf import timed_fn
from swing_core.verdict import signal_verdict

__all__ = [
    "ANALYZE_LOOKBACK_DAYS",
    "Analysis",
    "ContextFetch",
    "analysis",
    "analyze",
    "analyze_frame",
    "context_series",
    "context_source",
    "load_context",
]

#: History an analysis loads by default (calendar days): enough for every indicator, within
#: Yahoo's limits, and shorter than the market layer's fetch default (its maximum history).
ANALYZE_LOOKBACK_DAYS: dict[str, int] = {"15m": 30, "30m": 59, "1h": 180, "1d": 730}


#: ``fetch(symbol, interval, source) -> bars`` of one context series; raises a
#: :class:`~swing_core.errors.SwingError` when there are none (see :func:`load_context`).
ContextFetch = Callable[[str, str, str], pd.DataFrame]


def context_series(symbol: str, interval: str, *, params: StrategyParams
                   ) -> dict[str, tuple[str, str]]:
    """The series the context of ``symbol``'s ``interval`` bars reads, as (symbol, interval)
    by role: "sector" and "market" (the benchmarks, unless ``symbol`` is one) and, below daily
    bars, the symbol's own other timeframes (:data:`~swing_core.frame.MTF_INTERVALS`)."""
    wanted: dict[str, tuple[str, str]] = {}
    if symbol != params.sector_symbol:
        wanted["sector"] = (params.sector_symbol, interval)
    if symbol != params.market_symbol:
        wanted["market"] = (params.market_symbol, interval)
    if interval != "1d":
        for other in MTF_INTERVALS:
            if other != interval:
                wanted[other] = (symbol, other)
    return wanted


def context_source(main_source: str) -> str:
    """The source context series are asked from for bars of ``main_source`` (their ``source``
    attr): local bars get local context, demo bars demo context, anything else "auto"."""
    return {"local": "local", "demo": "demo"}.get(main_source, "auto")


def load_context(
    symbol: str,
    interval: str,
    *,
    params: StrategyParams,
    lookback_days: int | None,
    engine: Any = None,
    offline: bool | None = None,
    main_source: str = "demo",
    fetch: ContextFetch | None = None,
    cache: dict[tuple[Any, ...], Any] | None = None,
) -> tuple[FrameContext, list[str]]:
    """Benchmark and other-timeframe bars for ``symbol`` (:func:`context_series`), from the
    same source as its own bars (``main_source``, the ``source`` attr of those bars: local bars
    get local benchmarks, demo bars demo ones, Yahoo or cached bars Yahoo's with the automatic
    fallbacks; :func:`context_source`); what cannot be had is left out and noted (the signal
    then carries NaN relative strength / zero alignment). Demo context is never mixed into a
    signal computed on real bars.

    The one context rule of the engine: the analysis and the backtests (which pass ``fetch``,
    their own way of getting each series once per run) both come here. ``fetch``: default
    :func:`swing_core.market.fetch_bars` over the last ``lookback_days`` with ``engine`` and
    ``offline``; ``cache``: a dict that remembers the default fetch's bars (and errors) across
    calls, so that a scan reads each benchmark once (:func:`~swing_core.agent.scanning.scan`)."""
    if fetch is None:
        def fetch(other_symbol: str, other_interval: str, source: str) -> pd.DataFrame:
            # demo context under real bars would be dropped below: never make it
            return market.fetch_bars(other_symbol, other_interval, lookback_days=lookback_days,
                                     engine=engine, offline=offline, source=source,
                                     demo_fallback=main_source == "demo")

        if cache is not None:
            fetch = _remembered(fetch, cache, (lookback_days, offline, engine,
                                               main_source == "demo"))

    source = context_source(main_source)
    notes: list[str] = []
    got: dict[str, pd.DataFrame] = {}
    for key, (other_symbol, other_interval) in context_series(symbol, interval,
                                                              params=params).items():
        try:
            bars = fetch(other_symbol, other_interval, source)
        except market.YahooUnreachableError:  # nothing real to be had: demo would be next
            notes.append(f"{other_symbol} {other_interval}: only demo bars available; left out "
                         "so that synthetic prices never mix with real ones")
            continue
        except SwingError as exc:
            notes.append(f"{other_symbol} {other_interval} unavailable ({exc}); left out")
            continue
        if bars.attrs.get("source") == "demo" and main_source != "demo":
            notes.append(f"{other_symbol} {other_interval}: only demo bars available; left out "
                         "so that synthetic prices never mix with real ones")
            continue
        got[key] = bars
    context = FrameContext(
        sector=got.get("sector"),
        market=got.get("market"),
        mtf={k: v for k, v in got.items() if k in MTF_INTERVALS},
    )
    return context, notes


def _remembered(fetch: ContextFetch, cache: dict[tuple[Any, ...], Any],
                settings: tuple[Any, ...]) -> ContextFetch:
    """``fetch`` answering each (symbol, interval, source) once per ``cache`` and ``settings``:
    the same bars frame (read only by the signal frame) or the same error again."""

    def remembered(other_symbol: str, other_interval: str, source: str) -> pd.DataFrame:
        key = (other_symbol, other_interval, source, *settings)
        if key not in cache:
            try:
                cache[key] = fetch(other_symbol, other_interval, source)
            except SwingError as exc:
                cache[key] = exc
        if isinstance(cache[key], SwingError):
            raise cache[key]
        return cache[key]

    return remembered


def analyze_frame(
    frame: pd.DataFrame,
    *,
    symbol: str,
    interval: str,
    params: StrategyParams,
    prior_provider: PriorProvider | None = None,
    notes: Iterable[str] = (),
) -> Signal:
    """The signal of the last row of ``frame``, with priors when a provider is given, and its
    verdict (:func:`swing_core.verdict.signal_verdict`: take / skip / no edge)."""
    signal = signal_from_frame(
        frame, symbol=symbol, interval=interval, sector_symbol=params.sector_symbol, notes=notes
    )
    if prior_provider is not None and signal.entry is not None:
        updates = prior_provider(signal, params)
        if updates:
            signal = signal.model_copy(update=updates)
    return signal.model_copy(update=signal_verdict(signal, params=params).fields())


@dataclass(frozen=True)
class Analysis:
    """One symbol analysed: the signal frame (bars ≤ the signal bar, with context columns),
    the signal of its last row (with priors when a provider was given), and the notes about
    the data (where the bars came from, what context was left out and why)."""

    frame: pd.DataFrame
    signal: Signal
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """Where the bars came from: "yahoo", "cache", "local", "file" or "demo"."""
        return str(self.frame.attrs.get("source", self.signal.data_source))


@timed_fn("analyze")
def analysis(
    symbol: str,
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    provider: Any = None,
    source: str | None = None,
    context_cache: dict[tuple[Any, ...], Any] | None = None,
) -> Analysis:
    """Analyze ``symbol`` on ``interval`` bars: the signal frame and the signal of its last bar.

    The one signal path of the engine: the dashboard, the scanner and the CLI all come here.
    ``source`` says where bars come from ("auto", "yahoo", "local", "demo"; see
    :mod:`swing_core.market.fetch`), for the symbol's bars and for its context (benchmarks,
    other timeframes) alike; ``provider`` (e.g. ``market.FileProvider`` for the user's
    CSV/Parquet file) overrides it for the symbol's own bars. The lookback counts back from
    now (Yahoo, demo) or from the newest stored bar (local library).
    ``context_cache``: a dict shared by several analyses (a scan) so that each context series
    is read once for all of them (:func:`load_context`).
    Raises ``MarketDataError`` for an unknown symbol, no data, a malformed file or too few bars.
    """
    params = params or StrategyParams()
    validate_interval(interval)
    symbol = market.normalize_symbol(symbol)
    source = market.check_source(source)
    # None means the interval's default; 0 is refused like -5, never a silent default
    lookback = (ANALYZE_LOOKBACK_DAYS[interval] if lookback_days is None
                else market.check_lookback_days(lookback_days))
    needed = min_bars_required(params)
    bars = market.fetch_bars(symbol, interval, lookback_days=None if provider else lookback,
                             engine=engine, offline=offline, provider=provider, min_bars=needed,
                             source=source)
    main_source = str(bars.attrs.get("source", ""))
    context, notes = load_context(symbol, interval, params=params, lookback_days=lookback,
                                  engine=engine, offline=offline, main_source=main_source,
                                  cache=context_cache)
    notes = list(dict.fromkeys([*bars.attrs.get("notes", []), *notes]))
    frame = build_signal_frame(bars, params=params, interval=interval, context=context)
    signal = analyze_frame(frame, symbol=symbol, interval=interval, params=params,
                           prior_provider=prior_provider, notes=notes)
    return Analysis(frame=frame, signal=signal, notes=tuple(notes))


def analyze(
    symbol: str,
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    provider: Any = None,
    source: str | None = None,
    context_cache: dict[tuple[Any, ...], Any] | None = None,
) -> Signal:
    """The signal of :func:`analysis` (same arguments), for callers that need no frame."""
    return analysis(symbol, interval, params=params, lookback_days=lookback_days,
                    engine=engine, offline=offline, prior_provider=prior_provider,
                    provider=provider, source=source, context_cache=context_cache).signal
