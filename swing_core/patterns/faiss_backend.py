"""FAISS backends of the pattern index (optional: ``pip install 'faiss-cpu>=1.8,<2'``).

- :class:`FaissFlatVectorIndex` (``faiss-flat``): an exact ``IndexFlatIP``; its float32 storage
  is the index's matrix (a view, no second copy). Exact like the kernel: FAISS' float32 top
  ``k + 16`` (up to 256 on big libraries) are re-scored as float64 cosines, and queries whose candidate margin is thinner
  than the float32 rounding are redone by :func:`~swing_core.patterns.kernel.exact_topk`.
- :class:`FaissIVFVectorIndex` (``faiss-ivf``): approximate, ``IndexIVFFlat`` (inner product,
  about ``sqrt(n)`` lists, ``nprobe`` of them searched). For very large libraries.
- :class:`FaissHNSWVectorIndex` (``faiss-hnsw``): approximate, ``IndexHNSWFlat`` with
  ``METRIC_INNER_PRODUCT``. Fast queries but a slow build (about 20 s per 200,000 vectors on two
  cores) and every out-of-order insert rebuilds it, so IVF is the one the benchmark runs at 5M.

Point in time: a search restricted to the prefix ``[0, limit)`` passes FAISS an
``IDSelectorRange(0, limit)`` (one FAISS call per distinct limit; batches with many distinct
limits, i.e. walk-forwards, go to the exact kernel, which is built for them). The approximate
backends answer exactly (kernel) when the prefix is small (< ``exact_below`` rows) or a minority
of the rows (where a filtered graph / list walk loses recall), and fall back to the kernel for a
query that gets fewer than ``k`` rows back. Their recall: :func:`~swing_core.patterns.backends.
recall_at_k` and ``benchmarks/bench_scale.py``.

Threads: single queries run FAISS on one OpenMP thread (the default two threads made a single
1M-vector flat query slower on this shared 2-core box; ``bench_scale.py`` measures both).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from swing_core.errors import ConfigError
from swing_core.patterns.backends import VECTOR_DIM, NumpyVectorIndex
from swing_core.patterns.kernel import _EPS, _EXTRA, _finish, exact_topk

__all__ = ["FaissFlatVectorIndex", "FaissHNSWVectorIndex", "FaissIVFVectorIndex", "import_faiss"]

_MAX_LIMIT_GROUPS = 8  # distinct prefixes per batch answered by FAISS; more: the kernel
SMALL_BATCH = 32  # queries below which FAISS runs on one OpenMP thread


def import_faiss() -> Any:
    """The ``faiss`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import faiss  # optional (faiss-cpu) and heavy: only when a FAISS backend is built
    except ImportError as exc:
        raise ConfigError(
            "The FAISS pattern backends need the faiss-cpu package: run "
            "`pip install 'faiss-cpu>=1.8,<2'`, or set SWING_PATTERN_BACKEND=sklearn.") from exc
    return faiss


@contextlib.contextmanager
def _omp_threads(faiss: Any, queries: int) -> Iterator[None]:
    """One OpenMP thread for small batches (a process-wide FAISS setting, restored after)."""
    if queries >= SMALL_BATCH:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _limits(q: np.ndarray, n: int, limits: np.ndarray | None) -> np.ndarray:
    if limits is None:
        return np.full(q.shape[0], n, np.int64)
    return np.clip(np.asarray(limits, dtype=np.int64).reshape(-1), 0, n)


class _FaissBase(NumpyVectorIndex):
    """Shared search driver: group queries by prefix, FAISS per group, float64 re-scoring."""

    exact = True
    #: FAISS candidates asked for at most beyond ``k + 16`` (one more per 4,000 rows searched):
    #: a wide candidate edge makes a near-tie with the k-th rare, so queries are seldom redone
    #: by the kernel (at 1M rows asking a flat index for 256 rows costs the same scan as 66 and
    #: removed all re-runs, which took 40 % of queries).
    min_candidates = 0

    def __init__(self, dim: int = VECTOR_DIM) -> None:
        self._faiss = import_faiss()
        super().__init__(dim)
        self._index: Any = None
        self.redone = 0  # queries answered again by the exact kernel (near-tie or too few rows)

    # pickling (process pools): FAISS objects travel as their serialized bytes
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_faiss"]
        index = state.pop("_index")
        state["_blob"] = None if index is None else self._faiss.serialize_index(index)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        blob = state.pop("_blob")
        self.__dict__.update(state)
        self._faiss = import_faiss()
        self._index = None if blob is None else self._faiss.deserialize_index(blob)

    def _faiss_search(self, q: np.ndarray, k: int, limit: int) -> np.ndarray:
        """Candidate rows (m, k) of FAISS over the prefix ``[0, limit)``, -1 padded."""
        raise NotImplementedError

    def _use_kernel(self, limit: int) -> bool:
        return self._index is None

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float64).reshape(-1, self._buf.shape[1])
        n, k = len(self), max(int(k), 0)
        lim = _limits(q, n, limits)
        groups = np.unique(lim)
        if (q.shape[0] == 0 or k == 0 or n == 0 or int(lim.max()) <= k + _EXTRA
                or groups.size > _MAX_LIMIT_GROUPS):
            return exact_topk(q, self.matrix, k, limits=lim)
        sims, pos = np.full((q.shape[0], k), -np.inf), np.full((q.shape[0], k), -1, np.int64)
        for limit in groups.tolist():
            rows = np.flatnonzero(lim == limit)
            if limit <= k + _EXTRA or self._use_kernel(limit):
                sims[rows], pos[rows] = exact_topk(q[rows], self.matrix, k, limits=lim[rows])
                continue
            # near-ties at the edge grow with the rows searched: a wider edge on big libraries
            wanted = min(max(k + _EXTRA, min(self.min_candidates, k + _EXTRA + limit // 4000)),
                         limit)
            with _omp_threads(self._faiss, rows.size):
                cand = self._faiss_search(q[rows], wanted, limit)
            s, p = _finish(q[rows], self.matrix, cand, wanted)
            redo = self._redo(s, k, limit)
            if redo.any():
                self.redone += int(redo.sum())
                s[redo, :k], p[redo, :k] = exact_topk(q[rows[redo]], self.matrix, k,
                                                      limits=lim[rows[redo]])
            sims[rows], pos[rows] = s[:, :k], p[:, :k]
        return sims, pos

    def _redo(self, sims: np.ndarray, k: int, limit: int) -> np.ndarray:
        """Queries to answer with the kernel: exact backends redo near-ties at the candidate
        edge (float32 may have misordered them); all redo queries with too few rows back."""
        short = ~np.isfinite(sims[:, min(k, limit) - 1])
        if not self.exact:
            return short
        return short | (sims[:, -1] >= sims[:, k - 1] - 4 * _EPS)


class FaissFlatVectorIndex(_FaissBase):
    """Exact search with FAISS ``IndexFlatIP``; the rows live in FAISS' storage only."""

    name = "faiss-flat"
    min_candidates = 256

    def __init__(self, dim: int = VECTOR_DIM) -> None:
        super().__init__(dim)
        self._index = self._faiss.IndexFlatIP(dim)

    def build(self, matrix: np.ndarray) -> None:
        rows = np.array(matrix, dtype=np.float32, copy=True)  # may be a view of our storage
        self._index.reset()
        self.add(rows)

    def add(self, matrix: np.ndarray) -> None:
        rows = np.ascontiguousarray(matrix, dtype=np.float32).reshape(-1, self._index.d)
        if rows.shape[0]:
            self._index.add(rows)

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def _buf(self) -> np.ndarray:  # type: ignore[override]  # FAISS' float32 storage, a view
        n, d = int(self._index.ntotal), int(self._index.d)
        if n == 0:
            return np.empty((0, d), np.float32)
        return self._faiss.rev_swig_ptr(self._index.get_xb(), n * d).reshape(n, d)

    @_buf.setter
    def _buf(self, value: np.ndarray) -> None:  # NumpyVectorIndex.__init__ sets an empty one
        pass

    @property
    def _n(self) -> int:  # type: ignore[override]
        return len(self)

    @_n.setter
    def _n(self, value: int) -> None:
        pass

    @property
    def nbytes(self) -> int:
        return len(self) * int(self._index.d) * 4

    def _faiss_search(self, q: np.ndarray, k: int, limit: int) -> np.ndarray:
        params = None
        if limit < len(self):
            params = self._faiss.SearchParameters(sel=self._faiss.IDSelectorRange(0, limit))
        _, labels = self._index.search(q.astype(np.float32), k, params=params)
        return labels.astype(np.int64)


class _ApproxBase(_FaissBase):
    """Approximate FAISS index over a copy of the rows (the float32 matrix is kept for exact
    re-scoring and the kernel fallbacks). Below ``exact_below`` rows there is no FAISS index."""

    exact = False
    min_fraction = 0.5  # a prefix holding less than this share of the rows: the kernel

    def __init__(self, dim: int = VECTOR_DIM, *, exact_below: int = 50_000) -> None:
        super().__init__(dim)
        self.exact_below = exact_below
        self._indexed = 0  # rows in the FAISS index (the first ones of the matrix)

    def _use_kernel(self, limit: int) -> bool:
        return (self._index is None or limit < self.exact_below
                or limit < self.min_fraction * len(self) or limit > self._indexed)

    def _changed(self) -> None:
        if not hasattr(self, "_indexed"):
            return
        n = len(self)
        if n < self.exact_below:
            self._index, self._indexed = None, 0
        elif self._index is None or self._needs_rebuild(n):
            self._index = self._new_index(self.matrix)
            self._indexed = 0
        if self._index is not None and self._indexed < n:
            self._index.add(np.ascontiguousarray(self.matrix[self._indexed:]))
            self._indexed = n

    def build(self, matrix: np.ndarray) -> None:
        self._index = None
        super().build(matrix)

    def _needs_rebuild(self, n: int) -> bool:
        return False

    def _new_index(self, matrix: np.ndarray) -> Any:
        raise NotImplementedError


class FaissIVFVectorIndex(_ApproxBase):
    """Approximate: ``IndexIVFFlat`` (inner product) with about ``sqrt(n)`` lists (a power of
    two) trained on up to 64 rows per list; ``nprobe`` lists searched (more for a narrower
    prefix). Retrained when the rows have grown fourfold since the last training."""

    name = "faiss-ivf"

    def __init__(self, dim: int = VECTOR_DIM, *, exact_below: int = 50_000,
                 nprobe: int = 32) -> None:
        super().__init__(dim, exact_below=exact_below)
        self.nprobe = nprobe
        self._trained_on = 0

    def _needs_rebuild(self, n: int) -> bool:
        return n > 4 * self._trained_on

    def _new_index(self, matrix: np.ndarray) -> Any:
        faiss = self._faiss
        n, d = matrix.shape
        nlist = int(min(65536, max(16, 2 ** round(math.log2(math.sqrt(n))))))
        sample = matrix
        if n > nlist * 64:  # evenly spaced rows: deterministic, spread over time
            sample = matrix[np.linspace(0, n - 1, nlist * 64).astype(np.int64)]
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = 1234
        index.train(np.ascontiguousarray(sample, dtype=np.float32))
        self._trained_on = n
        return index

    @property
    def nbytes(self) -> int:  # the float32 matrix + the lists' copy with int64 ids + centroids
        index_bytes = 0 if self._index is None else (
            self._indexed * (self._buf.shape[1] * 4 + 8) + self._index.nlist * self._index.d * 4)
        return int(self._buf.nbytes) + index_bytes

    def _faiss_search(self, q: np.ndarray, k: int, limit: int) -> np.ndarray:
        faiss = self._faiss
        nprobe = min(self._index.nlist, math.ceil(self.nprobe * len(self) / max(limit, 1)))
        sel = faiss.IDSelectorRange(0, limit) if limit < len(self) else None
        params = faiss.SearchParametersIVF(sel=sel, nprobe=nprobe)
        _, labels = self._index.search(q.astype(np.float32), k, params=params)
        return labels.astype(np.int64)


class FaissHNSWVectorIndex(_ApproxBase):
    """Approximate: ``IndexHNSWFlat`` (``M`` links per node, inner product); rebuilt whenever the
    store rebuilds (deletes, out-of-order inserts), appended to otherwise."""

    name = "faiss-hnsw"

    def __init__(self, dim: int = VECTOR_DIM, *, exact_below: int = 50_000, m: int = 32,
                 ef_search: int = 128, ef_construction: int = 40) -> None:
        super().__init__(dim, exact_below=exact_below)
        self.m, self.ef_search, self.ef_construction = m, ef_search, ef_construction

    def _new_index(self, matrix: np.ndarray) -> Any:
        index = self._faiss.IndexHNSWFlat(matrix.shape[1], self.m,
                                          self._faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = self.ef_construction
        return index

    @property
    def nbytes(self) -> int:  # matrix + FAISS' copy + about 1.2 * 2M int32 links per node
        row = self._buf.shape[1] * 4 + int(2.4 * self.m) * 4
        return int(self._buf.nbytes) + self._indexed * row

    def _faiss_search(self, q: np.ndarray, k: int, limit: int) -> np.ndarray:
        faiss = self._faiss
        sel = faiss.IDSelectorRange(0, limit) if limit < len(self) else None
        ef = max(self.ef_search, k) * (2 if sel is not None else 1)
        params = faiss.SearchParametersHNSW(sel=sel, efSearch=ef)
        _, labels = self._index.search(q.astype(np.float32), k, params=params)
        return labels.astype(np.int64)
