"""Point-in-time pattern priors for whole batches of signals (the backtest's prior kernel).

STRATEGY.md, "Pattern priors": k nearest setup vectors by cosine among outcomes *known by the
as-of time* (``known_at <= asof``: the close of the exit bar no later than the close of the
signal bar); the same symbol first, all symbols when the symbol has none yet; then keep those in
the same volatility regime unless fewer than ``params.min_regime_neighbors`` remain.

Batch kernel: one similarity block per chunk of queries (queries sorted by as-of time, library
sorted by known time, so each chunk only looks at the library prefix it may know). Ties at the
k-th similarity are broken by library order (oldest known first) so a prior never depends on
rows the query could not see, and similarities are rounded to 1e-9 so BLAS blocking of a
different-sized matrix cannot flip a choice: recomputing on truncated data gives identical
priors (the look-ahead check relies on it).

Pluggable: the backtest takes any ``PriorFn`` with the signature of :func:`knn_priors`;
:func:`pattern_index_priors` adapts ``swing_core.patterns.PatternIndex.query_many`` (the
library engineer's index, e.g. loaded from the database) to it. Both follow the same rules; the
pattern index re-normalizes stored vectors, so neighbours whose similarities differ by less
than ~1e-7 may be ordered differently at the k-th place.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import StrategyParams

__all__ = [
    "PRIOR_COLUMNS",
    "OutcomeLibrary",
    "PriorFn",
    "PriorQueries",
    "blend_confidence",
    "knn_priors",
    "pattern_index_priors",
]

PRIOR_COLUMNS: tuple[str, ...] = (
    "prior_n", "prior_win_rate", "prior_avg_r", "prior_avg_win_r", "prior_avg_loss_r",
    "prior_profit_factor", "prior_median_hold_bars", "prior_n_stop", "prior_n_target",
    "prior_n_time", "expected_r", "prior_scope",
)
_BLOCK_CELLS = 1_000_000  # similarity cells per block at most (float64: 8 MB)
_BLOCK_ROWS = (16, 64)  # queries per block (bounds; small blocks track the growing prefix)


@dataclass(frozen=True)
class OutcomeLibrary:
    """Known outcomes: ``vectors`` float32 (n, 16), ``known_at`` datetime64[ns] (UTC, when the
    outcome became known), ``realized_r``, ``hold_bars``, ``exit_reason``, ``symbol``,
    ``vol_regime``. Rows are kept sorted by (known_at, original order)."""

    vectors: np.ndarray
    known_at: np.ndarray
    realized_r: np.ndarray
    hold_bars: np.ndarray
    exit_reason: np.ndarray
    symbol: np.ndarray
    vol_regime: np.ndarray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])

    @classmethod
    def empty(cls, dim: int = 16) -> OutcomeLibrary:
        return cls(np.empty((0, dim), np.float32), np.empty(0, "datetime64[ns]"),
                   np.empty(0), np.empty(0, np.int64), np.empty(0, object),
                   np.empty(0, object), np.empty(0, object))

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, vector_columns: list[str]) -> OutcomeLibrary:
        """From rows with the vector columns, ``known_at`` (UTC), realized_r, hold_bars,
        exit_reason, symbol, vol_regime; rows without a realized R are dropped."""
        rows = frame[np.isfinite(frame["realized_r"].to_numpy(float))]
        known = pd.to_datetime(rows["known_at"], utc=True)
        order = np.argsort(known.to_numpy(dtype="datetime64[ns]"), kind="stable")
        rows = rows.iloc[order]
        return cls(
            vectors=np.ascontiguousarray(rows[vector_columns].to_numpy(np.float32)),
            known_at=pd.to_datetime(rows["known_at"], utc=True).dt.tz_localize(None)
            .to_numpy(dtype="datetime64[ns]"),
            realized_r=rows["realized_r"].to_numpy(float),
            hold_bars=rows["hold_bars"].fillna(-1).to_numpy(np.int64),
            exit_reason=rows["exit_reason"].astype(str).to_numpy(object),
            symbol=rows["symbol"].astype(str).to_numpy(object),
            vol_regime=rows["vol_regime"].astype(str).to_numpy(object),
        )

    def concat(self, other: OutcomeLibrary) -> OutcomeLibrary:
        """Both libraries merged, still sorted by known time (stable: self first on ties)."""
        parts = [np.concatenate([getattr(self, f), getattr(other, f)])
                 for f in ("vectors", "known_at", "realized_r", "hold_bars", "exit_reason",
                           "symbol", "vol_regime")]
        order = np.argsort(parts[1], kind="stable")
        return OutcomeLibrary(*(p[order] for p in parts))

    def take(self, mask: np.ndarray) -> OutcomeLibrary:
        return OutcomeLibrary(self.vectors[mask], self.known_at[mask], self.realized_r[mask],
                              self.hold_bars[mask], self.exit_reason[mask], self.symbol[mask],
                              self.vol_regime[mask])


@dataclass(frozen=True)
class PriorQueries:
    """Signals to price: ``vectors`` float32 (m, 16), ``asof`` datetime64[ns] UTC (close of the
    signal bar), ``symbol``, ``vol_regime``."""

    vectors: np.ndarray
    asof: np.ndarray
    symbol: np.ndarray
    vol_regime: np.ndarray

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


#: (queries, library, params) -> DataFrame with PRIOR_COLUMNS, one row per query (same order).
PriorFn = Callable[[PriorQueries, OutcomeLibrary, StrategyParams], pd.DataFrame]


def _select(q: np.ndarray, asof: np.ndarray, lib_vec: np.ndarray, lib_known: np.ndarray,
            k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest known neighbours per query: (indices (m, k'), valid (m, k')).

    ``lib_known`` is sorted, so each query may see a prefix of the library. One
    ``argpartition`` picks the top k; rows where the k-th similarity is tied with rows left
    out are redone so the oldest tied rows win (selection independent of later rows)."""
    m, n = q.shape[0], lib_vec.shape[0]
    kk = min(k, n)
    if m == 0 or n == 0:
        return np.zeros((m, 0), np.int64), np.zeros((m, 0), bool)
    sims = q.astype(np.float64) @ lib_vec.T.astype(np.float64)
    np.round(sims, 9, out=sims)
    visible = np.searchsorted(lib_known, asof, side="right")
    sims[np.arange(n)[None, :] >= visible[:, None]] = -np.inf
    if kk == n:
        idx = np.broadcast_to(np.arange(n), (m, n)).copy()
        return idx, np.take_along_axis(sims, idx, axis=1) > -np.inf
    np.negative(sims, out=sims)  # smallest first: the k nearest are the k smallest
    idx = np.argpartition(sims, kk - 1, axis=1)[:, :kk]
    top = np.take_along_axis(sims, idx, axis=1)
    kth = top.max(axis=1)
    tied_all = (sims == kth[:, None]).sum(axis=1)
    tied_top = (top == kth[:, None]).sum(axis=1)
    for i in np.flatnonzero((tied_all > tied_top) & (kth < np.inf)):
        row = sims[i]
        above = np.flatnonzero(row < kth[i])
        tied = np.flatnonzero(row == kth[i])[: kk - above.size]
        idx[i] = np.concatenate([above, tied])
    return idx, np.take_along_axis(sims, idx, axis=1) < np.inf


