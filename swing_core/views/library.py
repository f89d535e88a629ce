"""The setup library for Pattern Search: library rows from backtest trades, the stored or DEMO
library, point-in-time neighbours, their price paths in R and a 2-D projection."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA, StrategyParams
from swing_core.errors import MarketDataError
from swing_core.features import VECTOR_COLUMNS
from swing_core.frame import build_signal_frame
from swing_core.patterns import PatternIndex
from swing_core.patterns.backends import VECTOR_DIM
from swing_core.timefmt import bar_time_texts
from swing_core.views.backtest import _trades_frame
from swing_core.views.formatting import bar_time_text, for_display


def _pca_axes(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(centre, the first two principal axes (2, d)) of the rows of ``data`` (n >= 1)."""
    centre = data.mean(axis=0)
    if len(data) < 2:
        return centre, np.eye(data.shape[1])[:2]
    # the axes of the (d, d) covariance: the same as an SVD of the centred rows, in O(n d^2)
    # with no (n, d) temporaries beyond one
    centred = data - centre
    _, vectors = np.linalg.eigh(centred.T @ centred)
    axes = vectors[:, ::-1][:, :2].T
    axes *= np.where(axes[np.arange(2), np.abs(axes).argmax(axis=1)] < 0, -1.0, 1.0)[:, None]
    return centre, axes


def project_2d(matrix: np.ndarray, *, extra: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D principal-component projection of setup vectors (rows) for drawing; ``extra`` rows
    (e.g. the current setup) are projected on the same axes. Returns (xy, extra_xy)."""
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        return np.zeros((0, 2)), None
    centre, axes = _pca_axes(data)
    xy = (data - centre) @ axes.T
    extra_xy = None
    if extra is not None:
        extra_xy = (np.atleast_2d(np.asarray(extra, dtype=np.float64)) - centre) @ axes.T
    return xy, extra_xy


@dataclass(frozen=True)
class ProjectionView:
    """What the Pattern Search map draws: at most ``max_points`` library points (thinned
    evenly), their outcome and hover text (made for those points only), the current setup and
    the neighbours' positions, all on the library's 2-D projection."""

    xy: np.ndarray
    outcome_r: np.ndarray
    hover: np.ndarray
    current: np.ndarray | None
    neighbors: np.ndarray | None
    total: int


#: Library points drawn on the map at most (evenly thinned beyond).
MAP_POINTS = 20_000


def projection_view(library: Library, vector: Any, neighbors: pd.DataFrame) -> ProjectionView:
    """The library map for one setup. What depends on the library only (its projection, the
    points drawn, their hover text) is computed once per library object and kept with it
    (:attr:`Library.map_points`); a rerun projects the setup and finds the neighbours' rows."""
    xy, centre, axes = library.projection
    keep, outcome_r, hover = library.map_points
    current = None
    if len(xy) and vector is not None:
        current = ((np.asarray(vector, dtype=np.float64).reshape(1, -1) - centre) @ axes.T)[0]
    marked = library_positions(library, neighbors)
    return ProjectionView(xy=xy[keep], outcome_r=outcome_r, hover=hover, total=len(xy),
                          current=current, neighbors=xy[marked] if len(marked) else None)


def _hover_texts(rows: pd.DataFrame) -> np.ndarray:
    """"SYMBOL bar-time side setup · +1.23R" per row, vectorized (times by their interval)."""
    if rows.empty:
        return np.zeros(0, dtype=object)
    times = bar_time_texts(rows["ts"], rows["interval"].astype(str))  # each row's interval
    r = pd.Series(rows["realized_r"].to_numpy(float)).map("{:+.2f}R".format).to_numpy(object)
    parts = [rows["symbol"].astype(str).to_numpy(object), times,
             rows["side"].astype(str).to_numpy(object), rows["setup"].astype(str).to_numpy(object)]
    return (parts[0] + " " + parts[1] + " " + parts[2] + " " + parts[3] + " · " + r)


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

    @functools.cached_property
    def projection(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(xy (n, 2), centre, axes): the library's 2-D projection, computed on first use and
        kept with the library (the app caches the library, so reruns reuse it)."""
        data = np.asarray(self.matrix, dtype=np.float64)
        if data.ndim != 2 or len(data) == 0:
            return np.zeros((0, 2)), np.zeros(VECTOR_DIM), np.zeros((2, VECTOR_DIM))
        centre, axes = _pca_axes(data)
        return (data - centre) @ axes.T, centre, axes

    @functools.cached_property
    def map_points(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(positions drawn, their realized R, their hover text): at most :data:`MAP_POINTS`
        rows, evenly spaced; hover text made for those rows only."""
        n = len(self.rows)
        keep = np.arange(0, n, max(1, -(-n // MAP_POINTS)))
        rows = self.rows.iloc[keep]
        r = rows["realized_r"].to_numpy(float) if n else np.zeros(0)
        return keep, r, _hover_texts(rows)

    @functools.cached_property
    def positions(self) -> pd.Index:
        """Row positions by (symbol, interval, signal-bar time in UTC nanoseconds)."""
        ts = pd.to_datetime(self.rows["ts"], utc=True).astype("int64") if len(self.rows) \
            else pd.Series(dtype="int64")
        return pd.MultiIndex.from_arrays([self.rows["symbol"].astype(str).to_numpy(),
                                          self.rows["interval"].astype(str).to_numpy(),
                                          ts.to_numpy()])


def stored_library(engine: Any, interval: str, *, index: Any = None) -> Library:
    """The stored setup vectors with a known outcome for ``interval`` (``index``: an already
    loaded ``PatternIndex`` over them, e.g. the services' one)."""
    if index is None:
        index = PatternIndex.from_db(engine, interval=interval)
    else:
        index.refresh(engine)  # what was stored since it was loaded (cheap when nothing was)
    meta, matrix = index.library()  # the index's own rows: no second read of the library
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
    index = library.positions
    wanted = pd.MultiIndex.from_arrays([
        neighbors["symbol"].astype(str).to_numpy(), neighbors["interval"].astype(str).to_numpy(),
        pd.to_datetime(neighbors["ts"], utc=True).astype("int64").to_numpy()])
    if index.is_unique:
        found = index.get_indexer(wanted)
        return found[found >= 0].astype(np.int64)
    hits = [np.flatnonzero(index == key) for key in wanted]  # rare: the same bar twice
    return np.concatenate(hits).astype(np.int64) if hits else np.zeros(0, dtype=np.int64)


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
