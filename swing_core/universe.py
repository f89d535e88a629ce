"""Backtests over large universes (hundreds of symbols) in chunks, with bounded memory.

:func:`run_universe` is :func:`swing_core.backtest.run_backtest` for universes too big to hold
every symbol's bars and signal frame at once:

1. stage 1 (bars -> signal frame -> plans -> exits, :func:`~swing_core.backtest.prepare_symbol`)
   runs chunk by chunk (``chunk_size`` symbols) through :func:`swing_core.executor.map_tasks`;
   each worker loads its own bars (``bars_loader``), so bars and frames never reach the parent.
   A worker returns only compact per-signal arrays (codes for labels, float32 setup vectors,
   float64 prices so the portfolio's P&L is exact) and the symbol's closes;
2. each finished chunk is committed: its compact arrays to a spill file (``spill_dir``, written
   atomically), then, in ONE database transaction, its stage-1 trades (the taken signals, rows
   of ``backtest_trades`` with the run id) and the run row (status ``"running"``, the list of
   finished chunks in ``metrics_json["universe"]``). The database marker is the commit point: a
   chunk is finished when its marker is stored, never half-written;
3. after the last chunk: priors (the pattern engine's ``query_many`` over the run's outcomes),
   portfolio and statistics exactly as ``run_backtest`` computes them (same functions, same
   signal order), the stored trades replaced by the final ones, status ``"done"``. The result
   (:class:`UniverseResult`) carries a :class:`UniverseSummary` (statistics, equity,
   breakdowns, calibration, trade count), not the trades: load them with
   :func:`swing_core.backtest.load_run` (or :meth:`UniverseResult.load`).

Cancel (``cancel``: a ``threading.Event`` or a callable returning True) is checked before each
chunk: the run stops with status ``"cancelled"`` and its finished chunks stored. Calling
:func:`run_universe` again with the same inputs (same run hash) resumes after the last
finished chunk; a finished run is served from storage.

The run hash covers the symbols, the configuration, the bar source (``bars_loader``'s name or
the market layer's mode), ``chunk_size`` and ENGINE_VERSION, not the bars themselves (they are
only loaded chunk by chunk): resuming assumes the data did not change, and each symbol's data
fingerprint is stored with its chunk.

Memory: stage 1 keeps O(signals) compact arrays (about 170 bytes per signal) in the spill
files on disk; the parent never holds O(bars x frame columns). The final stage reads them column by column, prices the
priors in batches (``prior_batch``), builds one frame of the taken signals only, with the
columns the portfolio, the statistics and the stored trades read (labels as categoricals, no
setup vectors), writes the trades in slices and drops them. Measured
(``benchmarks/bench_universe.py``, 2,000 daily demo bars a symbol, chunks of 50, 2 workers):
parent peak about 270 MB at 100 symbols, 371-378 MB at 500 symbols (375k signals, 219k
trades; the interpreter and imports alone: 156 MB); stage-1 workers about 136 MB each.
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest import (
    _PRIORS_ENGINE,
    BacktestConfig,
    BacktestResult,
    ProgressFn,
    _library_for,
    data_fingerprint,
    prepare_symbol,
    run_hash,
    trim_bars,
    validate_config,
)
from swing_core.clock import warmup_lookback_days
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA
from swing_core.errors import BacktestError, SwingError
from swing_core.frame import VECTOR_COLUMNS

__all__ = ["MarketBarsLoader", "UniverseResult", "UniverseSummary", "run_universe"]

BarsLoader = Callable[[str], pd.DataFrame]
CancelFlag = threading.Event | Callable[[], bool] | None

_LABELS = ("setup", "side", "trend", "vol_regime", "exit_reason")
_FLOATS = ("stop", "target", "atr", "base_confidence", "fill_price", "exit_price", "realized_r")
_BOOLS = ("filled", "stop_entry", "both_touched", "taken")
_INTS = {"side_sign": np.int8, "fill_pos": np.int32, "exit_pos": np.int32,
         "hold_bars": np.int32}
_TIMES = ("signal_ts", "fill_ts", "exit_ts")
_TRADE_BATCH = 5_000  # trades converted and written per slice (bounded memory)
_PRIOR_BATCH = 16_384  # queries priced per pattern-engine call (bounds its working memory)


@dataclass(frozen=True)
class UniverseSummary:
    """A finished universe run without its trades: they are stored with the run (load them
    with :func:`swing_core.backtest.load_run` or :meth:`UniverseResult.load`). Fields as in
    :class:`~swing_core.backtest.BacktestResult`; ``n_trades``: the run's trades (every taken
    signal, NOT_FILLED and PENDING included)."""

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
        from swing_core.backtest import load_run

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
        from swing_core import db, market

        engine = db.get_engine(self.database_url) if self.database_url else None
        bars = market.fetch_bars(symbol, self.interval, lookback_days=self.lookback_days,
                                 engine=engine, offline=self.offline, source=self.source)
        if bars.attrs.get("last_bar_complete") is False:
            bars = bars.iloc[:-1]
        return bars


# --------------------------------------------------------------------------- stage 1 (worker)


def _compact(sp: Any) -> dict[str, Any]:
    """A symbol pass as compact arrays (labels as codes + their values)."""
    sig = sp.signals
    out: dict[str, Any] = {}
    for col in _LABELS:
        codes, uniques = pd.factorize(sig[col], use_na_sentinel=False)
        out[col] = codes.astype(np.int8)
        out[f"{col}__values"] = np.asarray(uniques, dtype=object).astype(str)
    for col in _FLOATS:
        out[col] = sig[col].to_numpy(np.float64)
    for col in _BOOLS:
        out[col] = sig[col].to_numpy(bool)
    for col, dtype in _INTS.items():
        out[col] = sig[col].to_numpy().astype(dtype)
    for col in _TIMES:
        out[col] = pd.DatetimeIndex(sig[col]).asi8
    out["vectors"] = np.ascontiguousarray(sig[list(VECTOR_COLUMNS)].to_numpy(np.float32))
    out["close_ts"] = sp.close.index.asi8
    out["close"] = sp.close.to_numpy(np.float64)
    return out


def _universe_task(payload: tuple[str, BacktestConfig, BarsLoader]) -> dict[str, Any]:
    """Worker: load, trim, prepare one symbol; return compact arrays (top level: picklable)."""
    symbol, config, loader = payload
    try:
        bars = loader(symbol)
    except SwingError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bar source failure is the symbol's error
        raise BacktestError(f"{symbol}: could not load bars ({exc}).") from exc
    bars = trim_bars(bars, symbol=symbol, config=config)
    sp = prepare_symbol(bars, symbol=symbol, config=config)
    return {"symbol": symbol, "arrays": _compact(sp), "fingerprint": data_fingerprint(bars),
            "source": str(bars.attrs.get("source", "given")),
            "buy_hold": sp.buy_hold_return_pct, "n_invalid": sp.n_invalid_plans,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# --------------------------------------------------------------------------- spill files


def _spill_path(spill_dir: Path, k: int) -> Path:
    return spill_dir / f"chunk_{k:05d}.npz"


def _write_spill(spill_dir: Path, k: int, parts: list[dict[str, Any]]) -> None:
    """The chunk's symbols' arrays in one .npz, written to a temporary name then renamed."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {}
    for i, part in enumerate(parts):
        flat[f"{i}/meta"] = np.array([part["symbol"], part["fingerprint"], part["source"],
                                      repr(float(part["buy_hold"])), str(part["n_invalid"])])
        for key, value in part["arrays"].items():
            flat[f"{i}/{key}"] = value
    tmp = spill_dir / f".chunk_{k:05d}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, _spill_path(spill_dir, k))


