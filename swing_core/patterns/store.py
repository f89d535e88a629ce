"""Row storage of the pattern index: searchable rows sorted by the time their outcome
became known, vectors in a backend and metadata in compact coded arrays.

Only rows with a known outcome are stored, kept **sorted by exit_ts** (stable in arrival
order), so "known by t" is always a prefix of the rows (or of a filter's rows). Nothing is
over-fetched and filtered: a search only ever looks at rows the query was allowed to see.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from swing_core.patterns.backends import VECTOR_DIM, VectorIndex
from swing_core.patterns.kernel import _NEVER, exact_topk

VECTOR_COLUMNS = [f"vec_{i:02d}" for i in range(VECTOR_DIM)]
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

    def encode(self, values: Any, default: str = "") -> np.ndarray:
        """Codes of ``values`` (missing ones as ``default``), new names coded in order of first
        appearance. A pandas categorical (a coded database load) is encoded through its codes,
        with no string per row."""
        if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
            names = np.append(values.cat.categories.to_numpy(dtype=object), default)
            codes = values.cat.codes.to_numpy()
            inverse, seen = pd.factorize(np.where(codes < 0, len(names) - 1, codes))
            uniques = [str(v) for v in names[seen]]
        else:
            inverse, uniques = pd.factorize(np.asarray(values.fillna(default).astype(str),
                                                       dtype=object))
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
        """Names of ``codes`` (-1: ""); the lookup array is rebuilt only when names were added."""
        table = getattr(self, "_decoder", None)
        if table is None or len(table) != len(self.names) + 1:
            table = self._decoder = np.asarray(self.names + [""], dtype=object)
        return table[codes]


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
    if isinstance(values, pd.Series | pd.Index | np.ndarray) and values.dtype.kind == "M":
        index = pd.DatetimeIndex(values)  # datetime64 (tz-aware or naive): no parsing
        index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
        return index.as_unit("ns").asi8.copy()
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
        cols[name] = vocab[name].encode(values, _DEFAULTS.get(name, ""))
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
               codes: tuple[int | None, int | None, int | None],
               hidden: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """k nearest rows known by each query's as-of time within a filter (rows of this store,
        -1 padded); ``hidden``: a mask of rows left out (another copy of them is searched)."""
        rows = self.scope(codes)
        if hidden is not None:
            rows = np.flatnonzero(~hidden) if rows is None else rows[~hidden[rows]]
        exits = self.table.cols["exit"]
        if rows is None:
            return self.backend.search(queries, k, limits=np.searchsorted(exits, asof, "right"))
        limits = np.searchsorted(exits[rows], asof, "right")
        visible = rows[:int(limits.max()) if limits.size else 0]
        take = getattr(self.backend, "take_unit", None) or getattr(self.backend, "take", None)
        # int8's take_unit dequantizes these rows only, at unit length: the kernel ranks by dot
        # product, and a dequantized row's length is off 1 by more than the top cosines differ
        vectors = take(visible) if take is not None else self.backend.matrix[visible]
        sims, idx = exact_topk(queries, vectors, k, limits=limits)
        if visible.size == 0:
            return sims, idx
        return sims, np.where(idx >= 0, visible[np.maximum(idx, 0)], -1)


def _merge_topk(first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray],
                offset: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best of two top lists (the second's rows shifted by ``offset``), ties by row."""
    sims = np.concatenate([first[0], second[0]], axis=1)
    ids = np.concatenate([first[1], np.where(second[1] >= 0, second[1] + offset, -1)], axis=1)
    order = np.lexsort((np.where(ids >= 0, ids, _NEVER), -sims), axis=1)[:, :k]
    return np.take_along_axis(sims, order, axis=1), np.take_along_axis(ids, order, axis=1)
