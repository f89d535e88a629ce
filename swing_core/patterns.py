"""Pattern priors: a point-in-time nearest-neighbour index over stored setup vectors.

STRATEGY.md, "Pattern priors": the k nearest setup vectors by cosine among those whose outcome
was *known by the as-of time* (``exit_ts <= asof``, exit_ts = close of the exit bar); the same
symbol first, all symbols when the symbol has none; then keep the neighbours in the query's
volatility regime unless fewer than ``params.min_regime_neighbors`` remain. Optional pre-filters:
same setup kind, same interval.

How it stays fast and honest:

- Only rows with a known outcome are indexed, kept **sorted by exit_ts** (stable in arrival
  order), so "known by t" is always a prefix of the rows (or of a symbol's rows). Nothing is
  over-fetched and filtered: the search only ever looks at rows the query was allowed to see.
- Vectors are L2-normalized float32, so cosine = dot. The kernel (:func:`exact_topk`) is a
  float32 matrix product plus a partial sort, then the few candidates within 2.5e-6 of the k-th
  score are re-scored in float64 and ordered by (similarity desc, row asc): the result equals an
  exact float64 brute force, ties broken towards the earliest-known row.
- The vectors sit behind :class:`VectorIndex` (build / add / search over a prefix), so FAISS or
  int8 backends can replace the default later. ``"sklearn"`` (the default,
  ``Settings.pattern_backend``) keeps a ``NearestNeighbors(metric="cosine", algorithm="brute")``
  fitted on the same float32 matrix (a view, no copy) and answers with it where it is
  competitive: unrestricted batches of >= 256 queries over <= 10,000 rows (1.5-2x the kernel's
  time there). Measured on this project's shared 2-core box (numpy 2.4, scikit-learn 1.9, one
  BLAS thread, ``benchmarks/bench_patterns.py``), its per-call validation (~0.7 ms) and
  re-normalization of the whole matrix on every call make ``kneighbors`` 6-18x slower than a
  bare float32 ``matrix @ q`` + ``argpartition`` for single queries (1k rows: 0.70 vs 0.04 ms;
  100k: 16.9 vs 1.7 ms; 1M: 76 vs 13 ms) and 8x slower for a 256-query batch over 100k rows
  (610 vs 78 ms CPU); and it cannot restrict a search to the point-in-time prefix. Those go to
  the kernel.
- Batches (:meth:`PatternIndex.query_many`, for walk-forward backtests) run the same kernel on
  blocks of queries sorted by as-of time, each block scanning only its library prefix in growing
  chunks with a running threshold, and accept extra in-memory rows (earlier trades of the same
  run) that are searched alongside the stored library under the same point-in-time rule.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import pandas as pd

from swing_core import perf
from swing_core.config import BARS_PER_DAY, StrategyParams, get_settings

__all__ = [
    "NEIGHBOR_COLUMNS",
    "VECTOR_DIM",
    "Neighbor",
    "Neighbors",
    "NumpyVectorIndex",
    "PatternIndex",
    "PriorBatch",
    "PriorStats",
    "SklearnVectorIndex",
    "VectorIndex",
    "blend_confidence",
    "exact_topk",
    "make_vector_index",
    "neighbor_stats",
]

VECTOR_DIM = 16
VECTOR_COLUMNS = [f"vec_{i:02d}" for i in range(VECTOR_DIM)]

_EPS = 2.5e-6  # > 2x the float32 rounding of a 16-term dot product of unit vectors (~1e-6)
_EXTRA = 16  # float32 candidates kept beyond k so near-ties can be settled in float64
_DIRECT_CELLS = 1 << 22  # score cells computed in one go before switching to chunks
_BLOCK = 128  # queries per block in the chunked kernel
_FIRST_CHUNK = 1024  # library rows in a block's first chunk (then doubling up to _MAX_CHUNK)
_MAX_CHUNK = 8192
_NEVER = np.iinfo(np.int64).max  # as-of "no restriction"


# --------------------------------------------------------------------------- the kernel


@functools.cache
def _blas_controller() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _one_blas_thread() -> Any:
    """Small float32 GEMMs run fastest on one BLAS thread; OpenBLAS' spinning worker threads
    make them 5-20x slower when other processes share the cores."""
    return _blas_controller().limit(limits=1, user_api="blas")


def _finish(queries: np.ndarray, matrix: np.ndarray, cand: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """Top k per query among its candidate rows ``cand`` (m, w), -1 padded, by float64 cosine
    (the stored rows' own norms, within float32 rounding of 1, are divided out); ties by row."""
    m = queries.shape[0]
    out_s, out_i = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
    for s0 in range(0, m, 2048):  # bounded temporaries: (2048, w, 16) float64
        c = cand[s0:s0 + 2048]
        valid = c >= 0
        rows = matrix[np.maximum(c, 0)].astype(np.float64)
        q = queries[s0:s0 + 2048].astype(np.float64)
        norms = np.sqrt(np.einsum("mwd,mwd->mw", rows, rows)
                        * np.einsum("md,md->m", q, q)[:, None])
        sims = np.einsum("mwd,md->mw", rows, q) / np.where(norms > 0, norms, 1.0)
        sims[~valid] = -np.inf
        order = np.lexsort((np.where(valid, c, _NEVER), -sims), axis=1)[:, :k]
        width = order.shape[1]
        out_s[s0:s0 + 2048, :width] = np.take_along_axis(sims, order, axis=1)
        out_i[s0:s0 + 2048, :width] = np.take_along_axis(c, order, axis=1)
    out_i[np.isneginf(out_s)] = -1
    return out_s, out_i


def _padded(flat: np.ndarray, m: int, width: int) -> np.ndarray:
    """Row-major flat indices of an (m, width) mask as (m, max count) column lists, -1 padded."""
    r, c = np.divmod(flat, max(width, 1))
    counts = np.bincount(r, minlength=m)
    out = np.full((m, max(int(counts.max()) if r.size else 0, 1)), -1, np.int64)
    out[r, np.arange(r.size) - np.concatenate(([0], np.cumsum(counts)[:-1]))[r]] = c
    return out


def _direct(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """All scores at once; candidates = every score within _EPS of the row's k-th best."""
    m = queries.shape[0]
    width = int(limits.max())
    scores = queries.astype(np.float32) @ matrix[:width].T
    if (limits < width).any():
        scores[np.arange(width)[None, :] >= limits[:, None]] = -np.inf
    if width > k:
        kth = np.partition(scores, width - k, axis=1)[:, width - k]
        floor = np.where(np.isfinite(kth), kth - _EPS, np.inf).astype(np.float32)
        candidates = (scores >= floor[:, None]) | (~np.isfinite(kth))[:, None]
        flat = np.flatnonzero(candidates & (scores > -np.inf))
    else:
        flat = np.flatnonzero(scores > -np.inf)
    return _finish(queries, matrix, _padded(flat, m, width), k)


def _merge(top_s: np.ndarray, top_c: np.ndarray, scores: np.ndarray, tau: np.ndarray,
           c0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Merge a chunk's scores (B, w) into the running float32 top lists (B, keep)."""
    b, w = scores.shape
    mask = scores > tau[:, None]
    if w % 8 == 0:  # skip all-zero 8-byte words: most of the mask is False after warm-up
        words = np.flatnonzero(mask.reshape(-1).view(np.uint64))
        flat = (words[:, None] * 8 + np.arange(8)).ravel()
        flat = flat[mask.reshape(-1)[flat]]
    else:
        flat = np.flatnonzero(mask)
    if flat.size == 0:
        return top_s, top_c, tau
    r, c = np.divmod(flat, w)
    counts = np.bincount(r, minlength=b)
    rank = np.arange(r.size) - np.concatenate(([0], np.cumsum(counts)[:-1]))[r]
    pad_s = np.full((b, int(counts.max())), -np.inf, np.float32)
    pad_c = np.full(pad_s.shape, -1, np.int64)
    pad_s[r, rank] = scores[r, c]
    pad_c[r, rank] = c + c0
    all_s = np.concatenate([top_s, pad_s], axis=1)
    all_c = np.concatenate([top_c, pad_c], axis=1)
    keep = top_s.shape[1]
    part = np.argpartition(-all_s, keep - 1, axis=1)[:, :keep]
    top_s = np.take_along_axis(all_s, part, axis=1)
    return top_s, np.take_along_axis(all_c, part, axis=1), top_s.min(axis=1)


def _chunked(queries: np.ndarray, matrix: np.ndarray, limits: np.ndarray, k: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """Blocks of queries (sorted by limit) scan their prefix in growing chunks, keeping the
    k + _EXTRA best float32 scores; rows whose margin is too thin are redone directly."""
    m = queries.shape[0]
    keep = k + _EXTRA
    order = np.argsort(limits, kind="stable")
    found = np.full((m, keep), -1, np.int64)
    unsettled = []
    buf = np.empty((_BLOCK, _MAX_CHUNK), np.float32)
    for b0 in range(0, m, _BLOCK):
        rows = order[b0:b0 + _BLOCK]
        lim = limits[rows]
        qb = np.ascontiguousarray(queries[rows], dtype=np.float32)
        top_s = np.full((rows.size, keep), -np.inf, np.float32)
        top_c = np.full((rows.size, keep), -1, np.int64)
        tau = np.full(rows.size, -np.inf, np.float32)
        c0, size, width = 0, _FIRST_CHUNK, int(lim.max())
        while c0 < width:
            c1 = min(c0 + size, width)
            scores = buf[:rows.size, :c1 - c0]
            np.matmul(qb, matrix[c0:c1].T, out=scores)
            for i in np.flatnonzero(lim < c1):
                scores[i, max(int(lim[i]) - c0, 0):] = -np.inf
            top_s, top_c, tau = _merge(top_s, top_c, scores, tau, c0)
            c0, size = c1, min(size * 2, _MAX_CHUNK)
        ranked = -np.sort(-top_s, axis=1)
        settled = ~np.isfinite(ranked[:, -1]) | (ranked[:, -1] < ranked[:, k - 1] - _EPS)
        found[rows] = np.where(np.isfinite(top_s), top_c, -1)
        unsettled.append(rows[~settled])
    out_s, out_i = _finish(queries, matrix, found, k)
    redo = np.concatenate(unsettled)
    if redo.size:
        out_s[redo], out_i[redo] = _direct(queries[redo], matrix, limits[redo], k)
    return out_s, out_i


def exact_topk(queries: np.ndarray, matrix: np.ndarray, k: int, *,
               limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``matrix`` with the largest dot product with each query.

    ``queries`` (m, d), L2-normalized (float64 keeps them exact); ``matrix`` (n, d) float32
    with L2-normalized rows (dot = cosine). ``limits`` (m,): query i may only see rows
    ``[0, limits[i])`` (the point-in-time prefix); default all. Returns ``(cosine similarity
    float64 (m, k), row int64 (m, k))`` best first, ties by lower row; padded with ``-inf`` /
    ``-1`` when fewer rows are visible. Exact: float32 candidates within a rounding margin of
    the k-th are re-scored as float64 cosines, so the result equals a float64 brute force."""
    q = np.ascontiguousarray(queries, dtype=np.float64).reshape(-1, matrix.shape[1])
    m, n, k = q.shape[0], matrix.shape[0], max(int(k), 0)
    lim = np.full(m, n, np.int64) if limits is None else np.clip(
        np.asarray(limits, dtype=np.int64).reshape(-1), 0, n)
    if m == 0 or k == 0 or n == 0 or int(lim.max()) == 0:
        return np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
    with _one_blas_thread():
        width = int(lim.max())
        if width > 2 * _MAX_CHUNK and m * width > _DIRECT_CELLS:
            return _chunked(q, matrix, lim, k)
        # narrow prefixes: all scores of a block of queries at once
        out_s, out_i = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
        order = np.argsort(lim, kind="stable")
        step = max(1, _DIRECT_CELLS // width)
        for b0 in range(0, m, step):
            rows = order[b0:b0 + step]
            if lim[rows].max() > 0:
                out_s[rows], out_i[rows] = _direct(q[rows], matrix, lim[rows], k)
        return out_s, out_i


# --------------------------------------------------------------------------- vector backends


@runtime_checkable
class VectorIndex(Protocol):
    """Stores float32 unit vectors in row order and finds the k most similar among a prefix."""

    name: str

    def build(self, matrix: np.ndarray) -> None:
        """Replace all rows with ``matrix`` (n, d) float32, rows L2-normalized."""

    def add(self, matrix: np.ndarray) -> None:
        """Append rows at the end."""

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """As :func:`exact_topk` over the stored rows."""

    @property
    def matrix(self) -> np.ndarray:
        """The stored rows (n, d), a read-only view."""

    @property
    def nbytes(self) -> int:
        """Memory held for the vectors, bytes."""

    def __len__(self) -> int: ...


class NumpyVectorIndex:
    """Exact search with the dot-product kernel; rows in a growable float32 buffer."""

    name = "numpy"

    def __init__(self, dim: int = VECTOR_DIM) -> None:
        self._buf = np.empty((0, dim), np.float32)
        self._n = 0

    def build(self, matrix: np.ndarray) -> None:
        self._buf = np.ascontiguousarray(matrix, dtype=np.float32)
        self._n = self._buf.shape[0]
        self._changed()

    def add(self, matrix: np.ndarray) -> None:
        rows = np.asarray(matrix, dtype=np.float32).reshape(-1, self._buf.shape[1])
        need = self._n + rows.shape[0]
        if need > self._buf.shape[0]:  # grow by 1/8: amortized O(1) appends, little slack
            grown = np.empty((max(need, self._n + self._n // 8 + 1024), self._buf.shape[1]),
                             np.float32)
            grown[:self._n] = self._buf[:self._n]
            self._buf = grown
        self._buf[self._n:need] = rows
        self._n = need
        self._changed()

    def _changed(self) -> None:
        pass

    @property
    def matrix(self) -> np.ndarray:
        view = self._buf[:self._n]
        view.flags.writeable = False
        return view

    @property
    def nbytes(self) -> int:
        return int(self._buf.nbytes)

    def __len__(self) -> int:
        return self._n

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        return exact_topk(queries, self.matrix, k, limits=limits)


class SklearnVectorIndex(NumpyVectorIndex):
    """The default backend: a scikit-learn ``NearestNeighbors(metric="cosine",
    algorithm="brute")`` fitted on the stored float32 rows (a view, no copy), used where it is
    competitive: batches of at least ``min_batch`` queries that may see every row of an index of
    at most ``max_rows`` rows. Everything else (single queries, point-in-time prefixes, large
    indexes) goes to the kernel, which is several times faster there (module docstring)."""

    name = "sklearn"
    min_batch = 256
    max_rows = 10_000

    def _changed(self) -> None:
        self._model: Any = None

    def _fitted(self) -> Any:
        if getattr(self, "_model", None) is None:
            import sklearn
            from sklearn.neighbors import NearestNeighbors

            with sklearn.config_context(assume_finite=True):  # rows were checked on the way in
                self._model = NearestNeighbors(metric="cosine", algorithm="brute").fit(
                    self.matrix)
        return self._model

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        q = np.asarray(queries, dtype=np.float64).reshape(-1, self._buf.shape[1])
        n = len(self)
        restricted = limits is not None and bool((np.asarray(limits) < n).any())
        if (restricted or q.shape[0] < self.min_batch or n > self.max_rows or n <= k + _EXTRA
                or k <= 0):
            return exact_topk(q, self.matrix, k, limits=limits)
        import sklearn

        with sklearn.config_context(assume_finite=True), _one_blas_thread():
            _, idx = self._fitted().kneighbors(q.astype(np.float32), n_neighbors=k + _EXTRA)
        sims, pos = _finish(q, self.matrix, idx.astype(np.int64), idx.shape[1])
        # sklearn's float32 cosine can misorder near-ties: redo rows with a thin margin
        thin = sims[:, -1] >= sims[:, k - 1] - 4 * _EPS
        if thin.any():
            sims[thin, :k], pos[thin, :k] = exact_topk(q[thin], self.matrix, k)
        return sims[:, :k], pos[:, :k]


def make_vector_index(backend: str | VectorIndex | None = None, *, dim: int = VECTOR_DIM
                      ) -> VectorIndex:
    """A backend by name ("sklearn", "numpy"; default ``Settings.pattern_backend``) or as given."""
    if backend is not None and not isinstance(backend, str):
        return backend
    name = (backend or get_settings().pattern_backend or "sklearn").strip().lower()
    if name == "sklearn":
        return SklearnVectorIndex(dim)
    if name == "numpy":
        return NumpyVectorIndex(dim)
    raise ValueError(f"Unknown pattern backend {name!r}: choose 'sklearn' or 'numpy' "
                     "(SWING_PATTERN_BACKEND).")


# --------------------------------------------------------------------------- results


def _nan_to_none(value: Any) -> Any:
    return None if isinstance(value, float) and np.isnan(value) else value


@dataclass(frozen=True, eq=False)
class PriorStats:
    """What happened after the neighbours of a setup (STRATEGY.md, "Pattern priors").

    R values are realized R multiples; a win is R > 0. ``profit_factor`` = sum of wins /
    |sum of losses| (``inf`` with wins and no losses). Medians are of ``hold_bars`` (bars from
    entry to exit) and of hold days (hold bars / ``BARS_PER_DAY[interval]`` per neighbour).
    ``scope``: "symbol" (the query's symbol), "all" (every symbol) or "none" (no neighbour);
    ``regime_filtered``: the neighbours were narrowed to the query's volatility regime.
    Undefined values are NaN (``to_dict`` turns them into None)."""

    n: int = 0
    win_rate: float = float("nan")
    avg_r: float = float("nan")
    avg_win_r: float = float("nan")
    avg_loss_r: float = float("nan")
    profit_factor: float = float("nan")
    expected_r: float = float("nan")
    median_hold_bars: float = float("nan")
    median_hold_bars_wins: float = float("nan")
    median_hold_bars_losses: float = float("nan")
    median_hold_days: float = float("nan")
    exit_reasons: dict[str, int] = field(default_factory=dict)
    scope: str = "none"
    regime_filtered: bool = False

    def to_dict(self) -> dict[str, Any]:
        out = {name: _nan_to_none(getattr(self, name)) for name in self.__dataclass_fields__}
        out["exit_reasons"] = dict(self.exit_reasons)
        return out

    def __eq__(self, other: object) -> bool:  # NaN (undefined) equals NaN here
        return isinstance(other, PriorStats) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]


_STAT_FIELDS = ("win_rate", "avg_r", "avg_win_r", "avg_loss_r", "profit_factor", "expected_r",
                "median_hold_bars", "median_hold_bars_wins", "median_hold_bars_losses",
                "median_hold_days")


@dataclass(frozen=True)
class PriorBatch:
    """:class:`PriorStats` of many queries as arrays (row i = query i): ``n`` int64, the float
    statistics (NaN when undefined), ``exit_reason_counts`` (m, len(exit_reason_names)),
    ``scope`` (object: "symbol"/"all"/"none"), ``regime_filtered`` bool."""

    n: np.ndarray
    win_rate: np.ndarray
    avg_r: np.ndarray
    avg_win_r: np.ndarray
    avg_loss_r: np.ndarray
    profit_factor: np.ndarray
    expected_r: np.ndarray
    median_hold_bars: np.ndarray
    median_hold_bars_wins: np.ndarray
    median_hold_bars_losses: np.ndarray
    median_hold_days: np.ndarray
    exit_reason_names: tuple[str, ...]
    exit_reason_counts: np.ndarray
    scope: np.ndarray
    regime_filtered: np.ndarray

    def __len__(self) -> int:
        return int(self.n.shape[0])

    def __getitem__(self, i: int) -> PriorStats:
        counts = self.exit_reason_counts[i]
        return PriorStats(
            n=int(self.n[i]), **{f: float(getattr(self, f)[i]) for f in _STAT_FIELDS},
            exit_reasons={name: int(c) for name, c in zip(self.exit_reason_names, counts,
                                                          strict=True) if c},
            scope=str(self.scope[i]), regime_filtered=bool(self.regime_filtered[i]))

    def to_frame(self, index: Any = None) -> pd.DataFrame:
        """One row per query: n, the statistics, ``exit_<REASON>`` counts, scope,
        regime_filtered."""
        data: dict[str, Any] = {"n": self.n, **{f: getattr(self, f) for f in _STAT_FIELDS}}
        for j, name in enumerate(self.exit_reason_names):
            data[f"exit_{name}"] = self.exit_reason_counts[:, j]
        data["scope"] = self.scope
        data["regime_filtered"] = self.regime_filtered
        return pd.DataFrame(data, index=index)


@dataclass(frozen=True)
class Neighbor:
    """One stored setup near the query, with what is needed to draw its path after entry:
    ``ts`` = open time (UTC) of its signal bar, ``exit_ts`` = when its outcome became known;
    ``entry`` / ``stop`` when the library knew them (else None)."""

    symbol: str
    interval: str
    ts: pd.Timestamp
    exit_ts: pd.Timestamp
    side: str
    setup: str
    vol_regime: str
    similarity: float
    realized_r: float
    exit_reason: str
    hold_bars: int | None
    entry: float | None
    stop: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 UTC strings, NaN as None."""
        out = {name: _nan_to_none(getattr(self, name)) for name in self.__dataclass_fields__}
        out["ts"], out["exit_ts"] = self.ts.isoformat(), self.exit_ts.isoformat()
        return out


NEIGHBOR_COLUMNS = ["symbol", "interval", "ts", "exit_ts", "side", "setup", "vol_regime",
                    "similarity", "realized_r", "exit_reason", "hold_bars", "entry", "stop"]


@dataclass(frozen=True)
class Neighbors:
    """The neighbours of one query, most similar first, with the scope used, whether the regime
    filter applied, the as-of time (None: unrestricted) and the k asked for. ``data``: one array
    per :data:`NEIGHBOR_COLUMNS` (``ts`` / ``exit_ts`` as int64 UTC nanoseconds, ``hold_bars``
    float with NaN when unknown); ``frame`` builds the DataFrame on first use (tz-aware
    timestamps, ``hold_bars`` Int64), so answering a query never pays for pandas."""

    data: dict[str, np.ndarray] = field(repr=False)
    scope: str
    regime_filtered: bool
    asof: pd.Timestamp | None
    k: int

    def __len__(self) -> int:
        return int(self.data["similarity"].shape[0])

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        data = dict(self.data)
        for name in ("ts", "exit_ts"):
            data[name] = pd.to_datetime(data[name], utc=True)
        data["hold_bars"] = pd.array(data["hold_bars"], dtype="Int64")
        return pd.DataFrame(data, columns=NEIGHBOR_COLUMNS)

    def __iter__(self) -> Iterator[Neighbor]:
        for row in self.frame.itertuples(index=False):
            values = row._asdict()
            values["hold_bars"] = None if pd.isna(values["hold_bars"]) else int(values["hold_bars"])
            for name in ("entry", "stop"):
                values[name] = None if pd.isna(values[name]) else float(values[name])
            yield Neighbor(**values)

    def records(self) -> list[Neighbor]:
        return list(self)

    def stats(self) -> PriorStats:
        return neighbor_stats(self)

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "regime_filtered": self.regime_filtered,
                "asof": None if self.asof is None else self.asof.isoformat(), "k": self.k,
                "neighbors": [n.to_dict() for n in self]}


# --------------------------------------------------------------------------- statistics


def _stat_arrays(r: np.ndarray, hold: np.ndarray, days: np.ndarray, keep: np.ndarray
                 ) -> dict[str, np.ndarray]:
    """Statistics per row of (m, k) arrays over the cells where ``keep``."""
    r = np.where(keep, r, np.nan)
    n = keep.sum(axis=1)
    win, loss = keep & (r > 0), keep & ~(r > 0)
    n_win, n_loss = win.sum(axis=1), loss.sum(axis=1)
    sum_win = np.where(win, r, 0.0).sum(axis=1)
    sum_loss = np.where(loss, r, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        win_rate = np.where(n > 0, n_win / np.maximum(n, 1), np.nan)
        avg_win = np.where(n_win > 0, sum_win / np.maximum(n_win, 1), np.nan)
        avg_loss = np.where(n_loss > 0, sum_loss / np.maximum(n_loss, 1), np.nan)
        profit_factor = np.where(sum_loss < 0, sum_win / -sum_loss,
                                 np.where(sum_win > 0, np.inf, np.nan))
    out = {
        "n": n.astype(np.int64),
        "win_rate": win_rate,
        "avg_r": np.where(n > 0, np.where(keep, r, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan),
        "avg_win_r": avg_win,
        "avg_loss_r": avg_loss,
        "profit_factor": profit_factor,
        # STRATEGY.md: win rate · avg win R + (1 − win rate) · avg loss R (a side with no trades
        # weighs nothing)
        "expected_r": np.where(n > 0, win_rate * np.nan_to_num(avg_win)
                               + (1 - win_rate) * np.nan_to_num(avg_loss), np.nan),
    }
    for name, mask, values in (("median_hold_bars", keep, hold),
                               ("median_hold_bars_wins", win, hold),
                               ("median_hold_bars_losses", loss, hold),
                               ("median_hold_days", keep, days)):
        out[name] = _row_nanmedian(np.where(mask, values, np.nan))
    return out


def _row_nanmedian(values: np.ndarray) -> np.ndarray:
    """Median of each row ignoring NaN (NaN for a row without values)."""
    if values.shape[1] == 0:
        return np.full(values.shape[0], np.nan)
    ordered = np.sort(values, axis=1)  # NaN sort last
    count = np.isfinite(values).sum(axis=1)
    lo = np.maximum((count - 1) // 2, 0)[:, None]
    hi = np.maximum(count // 2, 0).clip(max=values.shape[1] - 1)[:, None]
    middle = (np.take_along_axis(ordered, lo, 1) + np.take_along_axis(ordered, hi, 1))[:, 0]
    return np.where(count > 0, middle / 2, np.nan)


def _median(values: np.ndarray) -> float:
    values = values[np.isfinite(values)]
    return float(np.median(values)) if values.size else float("nan")


def _stats(r: np.ndarray, hold: np.ndarray, intervals: np.ndarray, reasons: np.ndarray,
           scope: str | None, regime_filtered: bool | None) -> PriorStats:
    """One neighbour set (1-D arrays): the same numbers as :func:`_stat_arrays`, without its
    (m, k) machinery (a single query stays well under a millisecond)."""
    keep = np.isfinite(r)
    r, hold, intervals, reasons = r[keep], hold[keep], intervals[keep], reasons[keep]
    n = int(r.size)
    win = r > 0
    wins, losses = r[win], r[~win]
    win_rate = float(win.mean()) if n else float("nan")
    avg_win = float(wins.mean()) if wins.size else float("nan")
    avg_loss = float(losses.mean()) if losses.size else float("nan")
    sum_win, sum_loss = float(wins.sum()), float(losses.sum())
    profit_factor = (sum_win / -sum_loss if sum_loss < 0
                     else float("inf") if sum_win > 0 else float("nan"))
    per_day = np.array([BARS_PER_DAY.get(i, np.nan) for i in intervals.tolist()], float)
    names, counts = np.unique(reasons.astype(str), return_counts=True)
    return PriorStats(
        n=n, win_rate=win_rate, avg_r=float(r.mean()) if n else float("nan"),
        avg_win_r=avg_win, avg_loss_r=avg_loss, profit_factor=profit_factor,
        expected_r=(win_rate * (avg_win if wins.size else 0.0)
                    + (1 - win_rate) * (avg_loss if losses.size else 0.0)) if n
        else float("nan"),
        median_hold_bars=_median(hold), median_hold_bars_wins=_median(hold[win]),
        median_hold_bars_losses=_median(hold[~win]), median_hold_days=_median(hold / per_day),
        exit_reasons={str(a): int(b) for a, b in zip(names, counts, strict=True)},
        scope=scope if scope is not None else ("all" if n else "none"),
        regime_filtered=bool(regime_filtered))


def neighbor_stats(neighbors: Neighbors | pd.DataFrame, *, scope: str | None = None,
                   regime_filtered: bool | None = None) -> PriorStats:
    """:class:`PriorStats` of a neighbour set: a :class:`Neighbors` or a frame with columns
    ``realized_r``, ``hold_bars`` (bars, may be missing), ``exit_reason`` and ``interval`` (for
    hold days; missing: NaN days). Rows without a realized R are ignored."""
    if isinstance(neighbors, Neighbors):
        data = neighbors.data
        return _stats(data["realized_r"].astype(float), data["hold_bars"].astype(float),
                      data["interval"], data["exit_reason"],
                      neighbors.scope if scope is None else scope,
                      neighbors.regime_filtered if regime_filtered is None else regime_filtered)
    frame = neighbors
    r = pd.to_numeric(frame["realized_r"], errors="coerce").to_numpy(float)
    nothing = np.full(r.shape, np.nan)
    hold = (pd.to_numeric(frame["hold_bars"], errors="coerce").to_numpy(float)
            if "hold_bars" in frame else nothing)
    intervals = frame["interval"].to_numpy(object) if "interval" in frame else nothing
    reasons = frame["exit_reason"].to_numpy(object) if "exit_reason" in frame else \
        np.full(r.shape, "", object)
    return _stats(r, hold, intervals, reasons, scope, regime_filtered)


def blend_confidence(confidence: float, stats: PriorStats | None, *,
                     params: StrategyParams | None = None) -> float:
    """STRATEGY.md, "Confidence": (1 − w)·confidence + w·clip(0.5 + avg R / 4, 0, 1) with
    w = ``params.prior_weight`` (0.4), clipped to [0, 1]. Without neighbours (``stats`` None or
    n = 0) there is no prior and the confidence is only clipped (the original blends a neutral
    0.5 even then)."""
    params = params or StrategyParams()
    conf = float(confidence)
    if stats is not None and stats.n > 0 and np.isfinite(stats.avg_r):
        prior = float(np.clip(0.5 + stats.avg_r / 4.0, 0.0, 1.0))
        conf = (1.0 - params.prior_weight) * conf + params.prior_weight * prior
    return float(np.clip(conf, 0.0, 1.0))


# --------------------------------------------------------------------------- row storage

_CODED = ("symbol", "interval", "side", "setup", "vol_regime", "exit_reason")
_DEFAULTS = {"side": "none", "setup": "none", "vol_regime": "", "exit_reason": ""}
_OPTIONAL_PRICES = ("entry", "stop")


class _Vocab:
    """Names of a categorical column <-> small integer codes (codes never change)."""

    def __init__(self, dtype: type) -> None:
        self.names: list[str] = []
        self._codes: dict[str, int] = {}
        self.dtype = dtype

    def get(self, name: str | None) -> int | None:
        return None if name is None else self._codes.get(str(name))

    def encode(self, values: Any) -> np.ndarray:
        inverse, uniques = pd.factorize(np.asarray(values, dtype=object))
        codes = np.empty(len(uniques), np.int64)
        for j, name in enumerate(uniques):
            code = self._codes.get(str(name))
            if code is None:
                code = self._codes[str(name)] = len(self.names)
                self.names.append(str(name))
            codes[j] = code
        if len(self.names) > np.iinfo(self.dtype).max:
            raise ValueError(f"Too many distinct values ({len(self.names)}) for a pattern column.")
        return codes[inverse].astype(self.dtype) if len(inverse) else np.empty(0, self.dtype)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        return np.asarray(self.names + [""], dtype=object)[codes]


@dataclass
class _Table:
    """Per-row metadata as plain arrays: exit / ts (int64 ns UTC), r (float32 realized R), hold
    (int16 bars, -1 unknown), the coded columns and, when known, entry / stop (float64)."""

    cols: dict[str, np.ndarray]

    def __len__(self) -> int:
        return int(next(iter(self.cols.values())).shape[0])

    @staticmethod
    def empty() -> _Table:
        cols = {"exit": np.empty(0, np.int64), "ts": np.empty(0, np.int64),
                "r": np.empty(0, np.float32), "hold": np.empty(0, np.int16)}
        cols.update({name: np.empty(0, np.int32 if name == "symbol" else np.int8)
                     for name in _CODED})
        return _Table(cols)

    def take(self, rows: np.ndarray) -> _Table:
        return _Table({name: values[rows] for name, values in self.cols.items()})

    def concat(self, other: _Table) -> _Table:
        cols = {}
        for name in self.cols.keys() | other.cols.keys():
            parts = [t.cols[name] if name in t.cols else np.full(len(t), np.nan)
                     for t in (self, other)]
            cols[name] = np.concatenate(parts)
        return _Table(cols)

    @property
    def nbytes(self) -> int:
        return int(sum(v.nbytes for v in self.cols.values()))


def _to_ns(values: Any) -> np.ndarray:
    """UTC nanoseconds since the epoch (naive values are taken to be UTC; NaT: iNaT)."""
    if np.ndim(values) == 0:
        values = [values]
    elif not isinstance(values, pd.Series | pd.Index | np.ndarray):
        values = np.asarray(values, dtype=object)
    index = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    return index.as_unit("ns").asi8.copy()


def _asof_ns(asof: Any, m: int) -> np.ndarray:
    """As-of times (UTC nanoseconds) per query; None: no restriction."""
    if asof is None:
        return np.full(m, _NEVER, np.int64)
    if isinstance(asof, pd.Timestamp | datetime | str):  # one time: skip the array machinery
        stamp = pd.Timestamp(asof)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        if pd.isna(stamp):
            raise ValueError("asof is missing: give the close time of the signal bar.")
        return np.full(m, stamp.as_unit("ns").value, np.int64)
    out = _to_ns(asof)
    if out.shape[0] == 1 and m != 1:
        out = np.full(m, out[0], np.int64)
    if out.shape[0] != m:
        raise ValueError(f"asof has {out.shape[0]} values for {m} queries.")
    if (out == np.iinfo(np.int64).min).any():
        raise ValueError("asof contains missing times: give the close time of each signal bar.")
    return out


def _unit_rows(matrix: Any, dtype: type = np.float32) -> np.ndarray:
    """Checked (n, 16) vectors with unit rows. Library rows already normalized (within 1e-5)
    are kept bit for bit, so stored float32 values are what the search compares."""
    vectors = np.asarray(matrix, dtype=dtype)
    if vectors.ndim == 1:
        vectors = vectors.reshape(1, -1)
    if vectors.ndim != 2 or vectors.shape[1] != VECTOR_DIM:
        raise ValueError(f"Setup vectors must have {VECTOR_DIM} values each, got shape "
                         f"{vectors.shape}.")
    if not np.isfinite(vectors).all():
        raise ValueError("Setup vectors contain NaN or infinite values.")
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    off = (np.abs(norms - 1.0) > 1e-5) & (norms > 0)
    if off.any():
        vectors = vectors.copy()
        vectors[off] = (vectors[off] / norms[off, None]).astype(dtype)
    return np.ascontiguousarray(vectors, dtype=dtype)


def _query_rows(vectors: Any) -> np.ndarray:
    """Query vectors as unit float64 rows (exact similarities in the final re-scoring)."""
    return _unit_rows(vectors, np.float64)


def _frame_vectors(frame: pd.DataFrame, matrix: Any) -> np.ndarray:
    if matrix is not None:
        vectors = _unit_rows(matrix)
    elif "vector" in frame:
        vectors = _unit_rows(np.stack([np.asarray(v, np.float32).reshape(-1)
                                       for v in frame["vector"]]) if len(frame)
                             else np.empty((0, VECTOR_DIM), np.float32))
    elif all(c in frame for c in VECTOR_COLUMNS):
        vectors = _unit_rows(frame[VECTOR_COLUMNS].to_numpy(np.float32))
    else:
        raise ValueError("Pattern rows need a 'vector' column or the columns vec_00 … vec_15.")
    if vectors.shape[0] != len(frame):
        raise ValueError(f"{vectors.shape[0]} vectors for {len(frame)} rows.")
    return vectors


def _parse_rows(rows: pd.DataFrame | Sequence[dict[str, Any]], matrix: Any,
                vocab: dict[str, _Vocab], interval: str | None
                ) -> tuple[np.ndarray, _Table, np.ndarray]:
    """(unit vectors, table, known mask) of library rows: symbol, ts, exit_ts (or known_at),
    realized_r, optional interval / side / setup / vol_regime / exit_reason / hold_bars /
    entry / stop, and the vectors (``matrix``, a ``vector`` column or vec_00 … vec_15)."""
    frame = pd.DataFrame(rows).reset_index(drop=True)
    vectors = _frame_vectors(frame, matrix)
    n = len(frame)
    if "exit_ts" not in frame and "known_at" in frame:
        frame = frame.rename(columns={"known_at": "exit_ts"})
    missing = [c for c in ("symbol", "ts") if c not in frame]
    if "interval" not in frame and interval is None:
        missing.append("interval")
    if missing:
        raise ValueError(f"Pattern rows lack column(s) {', '.join(missing)}.")
    if "interval" not in frame:
        frame["interval"] = interval
    cols = {"ts": _to_ns(frame["ts"]) if n else np.empty(0, np.int64),
            "exit": (_to_ns(frame["exit_ts"]) if "exit_ts" in frame and n
                     else np.full(n, np.iinfo(np.int64).min, np.int64))}
    realized = pd.to_numeric(frame["realized_r"], errors="coerce") if "realized_r" in frame \
        else pd.Series(np.nan, index=frame.index)
    cols["r"] = realized.to_numpy(np.float32)
    hold = pd.to_numeric(frame["hold_bars"], errors="coerce") if "hold_bars" in frame \
        else pd.Series(np.nan, index=frame.index)
    cols["hold"] = hold.fillna(-1).clip(-1, np.iinfo(np.int16).max).to_numpy(np.int16)
    for name in _CODED:
        values = frame[name] if name in frame else pd.Series(_DEFAULTS.get(name, ""),
                                                              index=frame.index)
        cols[name] = vocab[name].encode(values.fillna(_DEFAULTS.get(name, "")).astype(str))
    for name in _OPTIONAL_PRICES:
        if name in frame:
            cols[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(np.float64)
    known = (cols["exit"] != np.iinfo(np.int64).min) & np.isfinite(cols["r"])
    return vectors, _Table(cols), known


class _Store:
    """Indexed rows sorted by exit time (stable): vectors in a backend, metadata in a table."""

    def __init__(self, backend: VectorIndex) -> None:
        self.backend = backend
        self.table = _Table.empty()
        self._scopes: dict[tuple[int | None, ...], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.table)

    def replace(self, vectors: np.ndarray, table: _Table) -> None:
        order = np.argsort(table.cols["exit"], kind="stable")
        self.backend.build(np.ascontiguousarray(vectors[order]))
        self.table = table.take(order)
        self._scopes.clear()

    def insert(self, vectors: np.ndarray, table: _Table) -> None:
        if len(table) == 0:
            return
        order = np.argsort(table.cols["exit"], kind="stable")
        vectors, table = vectors[order], table.take(order)
        exits = self.table.cols["exit"]
        if len(self) == 0 or table.cols["exit"][0] >= exits[-1]:  # in time order: append
            self.backend.add(vectors)
            self.table = self.table.concat(table)
            self._scopes.clear()
        else:
            self.replace(np.concatenate([self.backend.matrix, vectors]), self.table.concat(table))

    def delete(self, rows: np.ndarray) -> None:
        if rows.size == 0:
            return
        keep = np.ones(len(self), bool)
        keep[rows] = False
        self.backend.build(np.ascontiguousarray(self.backend.matrix[keep]))
        self.table = self.table.take(np.flatnonzero(keep))
        self._scopes.clear()

    def locate(self, table: _Table) -> np.ndarray:
        """Row of each (symbol, interval, ts) of ``table`` here, -1 when absent."""
        out = np.full(len(table), -1, np.int64)
        if len(self) == 0 or len(table) == 0:
            return out
        cols = self.table.cols
        stamps = table.cols["ts"]
        near = np.flatnonzero((cols["ts"] >= stamps.min()) & (cols["ts"] <= stamps.max()))
        hits = near[np.isin(cols["ts"][near], stamps)]
        where = {(int(cols["symbol"][i]), int(cols["interval"][i]), int(cols["ts"][i])): i
                 for i in hits}
        keys = zip(table.cols["symbol"].tolist(), table.cols["interval"].tolist(),
                   table.cols["ts"].tolist(), strict=True)
        for j, key in enumerate(keys):
            out[j] = where.get(key, -1)
        return out

    def scope(self, codes: tuple[int | None, int | None, int | None]) -> np.ndarray | None:
        """Rows of a (symbol, setup, interval) filter, in exit order; None: every row."""
        if all(c is None for c in codes):
            return None
        if codes not in self._scopes:
            mask = np.ones(len(self), bool)
            for name, code in zip(("symbol", "setup", "interval"), codes, strict=True):
                if code is not None:
                    mask &= self.table.cols[name] == code
            if len(self._scopes) >= 256:  # a bounded cache: positions of recent filters
                self._scopes.clear()
            rows = np.flatnonzero(mask)
            self._scopes[codes] = rows.astype(np.int32) if len(self) < 2**31 else rows
        return self._scopes[codes]

    def search(self, queries: np.ndarray, asof: np.ndarray, k: int,
               codes: tuple[int | None, int | None, int | None]
               ) -> tuple[np.ndarray, np.ndarray]:
        """k nearest rows known by each query's as-of time within a filter (rows of this store,
        -1 padded)."""
        rows = self.scope(codes)
        exits = self.table.cols["exit"]
        if rows is None:
            return self.backend.search(queries, k, limits=np.searchsorted(exits, asof, "right"))
        limits = np.searchsorted(exits[rows], asof, "right")
        visible = rows[:int(limits.max()) if limits.size else 0]
        sims, idx = exact_topk(queries, self.backend.matrix[visible], k, limits=limits)
        if visible.size == 0:
            return sims, idx
        return sims, np.where(idx >= 0, visible[np.maximum(idx, 0)], -1)


# --------------------------------------------------------------------------- the index


_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run an index method under the index's lock (queries never see a half-applied update)."""

    @functools.wraps(method)
    def wrapper(self: PatternIndex, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _merge_topk(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
                offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two top lists (the second's rows shifted by ``offset``), ties by row."""
    sims = np.concatenate([first[0], second[0]], axis=1)
    ids = np.concatenate([first[1], np.where(second[1] >= 0, second[1] + offset, -1)], axis=1)
    order = np.lexsort((np.where(ids >= 0, ids, _NEVER), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)


class PatternIndex:
    """Stored setup vectors with known outcomes, searchable point in time.

    Build it with :meth:`from_db` (and keep it current with :meth:`refresh`), or
    :meth:`from_frame` / :meth:`add` for rows in memory. Rows: symbol, interval, ts (UTC open
    time of the signal bar), exit_ts (UTC time the outcome became known: close of the exit bar),
    realized_r, hold_bars, exit_reason, setup, side, vol_regime, optional entry / stop, and the
    16-d vector. Rows without an outcome wait in memory until :meth:`set_outcomes` gives one.
    A row is identified by (symbol, interval, ts): adding it again replaces it. Safe to share
    between threads (updates and queries take a lock; :meth:`refresh` reads the database
    without it). Memory: 64 bytes of vector + 31 bytes of metadata per row (about 95 MB per
    million rows) plus entry / stop (16 bytes) when the rows carry them.
    """

    def __init__(self, *, backend: str | VectorIndex | None = None, interval: str | None = None,
                 version: str = "v1") -> None:
        self.interval = interval
        self.version = version
        self._store = _Store(make_vector_index(backend))
        self._vocab = {name: _Vocab(np.int32 if name == "symbol" else np.int8)
                       for name in _CODED}
        self._pending = pd.DataFrame()
        self._db_max_id: int | None = None
        self._db_pending: set[int] = set()
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:  # picklable for process pools (no lock inside)
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # ----------------------------------------------------------------- building

    @classmethod
    def from_frame(cls, rows: pd.DataFrame | Sequence[dict[str, Any]], matrix: Any = None, *,
                   backend: str | VectorIndex | None = None, interval: str | None = None,
                   version: str = "v1") -> PatternIndex:
        """An index over ``rows`` (see the class docstring; ``matrix`` (n, 16) may carry the
        vectors instead of the frame)."""
        index = cls(backend=backend, interval=interval, version=version)
        index.add(rows, matrix)
        return index

    @property
    def backend(self) -> str:
        return self._store.backend.name

    def __len__(self) -> int:
        return len(self._store)

    @property
    def n_pending(self) -> int:
        """Rows added without an outcome (not searchable yet)."""
        return len(self._pending)

    def memory_bytes(self) -> int:
        """Bytes held by the searchable rows: vectors, metadata and cached filters."""
        scopes = sum(v.nbytes for v in self._store._scopes.values())
        return self._store.backend.nbytes + self._store.table.nbytes + int(scopes)

    @_locked
    def clear(self) -> None:
        self._store.replace(np.empty((0, VECTOR_DIM), np.float32), _Table.empty())
        self._pending = pd.DataFrame()

    @_locked
    def add(self, rows: pd.DataFrame | Sequence[dict[str, Any]], matrix: Any = None) -> int:
        """Insert or replace rows; those with an outcome (exit_ts and realized_r) become
        searchable, the others wait for :meth:`set_outcomes`. A row without an outcome never
        erases a stored one (as ``db.upsert_vectors``). Cost: O(new rows) when they arrive in
        exit-time order, else one O(n) re-sort. Returns rows made searchable."""
        frame = pd.DataFrame(rows).reset_index(drop=True)
        vectors, table, known = _parse_rows(frame, matrix, self._vocab, self.interval)
        if len(table) == 0:
            return 0
        keys = pd.DataFrame({c: table.cols[c] for c in ("symbol", "interval", "ts")})
        last = ~keys.duplicated(keep="last").to_numpy()  # within a batch the last row wins
        found = self._store.locate(table)
        stored = found >= 0
        adopt = stored & ~known & last  # keep the stored outcome, take the new vector
        for name in ("exit", "r", "hold", "exit_reason"):
            table.cols[name][adopt] = self._store.table.cols[name][found[adopt]]
        known = known | adopt
        self._store.delete(np.unique(found[stored & last]))
        self._drop_pending(table)
        self._store.insert(vectors[known & last], table.take(np.flatnonzero(known & last)))
        waiting = ~known & last
        if waiting.any():
            pend = frame.loc[waiting].drop(columns=[c for c in ("vector", *VECTOR_COLUMNS)
                                                    if c in frame])
            pend[VECTOR_COLUMNS] = vectors[waiting]
            if "interval" not in pend:
                pend["interval"] = self.interval
            self._pending = pd.concat([self._pending, pend], ignore_index=True)
        return int((known & last).sum())

    def _drop_pending(self, table: _Table) -> None:
        if self._pending.empty:
            return
        pending = pd.DataFrame({"symbol": self._pending["symbol"].astype(str),
                                "interval": self._pending["interval"].astype(str),
                                "ts": _to_ns(self._pending["ts"])})
        incoming = pd.DataFrame({
            "symbol": self._vocab["symbol"].decode(table.cols["symbol"]).astype(str),
            "interval": self._vocab["interval"].decode(table.cols["interval"]).astype(str),
            "ts": table.cols["ts"]})
        gone = pending.merge(incoming.drop_duplicates(), how="left", indicator=True)["_merge"]
        self._pending = self._pending.loc[(gone == "left_only").to_numpy()].reset_index(
            drop=True)

    @_locked
    def set_outcomes(self, rows: pd.DataFrame | Sequence[dict[str, Any]]) -> int:
        """Give outcomes to rows added earlier (pending or already searchable). ``rows``:
        symbol, interval (unless the index has one), ts, realized_r, exit_ts, hold_bars,
        exit_reason. Returns rows updated."""
        outcomes = pd.DataFrame(rows).reset_index(drop=True)
        if "interval" not in outcomes:
            outcomes["interval"] = self.interval
        outcomes["_ts"] = _to_ns(outcomes["ts"]) if len(outcomes) else []
        codes = {name: np.array([-1 if (c := self._vocab[name].get(v)) is None else c
                                 for v in outcomes[name].astype(str)], np.int64)
                 for name in ("symbol", "interval")}
        found = self._store.locate(_Table({**codes, "ts": outcomes["_ts"].to_numpy(np.int64)}))
        stored = self._rows_frame(found[found >= 0])  # only the rows named, not the index
        if not self._pending.empty:
            pending = self._pending.assign(_ts=_to_ns(self._pending["ts"]))
            stored = pd.concat([stored, pending], ignore_index=True)
        keys = ["symbol", "interval", "_ts"]
        fields = [c for c in ("realized_r", "exit_ts", "hold_bars", "exit_reason")
                  if c in outcomes]
        merged = stored.drop(columns=[c for c in fields if c in stored]).merge(
            outcomes[keys + fields], on=keys, how="inner")
        if merged.empty:
            return 0
        self.add(merged.drop(columns=["_ts"]))
        return len(merged)

    def _rows_frame(self, rows: np.ndarray | None = None) -> pd.DataFrame:
        """Searchable rows as a frame with their vectors (for re-adding)."""
        rows = np.arange(len(self)) if rows is None else rows
        data = self._neighbor_data(np.asarray(rows, np.int64), np.zeros(len(rows)))
        frame = Neighbors(data, "all", False, None, 0).frame.drop(columns=["similarity"])
        frame = frame.assign(_ts=self._store.table.cols["ts"][rows])
        frame[VECTOR_COLUMNS] = self._store.backend.matrix[rows]
        return frame

    # ----------------------------------------------------------------- database

    @classmethod
    def from_db(cls, engine: Any, *, interval: str | None = None, version: str = "v1",
                backend: str | VectorIndex | None = None) -> PatternIndex:
        """The index over every stored vector with a known outcome (``setup_vectors``), of one
        interval (None: all) and vector version."""
        index = cls(backend=backend, interval=interval, version=version)
        index.refresh(engine, full=True)
        return index

    def refresh(self, engine: Any, *, full: bool = False) -> int:
        """Load what changed since the last load: rows with a higher id, and rows that had no
        outcome then and have one now (ids remembered from the last load). ``full``: reload
        everything (also picks up deleted rows and re-evaluated outcomes). The database is read
        without holding the index, which queries keep using meanwhile. Returns rows made
        searchable or replaced."""
        from swing_core import db

        with self._lock:
            since, waiting = self._db_max_id, sorted(self._db_pending)
        if full or since is None:
            max_id, pending = self._db_marks(engine)  # first: re-reading a row is harmless
            loaded = db.load_vector_matrix(engine, interval=self.interval, version=self.version,
                                           known_only=True)
            with self._lock:
                self.clear()
                added = self.add(loaded.meta.drop(columns=["version", "trend"], errors="ignore"),
                                 loaded.matrix)
                self._db_max_id, self._db_pending = max_id, pending
            return added
        table = self._db_table()
        frames = [self._db_select(engine, table.c.id > since)]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start:start + 500]
            frames.append(self._db_select(engine, table.c.id.in_(chunk)
                                          & table.c.realized_r.is_not(None)))
        frame = pd.concat(frames, ignore_index=True)
        if frame.empty:
            return 0
        has_outcome = frame["realized_r"].notna().to_numpy()
        known = frame.loc[has_outcome]
        matrix = np.frombuffer(b"".join(known["vector"]), dtype="<f4").reshape(-1, VECTOR_DIM)
        with self._lock:
            self._db_max_id = max(self._db_max_id or 0, int(frame["id"].max()))
            self._db_pending |= set(frame.loc[~has_outcome, "id"].astype(int))
            self._db_pending -= set(known["id"].astype(int))
            return self.add(known.drop(columns=["vector"]), matrix)

    @staticmethod
    def _db_table() -> Any:
        from swing_core import models

        return models.SetupVector.__table__

    def _db_where(self, table: Any) -> list[Any]:
        where = [table.c.version == self.version]
        if self.interval is not None:
            where.append(table.c.interval == self.interval)
        return where

    def _db_run(self, engine: Any, stmt: Any) -> list[Any]:
        import sqlalchemy as sa

        from swing_core import db
        from swing_core.errors import DatabaseError

        try:
            with engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except sa.exc.SQLAlchemyError as exc:
            raise DatabaseError(f"Could not read setup vectors from "
                                f"{db.describe_database(engine)}: {exc.__class__.__name__}. "
                                "Check the database is reachable and migrated "
                                "(python -m swing_core db init).") from exc

    def _db_marks(self, engine: Any) -> tuple[int, set[int]]:
        import sqlalchemy as sa

        t = self._db_table()
        top = self._db_run(engine, sa.select(sa.func.max(t.c.id)).where(*self._db_where(t)))
        waiting = self._db_run(engine, sa.select(t.c.id).where(*self._db_where(t),
                                                              t.c.realized_r.is_(None)))
        return int(top[0][0] or 0), {int(r[0]) for r in waiting}

    def _db_select(self, engine: Any, condition: Any) -> pd.DataFrame:
        import sqlalchemy as sa

        t = self._db_table()
        names = ["id", "symbol", "interval", "ts", "setup", "side", "vol_regime", "realized_r",
                 "exit_reason", "exit_ts", "hold_bars", "vector"]
        rows = self._db_run(engine, sa.select(*[t.c[c] for c in names])
                            .where(*self._db_where(t), condition))
        return pd.DataFrame(rows, columns=names)

    # ----------------------------------------------------------------- queries

    def _codes(self, symbol: str | None, setup: str | None, interval: str | None
               ) -> tuple[int | None, int | None, int | None]:
        """Filter codes; a name never seen gets -1 (matches nothing)."""
        out = []
        for name, value in (("symbol", symbol), ("setup", setup), ("interval", interval)):
            code = self._vocab[name].get(value)
            out.append(None if value is None or value == "" else (-1 if code is None else code))
        return out[0], out[1], out[2]

    def _search_both(self, queries: np.ndarray, asof: np.ndarray, k: int,
                     codes: tuple[int | None, int | None, int | None], extra: _Store | None
                     ) -> tuple[np.ndarray, np.ndarray]:
        found = self._store.search(queries, asof, k, codes)
        if extra is None or len(extra) == 0:
            return found
        return _merge_topk(found, extra.search(queries, asof, k, codes), len(self._store), k)

    def _nearest(self, queries: np.ndarray, asof: np.ndarray, symbols: np.ndarray,
                 setups: np.ndarray | None, interval: str | None, k: int,
                 extra: _Store | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(similarity, row id, scope) per query: the same symbol first, all symbols when the
        symbol has no outcome known by then."""
        m = queries.shape[0]
        sims, ids = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
        scope = np.full(m, "none", dtype=object)
        setups = setups if setups is not None else np.full(m, None, dtype=object)
        for (symbol, setup), rows in _groups(symbols, setups):
            if symbol is None or symbol == "":  # no symbol: every symbol at once
                continue
            codes = self._codes(symbol, setup, interval)
            s, i = self._search_both(queries[rows], asof[rows], k, codes, extra)
            has = i[:, 0] >= 0
            sims[rows[has]], ids[rows[has]], scope[rows[has]] = s[has], i[has], "symbol"
        rest = np.flatnonzero(scope == "none")
        for (setup,), rows in _groups(setups[rest]):
            rows = rest[rows]
            s, i = self._search_both(queries[rows], asof[rows], k,
                                     self._codes(None, setup, interval), extra)
            has = i[:, 0] >= 0
            sims[rows[has]], ids[rows[has]], scope[rows[has]] = s[has], i[has], "all"
        return sims, ids, scope

    def _column(self, name: str, ids: np.ndarray, extra: _Store | None, fill: Any) -> np.ndarray:
        """Metadata column ``name`` of row ids (index rows first, then extra rows)."""
        n = len(self._store)
        parts = [self._store.table] + ([extra.table] if extra is not None else [])
        values = [p.cols.get(name) for p in parts]
        dtype = np.result_type(*[v.dtype for v in values if v is not None], np.asarray(fill))
        out = np.full(ids.shape, fill, dtype=dtype)
        mine = (ids >= 0) & (ids < n)
        if values[0] is not None:
            out[mine] = values[0][ids[mine]]
        if extra is not None and values[1] is not None:
            theirs = ids >= n
            out[theirs] = values[1][ids[theirs] - n]
        return out

    def _regime_keep(self, ids: np.ndarray, regimes: np.ndarray | None, extra: _Store | None,
                     params: StrategyParams) -> tuple[np.ndarray, np.ndarray]:
        """STRATEGY.md: keep the neighbours in the query's regime unless fewer than
        ``min_regime_neighbors`` remain. Returns (keep mask (m, k), regime filtered (m,))."""
        valid = ids >= 0
        if regimes is None:
            return valid, np.zeros(ids.shape[0], bool)
        wanted = np.array([-2 if (c := self._vocab["vol_regime"].get(r)) is None else c
                           for r in regimes], np.int64)
        same = valid & (self._column("vol_regime", ids, extra, -3) == wanted[:, None])
        use = same.sum(axis=1) >= params.min_regime_neighbors
        return np.where(use[:, None], same, valid), use

    def _neighbor_data(self, ids: np.ndarray, sims: np.ndarray, extra: _Store | None = None
                       ) -> dict[str, np.ndarray]:
        """Plain arrays of the :data:`NEIGHBOR_COLUMNS` for row ids."""
        col = functools.partial(self._column, ids=ids, extra=extra)
        hold = col("hold", fill=-1).astype(float)
        hold[hold < 0] = np.nan
        data = {name: self._vocab[name].decode(col(name, fill=-1).astype(np.int64))
                for name in ("symbol", "interval", "side", "setup", "vol_regime", "exit_reason")}
        data.update({"ts": col("ts", fill=0).astype(np.int64),
                     "exit_ts": col("exit", fill=0).astype(np.int64),
                     "similarity": np.asarray(sims, float),
                     "realized_r": col("r", fill=np.nan).astype(float), "hold_bars": hold,
                     "entry": col("entry", fill=np.nan).astype(float),
                     "stop": col("stop", fill=np.nan).astype(float)})
        return data

    @_locked
    def search(self, vector: Any, *, k: int = 60, asof: Any = None, symbol: str | None = None,
               setup: str | None = None, interval: str | None = None) -> Neighbors:
        """The ``k`` most similar rows whose outcome was known by ``asof`` (UTC; None: no
        restriction), within optional filters, without fallbacks or the regime rule."""
        q = _query_rows(vector)[:1]
        when = _asof_ns(asof, 1)
        sims, ids = self._store.search(q, when, k, self._codes(symbol, setup, interval))
        ok = ids[0] >= 0
        return Neighbors(self._neighbor_data(ids[0][ok], sims[0][ok]),
                         scope="symbol" if symbol is not None else "all",
                         regime_filtered=False, asof=None if asof is None else
                         pd.Timestamp(when[0], tz="UTC"), k=k)

    @_locked
    def neighbors(self, vector: Any, *, asof: Any, symbol: str | None,
                  vol_regime: str | None = None,
                  setup: str | None = None, interval: str | None = None, k: int | None = None,
                  params: StrategyParams | None = None) -> Neighbors:
        """The neighbours STRATEGY.md prices a setup with: the ``k`` (default
        ``params.knn_k``) nearest among outcomes known by ``asof`` (the close time of the signal
        bar, UTC; None: everything stored), the same symbol first, all symbols when it has
        none, then the same volatility regime unless fewer than ``params.min_regime_neighbors``
        remain. ``setup`` / ``interval``: optional pre-filters."""
        params = params or StrategyParams()
        k = params.knn_k if k is None else k
        with perf.timed("pattern_query"):
            q = _query_rows(vector)[:1]
            when = _asof_ns(asof, 1)
            sims, ids, scope = self._nearest(q, when, np.array([symbol], object),
                                             None if setup is None else np.array([setup]),
                                             interval, k, None)
            keep, filtered = self._regime_keep(
                ids, None if vol_regime is None else np.array([vol_regime], object), None,
                params)
            rows = keep[0]
            return Neighbors(self._neighbor_data(ids[0][rows], sims[0][rows]),
                             scope=str(scope[0]),
                             regime_filtered=bool(filtered[0]), asof=None if asof is None
                             else pd.Timestamp(when[0], tz="UTC"), k=k)

    def priors(self, vector: Any, *, asof: Any, symbol: str | None,
               vol_regime: str | None = None,
               setup: str | None = None, interval: str | None = None,
               params: StrategyParams | None = None) -> PriorStats:
        """:func:`neighbor_stats` of :meth:`neighbors` (same arguments)."""
        return neighbor_stats(self.neighbors(vector, asof=asof, symbol=symbol,
                                             vol_regime=vol_regime, setup=setup,
                                             interval=interval, params=params))

    @_locked
    def query_many(self, vectors: Any, asof: Any, symbols: Any, vol_regimes: Any = None, *,
                   setups: Any = None, interval: str | None = None,
                   params: StrategyParams | None = None,
                   extra: pd.DataFrame | None = None) -> PriorBatch:
        """Priors of many signals at once, each point in time (for walk-forward backtests).

        ``vectors`` (m, 16); ``asof`` (m,) UTC close times of the signal bars (or one time);
        ``symbols`` / ``vol_regimes`` / ``setups`` (m,) or one value (``vol_regimes`` None: no
        regime rule; ``setups`` None: no setup filter). ``extra``: more library rows kept in
        memory only (e.g. the run's own earlier trades, same columns as :meth:`add`), searched
        with the stored rows under the same rule ``exit_ts <= asof``. Same neighbours as
        :meth:`neighbors` row by row."""
        params = params or StrategyParams()
        with perf.timed("pattern_query"):
            q = _query_rows(vectors)
            m = q.shape[0]
            when = _asof_ns(asof, m)
            each = functools.partial(_broadcast, m=m)
            store = self._extra_store(extra)
            sims, ids, scope = self._nearest(q, when, each(symbols),
                                             None if setups is None else each(setups),
                                             interval, params.knn_k, store)
            keep, filtered = self._regime_keep(
                ids, None if vol_regimes is None else each(vol_regimes), store, params)
            return self._batch(ids, keep, scope, filtered, store)

    def _extra_store(self, extra: pd.DataFrame | None) -> _Store | None:
        if extra is None or len(extra) == 0:
            return None
        vectors, table, known = _parse_rows(extra, None, self._vocab, self.interval)
        store = _Store(NumpyVectorIndex())
        store.replace(vectors[known], table.take(np.flatnonzero(known)))
        return store

    def _batch(self, ids: np.ndarray, keep: np.ndarray, scope: np.ndarray,
               filtered: np.ndarray, extra: _Store | None) -> PriorBatch:
        r = self._column("r", ids, extra, np.nan).astype(float)
        hold = self._column("hold", ids, extra, -1).astype(float)
        hold[hold < 0] = np.nan
        per_day = np.array([BARS_PER_DAY.get(name, np.nan) for name in
                            self._vocab["interval"].names] + [np.nan], float)
        days = hold / per_day[self._column("interval", ids, extra, -1).astype(np.int64)]
        stats = _stat_arrays(r, hold, days, keep & np.isfinite(r))
        reasons = self._column("exit_reason", ids, extra, -1).astype(np.int64)
        present = np.unique(reasons[keep])
        counts = np.stack([(keep & (reasons == c)).sum(axis=1) for c in present], axis=1) \
            if present.size else np.zeros((ids.shape[0], 0), np.int64)
        return PriorBatch(**stats, exit_reason_names=tuple(self._vocab["exit_reason"].decode(
            present)), exit_reason_counts=counts, scope=scope,
            regime_filtered=filtered & (stats["n"] > 0))


def _groups(*keys: np.ndarray) -> list[tuple[tuple[Any, ...], np.ndarray]]:
    """Row numbers per distinct combination of the key arrays, in first-seen order."""
    m = len(keys[0])
    if m <= 1:
        return [(tuple(k[0] for k in keys), np.zeros(1, np.int64))] if m else []
    combined = np.zeros(m, np.int64)
    for key in keys:
        codes, uniques = pd.factorize(np.asarray(key, dtype=object), use_na_sentinel=False)
        combined = combined * max(len(uniques), 1) + codes
    _, inverse = np.unique(combined, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    parts = np.split(order, np.cumsum(np.bincount(inverse))[:-1])
    return [(tuple(k[rows[0]] for k in keys), rows)
            for rows in sorted(parts, key=lambda rows: rows[0])]


def _broadcast(values: Any, *, m: int) -> np.ndarray:
    """One value per query (a scalar is repeated)."""
    if values is None or isinstance(values, str) or np.ndim(values) == 0:
        return np.full(m, values, dtype=object)
    out = np.asarray(values, dtype=object).reshape(-1)
    if out.shape[0] != m:
        raise ValueError(f"Got {out.shape[0]} values for {m} queries.")
    return out
