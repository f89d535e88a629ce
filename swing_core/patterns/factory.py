"""Pick a vector backend by name (``SWING_PATTERN_BACKEND``): :data:`BACKENDS` and
:func:`make_vector_index`. Above the backends, so that they never import it back; the FAISS
module itself is imported only when a FAISS backend is built (``auto``: only once the library
reaches :data:`AUTO_FAISS_MIN_ROWS`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from swing_core.config import get_settings
from swing_core.errors import ConfigError
from swing_core.patterns import faiss_backend
from swing_core.patterns.backends import (
    VECTOR_DIM,
    NumpyVectorIndex,
    SklearnVectorIndex,
    VectorIndex,
)
from swing_core.patterns.int8_backend import Int8VectorIndex

__all__ = ["AUTO_FAISS_MIN_ROWS", "BACKENDS", "AutoVectorIndex", "make_vector_index"]

BACKENDS = ("sklearn", "numpy", "faiss-flat", "faiss-ivf", "faiss-hnsw", "int8")

#: Rows from which ``auto`` answers with FAISS' exact flat index (when faiss-cpu is installed)
#: instead of the numpy kernel. Measured on the shared 2-core box (k = 50, single queries,
#: 2026-12): the two are within 0.1 ms of each other up to 200,000 rows (5k: 0.23 vs 0.16 ms;
#: 50k: 0.38 vs 0.33 ms; 100k: 0.55 vs 0.51 ms) and the kernel is as fast or faster on
#: 256-query batches (50k: 35 vs 61 ms), while importing FAISS costs 60-120 ms of a process's
#: start; at 1,000,000 rows FAISS is 2.7x faster (``benchmarks/bench_scale.py``).
AUTO_FAISS_MIN_ROWS = 50_000


class AutoVectorIndex:
    """``auto``: exact either way. The numpy kernel (:class:`NumpyVectorIndex`) while the
    library has fewer than ``faiss_min_rows`` rows; from there FAISS' exact flat index
    (:class:`~swing_core.patterns.faiss_backend.FaissFlatVectorIndex`) when faiss-cpu is
    installed (imported only then), else the kernel still. Both rank exactly alike, so results
    do not depend on which one answers. ``name`` is the backend answering now."""

    def __init__(self, dim: int = VECTOR_DIM, *, faiss_min_rows: int = AUTO_FAISS_MIN_ROWS
                 ) -> None:
        self._faiss_min_rows = faiss_min_rows
        self._inner: NumpyVectorIndex = NumpyVectorIndex(dim)
        self._faiss_missing = False

    def _flat_for(self, rows: int) -> faiss_backend.FaissFlatVectorIndex | None:
        """A new, empty FAISS flat index when a library of ``rows`` rows should move to it (it
        is on the kernel, big enough, and faiss-cpu is installed), else None."""
        if (rows < self._faiss_min_rows or self._faiss_missing
                or isinstance(self._inner, faiss_backend.FaissFlatVectorIndex)):
            return None
        try:
            return faiss_backend.FaissFlatVectorIndex(self._inner.matrix.shape[1])
        except ConfigError:  # faiss-cpu not installed: the kernel answers at every size
            self._faiss_missing = True
            return None

    @property
    def name(self) -> str:
        return self._inner.name

    def build(self, matrix: np.ndarray) -> None:
        flat = self._flat_for(len(matrix))
        if flat is not None:
            self._inner = flat
        self._inner.build(matrix)

    def add(self, matrix: np.ndarray) -> None:
        self._inner.add(matrix)
        flat = self._flat_for(len(self._inner))
        if flat is not None:
            flat.build(self._inner.matrix)
            self._inner = flat

    def search(self, queries: np.ndarray, k: int, *, limits: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        return self._inner.search(queries, k, limits=limits)

    @property
    def matrix(self) -> np.ndarray:
        return self._inner.matrix

    @property
    def nbytes(self) -> int:
        return self._inner.nbytes

    def __len__(self) -> int:
        return len(self._inner)

    def take(self, rows: np.ndarray) -> np.ndarray:
        return self._inner.take(rows)

    def __getattr__(self, attr: str) -> Any:  # e.g. FAISS' ``redone`` counter
        if attr.startswith("__") or attr == "_inner":
            raise AttributeError(attr)
        return getattr(self._inner, attr)


def make_vector_index(backend: str | VectorIndex | None = None, *, dim: int = VECTOR_DIM
                      ) -> VectorIndex:
    """A backend by name (one of :data:`BACKENDS`, or ``auto``: :class:`AutoVectorIndex`, the
    numpy kernel below :data:`AUTO_FAISS_MIN_ROWS` rows and ``faiss-flat`` from there when
    faiss-cpu is installed; default ``Settings.pattern_backend``, i.e.
    ``SWING_PATTERN_BACKEND``) or as given. ``faiss-flat`` is exact; ``faiss-ivf``,
    ``faiss-hnsw`` and ``int8`` are approximate (see
    :func:`~swing_core.patterns.backends.recall_at_k`). Raises
    :class:`~swing_core.errors.ConfigError` for an unknown name, and for the FAISS ones when
    faiss-cpu is not installed."""
    if backend is not None and not isinstance(backend, str):
        return backend
    name = (backend or get_settings().pattern_backend or "sklearn").strip().lower()
    name = name.replace("_", "-")
    if name == "auto":  # exact either way; FAISS imported only for a large library
        return AutoVectorIndex(dim)
    if name == "sklearn":
        return SklearnVectorIndex(dim)
    if name == "numpy":
        return NumpyVectorIndex(dim)
    if name == "int8":
        return Int8VectorIndex(dim)
    if name in ("faiss-flat", "faiss-ivf", "faiss-hnsw"):
        cls = {"faiss-flat": faiss_backend.FaissFlatVectorIndex,
               "faiss-ivf": faiss_backend.FaissIVFVectorIndex,
               "faiss-hnsw": faiss_backend.FaissHNSWVectorIndex}[name]
        return cls(dim)
    raise ConfigError(f"Unknown pattern backend {name!r}: choose one of {', '.join(BACKENDS)} "
                      "or auto (SWING_PATTERN_BACKEND).")
