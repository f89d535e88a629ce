"""Isotonic calibration of predicted win rates, and its walk-forward (point-in-time) form.

STRATEGY.md, "Pattern priors": once at least ``params.calibration_min_samples`` (50) evaluated
signals exist, the win rate the neighbours predict is calibrated with isotonic regression on
past (predicted, realized) pairs. :func:`calibrate_point_in_time` holds the one point-in-time
rule every caller (the backtest, the calibration report) goes through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.calibration.scores import WIN_RATE_PRIOR_STRENGTH, _pairs, shrunk_win_rate
from swing_core.config import StrategyParams

__all__ = ["WinRateCalibrator", "calibrate_point_in_time", "fit_calibrator"]


@dataclass(frozen=True)
class WinRateCalibrator:
    """A fitted isotonic map from predicted to calibrated win rate (``x`` → ``y`` thresholds,
    linear between them, clipped outside), or the identity when ``fitted`` is False (fewer than
    ``min_samples`` pairs)."""

    x: np.ndarray
    y: np.ndarray
    n_samples: int
    min_samples: int

    @property
    def fitted(self) -> bool:
        return self.x.size > 0

    def predict(self, win_rate: Any) -> Any:
        """Calibrated win rate(s): a float for a scalar, else an array; NaN stays NaN."""
        p = np.asarray(win_rate, dtype=float)
        out = np.interp(p, self.x, self.y) if self.fitted else p.copy()
        out = np.where(np.isfinite(p), out, np.nan)
        return float(out) if out.ndim == 0 else out

    def to_dict(self) -> dict[str, Any]:
        return {"fitted": self.fitted, "n_samples": self.n_samples,
                "min_samples": self.min_samples, "x": self.x.tolist(), "y": self.y.tolist()}


def _isotonic(p: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds of the increasing isotonic fit of ``y`` on ``p`` bounded to [0, 1]: exactly
    what scikit-learn's ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` keeps
    (equal predictions pooled with their mean outcome, its PAVA solver, flat interior points
    dropped), without the estimator's per-call validation (a walk-forward refits often)."""
    from sklearn.isotonic import isotonic_regression

    levels, inverse = np.unique(p, return_inverse=True)
    weight = np.bincount(inverse, minlength=levels.size).astype(float)
    mean_y = np.bincount(inverse, weights=y, minlength=levels.size) / weight
    fitted = isotonic_regression(mean_y, sample_weight=weight, y_min=0.0, y_max=1.0)
    keep = np.ones(levels.size, bool)
    keep[1:-1] = (fitted[:-2] != fitted[1:-1]) | (fitted[1:-1] != fitted[2:])
    return levels[keep], np.asarray(fitted[keep], float)


def _shrunk_blocks(p: np.ndarray, x_thr: np.ndarray, y_thr: np.ndarray, base_rate: float,
                   strength: float) -> np.ndarray:
    """The isotonic fit's values with each block (pairs sharing one fitted value) shrunk toward
    ``base_rate`` by the Beta prior of :func:`shrunk_win_rate`, then made increasing again (the
    weighted isotonic fit of the shrunk values): a block of three losses at the low end no
    longer says 0 %."""
    from sklearn.isotonic import isotonic_regression  # optional heavy import, fits only

    fitted = np.interp(p, x_thr, y_thr)
    values, inverse = np.unique(fitted, return_inverse=True)
    weight = np.bincount(inverse, minlength=values.size).astype(float)
    shrunk = shrunk_win_rate(values * weight, weight, base_rate=base_rate, strength=strength)
    monotone = isotonic_regression(shrunk, sample_weight=weight, y_min=0.0, y_max=1.0)
    return np.asarray(monotone, float)[np.searchsorted(values, y_thr)]


def fit_calibrator(predicted: Any, won: Any, *, params: StrategyParams | None = None,
                   min_samples: int | None = None,
                   strength: float = WIN_RATE_PRIOR_STRENGTH) -> WinRateCalibrator:
    """Isotonic calibration of predicted win rates (in [0, 1]) on 0/1 outcomes, once there are
    at least ``min_samples`` finite pairs (default ``params.calibration_min_samples``).

    Each block of the fit is shrunk toward the pairs' win share with ``strength``
    pseudo-outcomes (the neighbours' rule, :func:`shrunk_win_rate`), so a handful of pairs at
    either end never calibrates to 0 % or 100 %; ``strength=0`` is scikit-learn's plain fit."""
    params = params or StrategyParams()
    need = params.calibration_min_samples if min_samples is None else int(min_samples)
    p, y = _pairs(predicted, won)
    if p.size < max(need, 2):
        return WinRateCalibrator(np.empty(0), np.empty(0), int(p.size), need)
    x_thr, y_thr = _isotonic(p, y)
    if strength > 0:
        y_thr = _shrunk_blocks(p, x_thr, y_thr, float(y.mean()), strength)
    return WinRateCalibrator(x_thr, y_thr, int(p.size), need)