def _neighbours(queries: PriorQueries, library: OutcomeLibrary, rows: np.ndarray, k: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Neighbours of ``queries[rows]`` in ``library``, in blocks over the known prefix."""
    out_idx = np.zeros((rows.size, min(k, len(library))), np.int64)
    out_valid = np.zeros(out_idx.shape, bool)
    if rows.size == 0 or len(library) == 0:
        return out_idx, out_valid
    order = rows[np.argsort(queries.asof[rows], kind="stable")]
    position = np.empty(queries.asof.shape[0], np.int64)
    position[rows] = np.arange(rows.size)
    start = 0
    while start < order.size:
        known_n = np.searchsorted(library.known_at, queries.asof[order[start]], side="right")
        # small blocks: the visible prefix grows with time, so each block scans less
        block = int(np.clip(_BLOCK_CELLS // max(int(known_n), 1), *_BLOCK_ROWS))
        chunk = order[start:start + block]
        prefix = int(np.searchsorted(library.known_at, queries.asof[chunk].max(), side="right"))
        idx, valid = _select(queries.vectors[chunk], queries.asof[chunk],
                             library.vectors[:prefix], library.known_at[:prefix], k)
        out_idx[position[chunk], :idx.shape[1]] = idx
        out_valid[position[chunk], :idx.shape[1]] = valid
        start += chunk.size
    return out_idx, out_valid


@functools.cache
def _blas() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def knn_priors(queries: PriorQueries, library: OutcomeLibrary, params: StrategyParams
               ) -> pd.DataFrame:
    """Pattern priors of every query from outcomes known at its as-of time (see module doc).

    The similarity blocks are small (k=16 columns), where a multi-threaded BLAS only waits for
    its threads (badly so on a busy 2-core box): one BLAS thread is used meanwhile."""
    with _blas().limit(limits=1, user_api="blas"):
        return _knn_priors(queries, library, params)


def _knn_priors(queries: PriorQueries, library: OutcomeLibrary, params: StrategyParams
                ) -> pd.DataFrame:
    m = len(queries)
    k = params.knn_k
    width = min(k, len(library))
    idx = np.zeros((m, width), np.int64)
    valid = np.zeros((m, width), bool)
    scope = np.full(m, "none", dtype=object)
    for symbol in np.unique(queries.symbol.astype(str)):
        rows = np.flatnonzero(queries.symbol == symbol)
        own = library.symbol == symbol
        if not own.any():
            continue
        own_idx = np.flatnonzero(own)
        sub_idx, sub_valid = _neighbours(queries, library.take(own), rows, k)
        has = sub_valid.any(axis=1)
        idx[rows[has], :sub_idx.shape[1]] = own_idx[sub_idx[has]]
        valid[rows[has], :sub_idx.shape[1]] = sub_valid[has]
        scope[rows[has]] = "symbol"
    fallback = np.flatnonzero(scope == "none")
    if fallback.size:
        all_idx, all_valid = _neighbours(queries, library, fallback, k)
        has = all_valid.any(axis=1)
        idx[fallback[has]] = all_idx[has]
        valid[fallback[has]] = all_valid[has]
        scope[fallback[has]] = "all"
    if width:
        same_regime = valid & (library.vol_regime[idx] == queries.vol_regime[:, None])
        use_regime = same_regime.sum(axis=1) >= params.min_regime_neighbors
        valid = np.where(use_regime[:, None], same_regime, valid)
    return _stats(library, idx, valid, scope)


def _stats(library: OutcomeLibrary, idx: np.ndarray, keep: np.ndarray, scope: np.ndarray
           ) -> pd.DataFrame:
    r = np.where(keep, library.realized_r[idx] if idx.size else np.zeros(idx.shape), np.nan)
    n = keep.sum(axis=1)
    win = keep & (r > 0)
    loss = keep & ~(r > 0)
    n_win, n_loss = win.sum(axis=1), loss.sum(axis=1)
    sum_win = np.where(win, r, 0.0).sum(axis=1)
    sum_loss = np.where(loss, r, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(n > 0, n_win / n, np.nan)
        avg_r = np.where(n > 0, np.nansum(r, axis=1) / n, np.nan)
        avg_win = np.where(n_win > 0, sum_win / n_win, np.nan)
        avg_loss = np.where(n_loss > 0, sum_loss / n_loss, np.nan)
        profit_factor = np.where(sum_loss < 0, sum_win / -sum_loss, np.nan)
    expected = np.where(n > 0, np.nan_to_num(win_rate * np.nan_to_num(avg_win))
                        + (1 - win_rate) * np.nan_to_num(avg_loss), np.nan)
    hold = np.where(keep, library.hold_bars[idx] if idx.size else 0, np.nan).astype(float)
    reasons = library.exit_reason[idx] if idx.size else np.zeros(idx.shape, object)
    median_hold = _row_median(hold, n)
    return pd.DataFrame({
        "prior_n": n.astype(np.int64),
        "prior_win_rate": win_rate,
        "prior_avg_r": avg_r,
        "prior_avg_win_r": avg_win,
        "prior_avg_loss_r": avg_loss,
        "prior_profit_factor": profit_factor,
        "prior_median_hold_bars": median_hold,
        "prior_n_stop": (keep & (reasons == "STOP")).sum(axis=1),
        "prior_n_target": (keep & (reasons == "TARGET")).sum(axis=1),
        "prior_n_time": (keep & (reasons == "TIME")).sum(axis=1),
        "expected_r": expected,
        "prior_scope": scope,
    })


def _row_median(values: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of each row's ``n`` finite values (NaN elsewhere), without ``nanmedian``."""
    if values.shape[1] == 0:
        return np.full(n.shape, np.nan)
    ordered = np.sort(values, axis=1)  # NaN last
    lo = np.clip((n - 1) // 2, 0, None)[:, None]
    hi = np.clip(n // 2, 0, None)[:, None]
    median = (np.take_along_axis(ordered, lo, 1) + np.take_along_axis(ordered, hi, 1))[:, 0] / 2
    return np.where(n > 0, median, np.nan)


def blend_confidence(confidence: np.ndarray, prior_avg_r: np.ndarray, prior_n: np.ndarray, *,
                     params: StrategyParams) -> np.ndarray:
    """STRATEGY.md, "Confidence": (1 − w)·confidence + w·clip(0.5 + avg R / 4, 0, 1) where a
    prior exists (w = ``params.prior_weight``), clipped to [0, 1]."""
    w = params.prior_weight
    prior_term = np.clip(0.5 + np.nan_to_num(prior_avg_r) / 4.0, 0.0, 1.0)
    blended = np.where(np.asarray(prior_n) > 0, (1 - w) * confidence + w * prior_term,
                       confidence)
    return np.clip(blended, 0.0, 1.0)


def pattern_index_priors(index: Any = None, *, interval: str | None = None) -> PriorFn:
    """A :data:`PriorFn` answered by ``swing_core.patterns.PatternIndex.query_many``.

    ``index``: a PatternIndex (its stored rows are searched point in time too), or None for an
    empty one; the run's own outcomes go in as ``extra`` rows on each call."""
    from swing_core.patterns import PatternIndex

    pattern_index = index if index is not None else PatternIndex(interval=interval)

    def prior_fn(queries: PriorQueries, library: OutcomeLibrary, params: StrategyParams
                 ) -> pd.DataFrame:
        known = pd.to_datetime(library.known_at).tz_localize("UTC")
        extra = pd.DataFrame({
            "symbol": library.symbol, "ts": known, "exit_ts": known,
            "realized_r": library.realized_r, "hold_bars": library.hold_bars,
            "exit_reason": library.exit_reason, "vol_regime": library.vol_regime,
            "interval": pattern_index.interval or interval or "",
            **{f"vec_{j:02d}": library.vectors[:, j] for j in range(library.vectors.shape[1])},
        })
        batch = pattern_index.query_many(
            queries.vectors, pd.to_datetime(queries.asof).tz_localize("UTC"), queries.symbol,
            queries.vol_regime, params=params, extra=extra)
        frame = batch.to_frame()
        out = pd.DataFrame({
            "prior_n": frame["n"].to_numpy(np.int64),
            "prior_win_rate": frame["win_rate"], "prior_avg_r": frame["avg_r"],
            "prior_avg_win_r": frame["avg_win_r"], "prior_avg_loss_r": frame["avg_loss_r"],
            "prior_profit_factor": frame["profit_factor"].replace(np.inf, np.nan),
            "prior_median_hold_bars": frame["median_hold_bars"],
            "expected_r": frame["expected_r"], "prior_scope": frame["scope"].to_numpy(object),
        })
        for reason in ("STOP", "TARGET", "TIME"):
            column = f"exit_{reason}"
            out[f"prior_n_{reason.lower()}"] = (frame[column].to_numpy(np.int64)
                                                if column in frame else 0)
        return out[list(PRIOR_COLUMNS)]

    return prior_fn
