"""Backtests over large universes (hundreds of symbols) in chunks, with bounded memory.

:func:`run_universe` is :func:`swing_core.backtest.run_backtest` for universes too big to hold
every symbol's bars and signal frame at once:

1. stage 1 (bars -> signal frame -> plans -> exits, :func:`~swing_core.backtest.prepare_symbol`)
   runs chunk by chunk (``chunk_size`` symbols) through
   :func:`swing_core.backtest.executor.map_tasks`; each worker loads its own bars
   (``bars_loader``), so bars and frames never reach the parent. Each signal frame has the
   context ``analyze`` and ``run_backtest`` give it
   (:func:`~swing_core.backtest.context.symbol_context`): the benchmarks are fetched once, in
   the parent, and sent with the tasks; other timeframes (below daily bars) by the worker of
   their symbol (a custom ``bars_loader`` gives the benchmarks, at the run's interval only). A worker returns only compact
   per-signal arrays (codes for labels, float32 setup vectors, float64 prices so the
   portfolio's P&L is exact) and the symbol's closes;
2. each finished chunk is committed: its compact arrays and its symbols' metadata (data
   fingerprint, source, notes) to a spill file (``spill_dir``, written atomically;
   :mod:`swing_core.backtest.spill`), then, in ONE database transaction, its stage-1 trades
   (the taken signals, rows of ``backtest_trades`` with the run id) and the run row (status
   ``"running"``, the finished chunks and the symbols that could not run in
   ``metrics_json["universe"]``). The database marker is the commit point: a chunk is finished
   when its marker is stored (and its spill file is there), never half-written;
3. after the last chunk, the final stage (:mod:`swing_core.backtest.final_stage`): priors (the
   pattern engine's ``query_many`` over the run's outcomes, the same
   :func:`~swing_core.backtest.priors.priced_columns` formulas), portfolio and statistics
   exactly as ``run_backtest`` computes them (same functions, same signal order), the stored
   trades replaced by the final ones, status ``"done"``. The result (:class:`UniverseResult`)
   carries a :class:`UniverseSummary` (statistics, equity, breakdowns, calibration, trade
   count), not the trades: load them with :func:`swing_core.backtest.load_run` (or
   :meth:`UniverseResult.load`).

Cancel (``cancel``: a ``threading.Event`` or a callable returning True) is checked before each
chunk: the run stops with status ``"cancelled"`` and its finished chunks stored. Calling
:func:`run_universe` again with the same inputs (same run hash) resumes after the last
finished chunk (reading the run row only, not its stored trades); a finished run is served
from storage.

The run hash covers the symbols, the configuration, the bar source (``bars_loader``'s name or
the market layer's mode), ``chunk_size`` and ENGINE_VERSION, not the bars themselves (they are
only loaded chunk by chunk): resuming assumes the data did not change, and each symbol's data
fingerprint is stored with its chunk.

Memory: nothing per symbol accumulates in the parent during stage 1 (the compact arrays,
about 170 bytes per signal, and the metadata go to the spill files). The final stage streams
the files chunk by chunk (priors per chunk, the stored trades re-read and written in slices)
and holds, per taken signal, only the columns the portfolio reads and a few figures; the
portfolio and the point-in-time calibration still see every taken signal at once (see
``benchmarks/bench_universe.py`` for the measured parent peak and its slope per symbol).
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from swing_core import db, market
from swing_core.backtest.config import BacktestConfig, ProgressFn, validate_config
from swing_core.backtest.context import benchmark_bars
from swing_core.backtest.executor import map_tasks, open_executor
from swing_core.backtest.final_stage import final_stage
from swing_core.backtest.priors import PRIORS_ENGINE, stored_library
from swing_core.backtest.result import BacktestResult
from swing_core.backtest.run import run_hash
from swing_core.backtest.spill import (
    BarsLoader,
    release_memory,
    spill_ready,
    spill_task,
    stage1_trades,
    write_spill,
)
from swing_core.backtest.store import load_run, progress_marker, progress_row
from swing_core.config import get_settings
from swing_core.errors import BacktestError, SwingError

__all__ = ["MarketBarsLoader", "UniverseResult", "UniverseSummary", "run_universe"]

CancelFlag = threading.Event | Callable[[], bool] | None

_TRADE_BATCH = 5_000  # trades converted and written per slice (bounded memory)
_PRIOR_BATCH = 16_384  # queries priced per pattern-engine call (bounds its working memory)


@dataclass(frozen=True)
class UniverseSummary:
    """A finished universe run without its trades: they are stored with the run (load them
    with :func:`swing_core.backtest.load_run` or :meth:`UniverseResult.load`). Fields as in
    :class:`~swing_core.backtest.BacktestResult`; ``n_trades``: its closed trades, the
    statistics' ``# Trades`` (:func:`swing_core.metrics.closed_mask`)."""

    config: BacktestConfig
    symbols: tuple[str, ...]
    stats: pd.Series
    equity: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    calibration: pd.DataFrame
    n_trades: int
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    data_sources: dict[str, str] = field(default_factory=dict)
    from_storage: bool = False


