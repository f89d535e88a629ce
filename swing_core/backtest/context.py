"""A backtest's context: each symbol's benchmark and other-timeframe bars, the ones ``analyze``
reads, so that a backtested signal at bar t is the live signal at bar t (relative strength,
multi-timeframe alignment and their confidence terms included).

The rule is :func:`swing_core.agent.analyzer.load_context` (what a symbol's context is, which
source it comes from, demo context never under real bars, what is left out and noted); this
module only supplies the series, each fetched once per run (:class:`ContextBars`):

* bars given to the run (``run_backtest(bars=...)``, a search's bars): the context comes from
  the same mapping (e.g. ``{"AAPL": ..., "SPY": ..., "XLK": ...}``), nothing is fetched; a
  series not given is left out with a note;
* a universe run's own bar loader (not the market layer): its bars of the benchmarks, at the
  run's interval only;
* otherwise the market layer (:func:`swing_core.market.fetch_many`), from the source
  ``load_context`` names, over the run's history (``config.lookback_days``).

Closed bars only: a still-forming last bar is dropped, as from the run's own bars.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from swing_core import db, market
from swing_core.agent.analyzer import context_series, context_source, load_context
from swing_core.backtest.config import BacktestConfig
from swing_core.config import get_settings
from swing_core.errors import MarketDataError, SwingError
from swing_core.frame import FrameContext

__all__ = ["ContextBars", "RunContext", "benchmark_bars", "gather_context", "symbol_context"]

_Key = tuple[str, str, str]  # (symbol, interval, source)


def _closed(bars: pd.DataFrame) -> pd.DataFrame:
    """``bars`` without a still-forming last bar (its close is not known yet)."""
    return bars.iloc[:-1] if bars.attrs.get("last_bar_complete") is False else bars


def _main_source(bars: pd.DataFrame) -> str:
    """Where a run's bars came from (their ``source`` attr; "given" when they do not say)."""
    return str(bars.attrs.get("source", "given"))


@dataclass
class ContextBars:
    """Context series for one run, each obtained once (``memo``: (symbol, interval, source) ->
    closed bars, or the message of why there are none). Picklable: a universe run sends it,
    with the series fetched in the parent, to its workers.

    ``given``: the bars given to the run (the context comes only from them); ``loader``: a
    universe run's own bar loader (used for series of ``interval``); else the market layer with
    ``lookback_days``, ``offline`` and the database at ``database_url`` (or ``engine``, in
    this process only)."""

    interval: str
    lookback_days: int | None = None
    offline: bool | None = None
    database_url: str | None = None
    given: Mapping[str, pd.DataFrame] | None = None
    loader: Callable[[str], pd.DataFrame] | None = None
    memo: dict[_Key, pd.DataFrame | str] = field(default_factory=dict)
    engine: Any = field(default=None, repr=False)

    def __getstate__(self) -> dict[str, Any]:  # an engine never crosses a process boundary
        return {**self.__dict__, "engine": None}

    def __call__(self, symbol: str, interval: str, source: str) -> pd.DataFrame:
        """The closed bars of one series (a :data:`~swing_core.agent.analyzer.ContextFetch`);
        :class:`MarketDataError` with the reason when there are none."""
        # bars given or a run's loader have one source: the key names the market layer's only
        key = (symbol, interval, source if self.given is None and self.loader is None else "")
        if key not in self.memo:
            try:
                self.memo[key] = _closed(self._get(symbol, interval, source))
            except SwingError as exc:
                self.memo[key] = str(exc)
        value = self.memo[key]
        if isinstance(value, str):
            raise MarketDataError(value)
        return value

    def _engine(self) -> Any:
        if self.engine is None and self.database_url:
            self.engine = db.get_engine(self.database_url)
        return self.engine

    def _get(self, symbol: str, interval: str, source: str) -> pd.DataFrame:
        if self.given is not None:
            if interval == self.interval and symbol in self.given:
                return self.given[symbol]
            raise MarketDataError(f"not among the bars given to the run (give its {interval} "
                                  "bars with them)")
        if self.loader is not None:
            if interval != self.interval:
                raise MarketDataError(f"the run's bar loader gives {self.interval} bars only")
            try:
                return self.loader(symbol)
            except SwingError:
                raise
            except Exception as exc:  # noqa: BLE001 - a bar source failure: the series' note
                raise MarketDataError(f"the run's bar loader failed ({exc})") from exc
        return market.fetch_bars(symbol, interval, lookback_days=self.lookback_days,
                                 engine=self._engine(), offline=self.offline, source=source)

    def prefetch(self, keys: list[_Key]) -> None:
        """Fetch the market layer's series ``keys`` not yet known, in parallel per interval and
        source (:func:`swing_core.market.fetch_many`)."""
        if self.given is not None or self.loader is not None:
            for key in dict.fromkeys(keys):
                try:
                    self(*key)
                except SwingError:
                    pass  # its reason is kept in the memo
            return
        todo = [k for k in dict.fromkeys(keys) if k not in self.memo]
        groups: dict[tuple[str, str], list[str]] = {}
        for symbol, interval, source in todo:
            groups.setdefault((interval, source), []).append(symbol)
        for (interval, source), symbols in groups.items():
            fetched = market.fetch_many(symbols, interval, lookback_days=self.lookback_days,
                                        engine=self._engine(), offline=self.offline,
                                        source=source)
            for symbol in symbols:
                value = fetched.get(symbol)
                self.memo[(symbol, interval, source)] = (
                    _closed(value) if isinstance(value, pd.DataFrame)
                    else str(value) if value is not None else f"{symbol}: no data.")

    def fingerprint(self) -> str:
        """A short hash of every series obtained so far (identifies a run's context data)."""
        digest = hashlib.sha256()
        for key in sorted(self.memo):
            value = self.memo[key]
            digest.update(repr(key).encode())
            if isinstance(value, str):
                digest.update(value.encode())
            else:
                digest.update(pd.util.hash_pandas_object(
                    value[[c for c in ("open", "high", "low", "close", "volume") if c in value]],
                    index=True).to_numpy().tobytes())
                digest.update(str(value.attrs.get("source", "")).encode())
        return digest.hexdigest()[:20]


