"""The universe run's spill store: each finished chunk's stage-1 results as compact
per-signal arrays in one ``.npz`` file (:func:`write_spill`), read back column by column
(:class:`SpillColumns`: ``np.load`` of an .npz is lazy per array), so the final stage never
holds more than the columns a step needs. Also the final stage's readers of it: the taken
signals' columns (:func:`taken_columns`) and their pattern priors priced in batches
(:func:`price_taken`, through the run's own prior engine, :mod:`swing_core.backtest.priors`).

Signals are stored symbol by symbol, each symbol's in time order (as ``run_backtest``
concatenates them), so the signal order is the same as a one-shot run's.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig, trim_bars
from swing_core.backtest.context import ContextBars, symbol_context
from swing_core.backtest.priors import (
    PriorQueries,
    concat_batches,
    outcome_rows_from_columns,
    pattern_priors,
    select_batch,
)
from swing_core.backtest.run import data_fingerprint
from swing_core.backtest.store import trades_for_storage
from swing_core.backtest.walk import SymbolPass, entry_times, prepare_symbol
from swing_core.config import INTERVAL_DELTA
from swing_core.errors import BacktestError, SwingError
from swing_core.frame import VECTOR_COLUMNS
from swing_core.patterns import PatternIndex, PriorBatch

__all__ = [
    "BarsLoader",
    "SpillColumns",
    "compact_arrays",
    "price_taken",
    "release_memory",
    "spill_path",
    "spill_task",
    "stage1_trades",
    "taken_columns",
    "utc_times",
    "write_spill",
]

#: ``loader(symbol) -> bars``: a universe run's bar source (picklable for process pools).
BarsLoader = Callable[[str], pd.DataFrame]

_LABELS = ("setup", "side", "trend", "vol_regime", "exit_reason")
_FLOATS = ("stop", "target", "atr", "base_confidence", "fill_price", "exit_price", "realized_r")
_BOOLS = ("filled", "stop_entry", "both_touched", "taken")
_INTS = {"side_sign": np.int8, "fill_pos": np.int32, "exit_pos": np.int32,
         "hold_bars": np.int32}
_TIMES = ("signal_ts", "fill_ts", "exit_ts")


def utc_times(values: np.ndarray) -> pd.DatetimeIndex:
    """UTC times of int64 ns values."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True))


def compact_arrays(sp: SymbolPass) -> dict[str, Any]:
    """A symbol pass as compact arrays: labels as int8 codes plus their values, float64 prices
    (the portfolio's P&L stays exact), float32 setup vectors, int64 ns times, its closes."""
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


