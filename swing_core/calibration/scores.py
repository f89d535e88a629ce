"""Scores of predicted win rates against 0/1 outcomes: the Brier score and the reliability
curve (observed win rate per bin of the prediction)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["WIN_RATE_PRIOR_CENTRE", "WIN_RATE_PRIOR_STRENGTH", "brier_score", "reliability_curve",
           "shrunk_win_rate"]


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


#: Strength of the Beta prior on a neighbour set's win rate, in pseudo-outcomes (a + b): small,
#: so 60 neighbours move the rate by at most 2-3 points, while 3 can no longer say 0 % or 100 %.
WIN_RATE_PRIOR_STRENGTH = 4.0
#: Where that prior is centred when the caller knows no base rate: 50 %, near the R win share of
#: these setups (a coin flip between stop and target at 1-2 R), and neutral.
WIN_RATE_PRIOR_CENTRE = 0.5


def shrunk_win_rate(wins: Any, n: Any, *, base_rate: Any = WIN_RATE_PRIOR_CENTRE,
                    strength: float = WIN_RATE_PRIOR_STRENGTH) -> Any:
    """Posterior mean win rate of ``wins`` out of ``n`` outcomes under a Beta(s·m, s·(1 − m))
    prior, ``m`` = ``base_rate`` (a share, scalar or per row), ``s`` = ``strength``:
    (wins + s·m) / (n + s). NaN where n = 0 (no outcome: no rate at all, rather than the
    prior's). A float for scalars, else an array."""
    wins_a, n_a = np.asarray(wins, dtype=float), np.asarray(n, dtype=float)
    m = np.asarray(base_rate, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(n_a > 0, (wins_a + strength * m) / (n_a + strength), np.nan)
    return float(out) if out.ndim == 0 else out
