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
   signal order), the stored trades replaced by the final ones, status ``"done"``.

Cancel (``cancel``: a ``threading.Event`` or a callable returning True) is checked before each
chunk: the run stops with status ``"cancelled"`` and its finished chunks stored. Calling
:func:`run_universe` again with the same inputs (same run hash) resumes after the last
finished chunk; a finished run is served from storage.

The run hash covers the symbols, the configuration, the bar source (``bars_loader``'s name or
the market layer's mode), ``chunk_size`` and ENGINE_VERSION, not the bars themselves (they are
only loaded chunk by chunk): resuming assumes the data did not change, and each symbol's data
fingerprint is stored with its chunk. Memory: the parent holds O(signals) compact arrays
(about 170 bytes per signal), never O(bars x frame columns).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest import (
    _PRIORS_ENGINE,
    BacktestConfig,
    BacktestResult,
    ProgressFn,
    _core_signals,
    _library_for,
    data_fingerprint,
    prepare_symbol,
    run_hash,
    trim_bars,
    validate_config,
)
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA
from swing_core.errors import BacktestError, SwingError
from swing_core.frame import VECTOR_COLUMNS

__all__ = ["MarketBarsLoader", "UniverseResult", "run_universe"]

BarsLoader = Callable[[str], pd.DataFrame]
CancelFlag = threading.Event | Callable[[], bool] | None

_LABELS = ("setup", "side", "trend", "vol_regime", "exit_reason")
_FLOATS = ("stop", "target", "atr", "base_confidence", "fill_price", "exit_price", "realized_r")
_BOOLS = ("filled", "stop_entry", "both_touched", "taken")
_INTS = {"side_sign": np.int8, "fill_pos": np.int32, "exit_pos": np.int32,
         "hold_bars": np.int32}
_TIMES = ("signal_ts", "fill_ts", "exit_ts")
_NAT = np.iinfo(np.int64).min
_TRADE_BATCH = 20_000
_PRIOR_BATCH = 16_384  # queries priced per pattern-engine call (bounds its working memory)


@dataclass(frozen=True)
class UniverseResult:
    """A chunked universe run: ``status`` "done" (``result`` holds the finished run) or
    "cancelled" (``result`` None; call :func:`run_universe` again to resume). ``chunks_done``
    of ``chunks_total`` are stored; ``resumed_chunks``: chunks found finished at the start;
    ``errors``: symbols that could not run and why; ``worker_peak_rss_mb``: the largest peak
    resident memory a stage-1 task reported (its process's, MiB)."""

    status: str
    run_hash: str
    run_id: int | None
    symbols: tuple[str, ...]
    chunks_total: int
    chunks_done: int
    resumed_chunks: int = 0
    errors: dict[str, str] = field(default_factory=dict)
    result: BacktestResult | None = None
    worker_peak_rss_mb: float = 0.0


@dataclass(frozen=True)
class MarketBarsLoader:
    """The default bar source: ``swing_core.market.fetch_bars`` through the bar cache of
    ``database_url`` (picklable, so workers load their own bars); the still-forming last bar
    is dropped."""

    interval: str
    lookback_days: int | None = None
    offline: bool | None = None
    database_url: str | None = None

    def __call__(self, symbol: str) -> pd.DataFrame:
        from swing_core import db, market

        engine = db.get_engine(self.database_url) if self.database_url else None
        bars = market.fetch_bars(symbol, self.interval, lookback_days=self.lookback_days,
                                 engine=engine, offline=self.offline)
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


def _read_spill(spill_dir: Path, k: int) -> list[dict[str, Any]]:
    with np.load(_spill_path(spill_dir, k), allow_pickle=False) as data:
        keys = list(data.keys())
        n = len({key.split("/", 1)[0] for key in keys})
        parts = []
        for i in range(n):
            symbol, fingerprint, source, bh, n_invalid = data[f"{i}/meta"].tolist()
            prefix = f"{i}/"
            arrays = {key[len(prefix):]: data[key] for key in keys
                      if key.startswith(prefix) and key != f"{i}/meta"}
            parts.append({"symbol": symbol, "fingerprint": fingerprint, "source": source,
                          "buy_hold": float(bh), "n_invalid": int(n_invalid),
                          "arrays": arrays})
    return parts


# --------------------------------------------------------------------------- frames


