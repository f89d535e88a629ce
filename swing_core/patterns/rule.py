"""STRATEGY.md's neighbour rule over the pattern index's rows: filter codes, the search of the
same symbol first with the all-symbols fallback (also over extra in-memory rows, merged with the
stored ones), the volatility-regime rule, and the neighbours' columns and batch statistics.

:class:`NeighborRule` is mixed into :class:`~swing_core.patterns.index.PatternIndex`, whose
public queries (``search``, ``neighbors``, ``priors``, ``query_many``) are built from it.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import BARS_PER_DAY, StrategyParams
from swing_core.patterns.backends import NumpyVectorIndex
from swing_core.patterns.stats import PriorBatch, _stat_arrays
from swing_core.patterns.store import _merge_topk, _parse_rows, _Store, _Vocab

__all__ = ["NeighborRule"]


class NeighborRule:
    """The neighbour rule for the pattern index (expects the index's ``_store``, ``_vocab``
    and ``interval``)."""

    _store: _Store
    _vocab: dict[str, _Vocab]
    interval: str | None

    def _codes(self, symbol: str | None, setup: str | None, interval: str | None
               ) -> tuple[int | None, int | None, int | None]:
        """Filter codes; a name never seen gets -1 (matches nothing)."""
        out = []
        for name, value in (("symbol", symbol), ("setup", setup), ("interval", interval)):
            code = self._vocab[name].get(value)
            out.append(None if value is None or value == "" else (-1 if code is None else code))
        return out[0], out[1], out[2]

    def _search_both(self, queries: np.ndarray, asof: np.ndarray, k: int,
                     codes: tuple[int | None, int | None, int | None], extra: _Store | None,
                     hidden: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top k over the stored rows (but ``hidden`` ones) and the ``extra`` rows."""
        if extra is not None and len(extra) and len(self._store) == 0:
            return extra.search(queries, asof, k, codes)  # its rows are numbered from 0
        found = self._store.search(queries, asof, k, codes, hidden)
        if extra is None or len(extra) == 0:
            return found
        return _merge_topk(found, extra.search(queries, asof, k, codes), len(self._store), k)

    def _nearest(self, queries: np.ndarray, asof: np.ndarray, symbols: np.ndarray,
                 setups: np.ndarray | None, interval: str | None, k: int,
                 extra: _Store | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(similarity, row id, scope) per query: the same symbol first, all symbols when the
        symbol has no outcome known by then. A setup both stored and among the ``extra`` rows
        (same symbol, interval and bar: :meth:`_hidden`) counts once, as its extra row."""
        hidden = self._hidden(extra)
        m = queries.shape[0]
        sims, ids = np.full((m, k), -np.inf), np.full((m, k), -1, np.int64)
        scope = np.full(m, "none", dtype=object)
        setups = setups if setups is not None else np.full(m, None, dtype=object)
        for (symbol, setup), rows in _groups(symbols, setups):
            if symbol is None or symbol == "":  # no symbol: every symbol at once
                continue
            codes = self._codes(symbol, setup, interval)
            s, i = self._search_both(queries[rows], asof[rows], k, codes, extra, hidden)
            has = i[:, 0] >= 0
            sims[rows[has]], ids[rows[has]], scope[rows[has]] = s[has], i[has], "symbol"
        rest = np.flatnonzero(scope == "none")
        for (setup,), rows in _groups(setups[rest]):
            rows = rest[rows]
            s, i = self._search_both(queries[rows], asof[rows], k,
                                     self._codes(None, setup, interval), extra, hidden)
            has = i[:, 0] >= 0
            sims[rows[has]], ids[rows[has]], scope[rows[has]] = s[has], i[has], "all"
        return sims, ids, scope

    def _hidden(self, extra: _Store | None) -> np.ndarray | None:
        """Stored rows that are also among the ``extra`` rows (a row's identity: symbol,
        interval, bar ``ts``; e.g. a run's own outcomes already saved to the library): left out
        of the search so that one setup never counts twice. None when there are none."""
        if extra is None or len(extra) == 0 or len(self._store) == 0:
            return None
        found = self._store.locate(extra.table)
        if not (found >= 0).any():
            return None
        hidden = np.zeros(len(self._store), bool)
        hidden[found[found >= 0]] = True
        return hidden

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
        cols = self._store.table.cols
        if extra is None and (ids.size == 0 or (ids.min() >= 0 and ids.max() < len(self._store))):
            def col(name: str, fill: Any) -> np.ndarray:  # every id a stored row: plain takes
                values = cols.get(name)
                return np.full(ids.shape, fill) if values is None else values[ids]
        else:
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