#: int64 nanoseconds of NaT (an unknown time).
_NAT = np.iinfo(np.int64).min


def _utc_ns(values: Any) -> np.ndarray:
    """Times as int64 UTC nanoseconds (naive values are taken to be UTC; NaT as ``_NAT``)."""
    index = pd.DatetimeIndex(np.atleast_1d(values) if np.ndim(values) == 0 else values)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").asi8


def _known_pairs(predicted: Any, won: Any, known_at: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The finite pairs with a known-at time, in the order their outcomes became known.

    Returns (predicted, won, known_at as int64 UTC ns, position of each in the input). Ties in
    time are ordered by prediction, then outcome: an order of the pairs' values only, so the
    pairs known by any time come first in the same order whatever else the input holds."""
    p = np.asarray(predicted, dtype=float).reshape(-1)
    y = np.asarray(won, dtype=float).reshape(-1)
    known = _utc_ns(known_at)
    if not p.shape == y.shape == known.shape:
        raise ValueError(f"{p.size} predictions, {y.size} outcomes and {known.size} known-at "
                         "times: one of each per pair.")
    ok = np.flatnonzero(np.isfinite(p) & np.isfinite(y) & (known != _NAT))
    order = ok[np.lexsort((y[ok], p[ok], known[ok]))]
    return p[order], y[order], known[order], order


def _refit_sizes(need: int, growth: float, upto: int) -> np.ndarray:
    """The refit thresholds ``need``, ⌈need·growth⌉, ⌈⌈need·growth⌉·growth⌉, … up to ``upto``.

    The sequence depends on ``need`` and ``growth`` only (``upto`` merely stops it): whether a
    count of known outcomes reached a threshold never depends on how many pairs exist later.
    (It used to be cut short at the total number of pairs, so a run with exactly 75 or 255
    outcomes used an older fit at its end than a longer run at the same time.)"""
    if not growth > 1.0:
        raise ValueError(f"growth must be above 1 (a refit at each larger count), not {growth}.")
    sizes = [need]
    while (following := max(math.ceil(sizes[-1] * growth), sizes[-1] + 1)) <= upto:
        sizes.append(int(following))
    return np.asarray(sizes, np.int64)


def _walk_forward(p: np.ndarray, y: np.ndarray, known: np.ndarray, queries: np.ndarray,
                  asof: np.ndarray, *, need: int, growth: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The point-in-time rule, in one place: ``queries[i]`` calibrated by the fit on the
    first ``s`` pairs in known order, ``s`` the largest refit threshold (:func:`_refit_sizes`)
    not above the number of pairs known by ``asof[i]`` (``known <= asof[i]``); returned as is
    before ``need`` pairs are known. ``p``, ``y``, ``known`` as :func:`_known_pairs` returns
    them; ``asof`` int64 UTC ns. Returns (calibrated queries, pairs known at each query)."""
    n_known = np.searchsorted(known, asof, side="right")
    out = queries.copy()
    if p.size < need or queries.size == 0:
        return out, n_known
    sizes = _refit_sizes(need, growth, p.size)
    fit_of = np.searchsorted(sizes, n_known, side="right") - 1
    for j in np.unique(fit_of[fit_of >= 0]):
        use = fit_of == j
        calibrator = fit_calibrator(p[:sizes[j]], y[:sizes[j]], min_samples=need)
        out[use] = calibrator.predict(queries[use])
    return out, n_known


def _need(params: StrategyParams | None, min_samples: int | None) -> int:
    params = params or StrategyParams()
    return max(params.calibration_min_samples if min_samples is None else int(min_samples), 2)


def calibrate_point_in_time(predicted: Any, won: Any, known_at: Any, *, queries: Any,
                            asof: Any, params: StrategyParams | None = None,
                            min_samples: int | None = None, growth: float = 1.5) -> np.ndarray:
    """Walk-forward calibration: ``queries[i]`` (a predicted win rate made at ``asof[i]``)
    calibrated by :func:`fit_calibrator` on (``predicted``, ``won``) pairs whose outcome was
    known by then (``known_at <= asof[i]``, UTC times), once at least ``min_samples``
    (default ``params.calibration_min_samples``, 50) are; before that, returned as is.

    Refit schedule: fits are made on the first 50, 75, 113, 170, 255, … pairs (``min_samples``
    times ``growth`` again and again, rounded up) in the order their outcomes became known
    (ties by value, so the order does not depend on the input's); a query uses the largest of
    those fits not above the number of pairs known at its as-of time. The thresholds depend on
    that count only, so the value at a query depends only on the pairs known by its as-of time:
    identical whether pairs known later exist or not (truncation invariance), and a handful of
    fits serve any number of queries. NaN queries stay NaN. Returns an array shaped like
    ``queries``."""
    need = _need(params, min_samples)
    p, y, known, _ = _known_pairs(predicted, won, known_at)
    q = np.asarray(queries, dtype=float).reshape(-1)
    return _walk_forward(p, y, known, q, _utc_ns(asof), need=need, growth=growth)[0]