def _times(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def _signals_frame(parts: list[dict[str, Any]], interval: str) -> pd.DataFrame:
    """The signals of ``parts`` (in order) with the columns ``run_backtest``'s stages use."""
    if not parts:
        return pd.DataFrame()
    delta = INTERVAL_DELTA[interval]
    cols: dict[str, Any] = {}
    counts = [len(p["arrays"]["signal_ts"]) for p in parts]
    cols["symbol"] = np.repeat(np.array([p["symbol"] for p in parts], dtype=object), counts)
    for col in _TIMES:
        cols[col] = _times(np.concatenate([p["arrays"][col] for p in parts]))
    cols["asof"] = cols["signal_ts"] + delta
    for col in _LABELS:
        labels = []
        for p in parts:
            values = p["arrays"][f"{col}__values"].astype(object)
            labels.append(values[p["arrays"][col]] if len(values) else
                          np.empty(0, dtype=object))
        cols[col] = np.concatenate(labels) if labels else np.empty(0, dtype=object)
    for col in (*_FLOATS, *_BOOLS):
        cols[col] = np.concatenate([p["arrays"][col] for p in parts])
    for col in _INTS:
        cols[col] = np.concatenate([p["arrays"][col] for p in parts]).astype(
            np.int8 if col == "side_sign" else np.int64)
    fill_ts = cols["fill_ts"]
    cols["entry_time"] = fill_ts.where(cols["stop_entry"], fill_ts + delta)
    vectors = np.concatenate([p["arrays"]["vectors"] for p in parts])
    frame = pd.DataFrame(cols)
    vec = pd.DataFrame(vectors, columns=list(VECTOR_COLUMNS))
    return pd.concat([frame, vec], axis=1)


def _stage1_trades(parts: list[dict[str, Any]], interval: str) -> pd.DataFrame:
    """A chunk's taken signals as ``backtest_trades`` rows (before priors and sizing)."""
    sig = _signals_frame(parts, interval)
    if sig.empty:
        return sig
    from swing_core.backtest_store import _trades_for_storage

    return _trades_for_storage(sig[sig["taken"].to_numpy(bool)])


# --------------------------------------------------------------------------- priors


def _batched_priors(library: Any, interval: str, batch: int = _PRIOR_BATCH) -> Any:
    """The default prior function (:func:`~swing_core.backtest_priors.pattern_priors`), called
    on ``batch`` queries at a time and the results stacked: each query is priced on its own
    (point in time), so the rows equal one big call's while the engine's working memory stays
    bounded whatever the universe's size."""
    from swing_core.backtest_priors import PriorQueries, pattern_priors
    from swing_core.patterns import PriorBatch

    single = pattern_priors(library, interval=interval)

    def prior_fn(queries: Any, outcomes: pd.DataFrame, params: Any) -> Any:
        m = len(queries)
        if m <= batch:
            return single(queries, outcomes, params)
        parts = [single(PriorQueries(vectors=queries.vectors[i:i + batch],
                                     asof=queries.asof[i:i + batch],
                                     symbol=queries.symbol[i:i + batch],
                                     vol_regime=queries.vol_regime[i:i + batch]),
                        outcomes, params) for i in range(0, m, batch)]
        names = tuple(dict.fromkeys(n for p in parts for n in p.exit_reason_names))
        counts = np.zeros((m, len(names)), np.int64)
        row = 0
        for p in parts:
            for j, name in enumerate(p.exit_reason_names):
                counts[row:row + len(p), names.index(name)] = p.exit_reason_counts[:, j]
            row += len(p)
        fields = {f: np.concatenate([getattr(p, f) for p in parts])
                  for f in PriorBatch.__dataclass_fields__
                  if f not in ("exit_reason_names", "exit_reason_counts")}
        return PriorBatch(**fields, exit_reason_names=names, exit_reason_counts=counts)

    return prior_fn


# --------------------------------------------------------------------------- the run


def _cancelled(cancel: CancelFlag) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def _loader_key(loader: BarsLoader) -> str:
    if isinstance(loader, MarketBarsLoader):
        return f"market:{loader.interval}:{loader.lookback_days}:{loader.offline}"
    func = getattr(loader, "func", loader)  # functools.partial
    name = f"{getattr(func, '__module__', '')}.{getattr(func, '__qualname__', repr(func))}"
    args = getattr(loader, "args", ()), sorted(getattr(loader, "keywords", {}).items())
    return f"{name}{args}"


def _default_loader(config: BacktestConfig, engine: Any, offline: bool | None
                    ) -> MarketBarsLoader:
    lookback = None
    if config.start is not None:
        now = pd.Timestamp.now(tz="UTC")
        warm_days = math.ceil(config.warmup / BARS_PER_DAY[config.interval] * 7 / 5) + 5
        lookback = max(1, (now - config.start).days + warm_days)
    url = engine.url.render_as_string(hide_password=False) if engine is not None else None
    return MarketBarsLoader(config.interval, lookback, offline, url)


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
    name: str | None = None,
    spill_dir: str | Path | None = None,
    prior_batch: int = _PRIOR_BATCH,
) -> UniverseResult:
    """Walk-forward backtest of a large universe as one portfolio, ``chunk_size`` symbols at a
    time, each chunk committed before the next (see the module docstring).

    ``engine``: SQLAlchemy engine (required: chunks are stored as they finish). ``bars_loader``:
    ``loader(symbol) -> bars frame``, picklable for process pools (default: the market layer
    with ``engine``'s bar cache and ``offline``). ``executor``: None (process pool, or Dask with
    ``SWING_DASK_ADDRESS``), ``"inline"`` or an Executor. ``progress(done, total, message)``:
    symbols finished so far (resumed chunks count as done), then the final stage.
    ``cancel``: checked before each chunk and before the final stage. ``spill_dir``: where the
    chunks' compact arrays are kept until the run is done (default ``data_dir/universe/<hash>``).
    Results equal :func:`~swing_core.backtest.run_backtest`'s on the same symbols and bars.
    Raises :class:`BacktestError` for an empty universe or when no symbol can run.
    """
    from swing_core import db
    from swing_core.backtest_store import load_result, save_result
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
    loader = bars_loader or _default_loader(config, engine, offline)
    library, library_fp = _library_for(config, engine)
    digest = run_hash(names, config, {}, extra={
        "universe": chunk_size, "loader": _loader_key(loader), "library": library_fp,
        "priors": _PRIORS_ENGINE})
    chunks = [names[i:i + chunk_size] for i in range(0, len(names), chunk_size)]
    total = len(names)
    stored = db.load_backtest_run(engine, digest)
    if stored is not None and stored.run.get("status") == "done":
        progress(total, total, "served from storage")
        result = load_result(engine, digest)
        return UniverseResult("done", digest, result.run_id, tuple(names), len(chunks),
                              len(chunks), len(chunks), dict(result.errors), result)
    marker = _marker(stored)
    done_chunks = set(int(k) for k in marker.get("done", []))
    spill = Path(spill_dir) if spill_dir is not None else (
        Path(_data_dir()) / "universe" / digest)
    done_chunks = {k for k in done_chunks if _spill_path(spill, k).exists()}
    marker = {"chunk_size": chunk_size, "chunks_total": len(chunks),
              "done": sorted(done_chunks), "errors": dict(marker.get("errors") or {}),
              "fingerprints": dict(marker.get("fingerprints") or {}),
              "sources": dict(marker.get("sources") or {})}
    resumed = len(done_chunks)
    run_id = int(stored.run["id"]) if stored is not None else None
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
            trades = _stage1_trades(parts, config.interval)
            del parts, outcomes
            marker["done"] = sorted({*marker["done"], k})
            row = _run_row(digest, names, config, marker, status="running", name=name)
            run_id = db.save_backtest_chunk(engine, row, trades, replace_symbols=chunk)
            finished += len(chunk)
    if _cancelled(cancel):
        return _status("cancelled")
    progress(total, total, "priors, portfolio and statistics")
    result = _final_stage(chunks, spill, config, marker, digest, library=library,
                          prior_batch=prior_batch)
    if result is None:
        _status("failed")
        raise BacktestError("No symbol could run: " + " | ".join(marker["errors"].values()))
    run_id = save_result(engine, result, name=name, trade_batch=_TRADE_BATCH)
    shutil.rmtree(spill, ignore_errors=True)
    return UniverseResult("done", digest, run_id, tuple(names), len(chunks), len(chunks),
                          resumed, dict(marker["errors"]), replace(result, run_id=run_id),
                          worker_rss)