# --------------------------------------------------------------------------- frames


def _times(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _stage1_trades(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """A chunk's taken signals as ``backtest_trades`` rows (before priors and sizing)."""
    from swing_core.backtest_store import _trades_for_storage

    if not parts:
        return pd.DataFrame()
    taken = np.concatenate([p["arrays"]["taken"] for p in parts]).astype(bool)
    counts = [int(p["arrays"]["taken"].sum()) for p in parts]
    cols: dict[str, Any] = {
        "symbol": np.repeat(np.array([p["symbol"] for p in parts], dtype=object), counts)}
    for col in _TIMES:
        cols[col] = _times(np.concatenate([p["arrays"][col] for p in parts])[taken])
    for col in _LABELS:
        labels = [p["arrays"][f"{col}__values"].astype(object)[p["arrays"][col]]
                  if len(p["arrays"][f"{col}__values"]) else np.empty(0, dtype=object)
                  for p in parts]
        cols[col] = np.concatenate(labels)[taken]
    for col in (*_FLOATS, *_BOOLS, *_INTS):
        cols[col] = np.concatenate([p["arrays"][col] for p in parts])[taken]
    cols["hold_bars"] = cols["hold_bars"].astype(np.int64)
    return _trades_for_storage(pd.DataFrame(cols))


# --------------------------------------------------------------------------- the run


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
    lookback = None
    if config.start is not None:
        lookback = warmup_lookback_days(config.start, warmup_bars=config.warmup,
                                        bars_per_day=BARS_PER_DAY[config.interval])
    url = engine.url.render_as_string(hide_password=False) if engine is not None else None
    from swing_core.market import check_source  # lazy: the market layer pulls in yfinance

    return MarketBarsLoader(config.interval, lookback, offline, url, source=check_source(source))


def _marker(stored: Any) -> dict[str, Any]:
    metrics = (stored.run.get("metrics") or {}) if stored is not None else {}
    return dict(metrics.get("universe") or {})


def _run_row(digest: str, names: list[str], config: BacktestConfig, marker: dict[str, Any],
             *, status: str, name: str | None) -> dict[str, Any]:
    import json

    from swing_core.config import ENGINE_VERSION

    settings = config.to_dict()
    params = settings.pop("params")
    return {"run_hash": digest, "name": name, "symbols": names, "interval": config.interval,
            "start": config.start, "end": config.end,
            "params": json.dumps(params, default=str), "settings": json.dumps(settings,
                                                                              default=str),
            "metrics": json.dumps({"universe": marker}), "engine_version": ENGINE_VERSION,
            "status": status}


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
    with ``engine``'s bar cache, ``offline`` and ``source``: "auto", "yahoo", "local", "demo"). ``executor``: None (process pool, or Dask with
    ``SWING_DASK_ADDRESS``), ``"inline"`` or an Executor. ``progress(done, total, message)``:
    symbols finished so far (resumed chunks count as done), then the final stage.
    ``cancel``: checked before each chunk and before the final stage. ``spill_dir``: where the
    chunks' compact arrays are kept until the run is done (default ``data_dir/universe/<hash>``).
    Results equal :func:`~swing_core.backtest.run_backtest`'s on the same symbols and bars.
    Raises :class:`BacktestError` for an empty universe or when no symbol can run.
    """
    from swing_core import db
    from swing_core.backtest_store import load_result
    from swing_core.executor import map_tasks, open_executor

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
    library, library_fp = _library_for(config, engine)
    digest = run_hash(names, config, {}, extra={
        "universe": chunk_size, "loader": _loader_key(loader), "library": library_fp,
        "priors": _PRIORS_ENGINE})
    chunks = [names[i:i + chunk_size] for i in range(0, len(names), chunk_size)]
    total = len(names)
    stored = db.load_backtest_run(engine, digest)
    if stored is not None and stored.run.get("status") == "done":
        del stored
        progress(total, total, "served from storage")
        result = load_result(engine, digest)
        return UniverseResult("done", digest, result.run_id, tuple(names), len(chunks),
                              len(chunks), len(chunks), dict(result.errors), _summary(result))
    marker = _marker(stored)
    run_id = int(stored.run["id"]) if stored is not None else None
    del stored  # the stored stage-1 trades: not needed (the spill files hold the chunks)
    _trim_memory()
    done_chunks = set(int(k) for k in marker.get("done", []))
    spill = Path(spill_dir) if spill_dir is not None else (
        Path(_data_dir()) / "universe" / digest)
    done_chunks = {k for k in done_chunks if _spill_path(spill, k).exists()}
    marker = {"chunk_size": chunk_size, "chunks_total": len(chunks),
              "done": sorted(done_chunks), "errors": dict(marker.get("errors") or {}),
              "fingerprints": dict(marker.get("fingerprints") or {}),
              "sources": dict(marker.get("sources") or {})}
    resumed = len(done_chunks)
    worker_rss = 0.0
    finished = sum(len(chunks[k]) for k in done_chunks)
    if finished:
        progress(finished, total, f"resumed: {resumed} chunk(s) already stored")
    todo = [k for k in range(len(chunks)) if k not in done_chunks]
    inline = executor == "inline" or (executor is None and max_workers == 1)

    def _status(status: str) -> UniverseResult:
        row = _run_row(digest, names, config, marker, status=status, name=name)
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

            outcomes = map_tasks(_universe_task, [(s, config, loader) for s in chunk],
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
                    marker["fingerprints"][symbol] = outcome["fingerprint"]
                    marker["sources"][symbol] = outcome["source"]
            _write_spill(spill, k, parts)
            trades = _stage1_trades(parts)
            del parts, outcomes
            marker["done"] = sorted({*marker["done"], k})
            row = _run_row(digest, names, config, marker, status="running", name=name)
            run_id = db.save_backtest_chunk(engine, row, trades, replace_symbols=chunk)
            finished += len(chunk)
    if _cancelled(cancel):
        return _status("cancelled")
    progress(total, total, "priors, portfolio and statistics")
    _trim_memory()
    out = _final_stage(chunks, spill, config, marker, digest, engine=engine, name=name,
                       library=library, prior_batch=prior_batch)
    if out is None:
        _status("failed")
        raise BacktestError("No symbol could run: " + " | ".join(marker["errors"].values()))
    run_id, summary = out
    shutil.rmtree(spill, ignore_errors=True)
    return UniverseResult("done", digest, run_id, tuple(names), len(chunks), len(chunks),
                          resumed, dict(marker["errors"]), summary, worker_rss)


def _summary(result: BacktestResult) -> UniverseSummary:
    """A stored run's summary (its trades counted, not kept)."""
    return UniverseSummary(
        config=result.config, symbols=result.symbols, stats=result.stats,
        equity=result.equity, breakdowns=result.breakdowns, calibration=result.calibration,
        n_trades=len(result.trades), data_fingerprints=dict(result.data_fingerprints),
        data_sources=dict(result.data_sources), from_storage=result.from_storage)


def _data_dir() -> Path:
    from swing_core.config import get_settings

    return get_settings().data_dir


class _SpillColumns:
    """The stored chunks read column by column (``np.load`` of an .npz is lazy per array):
    only the columns a step needs are ever in memory, as compact numpy arrays; labels as
    small-int codes over one vocabulary for the run."""

    def __init__(self, spill: Path, n_chunks: int) -> None:
        self.parts: list[tuple[Path, int]] = []
        self.meta: list[dict[str, Any]] = []
        counts = []
        for k in range(n_chunks):
            path = _spill_path(spill, k)
            with np.load(path, allow_pickle=False) as data:
                n = len({key.split("/", 1)[0] for key in data.keys()})
                for i in range(n):
                    symbol, fingerprint, source, bh, n_invalid = data[f"{i}/meta"].tolist()
                    self.parts.append((path, i))
                    self.meta.append({"symbol": symbol, "fingerprint": fingerprint,
                                      "source": source, "buy_hold": float(bh),
                                      "n_invalid": int(n_invalid)})
                    counts.append(int(data[f"{i}/signal_ts"].shape[0]))
        self.counts = np.asarray(counts, np.int64)
        self.n = int(self.counts.sum())

    def _each(self, *keys: str) -> Any:
        """(part number, arrays of ``keys``) per symbol, in order, each file opened once."""
        j = 0
        while j < len(self.parts):
            path = self.parts[j][0]
            with np.load(path, allow_pickle=False) as data:
                while j < len(self.parts) and self.parts[j][0] == path:
                    yield j, *(data[f"{self.parts[j][1]}/{key}"] for key in keys)
                    j += 1

    def _bounds(self) -> np.ndarray:
        return np.r_[0, np.cumsum(self.counts)]

    def read(self, keys: Sequence[str] = (), labels: Sequence[str] = (),
             rows: np.ndarray | None = None, *, categorical: bool = False) -> dict[str, Any]:
        """Columns ``keys`` (as stored) and label columns ``labels`` (object arrays of
        strings, one shared string per value; pandas Categoricals when ``categorical``) over
        every signal or the boolean mask ``rows``, in one pass over the files."""
        bounds = self._bounds()
        wanted = [*keys, *(k for label in labels for k in (label, f"{label}__values"))]
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in (*keys, *labels)}
        vocab: dict[str, dict[str, int]] = {label: {} for label in labels}
        for j, *arrays in self._each(*wanted):
            got = dict(zip(wanted, arrays, strict=True))
            sel = None if rows is None else rows[bounds[j]:bounds[j + 1]]
            for key in keys:
                pieces[key].append(got[key] if sel is None else got[key][sel])
            for label in labels:
                codes, values = got[label], got[f"{label}__values"]
                seen = vocab[label]
                local = np.array([seen.setdefault(str(v), len(seen)) for v in values.tolist()],
                                 np.int16)
                codes = codes if sel is None else codes[sel]
                pieces[label].append(local[codes] if len(local) else np.empty(0, np.int16))
        out = {key: np.concatenate(pieces[key]) if pieces[key] else np.empty(0)
               for key in keys}
        for label in labels:
            codes = (np.concatenate(pieces[label]) if pieces[label]
                     else np.empty(0, np.int16))
            names = np.asarray(list(vocab[label]), dtype=object)
            if categorical:
                out[label] = pd.Categorical.from_codes(codes, categories=pd.Index(names))
            else:
                out[label] = names[codes] if len(names) else np.empty(0, object)
        return out

    def column(self, key: str, rows: np.ndarray | None = None) -> np.ndarray:
        """One column over every signal (or the boolean mask ``rows`` of them)."""
        return self.read((key,), rows=rows)[key]

    def symbols(self, rows: np.ndarray | None = None) -> np.ndarray:
        """The symbol of every signal (or of the boolean mask ``rows``)."""
        names = np.array([m["symbol"] for m in self.meta], dtype=object)
        if rows is None:
            return np.repeat(names, self.counts)
        selected = np.r_[0, np.cumsum(rows, dtype=np.int64)][self._bounds()]
        return np.repeat(names, np.diff(selected))

    def closes(self) -> dict[str, pd.Series]:
        """Each symbol's closes; symbols with the same bar times share one index."""
        out = {}
        shared: dict[tuple[int, int, int], pd.DatetimeIndex] = {}
        for j, close, ts in self._each("close", "close_ts"):
            key = (len(ts), int(ts[0]), int(ts[-1])) if len(ts) else (0, 0, 0)
            index = shared.get(key)
            if index is None or not np.array_equal(index.asi8, ts):
                index = shared[key] = _times(ts).rename("ts")
            out[self.meta[j]["symbol"]] = pd.Series(close, index=index, name="close")
        return out


