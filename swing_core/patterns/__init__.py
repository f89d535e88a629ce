"""Pattern priors: a point-in-time nearest-neighbour index over stored setup vectors.

STRATEGY.md, "Pattern priors": the k nearest setup vectors by cosine among those whose outcome
was *known by the as-of time* (``exit_ts <= asof``, exit_ts = close of the exit bar); the same
symbol first, all symbols when the symbol has none; then keep the neighbours in the query's
volatility regime unless fewer than ``params.min_regime_neighbors`` remain.

One engine for every caller (live signals, the Explorer, the walk-forward backtest):

- :mod:`~swing_core.patterns.kernel`: :func:`exact_topk`, the exact float32/float64 cosine
  top-k over a point-in-time prefix of rows;
- :mod:`~swing_core.patterns.backends`: :class:`VectorIndex` and its numpy / scikit-learn
  implementations;
- :mod:`~swing_core.patterns.store`: rows sorted by the time their outcome became known,
  with compact metadata;
- :mod:`~swing_core.patterns.stats`: :class:`PriorStats` / :class:`PriorBatch`,
  :func:`neighbor_stats` and the confidence blend :func:`blend_confidence`;
- :mod:`~swing_core.patterns.index`: :class:`PatternIndex` (single queries, ``query_many``
  batches with extra in-memory rows, updates), loaded from the database by
  :mod:`~swing_core.patterns.sync`.
"""

from __future__ import annotations

from swing_core.patterns.backends import (
    BACKENDS,
    VECTOR_DIM,
    NumpyVectorIndex,
    SklearnVectorIndex,
    VectorIndex,
    make_vector_index,
    recall_at_k,
)
from swing_core.patterns.index import PatternIndex
from swing_core.patterns.kernel import exact_topk
from swing_core.patterns.stats import (
    NEIGHBOR_COLUMNS,
    Neighbor,
    Neighbors,
    PriorBatch,
    PriorStats,
    blend_confidence,
    neighbor_stats,
)

__all__ = [
    "BACKENDS",
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
    "recall_at_k",
]
