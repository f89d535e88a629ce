"""Pattern priors: a point-in-time nearest-neighbour index over stored setup vectors.

STRATEGY.md, "Pattern priors": the k nearest setup vectors by cosine among those whose outcome
was *known by the as-of time* (``exit_ts <= asof``, exit_ts = close of the exit bar); the same
symbol first, all symbols when the symbol has none; then keep the neighbours in the query's
volatility regime unless fewer than ``params.min_regime_neighbors`` remain.

One engine for every caller (live signals, the Explorer, the walk-forward backtest):

- :mod:`~swing_core.patterns.kernel`: :func:`exact_topk`, the exact float32/float64 cosine
  top-k over a point-in-time prefix of rows;
- :mod:`~swing_core.patterns.backends`: :class:`VectorIndex` and its numpy / scikit-learn
  implementations (int8 and FAISS ones in their own modules), picked by name in
  :mod:`~swing_core.patterns.factory` (:func:`make_vector_index`);
- :mod:`~swing_core.patterns.store`: rows sorted by the time their outcome became known,
  with compact metadata;
- :mod:`~swing_core.patterns.stats`: :class:`PriorStats` / :class:`PriorBatch`,
  :func:`neighbor_stats` and the confidence blend :func:`blend_confidence`;
- :mod:`~swing_core.patterns.index`: :class:`PatternIndex` (single queries, ``query_many``
  batches with extra in-memory rows, updates), built on the neighbour rule of
  :mod:`~swing_core.patterns.rule` and loaded from the database by
  :mod:`~swing_core.patterns.sync`.

The names are imported on first use (PEP 562): importing the package costs nothing until a
name is used.
"""

from __future__ import annotations

from swing_core.lazy import lazy_exports

_BACKENDS = "swing_core.patterns.backends"
_STATS = "swing_core.patterns.stats"

#: public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "BACKENDS": "swing_core.patterns.factory",
    "make_vector_index": "swing_core.patterns.factory",
    **dict.fromkeys(("VECTOR_DIM", "NumpyVectorIndex", "SklearnVectorIndex", "VectorIndex",
                     "recall_at_k"), _BACKENDS),
    "PatternIndex": "swing_core.patterns.index",
    "exact_topk": "swing_core.patterns.kernel",
    **dict.fromkeys(("NEIGHBOR_COLUMNS", "Neighbor", "Neighbors", "PriorBatch", "PriorStats",
                     "blend_confidence", "neighbor_stats"), _STATS),
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports("swing_core.patterns", _LAZY, globals())
