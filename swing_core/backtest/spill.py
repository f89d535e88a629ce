"""The universe run's spill store: each finished chunk's stage-1 results as compact
per-signal arrays in one ``.npz`` file (:func:`write_spill`), read back column by column
(:class:`SpillColumns`: ``np.load`` of an .npz is lazy per array; each column of a chunk is
one array), so the final stage (:mod:`swing_core.backtest.final_stage`) never holds more than
the columns a step needs, and per-symbol metadata (fingerprint, source, notes) stays on disk
until the run is stored.

Signals are stored symbol by symbol, each symbol's in time order (as ``run_backtest``
concatenates them), so the signal order is the same as a one-shot run's.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import resource
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig, trim_bars
from swing_core.backtest.context import ContextBars, symbol_context
from swing_core.backtest.run import data_fingerprint
from swing_core.backtest.store import trades_for_storage
from swing_core.backtest.walk import SymbolPass, prepare_symbol
from swing_core.errors import BacktestError, SwingError
from swing_core.frame import VECTOR_COLUMNS

__all__ = [
    "BarsLoader",
    "SpillColumns",
    "compact_arrays",
    "release_memory",
    "spill_path",
    "spill_ready",
    "spill_task",
    "stage1_trades",
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
_LAYOUT = 2  # chunk files: one array per column of all the chunk's symbols


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


def spill_ready(spill_dir: Path, k: int) -> bool:
    """Whether chunk ``k``'s file is there in this layout (an older layout: run it again)."""
    try:
        with np.load(spill_path(spill_dir, k), allow_pickle=False) as data:
            return "layout" in data and int(data["layout"]) == _LAYOUT
    except (OSError, ValueError):
        return False


def _joined(parts: list[dict[str, Any]], key: str) -> np.ndarray:
    arrays = [p["arrays"][key] for p in parts]
    if arrays:
        return np.concatenate(arrays)
    return np.empty((0, len(VECTOR_COLUMNS)), np.float32) if key == "vectors" else np.empty(0)


def _joined_labels(parts: list[dict[str, Any]], col: str) -> tuple[np.ndarray, np.ndarray]:
    """A label column of several symbols as int16 codes over one vocabulary (in order of first
    appearance) and that vocabulary."""
    vocab: dict[str, int] = {}
    codes = []
    for p in parts:
        values = p["arrays"][f"{col}__values"].tolist()
        local = np.array([vocab.setdefault(str(v), len(vocab)) for v in values], np.int16)
        codes.append(local[p["arrays"][col]] if len(local) else np.empty(0, np.int16))
    return (np.concatenate(codes) if codes else np.empty(0, np.int16),
            np.array(list(vocab), dtype=str))


def write_spill(spill_dir: Path, k: int, parts: list[dict[str, Any]]) -> None:
    """Chunk ``k``'s symbols (stage-1 task results: ``symbol``, ``fingerprint``, ``source``,
    ``notes``, ``buy_hold``, ``n_invalid``, ``arrays``) in one .npz: each column of all its
    symbols as one array (a column is one read), ``counts`` / ``close_counts`` the rows of each
    symbol, ``meta`` a row of text per symbol. Written to a temporary name then renamed (a
    chunk file is whole or absent)."""
    spill_dir.mkdir(parents=True, exist_ok=True)
    flat: dict[str, np.ndarray] = {
        "layout": np.array(_LAYOUT),
        "meta": np.array([[p["symbol"], p["fingerprint"], p["source"],
                           repr(float(p["buy_hold"])), str(p["n_invalid"]),
                           json.dumps(list(p["notes"]))] for p in parts],
                         dtype=str).reshape(len(parts), 6),
        "counts": np.array([len(p["arrays"]["signal_ts"]) for p in parts], np.int64),
        "close_counts": np.array([len(p["arrays"]["close"]) for p in parts], np.int64)}
    for key in (*_FLOATS, *_BOOLS, *_INTS, *_TIMES, "vectors", "close", "close_ts"):
        flat[key] = _joined(parts, key)
    for col in _LABELS:
        flat[col], flat[f"{col}__values"] = _joined_labels(parts, col)
    tmp = spill_dir / f".chunk_{k:05d}.{os.getpid()}.tmp.npz"
    np.savez(tmp, **flat)
    os.replace(tmp, spill_path(spill_dir, k))


def stage1_trades(parts: list[dict[str, Any]]) -> pd.DataFrame:
    """A chunk's taken signals as ``backtest_trades`` rows (before priors and sizing)."""
    if not parts:
        return pd.DataFrame()
    taken = _joined(parts, "taken").astype(bool)
    counts = [int(p["arrays"]["taken"].sum()) for p in parts]
    cols: dict[str, Any] = {
        "symbol": np.repeat(np.array([p["symbol"] for p in parts], dtype=object), counts)}
    for col in _TIMES:
        cols[col] = utc_times(_joined(parts, col)[taken])
    for col in _LABELS:
        codes, values = _joined_labels(parts, col)
        cols[col] = values.astype(object)[codes[taken]]
    for col in (*_FLOATS, *_BOOLS, *_INTS):
        cols[col] = _joined(parts, col)[taken]
    cols["hold_bars"] = cols["hold_bars"].astype(np.int64)
    return trades_for_storage(pd.DataFrame(cols))