@dataclass(frozen=True)
class UniverseResult:
    """A chunked universe run: ``status`` "done" (``summary`` holds the finished run's
    statistics, equity, breakdowns, calibration and trade count; its trades are stored, see
    :meth:`load`) or "cancelled" (``summary`` None; call :func:`run_universe` again to
    resume). ``chunks_done`` of ``chunks_total`` are stored; ``resumed_chunks``: chunks found
    finished at the start; ``errors``: symbols that could not run and why;
    ``worker_peak_rss_mb``: the largest peak resident memory a stage-1 task reported (its
    process's, MiB)."""

    status: str
    run_hash: str
    run_id: int | None
    symbols: tuple[str, ...]
    chunks_total: int
    chunks_done: int
    resumed_chunks: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    summary: UniverseSummary | None = None
    worker_peak_rss_mb: float = 0.0

    def load(self, engine: Any) -> BacktestResult | None:
        """The stored run with its trades (:func:`swing_core.backtest.load_run`); None when
        the run is not finished."""
        return load_run(engine, self.run_hash) if self.status == "done" else None


@dataclass(frozen=True)
class MarketBarsLoader:
    """The default bar source: ``swing_core.market.fetch_bars`` through the bar cache of
    ``database_url`` (picklable, so workers load their own bars); the still-forming last bar
    is dropped."""

    interval: str
    lookback_days: int | None = None
    offline: bool | None = None
    database_url: str | None = None
    source: str = "auto"

    def __call__(self, symbol: str) -> pd.DataFrame:
        engine = db.get_engine(self.database_url) if self.database_url else None
        bars = market.fetch_bars(symbol, self.interval, lookback_days=self.lookback_days,
                                 engine=engine, offline=self.offline, source=self.source)
        if bars.attrs.get("last_bar_complete") is False:
            bars = bars.iloc[:-1]
        return bars


def _cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _loader_key(loader: BarsLoader) -> str:
    if isinstance(loader, MarketBarsLoader):
        return (f"market:{loader.interval}:{loader.lookback_days}:{loader.offline}"
                + ("" if loader.source == "auto" else f":{loader.source}"))
    func = getattr(loader, "func", loader)  # functools.partial
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    args = getattr(loader, "args", ()), sorted(getattr(loader, "keywords", {}).items())
    return f"{name}{args}"


def _default_loader(config: BacktestConfig, engine: Any, offline: bool | None,
                    source: str | None = None) -> MarketBarsLoader:
    url = engine.url.render_as_string(hide_password=False) if engine is not None else None
    return MarketBarsLoader(config.interval, config.lookback_days, offline, url,
                            source=market.check_source(source))