def _trim_memory() -> None:
    """Return freed memory to the OS between stages (glibc keeps freed arenas otherwise)."""
    import gc

    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def _outcome_frame(cols: dict[str, np.ndarray], keep: np.ndarray, interval: str
                   ) -> pd.DataFrame:
    """The run's outcomes ``keep`` as pattern rows (what ``outcome_rows`` makes of a frame)."""
    frame = {"symbol": cols["symbol"][keep], "ts": _times(cols["signal_ts"][keep]),
             "exit_ts": _times(cols["exit_ts"][keep]), "realized_r": cols["realized_r"][keep],
             "hold_bars": cols["hold_bars"][keep], "exit_reason": cols["exit_reason"][keep],
             "setup": cols["setup"][keep], "side": cols["side"][keep],
             "vol_regime": cols["vol_regime"][keep]}
    vectors = cols["vectors"][keep]
    frame.update({name: vectors[:, j] for j, name in enumerate(VECTOR_COLUMNS)})
    frame["interval"] = np.full(len(vectors), interval, dtype=object)
    return pd.DataFrame(frame)


def _take_batch(batch: Any, rows: np.ndarray) -> Any:
    """The PriorBatch of the queries ``rows`` (a boolean mask) of ``batch``."""
    from swing_core.patterns import PriorBatch

    fields = {f: getattr(batch, f)[rows] for f in PriorBatch.__dataclass_fields__
              if f != "exit_reason_names"}
    return PriorBatch(**fields, exit_reason_names=batch.exit_reason_names)


