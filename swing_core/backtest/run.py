"""Walk-forward backtests: every row of the signal frame is a signal, in one O(N) pass.

:func:`run_backtest` runs the pipeline (each stage vectorized; Python loops only over symbols,
trades or search points):

1. per symbol, in a worker (:mod:`swing_core.backtest.walk`): signal frame (with the symbol's
   benchmark and other-timeframe bars, the same as ``analyze`` reads, fetched once per run:
   :mod:`swing_core.backtest.context`), plans, exits;
2. pattern priors of each taken signal from outcomes known at its as-of time
   (:mod:`swing_core.backtest.priors`), the portfolio across symbols and the statistics
   (:mod:`swing_core.backtest.core`);
3. optionally the look-ahead check (:mod:`swing_core.backtest.lookahead`);
4. storage (:mod:`swing_core.backtest.store`): a run is identified by a hash of its inputs
   (symbols, dates, parameters, data fingerprints, ENGINE_VERSION); an identical run is served
   from storage.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from swing_core import db, market
from swing_core.backtest.config import (
    BacktestConfig,
    ProgressFn,
    trim_bars,
    validate_config,
)
from swing_core.backtest.context import RunContext, gather_context
from swing_core.backtest.core import core_from_passes, run_statistics
from swing_core.backtest.executor import map_tasks
from swing_core.backtest.lookahead import cut_fractions, lookahead_check
from swing_core.backtest.priors import PRIORS_ENGINE, PriorFn, stored_library
from swing_core.backtest.result import BacktestResult
from swing_core.backtest.store import load_run, save_run
from swing_core.backtest.walk import SymbolPass, symbol_task
from swing_core.config import ENGINE_VERSION, StrategyParams, get_settings
from swing_core.errors import BacktestError, SwingError
from swing_core.features import VECTOR_VERSION
from swing_core.frame import VECTOR_COLUMNS
from swing_core.metrics import CLOSED_EXIT_REASONS
from swing_core.perf.timers import timed_fn

__all__ = [
    "data_fingerprint",
    "gather_bars",
    "run_backtest",
    "run_hash",
    "store_outcome_vectors",
]


def data_fingerprint(bars: pd.DataFrame) -> str:
    """Short hash of the bars' timestamps and OHLCV values (identifies the data of a run)."""
    digest = hashlib.sha256()
    digest.update(np.asarray(bars.index.asi8 if isinstance(bars.index, pd.DatetimeIndex)
                             else np.arange(len(bars)), dtype=np.int64).tobytes())
    cols = [c for c in ("open", "high", "low", "close", "volume") if c in bars]
    digest.update(np.ascontiguousarray(bars[cols].to_numpy(np.float64)).tobytes())
    return digest.hexdigest()[:20]


def run_hash(symbols: Sequence[str], config: BacktestConfig, fingerprints: Mapping[str, str],
             *, extra: Mapping[str, Any] | None = None) -> str:
    """Hash identifying a run's inputs: symbols, dates, parameters, data, ENGINE_VERSION."""
    payload = {"symbols": sorted(symbols), "config": config.to_dict(),
               "data": dict(sorted(fingerprints.items())), "engine": ENGINE_VERSION,
               "extra": dict(extra or {})}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _progress_noop(done: int, total: int, message: str) -> None:
    return None