def run_universe(
    symbols: Sequence[str],
    *,
    config: BacktestConfig | None = None,
    engine: Any,
    chunk_size: int = 50,
    executor: Any = None,
    max_workers: int | None = None,
    progress: ProgressFn | None = None,
    cancel: CancelFlag = None,
    bars_loader: BarsLoader | None = None,
    offline: bool | None = None,
    source: str | None = None,
    name: str | None = None,
    spill_dir: str | Path | None = None,
    prior_batch: int = _PRIOR_BATCH,
) -> UniverseResult:
    """Walk-forward backtest of a large universe as one portfolio, ``chunk_size`` symbols at a
    time, each chunk committed before the next (see the module docstring).

    ``engine``: SQLAlchemy engine (required: chunks are stored as they finish). ``bars_loader``:
    ``loader(symbol) -> bars frame``, picklable for process pools (default: the market layer
    with ``engine``'s bar cache, ``offline`` and ``source``: "auto", "yahoo", "local", "demo").
    ``executor``: None (process pool, or Dask with ``SWING_DASK_ADDRESS``), ``"inline"`` or an
    Executor. ``progress(done, total, message)``: symbols finished so far (resumed chunks count
    as done), then the final stage.
    ``cancel``: checked before each chunk and before the final stage. ``spill_dir``: where the
    chunks' compact arrays are kept until the run is done (default ``data_dir/universe/<hash>``).
    Results equal :func:`~swing_core.backtest.run_backtest`'s on the same symbols and bars.
    Raises :class:`BacktestError` for an empty universe or when no symbol can run.
    """
    if engine is None:
        raise BacktestError("A universe backtest needs the database: chunks are stored as "
                            "they finish.")
    config = config or BacktestConfig()
    validate_config(config)
    if chunk_size < 1:
        raise BacktestError(f"chunk_size must be at least 1 (got {chunk_size}).")
    progress = progress or (lambda done, total, message: None)
    names = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    if not names:
        raise BacktestError("No symbols given: name at least one, e.g. AAPL.")
    loader = bars_loader or _default_loader(config, engine, offline, source)
    library, library_fp = stored_library(config, engine)
    digest = run_hash(names, config, {}, extra={
        "universe": chunk_size, "loader": _loader_key(loader), "library": library_fp,
        "priors": PRIORS_ENGINE, "context": "load_context"})
    chunks = [names[i:i + chunk_size] for i in range(0, len(names), chunk_size)]
    total = len(names)
    stored = db.load_backtest_run(engine, digest, trades=False)  # the run row: its progress
    if stored is not None and stored.run.get("status") == "done":
        del stored
        progress(total, total, "served from storage")
        result = load_run(engine, digest)
        return UniverseResult("done", digest, result.run_id, tuple(names), len(chunks),
                              len(chunks), len(chunks), dict(result.errors), _summary(result))
    marker = progress_marker(stored)
    run_id = int(stored.run["id"]) if stored is not None else None
    del stored
    done_chunks = set(int(k) for k in marker.get("done", []))
    spill = Path(spill_dir) if spill_dir is not None else (
        Path(_data_dir()) / "universe" / digest)
    done_chunks = {k for k in done_chunks if spill_ready(spill, k)}
    # per-symbol metadata (fingerprints, sources, notes) lives in the spill files; the marker
    # keeps the finished chunks and the symbols that could not run
    marker = {"chunk_size": chunk_size, "chunks_total": len(chunks),
              "done": sorted(done_chunks), "errors": dict(marker.get("errors") or {})}
    resumed = len(done_chunks)
    worker_rss = 0.0
    finished = sum(len(chunks[k]) for k in done_chunks)
    if finished:
        progress(finished, total, f"resumed: {resumed} chunk(s) already stored")
    todo = [k for k in range(len(chunks)) if k not in done_chunks]
    inline = executor == "inline" or (executor is None and max_workers == 1)
    fetch = (benchmark_bars(config, source=loader.source, offline=loader.offline,
                            database_url=loader.database_url, engine=engine)
             if isinstance(loader, MarketBarsLoader) else benchmark_bars(config, loader=loader))

    def _status(status: str) -> UniverseResult:
        row = progress_row(digest, names, config, marker, status=status, name=name)
        rid = db.save_backtest_chunk(engine, row, pd.DataFrame())
        return UniverseResult(status, digest, rid, tuple(names), len(chunks),
                              len(marker["done"]), resumed, dict(marker["errors"]),
                              None, worker_rss)

    with open_executor("inline" if inline else executor, max_workers=max_workers) as pool:
        for k in todo:
            if _cancelled(cancel):
                return _status("cancelled")
            chunk = chunks[k]
            base = finished

            def chunk_progress(done: int, _total: int, label: str, base: int = base) -> None:
                progress(base + done, total, label)

            outcomes = map_tasks(spill_task, [(s, config, loader, fetch) for s in chunk],
                                 executor=pool, max_workers=max_workers,
                                 progress=chunk_progress, labels=chunk)
            parts = []
            for symbol, outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, SwingError):
                        raise outcome
                    marker["errors"][symbol] = str(outcome)
                else:
                    parts.append(outcome)
                    worker_rss = max(worker_rss, float(outcome.pop("rss_mb")))
            write_spill(spill, k, parts)
            trades = stage1_trades(parts)
            del parts, outcomes
            marker["done"] = sorted({*marker["done"], k})
            row = progress_row(digest, names, config, marker, status="running", name=name)
            run_id = db.save_backtest_chunk(engine, row, trades, replace_symbols=chunk)
            finished += len(chunk)
    if _cancelled(cancel):
        return _status("cancelled")
    progress(total, total, "priors, portfolio and statistics")
    release_memory()
    out = final_stage(len(chunks), spill, config, marker["errors"], digest, engine=engine,
                      name=name, library=library, prior_batch=prior_batch,
                      trade_batch=_TRADE_BATCH)
    if out is None:
        _status("failed")
        raise BacktestError("No symbol could run: " + " | ".join(marker["errors"].values()))
    run_id, summary = out[0], _summary(out[1])
    del out
    release_memory()
    shutil.rmtree(spill, ignore_errors=True)
    return UniverseResult("done", digest, run_id, tuple(names), len(chunks), len(chunks),
                          resumed, dict(marker["errors"]), summary, worker_rss)


def _summary(result: BacktestResult) -> UniverseSummary:
    """A run's summary (its trades counted, not kept)."""
    return UniverseSummary(
        config=result.config, symbols=result.symbols, stats=result.stats,
        equity=result.equity, breakdowns=result.breakdowns, calibration=result.calibration,
        n_trades=int(result.stats["# Trades"]), data_fingerprints=dict(result.data_fingerprints),
        data_sources=dict(result.data_sources), from_storage=result.from_storage)


def _data_dir() -> Path:
    return get_settings().data_dir