def _priced(data: _SpillColumns, taken: np.ndarray, config: BacktestConfig, *, library: Any,
            batch: int) -> tuple[Any, np.ndarray]:
    """The pattern engine's priors of the taken signals (``attach_priors``' ``prior_fn`` call
    with the default engine), in batches of ``batch`` queries in as-of order: each batch
    gets only the outcomes known by its last as-of time (the engine keeps the outcomes sorted
    by exit time and searches only those known by each query's as-of, so the rows and their
    order in the search are the same as with every outcome). Returns (PriorBatch in the taken
    signals' order, the taken signals' as-of times in int64 ns)."""
    from swing_core.backtest_priors import PriorQueries, pattern_priors
    from swing_core.patterns import PriorBatch

    delta = pd.Timedelta(INTERVAL_DELTA[config.interval]).value
    prior_fn = pattern_priors(library, interval=config.interval)
    exited = data.column("exit_pos") >= 0
    out_cols = data.read(("signal_ts", "exit_ts", "realized_r", "hold_bars", "vectors"),
                         ("exit_reason", "setup", "side", "vol_regime"), rows=exited)
    out_cols["hold_bars"] = out_cols["hold_bars"].astype(np.int64)
    out_cols["symbol"] = data.symbols(exited)
    query = data.read(("signal_ts", "vectors"), ("vol_regime",), rows=taken)
    q_asof, q_vectors = query["signal_ts"] + delta, query["vectors"]
    q_regime = query["vol_regime"]
    q_symbol = data.symbols(taken)
    del query
    m = len(q_asof)
    # each symbol's first query / outcome (signals are stored symbol by symbol)
    q_bounds = np.r_[0, np.cumsum(taken, dtype=np.int64)][data._bounds()]
    o_bounds = np.r_[0, np.cumsum(exited, dtype=np.int64)][data._bounds()]
    del exited
    o_exit = out_cols["exit_ts"]

    def price(sel: np.ndarray, outcomes_in: np.ndarray) -> Any:
        known = outcomes_in & (o_exit <= int(q_asof[sel].max()))
        outcomes = _outcome_frame(out_cols, known, config.interval)
        queries = PriorQueries(vectors=np.ascontiguousarray(q_vectors[sel]),
                               asof=_times(q_asof[sel]), symbol=q_symbol[sel],
                               vol_regime=q_regime[sel])
        return prior_fn(queries, outcomes, config.params)

    # pass 1: symbols in groups of about ``batch`` signals, each group searching only its
    # symbols' outcomes (a contiguous block: signals are stored symbol by symbol): what the
    # engine searches first (the same symbol's outcomes) is all there, in the same order
    positions, parts = [], []
    redo = []
    j = 0
    n_parts = len(q_bounds) - 1
    while j < n_parts:
        k = j + 1
        while k < n_parts and q_bounds[k + 1] - q_bounds[j] <= batch:
            k += 1
        sel = np.arange(q_bounds[j], q_bounds[k])
        if sel.size:
            block = np.zeros(len(o_exit), bool)
            block[o_bounds[j]:o_bounds[k]] = True
            got = price(sel, block)
            mine = np.asarray(got.scope, dtype=object) == "symbol"
            positions.append(sel[mine])
            parts.append(_take_batch(got, mine))
            redo.append(sel[~mine])
        j = k
    # pass 2: signals whose symbol had no outcome known yet search every symbol's outcomes
    # (in as-of order, each batch with the outcomes known by its last as-of time)
    rest = np.concatenate(redo) if redo else np.empty(0, np.int64)
    rest = rest[np.argsort(q_asof[rest], kind="stable")]
    everything = np.ones(len(o_exit), bool)
    for i in range(0, len(rest), batch):
        sel = rest[i:i + batch]
        positions.append(sel)
        parts.append(price(sel, everything))
        _trim_memory()
    order = np.concatenate(positions) if positions else np.empty(0, np.int64)
    inverse = np.empty(m, np.int64)
    inverse[order] = np.arange(m)
    names = tuple(dict.fromkeys(n for p in parts for n in p.exit_reason_names))
    counts = np.zeros((m, len(names)), np.int64)
    row = 0
    for p in parts:
        for j, name in enumerate(p.exit_reason_names):
            counts[row:row + len(p), names.index(name)] = p.exit_reason_counts[:, j]
        row += len(p)
    fields = {f: np.concatenate([getattr(p, f) for p in parts])[inverse] if parts
              else np.empty(0)
              for f in PriorBatch.__dataclass_fields__
              if f not in ("exit_reason_names", "exit_reason_counts")}
    return PriorBatch(**fields, exit_reason_names=names,
                      exit_reason_counts=counts[inverse]), q_asof


