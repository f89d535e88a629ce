"""Pick a vector backend by name (``SWING_PATTERN_BACKEND``): :data:`BACKENDS` and
:func:`make_vector_index`. Above the backends, so that they never import it back; the FAISS
module itself is imported only when a FAISS backend is built."""

from __future__ import annotations

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

__all__ = ["BACKENDS", "make_vector_index"]

BACKENDS = ("sklearn", "numpy", "faiss-flat", "faiss-ivf", "faiss-hnsw", "int8")


def make_vector_index(backend: str | VectorIndex | None = None, *, dim: int = VECTOR_DIM
                      ) -> VectorIndex:
    """A backend by name (one of :data:`BACKENDS`, or ``auto``: ``faiss-flat`` when faiss-cpu is
    installed, else ``sklearn``; default ``Settings.pattern_backend``, i.e.
    ``SWING_PATTERN_BACKEND``) or as given. ``faiss-flat`` is exact; ``faiss-ivf``,
    ``faiss-hnsw`` and ``int8`` are approximate (see
    :func:`~swing_core.patterns.backends.recall_at_k`). Raises
    :class:`~swing_core.errors.ConfigError` for an unknown name, and for the FAISS ones when
    faiss-cpu is not installed."""
    if backend is not None and not isinstance(backend, str):
        return backend
    name = (backend or get_settings().pattern_backend or "sklearn").strip().lower()
    name = name.replace("_", "-")
    if name == "auto":  # exact either way: FAISS' flat index when installed (faster), else sklearn
        try:
            import faiss  # noqa: F401  (optional and heavy: only asked for here)
        except ImportError:
            name = "sklearn"
        else:
            name = "faiss-flat"
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