def gather_bars(symbols: Sequence[str], config: BacktestConfig, *,
                bars: Mapping[str, pd.DataFrame] | None = None, engine: Any = None,
                offline: bool | None = None, source: str | None = None
                ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The bars a run of ``config`` uses per symbol, and per-symbol error messages.

    Given ``bars``, or fetched through the market layer from ``source`` ("auto", "yahoo",
    "local", "demo"): enough history for ``config.start`` plus the warm-up bars; a still-forming
    last bar is dropped (its close is not known); then :func:`trim_bars`."""
    errors: dict[str, str] = {}
    if bars is not None:
        found = {s: bars[s] for s in symbols if s in bars}
        errors.update({s: f"{s}: no bars were given for this symbol." for s in symbols
                       if s not in bars})
    else:
        found = {}
        fetched = market.fetch_many(list(symbols), config.interval,
                                    lookback_days=config.lookback_days, engine=engine,
                                    offline=offline, source=source)
        for s in symbols:
            value = fetched.get(s, fetched.get(_normalized(s)))
            if isinstance(value, pd.DataFrame):
                if value.attrs.get("last_bar_complete") is False:
                    value = value.iloc[:-1]  # still forming: its close is not known yet
                found[s] = value
            else:
                errors[s] = str(value) if value is not None else f"{s}: no data."
    ready: dict[str, pd.DataFrame] = {}
    for s, frame in found.items():
        try:
            ready[s] = trim_bars(frame, symbol=s, config=config)
        except SwingError as exc:
            errors[s] = str(exc)
    return ready, errors


#: Runs with fewer bars in all go inline by default (not on a Dask cluster): shipping bars and
#: signals to worker processes and back costs more than it saves below this
#: (``benchmarks/bench_backtest.py``).
INLINE_BELOW_BARS = 10_000


def _normalized(symbol: str) -> str:
    try:
        return market.normalize_symbol(symbol)
    except SwingError:
        return symbol


def _run_passes(bars: Mapping[str, pd.DataFrame], config: BacktestConfig, *,
                context: RunContext, executor: Any, max_workers: int | None,
                progress: ProgressFn, engine: Any = None
                ) -> tuple[list[SymbolPass], dict[str, str]]:
    symbols = list(bars)
    payloads = [(s, bars[s], config, context.frames.get(s)) for s in symbols]
    small = (sum(map(len, bars.values())) < INLINE_BELOW_BARS
             and not get_settings().dask_address)  # a configured cluster is used as asked
    inline = executor is None and (len(symbols) == 1 or max_workers == 1 or small)
    outcomes = map_tasks(symbol_task, payloads, executor="inline" if inline else executor,
                         max_workers=max_workers, progress=progress,
                         labels=symbols, record_to=None if engine is None
                         else engine.url.render_as_string(hide_password=False))
    passes, errors = [], {}
    for symbol, outcome in zip(symbols, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            if not isinstance(outcome, SwingError):
                raise outcome
            errors[symbol] = str(outcome)
        else:
            passes.append(outcome)
    return passes, errors


@timed_fn("backtest")
def run_backtest(
    symbols: Sequence[str],
    *,
    config: BacktestConfig | None = None,
    bars: Mapping[str, pd.DataFrame] | None = None,
    engine: Any = None,
    save: bool = True,
    reuse: bool = True,
    executor: Any = None,
    max_workers: int | None = None,
    progress: ProgressFn | None = None,
    prior_fn: PriorFn | None = None,
    lookahead: bool | Sequence[float] = False,
    name: str | None = None,
    offline: bool | None = None,
    source: str | None = None,
) -> BacktestResult:
    """Walk-forward backtest of ``symbols`` as one portfolio.

    ``bars``: bars per symbol (else fetched through ``swing_core.market`` with ``engine``'s bar
    cache). A symbol that cannot run (unknown, empty range, too few bars) is reported in
    ``errors`` and the others still run; :class:`BacktestError` when none can. ``engine``:
    SQLAlchemy engine for storage; with ``reuse`` an identical run (same hash) is loaded
    instead of recomputed; with ``save`` the run is stored. ``executor``: None (process pool
    or ``SWING_DASK_ADDRESS``), "inline", or any concurrent.futures Executor. ``progress``:
    called as ``progress(done, total, message)``. ``lookahead``: True or cut fractions to run
    :func:`lookahead_check` and report it with the run. ``offline`` and ``source`` ("auto",
    "yahoo", "local", "demo"): where fetched bars come from (see :func:`gather_bars`).
    """
    config = config or BacktestConfig()
    validate_config(config)
    progress = progress or _progress_noop
    names = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    if not names:
        raise BacktestError("No symbols given: name at least one, e.g. AAPL.")
    if bars is not None:
        bars = {k.strip().upper(): v for k, v in bars.items()}
    ready, errors = gather_bars(names, config, bars=bars, engine=engine, offline=offline,
                                source=source)
    if not ready:
        raise BacktestError("No symbol could run: " + " | ".join(errors.values()))
    context = gather_context(ready, config, given=bars, engine=engine, offline=offline)
    library, library_fp = stored_library(config, engine)
    fingerprints = {s: data_fingerprint(b) for s, b in ready.items()}
    cuts = cut_fractions(lookahead)
    digest = run_hash(list(ready), config, fingerprints,
                      extra={"library": library_fp, "lookahead": list(cuts),
                             "priors": PRIORS_ENGINE, "context": context.fingerprint})
    if engine is not None and reuse:
        stored = load_run(engine, digest)
        if stored is not None:
            progress(1, 1, "served from storage")
            return replace(stored, errors={**errors, **stored.errors})
    passes, pass_errors = _run_passes(ready, config, context=context, executor=executor,
                                      max_workers=max_workers, progress=progress,
                                      engine=engine)
    errors.update(pass_errors)
    if not passes:
        raise BacktestError("No symbol could run: " + " | ".join(errors.values()))
    core = core_from_passes(passes, config, prior_fn=prior_fn, library=library)
    report = None
    if cuts:
        report = lookahead_check({p.symbol: ready[p.symbol] for p in passes}, config=config,
                                 cuts=cuts, prior_fn=prior_fn, library=library, full=core,
                                 context=context.frames)
    sources = {p.symbol: str(ready[p.symbol].attrs.get("source", "given")) for p in passes}
    summary = run_statistics(core, config, data_sources=sources.values(),
                             lookahead_ok=None if report is None else report.ok)
    result = BacktestResult(
        run_hash=digest, config=config, symbols=tuple(p.symbol for p in passes),
        stats=summary.stats, trades=core.trades, equity=core.equity,
        breakdowns=summary.breakdowns, calibration=summary.calibration, errors=errors,
        lookahead=report, data_fingerprints=fingerprints, data_sources=sources,
        notes={p.symbol: context.notes[p.symbol] for p in passes if p.symbol in context.notes},
    )
    if engine is not None and save:
        stored = store_outcome_vectors(engine, core.signals, config=config, sources=sources)
        result = replace(result, run_id=save_run(engine, result, name=name),
                         library_rows_stored=stored)
    return result


def store_outcome_vectors(engine: Any, signals: pd.DataFrame, *, config: BacktestConfig,
                          sources: Mapping[str, str]) -> int:
    """Add the run's exited setups (vector + realized outcome) to the stored pattern library.

    Only setups computed with the default :class:`StrategyParams` and filled at the signal
    bar's close (the library must describe the setups live signals are made of, and their
    outcomes as the journal evaluates them) and never those of demo bars (synthetic outcomes
    must not price real signals). Upserts are idempotent: a re-run rewrites the same rows. Returns
    the rows written.
    """
    if config.params != StrategyParams() or config.fill != "close" or signals.empty:
        return 0
    real = [symbol for symbol, source in sources.items() if source != "demo"]
    exited = signals[signals["symbol"].isin(real)
                     & signals["exit_reason"].isin(CLOSED_EXIT_REASONS)]
    if exited.empty:
        return 0
    rows = exited[["symbol", "setup", "side", "trend", "vol_regime", "realized_r",
                   "exit_reason", "exit_ts", "hold_bars", *VECTOR_COLUMNS]].assign(
        interval=config.interval, ts=exited["signal_ts"], version=VECTOR_VERSION)
    return db.upsert_vectors(engine, rows)