def _prior_columns(batch: Any, taken: dict[str, Any], asof_ns: np.ndarray,
                   config: BacktestConfig) -> dict[str, np.ndarray]:
    """The columns of ``attach_priors`` the final stage uses (``confidence`` for the portfolio,
    ``prior_win_rate`` and ``expected_r`` for the statistics and the stored trades) for its
    priced rows (the taken signals), same formulas."""
    from swing_core.backtest_priors import _BATCH_COLUMNS
    from swing_core.calibration import calibrate_point_in_time
    from swing_core.patterns import blend_confidence

    fields = {col: f for f, col in _BATCH_COLUMNS.items()}
    columns = {"expected_r": np.asarray(getattr(batch, fields["expected_r"])).astype(float)}
    confidence = np.clip(np.asarray(taken["base_confidence"], float), 0.0, 1.0)
    columns["confidence"] = blend_confidence(confidence, batch, params=config.params)
    raw = np.asarray(getattr(batch, fields["prior_win_rate"])).astype(float)
    out = raw.copy()
    priced = np.flatnonzero(np.isfinite(raw))
    pairs = priced[np.asarray(taken["exit_pos"])[priced] >= 0]
    out[priced] = calibrate_point_in_time(
        raw[pairs], np.asarray(taken["realized_r"], float)[pairs] > 0,
        taken["exit_ts"][pairs], queries=raw[priced], asof=_times(asof_ns[priced]),
        params=config.params)
    columns["prior_win_rate"] = out
    return columns