class SpillColumns:
    """The stored chunks read column by column (``np.load`` of an .npz is lazy per array; a
    column of a chunk is one array): only the columns a step needs are ever in memory, as
    compact numpy arrays; labels as small-int codes. ``meta``: one dict per symbol (symbol,
    fingerprint, source, notes, buy_hold, n_invalid); ``counts``: signals per symbol, stored
    symbol by symbol; ``chunk_rows`` / ``chunk_symbols``: where each chunk's signals / symbols
    start (and, last, their totals)."""

    def __init__(self, spill: Path, n_chunks: int) -> None:
        self.paths = [spill_path(spill, k) for k in range(n_chunks)]
        self.meta: list[dict[str, Any]] = []
        counts = []
        for path in self.paths:
            with np.load(path, allow_pickle=False) as data:
                for symbol, fingerprint, source, bh, n_invalid, notes in data["meta"].tolist():
                    self.meta.append({"symbol": symbol, "fingerprint": fingerprint,
                                      "source": source, "notes": tuple(json.loads(notes)),
                                      "buy_hold": float(bh), "n_invalid": int(n_invalid)})
                counts.append(data["counts"])
        self.counts = np.concatenate(counts) if counts else np.empty(0, np.int64)
        self.n = int(self.counts.sum())
        self.chunk_symbols = np.r_[0, np.cumsum([len(c) for c in counts], dtype=np.int64)]
        self.chunk_rows = np.r_[0, np.cumsum([int(c.sum()) for c in counts], dtype=np.int64)]
        self.names = np.array([m["symbol"] for m in self.meta], dtype=object)

    def bounds(self) -> np.ndarray:
        """Where each symbol's signals start (and, last, the number of signals)."""
        return np.r_[0, np.cumsum(self.counts)]

    def chunk(self, k: int, keys: Sequence[str] = (), labels: Sequence[str] = (),
              rows: np.ndarray | None = None) -> dict[str, Any]:
        """Chunk ``k``'s columns ``keys`` (as stored), ``labels`` (object arrays of strings,
        one shared string per value) and ``"symbol"``, over its signals or the boolean mask
        ``rows`` of them."""
        out: dict[str, Any] = {}
        with np.load(self.paths[k], allow_pickle=False) as data:
            for key in keys:
                out[key] = data[key] if rows is None else data[key][rows]
            for label in labels:
                codes = data[label] if rows is None else data[label][rows]
                values = data[f"{label}__values"].astype(object)
                out[label] = values[codes] if len(values) else np.empty(0, object)
        lo, hi = self.chunk_symbols[k], self.chunk_symbols[k + 1]
        names = np.repeat(self.names[lo:hi], self.counts[lo:hi])
        out["symbol"] = names if rows is None else names[rows]
        return out

    def read(self, keys: Sequence[str] = (), labels: Sequence[str] = (),
             rows: np.ndarray | None = None, *, categorical: bool = False) -> dict[str, Any]:
        """Columns ``keys`` (as stored) and label columns ``labels`` (object arrays of
        strings, one shared string per value; pandas Categoricals when ``categorical``) over
        every signal or the boolean mask ``rows``, in one pass over the files."""
        pieces: dict[str, list[np.ndarray]] = {k: [] for k in (*keys, *labels)}
        vocab: dict[str, dict[str, int]] = {label: {} for label in labels}
        for k, path in enumerate(self.paths):
            sel = None if rows is None else rows[self.chunk_rows[k]:self.chunk_rows[k + 1]]
            with np.load(path, allow_pickle=False) as data:
                for key in keys:
                    pieces[key].append(data[key] if sel is None else data[key][sel])
                for label in labels:
                    seen = vocab[label]
                    local = np.array([seen.setdefault(str(v), len(seen))
                                      for v in data[f"{label}__values"].tolist()], np.int16)
                    codes = data[label] if sel is None else data[label][sel]
                    pieces[label].append(local[codes] if len(local)
                                         else np.empty(0, np.int16))
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
        if rows is None:
            return np.repeat(self.names, self.counts)
        selected = np.r_[0, np.cumsum(rows, dtype=np.int64)][self.bounds()]
        return np.repeat(self.names, np.diff(selected))

    def closes(self) -> dict[str, pd.Series]:
        """Each symbol's closes; symbols with the same bar times share one index."""
        out = {}
        shared: dict[tuple[int, int, int], pd.DatetimeIndex] = {}
        for k, path in enumerate(self.paths):
            with np.load(path, allow_pickle=False) as data:
                closes, stamps, counts = data["close"], data["close_ts"], data["close_counts"]
            edges = np.r_[0, np.cumsum(counts)]
            for i, j in enumerate(range(self.chunk_symbols[k], self.chunk_symbols[k + 1])):
                ts = stamps[edges[i]:edges[i + 1]]
                key = (len(ts), int(ts[0]), int(ts[-1])) if len(ts) else (0, 0, 0)
                index = shared.get(key)
                if index is None or not np.array_equal(index.asi8, ts):
                    index = shared[key] = utc_times(ts).rename("ts")
                out[self.meta[j]["symbol"]] = pd.Series(closes[edges[i]:edges[i + 1]],
                                                        index=index, name="close")
        return out


def release_memory() -> None:
    """Return freed memory to the OS between stages (glibc keeps freed arenas otherwise)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to trim
        pass
