"""The setup library for Pattern Search: library rows from backtest trades, the stored or DEMO
library, point-in-time neighbours, their price paths in R and a 2-D projection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core import db
from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA, StrategyParams
from swing_core.errors import MarketDataError
from swing_core.features import VECTOR_COLUMNS
from swing_core.frame import build_signal_frame
from swing_core.patterns import PatternIndex
from swing_core.views.backtest import _trades_frame
from swing_core.views.formatting import bar_time_text, for_display


def project_2d(matrix: np.ndarray, *, extra: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D principal-component projection of setup vectors (rows) for drawing; ``extra`` rows
    (e.g. the current setup) are projected on the same axes. Returns (xy, extra_xy)."""
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        return np.zeros((0, 2)), None
    centre = data.mean(axis=0)
    centred = data - centre
    if len(data) < 2:
        axes = np.eye(data.shape[1])[:2]
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axes = vt[:2]
        if axes.shape[0] < 2:
            axes = np.vstack([axes, np.zeros((2 - axes.shape[0], data.shape[1]))])
    xy = centred @ axes.T
    extra_xy = None
    if extra is not None:
        extra_xy = (np.atleast_2d(np.asarray(extra, dtype=np.float64)) - centre) @ axes.T
    return xy, extra_xy


_EXITED = ("STOP", "TARGET", "TIME")


def library_rows(trades: pd.DataFrame, *, interval: str) -> pd.DataFrame:
    """Setup-library rows from a backtest's trades: one per simulated plan that exited (STOP,
    TARGET or TIME), with its vector (``vec_00`` … ``vec_15``), the signal bar's open time as
    ``ts``, the outcome (realized R, exit reason, ``exit_ts`` = close of the exit bar, bars
    held) and entry / stop (for drawing paths). The columns ``PatternIndex.add`` and
    ``db.upsert_vectors`` take."""
    frame = _trades_frame(trades)
    done = frame[frame["exit_reason"].isin(_EXITED) & frame["realized_r"].notna()]
    rows = pd.DataFrame({
        "symbol": done["symbol"].astype(str).to_numpy(),
        "interval": interval,
        "ts": pd.to_datetime(done["signal_ts"], utc=True).to_numpy(),
        "version": "v1",
        "setup": done["setup"].astype(str).to_numpy(),
        "side": done["side"].astype(str).to_numpy(),
        "trend": done["trend"].astype(str).to_numpy() if "trend" in done else "sideways",
        "vol_regime": done["vol_regime"].astype(str).to_numpy(),
        "realized_r": done["realized_r"].astype(float).to_numpy(),
        "exit_reason": done["exit_reason"].astype(str).to_numpy(),
        "exit_ts": pd.to_datetime(done["exit_ts"], utc=True).to_numpy(),
        "hold_bars": done["hold_bars"].astype("int64").to_numpy(),
        "entry": pd.to_numeric(done.get("entry_price", done.get("entry")), errors="coerce")
        .to_numpy(dtype=float),
        "stop": pd.to_numeric(done["stop"], errors="coerce").to_numpy(dtype=float),
    })
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True)
    rows["exit_ts"] = pd.to_datetime(rows["exit_ts"], utc=True)
    for column in VECTOR_COLUMNS:
        rows[column] = done[column].astype(np.float32).to_numpy()
    return rows.drop_duplicates(subset=["symbol", "interval", "ts"], keep="last")


@dataclass(frozen=True)
class Library:
    """A setup library to search: the index, its rows (metadata) and vectors (for the 2-D
    projection), where it comes from ("stored": the database; "demo": built in memory from a
    walk-forward over demo bars, never stored) and a sentence saying so."""

    index: Any  # swing_core.patterns.PatternIndex
    rows: pd.DataFrame
    matrix: np.ndarray
    source: str
    note: str

    def __len__(self) -> int:
        return len(self.rows)


def stored_library(engine: Any, interval: str, *, index: Any = None) -> Library:
    """The stored setup vectors with a known outcome for ``interval`` (``index``: an already
    loaded ``PatternIndex`` over them, e.g. the services' one)."""
    loaded = db.load_vector_matrix(engine, interval=interval, known_only=True)
    meta = loaded.meta.reset_index(drop=True)
    matrix = np.asarray(loaded.matrix, dtype=np.float32)
    if index is None:
        index = PatternIndex.from_db(engine, interval=interval)
    note = (f"{len(meta):,} stored {interval} setups with known outcomes (database library)."
            if len(meta) else f"The stored library has no {interval} setup with a known "
            "outcome yet.")
    return Library(index=index, rows=meta, matrix=matrix, source="stored", note=note)