def symbol_context(symbol: str, bars: pd.DataFrame, config: BacktestConfig,
                   fetch: ContextBars) -> tuple[FrameContext, tuple[str, ...]]:
    """The context of ``symbol``'s signal frame over ``bars`` and the notes on what was left
    out: :func:`~swing_core.agent.analyzer.load_context`, the analysis's own rule, with the
    run's series (``fetch``)."""
    context, notes = load_context(symbol, config.interval, params=config.params,
                                  lookback_days=config.lookback_days,
                                  main_source=_main_source(bars), fetch=fetch)
    return context, tuple(notes)


@dataclass(frozen=True)
class RunContext:
    """The context of each symbol of a run (``frames``), the notes on what was left out
    (``notes``, per symbol) and a hash of the context data (``fingerprint``)."""

    frames: dict[str, FrameContext]
    notes: dict[str, tuple[str, ...]]
    fingerprint: str


def gather_context(bars: Mapping[str, pd.DataFrame], config: BacktestConfig, *,
                   given: Mapping[str, pd.DataFrame] | None = None, engine: Any = None,
                   offline: bool | None = None) -> RunContext:
    """The context of each symbol of ``bars`` (a run's trimmed bars): benchmarks fetched once
    for all symbols, other timeframes once per symbol (see the module docstring). ``given``:
    the bars given to the run (then nothing is fetched)."""
    fetch = ContextBars(config.interval, config.lookback_days, offline,
                        given={k.strip().upper(): v for k, v in given.items()}
                        if given is not None else None, engine=engine)
    fetch.prefetch([(other, other_interval, context_source(_main_source(b)))
                    for symbol, b in bars.items()
                    for other, other_interval in context_series(
                        symbol, config.interval, params=config.params).values()])
    frames, notes = {}, {}
    for symbol, b in bars.items():
        frames[symbol], notes[symbol] = symbol_context(symbol, b, config, fetch)
    return RunContext(frames=frames, notes={s: n for s, n in notes.items() if n},
                      fingerprint=fetch.fingerprint())


def benchmark_bars(config: BacktestConfig, *, loader: Callable[[str], pd.DataFrame] | None = None,
                   source: str = "auto", offline: bool | None = None,
                   database_url: str | None = None, engine: Any = None) -> ContextBars:
    """A universe run's context series, its benchmarks fetched once (here, in the parent; the
    tasks carry them): from the run's own ``loader``, else through the market layer from the
    source ``load_context`` names for bars of ``source`` (offline "auto" bars come from the
    local library first, so its benchmarks too). Other timeframes are left to the workers."""
    if loader is not None:
        fetch, sources = ContextBars(config.interval, loader=loader), {""}
    else:
        fetch = ContextBars(config.interval, config.lookback_days, offline, database_url,
                            engine=engine)
        sources = {context_source(source)}
        if source == "auto" and (get_settings().offline if offline is None else offline):
            sources.add("local")
    benchmarks = (config.params.sector_symbol, config.params.market_symbol)
    fetch.prefetch([(s, config.interval, src) for s in benchmarks for src in sorted(sources)])
    return fetch