def _taken_columns(data: _SpillColumns, taken: np.ndarray, interval: str) -> dict[str, Any]:
    """The taken signals' columns (``_signals_frame``'s in ``run_backtest``, without the setup
    vectors and ``asof``): what the portfolio, the statistics and the stored trades read, and
    ``base_confidence`` (for the confidence)."""
    delta = INTERVAL_DELTA[interval]
    raw = data.read((*_TIMES, *_FLOATS, *_BOOLS, *_INTS), _LABELS, rows=taken,
                    categorical=True)
    cols: dict[str, Any] = {"symbol": data.symbols(taken)}
    for col in _TIMES:
        cols[col] = _times(raw.pop(col))
    for col in _LABELS:
        cols[col] = raw.pop(col)
    for col in (*_FLOATS, *_BOOLS):
        cols[col] = raw.pop(col)
    for col in _INTS:
        cols[col] = raw.pop(col).astype(np.int8 if col == "side_sign" else np.int64)
    fill_ts = cols["fill_ts"]
    cols["entry_time"] = fill_ts.where(cols["stop_entry"], fill_ts + delta)
    return cols


def _final_stage(chunks: list[list[str]], spill: Path, config: BacktestConfig,
                 marker: dict[str, Any], digest: str, *, engine: Any, name: str | None,
                 library: Any, prior_batch: int = _PRIOR_BATCH
                 ) -> tuple[int, UniverseSummary] | None:
    """Priors, portfolio and statistics over every stored chunk (``run_backtest``'s stages),
    then the run stored (status "done", its final trades). Returns (run id, summary).

    Bounded memory: the chunks are read column by column; the priors are priced in batches;
    only the taken signals (the trades) become a frame, with only the columns the portfolio,
    the statistics and the stored trades read (no setup vectors, no prior details); the
    trades are written in slices and dropped (the summary keeps their count). Same figures as
    ``_core_signals`` on the full signal frame: every other signal only counts (# Signals,
    # Skipped) or is an outcome the priors search."""
    from swing_core.backtest import _core_taken
    from swing_core.backtest_store import save_result

    data = _SpillColumns(spill, len(chunks))
    if not data.parts:
        return None
    meta = data.meta
    bh = [m["buy_hold"] for m in meta if np.isfinite(m["buy_hold"])]
    symbols = tuple(m["symbol"] for m in meta)
    sources = {m["symbol"]: m["source"] for m in meta}
    fingerprints = {m["symbol"]: m["fingerprint"] for m in meta}
    taken = data.column("taken").astype(bool)
    n_signals, n_skipped = data.n, int((~taken).sum())
    if config.priors and taken.any():
        batch, asof_ns = _priced(data, taken, config, library=library, batch=prior_batch)
        _trim_memory()
        cols = _taken_columns(data, taken, config.interval)
        cols.update(_prior_columns(batch, cols, asof_ns, config))
        del batch, asof_ns
    else:  # no_priors: no prior figures, the base confidence
        cols = _taken_columns(data, taken, config.interval)
        n = len(cols["symbol"])
        cols.update(prior_win_rate=np.full(n, np.nan), expected_r=np.full(n, np.nan),
                    confidence=np.asarray(cols["base_confidence"], float))
    del taken, cols["base_confidence"]
    frame = pd.DataFrame(index=pd.RangeIndex(len(cols["symbol"])))
    for col in list(cols):  # column by column: never the columns and a copy at once
        frame[col] = cols.pop(col)
    del cols
    _trim_memory()
    core = _core_taken(frame, data.closes(), config,
                       buy_hold_return_pct=float(np.mean(bh)) if bh else math.nan,
                       n_invalid_plans=sum(m["n_invalid"] for m in meta),
                       n_signals=n_signals, n_skipped=n_skipped)
    del frame  # core["trades"] is the same frame, with the portfolio's columns
    core["stats"]["Data Sources"] = ", ".join(sorted(set(sources.values())))
    result = BacktestResult(
        run_hash=digest, config=config, symbols=symbols, stats=core["stats"],
        trades=core.pop("trades"), equity=core["equity"], breakdowns=core["breakdowns"],
        calibration=core["calibration"], errors=dict(marker["errors"]),
        data_fingerprints=fingerprints, data_sources=sources)
    del core
    _trim_memory()
    run_id = save_result(engine, result, name=name, trade_batch=_TRADE_BATCH)
    summary = _summary(result)
    del result
    _trim_memory()
    return run_id, summary
