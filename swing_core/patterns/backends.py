"""Vector backends: where the stored rows live and how a search over them is answered.

:class:`VectorIndex` is the protocol (build / add / search over a prefix); the backends, by
``SWING_PATTERN_BACKEND`` name (:data:`~swing_core.patterns.factory.BACKENDS`,
:func:`~swing_core.patterns.factory.make_vector_index`): ``sklearn`` and ``numpy`` (here),
``faiss-flat`` (exact), ``faiss-ivf`` / ``faiss-hnsw`` (approximate; in
:mod:`~swing_core.patterns.faiss_backend`, faiss-cpu optional) and ``int8`` (quantized, 3.6x less
memory, approximate; :mod:`~swing_core.patterns.int8_backend`). :func:`recall_at_k` measures an
approximate backend against the exact search; ``benchmarks/bench_scale.py`` compares them.

:class:`NumpyVectorIndex` answers every search with :func:`~swing_core.patterns.kernel.exact_topk`.
:class:`SklearnVectorIndex` (the default, ``Settings.pattern_backend``) keeps a
``NearestNeighbors(metric="cosine", algorithm="brute")`` fitted on the same float32 matrix (a
view, no copy) and answers with it where it is competitive: unrestricted batches of >= 256
queries over <= 10,000 rows (1.5-2x the kernel's time there). Measured on this project's shared
2-core box (numpy 2.4, scikit-learn 1.9, one BLAS thread, ``benchmarks/bench_patterns.py``), its
per-call validation (~0.7 ms) and re-normalization of the whole matrix on every call make
``kneighbors`` 6-18x slower than a bare float32 ``matrix @ q`` + ``argpartition`` for single
queries (1k rows: 0.70 vs 0.04 ms; 100k: 16.9 vs 1.7 ms; 1M: 76 vs 13 ms) and 8x slower for a
256-query batch over 100k rows (610 vs 78 ms CPU); and it cannot restrict a search to the point-
in-time prefix. Those go to the kernel.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from swing_core.patterns.kernel import _EPS, _EXTRA, _finish, exact_topk, one_blas_thread

__all__ = ["VECTOR_DIM", "NumpyVectorIndex", "SklearnVectorIndex", "VectorIndex", "recall_at_k"]

VECTOR_DIM = 16


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

    def take(self, rows: np.ndarray) -> np.ndarray:
        """Stored float32 rows ``rows`` (a copy)."""
        return self.matrix[rows]

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
            # scikit-learn takes about a second to import: only once this backend first
            # answers a batch it is faster for (most searches never need it)
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
        import sklearn  # heavy, as in _fitted: only on this path

        with sklearn.config_context(assume_finite=True), one_blas_thread():
            _, idx = self._fitted().kneighbors(q.astype(np.float32), n_neighbors=k + _EXTRA)
        sims, pos = _finish(q, self.matrix, idx.astype(np.int64), idx.shape[1])
        # sklearn's float32 cosine can misorder near-ties: redo rows with a thin margin
        thin = sims[:, -1] >= sims[:, k - 1] - 4 * _EPS
        if thin.any():
            sims[thin, :k], pos[thin, :k] = exact_topk(q[thin], self.matrix, k)
        return sims[:, :k], pos[:, :k]


def recall_at_k(index: VectorIndex, queries: np.ndarray, k: int, *,
                limits: np.ndarray | None = None, reference: np.ndarray | None = None,
                ties: bool = True) -> float:
    """Mean recall@k of ``index.search`` against the exact search (:func:`exact_topk`) over
    ``reference`` (the original float32 rows; default ``index.matrix``, which for the int8
    backend is its dequantized rows, so pass the originals there).

    ``ties=True`` counts a returned row as found when its exact cosine is at least the exact
    k-th best (rows tied with the k-th are equally right); ``ties=False`` compares row sets.
    Queries that can see fewer than ``k`` rows count over the rows they can see."""
    rows = np.asarray(index.matrix if reference is None else reference, dtype=np.float32)
    q = np.asarray(queries, dtype=np.float64).reshape(-1, rows.shape[1])
    want_s, want_i = exact_topk(q, rows, k, limits=limits)
    _, got_i = index.search(q, k, limits=limits)
    found = np.zeros(q.shape[0])
    for i in range(q.shape[0]):
        expected = want_i[i][want_i[i] >= 0]
        got = got_i[i][got_i[i] >= 0]
        if expected.size == 0:
            found[i] = 1.0
            continue
        if ties:
            exact = rows[got].astype(np.float64) @ q[i] / np.maximum(
                np.linalg.norm(rows[got].astype(np.float64), axis=1) * np.linalg.norm(q[i]),
                1e-300)
            found[i] = min(int((exact >= want_s[i][expected.size - 1] - 1e-12).sum()),
                           expected.size) / expected.size
        else:
            found[i] = np.intersect1d(expected, got).size / expected.size
    return float(found.mean())
