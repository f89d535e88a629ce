"""The pattern index: stored setup vectors with known outcomes, searchable point in time.

STRATEGY.md, "Pattern priors": the k nearest setup vectors by cosine among those whose outcome
was *known by the as-of time* (``exit_ts <= asof``, exit_ts = close of the exit bar); the same
symbol first, all symbols when the symbol has none; then keep the neighbours in the query's
volatility regime unless fewer than ``params.min_regime_neighbors`` remain. Optional pre-filters:
same setup kind, same interval.

Batches (:meth:`PatternIndex.query_many`, for walk-forward backtests) run the same kernel on
blocks of queries sorted by as-of time and accept extra in-memory rows (earlier trades of the
same run) that are searched alongside the stored library under the same point-in-time rule,
each setup once (a stored row that is also an extra row is left out of the stored search).

This module holds the index itself (building, updates, the public queries); the rule's steps
are in :mod:`~swing_core.patterns.rule`, the database loading in :mod:`~swing_core.patterns.sync`.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from swing_core import perf
from swing_core.config import StrategyParams
from swing_core.patterns.backends import VECTOR_DIM, VectorIndex
from swing_core.patterns.factory import make_vector_index
from swing_core.patterns.rule import NeighborRule
from swing_core.patterns.stats import (
    Neighbors,
    PriorBatch,
    PriorStats,
    neighbor_stats,
)
from swing_core.patterns.store import (
    _CODED,
    VECTOR_COLUMNS,
    _asof_ns,
    _parse_rows,
    _query_rows,
    _Store,
    _Table,
    _to_ns,
    _Vocab,
)
from swing_core.patterns.sync import DatabaseSync

__all__ = ["PatternIndex"]

_F = TypeVar("_F", bound=Callable[..., Any])


def _locked(method: _F) -> _F:
    """Run an index method under the index's lock (queries never see a half-applied update)."""

    @functools.wraps(method)
    def wrapper(self: PatternIndex, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PatternIndex(NeighborRule, DatabaseSync):
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
    def fingerprint(self) -> str:
        """A short hash of the searchable rows (vectors, times, outcomes, labels): identifies
        the library a result was computed from (e.g. part of a backtest's run hash)."""
        digest = hashlib.sha256(np.ascontiguousarray(self._store.backend.matrix).tobytes())
        cols = self._store.table.cols
        for name in ("ts", "exit", "r", "hold"):
            digest.update(np.ascontiguousarray(cols[name]).tobytes())
        for name in ("symbol", "interval", "setup", "side", "vol_regime", "exit_reason"):
            names = self._vocab[name].decode(cols[name].astype(np.int64))
            digest.update("\x1f".join(names.tolist()).encode())
        return digest.hexdigest()[:16]

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

    @_locked
    def library(self) -> tuple[pd.DataFrame, np.ndarray]:
        """The searchable rows (the neighbour columns but ``similarity``, times as UTC
        timestamps) and their float32 vectors, in index order: what a page shows of the
        library, without reading the database again."""
        rows = np.arange(len(self))
        data = self._neighbor_data(rows, np.zeros(len(rows)))
        frame = Neighbors(data, "all", False, None, 0).frame.drop(columns=["similarity"])
        return frame, np.asarray(self._store.backend.matrix[rows], dtype=np.float32)

    # ----------------------------------------------------------------- queries
    # (built from the rule's steps in :class:`~swing_core.patterns.rule.NeighborRule`)

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
        with the stored rows under the same rule ``exit_ts <= asof``; a setup that is both
        stored and an extra row (same symbol, interval and bar ``ts``, the identity of a row,
        e.g. a run re-run over a library that holds its saved outcomes) counts once, as the
        extra row. Same neighbours as :meth:`neighbors` row by row (over the stored rows plus
        the extra rows, each setup once)."""
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


def _broadcast(values: Any, *, m: int) -> np.ndarray:
    """One value per query (a scalar is repeated)."""
    if values is None or isinstance(values, str) or np.ndim(values) == 0:
        return np.full(m, values, dtype=object)
    out = np.asarray(values, dtype=object).reshape(-1)
    if out.shape[0] != m:
        raise ValueError(f"Got {out.shape[0]} values for {m} queries.")
    return out