def spill_task(payload: tuple[str, BacktestConfig, BarsLoader, ContextBars]) -> dict[str, Any]:
    """A universe run's stage-1 worker task: load, trim and prepare one symbol with its context
    (``symbol_context``: the run's benchmarks come with the task, other timeframes are fetched
    here), return it as a spill part (:func:`compact_arrays`, its metadata and ``notes`` on
    what the context left out; top level: picklable)."""
    symbol, config, loader, fetch = payload
    try:
        bars = loader(symbol)
    except SwingError:
        raise
    except Exception as exc:  # noqa: BLE001 - a bar source failure is the symbol's error
        raise BacktestError(f"{symbol}: could not load bars ({exc}).") from exc
    bars = trim_bars(bars, symbol=symbol, config=config)
    context, notes = symbol_context(symbol, bars, config, fetch)
    sp = prepare_symbol(bars, symbol=symbol, config=config, context=context)
    return {"symbol": symbol, "arrays": compact_arrays(sp), "fingerprint": data_fingerprint(bars),
            "source": str(bars.attrs.get("source", "given")), "notes": list(notes),
            "buy_hold": sp.buy_hold_return_pct, "n_invalid": sp.n_invalid_plans,
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def spill_path(spill_dir: Path, k: int) -> Path:
    """The file of chunk ``k``."""
    return spill_dir / f"chunk_{k:05d}.npz"


def write_spill(spill_dir: Path, k: int, parts: list[dict[str, Any]]) -> None:
    """Chunk ``k``'s symbols (stage-1 task results: ``symbol``, ``fingerprint``, ``source``,
    ``buy_hold``, ``n_invalid``, ``arrays``) in one .npz, written to a temporary name then
    renamed (a chunk file is whole or absent)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {}
    for i, part in enumerate(parts):
        flat[f"{i}/meta"] = np.array([part["symbol"], part["fingerprint"], part["source"],
                                      repr(float(part["buy_hold"])), str(part["n_invalid"])])
        for key, value in part["arrays"].items():
            flat[f"{i}/{key}"] = value
    tmp = spill_dir / f".chunk_{k:05d}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, spill_path(spill_dir, k))


def stage1_trades(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """A chunk's taken signals as ``backtest_trades`` rows (before priors and sizing)."""
    if not parts:
        return pd.DataFrame()
    taken = np.concatenate([p["arrays"]["taken"] for p in parts]).astype(bool)
    counts = [int(p["arrays"]["taken"].sum()) for p in parts]
    cols: dict[str, Any] = {
        "symbol": np.repeat(np.array([p["symbol"] for p in parts], dtype=object), counts)}
    for col in _TIMES:
        cols[col] = utc_times(np.concatenate([p["arrays"][col] for p in parts])[taken])
    for col in _LABELS:
        labels = [p["arrays"][f"{col}__values"].astype(object)[p["arrays"][col]]
                  if len(p["arrays"][f"{col}__values"]) else np.empty(0, dtype=object)
                  for p in parts]
        cols[col] = np.concatenate(labels)[taken]
    for col in (*_FLOATS, *_BOOLS, *_INTS):
        cols[col] = np.concatenate([p["arrays"][col] for p in parts])[taken]
    cols["hold_bars"] = cols["hold_bars"].astype(np.int64)
    return trades_for_storage(pd.DataFrame(cols))


class SpillColumns:
    """The stored chunks read column by column (``np.load`` of an .npz is lazy per array):
    only the columns a step needs are ever in memory, as compact numpy arrays; labels as
    small-int codes over one vocabulary for the run."""

    def __init__(self, spill: Path, n_chunks: int) -> None:
        self.parts: list[tuple[Path, int]] = []
        self.meta: list[dict[str, Any]] = []
        counts = []
        for k in range(n_chunks):
            path = spill_path(spill, k)
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

    def bounds(self) -> np.ndarray:
        """Where each symbol's signals start (and, last, the number of signals)."""
        return np.r_[0, np.cumsum(self.counts)]

    def read(self, keys: Sequence[str] = (), labels: Sequence[str] = (),
             rows: np.ndarray | None = None, *, categorical: bool = False) -> dict[str, Any]:
        """Columns ``keys`` (as stored) and label columns ``labels`` (object arrays of
        strings, one shared string per value; pandas Categoricals when ``categorical``) over
        every signal or the boolean mask ``rows``, in one pass over the files."""
        bounds = self.bounds()
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
        selected = np.r_[0, np.cumsum(rows, dtype=np.int64)][self.bounds()]
        return np.repeat(names, np.diff(selected))

    def closes(self) -> dict[str, pd.Series]:
        """Each symbol's closes; symbols with the same bar times share one index."""
        out = {}
        shared: dict[tuple[int, int, int], pd.DatetimeIndex] = {}
        for j, close, ts in self._each("close", "close_ts"):
            key = (len(ts), int(ts[0]), int(ts[-1])) if len(ts) else (0, 0, 0)
            index = shared.get(key)
            if index is None or not np.array_equal(index.asi8, ts):
                index = shared[key] = utc_times(ts).rename("ts")
            out[self.meta[j]["symbol"]] = pd.Series(close, index=index, name="close")
        return out


def release_memory() -> None:
    """Return freed memory to the OS between stages (glibc keeps freed arenas otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass


def price_taken(data: SpillColumns, taken: np.ndarray, config: BacktestConfig, *,
                library: PatternIndex | None, batch: int) -> tuple[PriorBatch, np.ndarray]:
    """The pattern engine's priors of the taken signals (``attach_priors``' ``prior_fn`` call
    with the default engine), in batches of ``batch`` queries in as-of order: each batch
    gets only the outcomes known by its last as-of time (the engine keeps the outcomes sorted
    by exit time and searches only those known by each query's as-of, so the rows and their
    order in the search are the same as with every outcome). Returns (PriorBatch in the taken
    signals' order, the taken signals' as-of times in int64 ns)."""
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
    # each symbol's first query / outcome (signals are stored symbol by symbol)
    q_bounds = np.r_[0, np.cumsum(taken, dtype=np.int64)][data.bounds()]
    o_bounds = np.r_[0, np.cumsum(exited, dtype=np.int64)][data.bounds()]
    del exited
    o_exit = out_cols["exit_ts"]

    def price(sel: np.ndarray, outcomes_in: np.ndarray) -> Any:
        known = outcomes_in & (o_exit <= int(q_asof[sel].max()))
        outcomes = outcome_rows_from_columns(out_cols, known, interval=config.interval)
        queries = PriorQueries(vectors=np.ascontiguousarray(q_vectors[sel]),
                               asof=utc_times(q_asof[sel]), symbol=q_symbol[sel],
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
            parts.append(select_batch(got, mine))
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
        release_memory()
    order = np.concatenate(positions) if positions else np.empty(0, np.int64)
    return concat_batches(parts, order), q_asof


def taken_columns(data: SpillColumns, taken: np.ndarray, interval: str) -> dict[str, Any]:
    """The taken signals' columns (those of :func:`~swing_core.backtest.prepare_symbol`'s
    signals without the setup vectors and ``asof``): what the portfolio, the statistics and
    the stored trades read, and ``base_confidence`` (for the confidence)."""
    delta = INTERVAL_DELTA[interval]
    raw = data.read((*_TIMES, *_FLOATS, *_BOOLS, *_INTS), _LABELS, rows=taken,
                    categorical=True)
    cols: dict[str, Any] = {"symbol": data.symbols(taken)}
    for col in _TIMES:
        cols[col] = utc_times(raw.pop(col))
    for col in _LABELS:
        cols[col] = raw.pop(col)
    for col in (*_FLOATS, *_BOOLS):
        cols[col] = raw.pop(col)
    for col in _INTS:
        cols[col] = raw.pop(col).astype(np.int8 if col == "side_sign" else np.int64)
    cols["entry_time"] = entry_times(cols["signal_ts"], cols["fill_ts"], delta)
    return cols
