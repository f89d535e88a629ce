"""Scores of predicted win rates against 0/1 outcomes: the Brier score and the reliability
curve (observed win rate per bin of the prediction)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["brier_score", "reliability_curve"]


def _pairs(predicted: Any, won: Any) -> tuple[np.ndarray, np.ndarray]:
    """Finite (predicted, outcome) pairs as float arrays; outcomes are 0/1 (bool or R > 0 must
    be decided by the caller)."""
    p = np.asarray(predicted, dtype=float).reshape(-1)
    y = np.asarray(won, dtype=float).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{p.size} predictions for {y.size} outcomes.")
    ok = np.isfinite(p) & np.isfinite(y)
    return p[ok], y[ok]


def brier_score(predicted: Any, won: Any) -> float:
    """Mean squared difference between predicted win probabilities and 0/1 outcomes (lower is
    better; 0.25 for always saying 50 %). NaN without pairs."""
    p, y = _pairs(predicted, won)
    return float(np.mean((p - y) ** 2)) if p.size else float("nan")


def reliability_curve(predicted: Any, won: Any, *, bins: int = 10,
                      strategy: str = "uniform", empty_bins: bool = False) -> pd.DataFrame:
    """Observed win rate against predicted, per bin of the prediction.

    ``strategy``: "uniform" (bins of equal width on [0, 1]: [j/bins, (j+1)/bins), 1.0 in the
    last) or "quantile" (about equal counts). Columns: bin_low, bin_high, predicted (mean
    prediction in the bin), observed (share of wins), count (the names
    ``charts.reliability_figure`` uses); only bins holding pairs unless ``empty_bins`` (then
    every uniform bin, count 0 and NaN rates where empty)."""
    p, y = _pairs(predicted, won)
    columns = ["bin_low", "bin_high", "predicted", "observed", "count"]
    if strategy == "uniform":
        edges = np.arange(bins + 1) / bins
        # floor(p·bins), not a search of the edges: 0.3 belongs to [0.3, 0.4) although the
        # float 0.3 is a hair below 3/10 computed another way
        which = np.clip(np.floor(p * bins).astype(np.int64), 0, bins - 1)
    elif strategy == "quantile":
        if p.size == 0:
            return pd.DataFrame(columns=columns)
        edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, bins + 1)))
        which = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, len(edges) - 2)
    else:
        raise ValueError(f"Unknown strategy {strategy!r}: 'uniform' or 'quantile'.")
    count = np.bincount(which, minlength=len(edges) - 1)
    used = count > 0 if not empty_bins else np.ones(count.size, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.bincount(which, weights=p, minlength=len(edges) - 1) / count
        rate = np.bincount(which, weights=y, minlength=len(edges) - 1) / count
    return pd.DataFrame({"bin_low": edges[:-1][used], "bin_high": edges[1:][used],
                         "predicted": mean_p[used], "observed": rate[used],
                         "count": count[used].astype(np.int64)}, columns=columns)