def _data_dir() -> Path:
    from swing_core.config import get_settings

    return get_settings().data_dir


def _final_stage(chunks: list[list[str]], spill: Path, config: BacktestConfig,
                 marker: dict[str, Any], digest: str, *, library: Any,
                 prior_batch: int = _PRIOR_BATCH) -> BacktestResult | None:
    """Priors, portfolio and statistics over every stored chunk (``run_backtest``'s stages)."""
    parts: list[dict[str, Any]] = []
    for k in range(len(chunks)):
        parts.extend(_read_spill(spill, k))
    if not parts:
        return None
    closes = {p["symbol"]: pd.Series(p["arrays"].pop("close"),
                                     index=_times(p["arrays"].pop("close_ts")).rename("ts"),
                                     name="close")
              for p in parts}
    bh = [p["buy_hold"] for p in parts if np.isfinite(p["buy_hold"])]
    n_invalid = sum(p["n_invalid"] for p in parts)
    symbols = tuple(p["symbol"] for p in parts)
    sources = {p["symbol"]: p["source"] for p in parts}
    fingerprints = {p["symbol"]: p["fingerprint"] for p in parts}
    signals = _signals_frame(parts, config.interval)
    del parts
    prior_fn = _batched_priors(library, config.interval, prior_batch)
    core = _core_signals(signals, closes, config, prior_fn=prior_fn, library=library,
                         buy_hold_return_pct=float(np.mean(bh)) if bh else math.nan,
                         n_invalid_plans=n_invalid)
    del signals
    core.pop("signals")
    core["stats"]["Data Sources"] = ", ".join(sorted(set(sources.values())))
    return BacktestResult(
        run_hash=digest, config=config, symbols=symbols, stats=core["stats"],
        trades=core["trades"], equity=core["equity"], breakdowns=core["breakdowns"],
        calibration=core["calibration"], errors=dict(marker["errors"]),
        data_fingerprints=fingerprints, data_sources=sources)