def demo_library(symbols: Sequence[str], interval: str, *,
                 params: StrategyParams | None = None) -> Library:
    """A DEMO library built in memory: a walk-forward over demo bars of ``symbols`` (every
    plan, not only one position per symbol), its exited plans indexed. Never stored, so it can
    never pass for real outcomes."""
    config = BacktestConfig(interval=interval, params=params or StrategyParams(), priors=False,
                            one_position_per_symbol=False)
    result = run_backtest(list(symbols), config=config, engine=None, save=False,
                          executor="inline", offline=True)
    rows = library_rows(result.trades, interval=interval).reset_index(drop=True)
    index = PatternIndex.from_frame(rows, interval=interval)
    note = (f"DEMO library: {len(rows):,} simulated {interval} setups from a walk-forward over "
            f"demo bars of {', '.join(result.symbols)} (in memory, never stored).")
    return Library(index=index, rows=rows.drop(columns=list(VECTOR_COLUMNS)),
                   matrix=rows[list(VECTOR_COLUMNS)].to_numpy(np.float32), source="demo",
                   note=note)


def neighbors_of(library: Library, signal: Any, *, params: StrategyParams | None = None,
                 k: int | None = None, same_setup: bool = False) -> Any:
    """The neighbours STRATEGY.md prices ``signal`` with (``PatternIndex.neighbors``): outcomes
    known by the signal bar's close, same symbol first, same volatility regime when enough;
    ``k`` (default ``params.knn_k``) and, with ``same_setup``, only setups of the signal's kind."""
    setup = signal.entry.setup if same_setup and signal.entry is not None else None
    return library.index.neighbors(
        np.asarray(signal.vector, dtype=np.float32),
        asof=pd.Timestamp(signal.asof) + INTERVAL_DELTA[signal.interval], symbol=signal.symbol,
        vol_regime=signal.vol_regime, interval=signal.interval, setup=setup, k=k, params=params)


def library_positions(library: Library, neighbors: pd.DataFrame) -> np.ndarray:
    """Row positions in ``library.rows`` of the given neighbours (matched on symbol, interval
    and signal-bar time), for marking them on the projection."""
    if neighbors.empty or library.rows.empty:
        return np.zeros(0, dtype=np.int64)
    keys = library.rows[["symbol", "interval", "ts"]].assign(
        ts=pd.to_datetime(library.rows["ts"], utc=True), _pos=np.arange(len(library.rows)))
    wanted = neighbors[["symbol", "interval", "ts"]].assign(
        ts=pd.to_datetime(neighbors["ts"], utc=True))
    found = wanted.merge(keys, on=["symbol", "interval", "ts"], how="inner")["_pos"]
    return found.to_numpy(dtype=np.int64)


def neighbor_table(neighbors: Any) -> pd.DataFrame:
    """Neighbours for display: most similar first, times by the bar-time rule of their interval
    (``for_display``: daily signal bars and exits as trading dates, intraday in New York)."""
    frame = neighbors.frame.copy()
    keep = ["symbol", "ts", "side", "setup", "vol_regime", "similarity", "realized_r",
            "exit_reason", "hold_bars", "exit_ts"]
    intervals = set(frame["interval"].dropna()) if "interval" in frame else set()
    return for_display(frame[[c for c in keep if c in frame]],
                       interval=intervals.pop() if len(intervals) == 1 else None)


def neighbor_paths(
    neighbors: pd.DataFrame,
    *,
    interval: str,
    load_bars: Callable[[str, str, pd.Timestamp], pd.DataFrame],
    params: StrategyParams | None = None,
    limit: int = 12,
) -> list[dict[str, Any]]:
    """Price paths after entry of the first ``limit`` neighbours, in R: ``(close - entry) ·
    side / |entry - stop|`` for the bars from the signal bar to the exit bar plus a few (0 =
    entry, −1 = the stop). ``load_bars(symbol, interval, since)`` gives bars covering the
    neighbour's signal bar; when the library does not know a neighbour's entry and stop they are
    read from the signal frame row of that bar (the plan that was simulated). Neighbours whose
    bars or plan cannot be found are skipped."""
    params = params or StrategyParams()
    tail = BARS_PER_DAY[interval]
    paths: list[dict[str, Any]] = []
    frames: dict[str, pd.DataFrame] = {}
    for row in neighbors.head(limit).itertuples(index=False):
        ts = pd.Timestamp(row.ts)
        try:
            bars = load_bars(row.symbol, interval, ts)
        except (MarketDataError, ValueError):
            continue
        pos = bars.index.get_indexer([ts])[0]
        if pos < 0:
            continue
        entry, stop = getattr(row, "entry", None), getattr(row, "stop", None)
        if entry is None or stop is None or not (np.isfinite(entry) and np.isfinite(stop)):
            if row.symbol not in frames:
                frames[row.symbol] = build_signal_frame(bars, params=params, interval=interval)
            plan = frames[row.symbol].iloc[pos]
            entry, stop = float(plan["entry"]), float(plan["stop"])
        risk = abs(entry - stop)
        if not np.isfinite(risk) or risk <= 0:
            continue
        sign = 1.0 if row.side == "long" else -1.0
        hold = int(row.hold_bars) if row.hold_bars is not None and not pd.isna(row.hold_bars) \
            else 2 * tail
        closes = bars["close"].to_numpy(dtype=float)[pos:pos + hold + 2 + tail // 2]
        paths.append({
            "path": (closes - entry) * sign / risk,
            "realized_r": float(row.realized_r),
            "title": f"{row.symbol} {bar_time_text(ts, interval)[:10]} {row.side} "
                     f"{float(row.realized_r):+.1f}R",
        })
    return paths
