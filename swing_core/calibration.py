"""Calibration of predicted win rates: isotonic regression, reliability curve, Brier score.

STRATEGY.md, "Pattern priors": once at least ``params.calibration_min_samples`` (50) evaluated
signals exist, the win rate the neighbours predict is calibrated with isotonic regression on
past (predicted, realized) pairs. A win is a realized R > 0 (the neighbours' definition).

- :func:`fit_calibrator` fits an increasing isotonic regression bounded to [0, 1] and keeps
  only its thresholds (the ones scikit-learn's ``IsotonicRegression`` keeps; clipped outside
  the fitted range), so a :class:`WinRateCalibrator` is a small frozen value that predicts
  with ``np.interp``.
- :func:`calibration_report` is what the UI shows: the reliability curve and Brier score of the
  raw predictions, and of calibrated predictions *out of fold* (each pair calibrated by a model
  fitted without it), so the improvement shown is not an in-sample one.
- :func:`fit_from_signals` fits on the journal's evaluated signals; ``known_by`` keeps it point
  in time (only outcomes known by then).
- :func:`calibrate_point_in_time` is the walk-forward form a backtest needs: each prediction
  calibrated by a fit on the pairs whose outcome was known by its own as-of time.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import StrategyParams

__all__ = [
    "CalibrationReport",
    "WinRateCalibrator",
    "brier_score",
    "calibration_pairs",
    "calibrate_point_in_time",
    "calibration_report",
    "fit_calibrator",
    "fit_from_signals",
    "reliability_curve",
]


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


def fit_calibrator(predicted: Any, won: Any, *, params: StrategyParams | None = None,
                   min_samples: int | None = None) -> WinRateCalibrator:
    """Isotonic calibration of predicted win rates (in [0, 1]) on 0/1 outcomes, once there are
    at least ``min_samples`` finite pairs (default ``params.calibration_min_samples``)."""
    params = params or StrategyParams()
    need = params.calibration_min_samples if min_samples is None else int(min_samples)
    p, y = _pairs(predicted, won)
    if p.size < max(need, 2):
        return WinRateCalibrator(np.empty(0), np.empty(0), int(p.size), need)
    x_thr, y_thr = _isotonic(p, y)
    return WinRateCalibrator(x_thr, y_thr, int(p.size), need)


def _utc_ns(values: Any) -> np.ndarray:
    """Times as int64 UTC nanoseconds (naive values are taken to be UTC)."""
    index = pd.DatetimeIndex(values)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    return index.as_unit("ns").asi8


def calibrate_point_in_time(predicted: Any, won: Any, known_at: Any, *, queries: Any,
                            asof: Any, params: StrategyParams | None = None,
                            min_samples: int | None = None, growth: float = 1.5) -> np.ndarray:
    """Walk-forward calibration: ``queries[i]`` (a predicted win rate made at ``asof[i]``)
    calibrated by :func:`fit_calibrator` on the (``predicted``, ``won``) pairs whose outcome
    was known by then (``known_at <= asof[i]``, UTC times), once at least ``min_samples``
    (default ``params.calibration_min_samples``) are; before that, returned as is.

    Refit cadence: fits are made on the first ``min_samples``, ``min_samples·growth``, ...
    pairs in the order their outcomes became known; a query uses the largest fit whose pairs
    were all known by its as-of time (never a later one), so a handful of fits serve any
    number of queries. NaN queries stay NaN. Returns an array shaped like ``queries``."""
    params = params or StrategyParams()
    need = max(params.calibration_min_samples if min_samples is None else int(min_samples), 2)
    p = np.asarray(predicted, dtype=float).reshape(-1)
    y = np.asarray(won, dtype=float).reshape(-1)
    known = _utc_ns(known_at)
    q = np.asarray(queries, dtype=float).reshape(-1)
    out = q.copy()
    ok = np.isfinite(p) & np.isfinite(y)
    if ok.sum() < need or q.size == 0:
        return out
    order = np.flatnonzero(ok)[np.argsort(known[ok], kind="stable")]
    p, y, known = p[order], y[order], known[order]
    sizes = [need]
    while sizes[-1] * growth < p.size:
        sizes.append(int(math.ceil(sizes[-1] * growth)))
    n_known = np.searchsorted(known, _utc_ns(asof), side="right")
    fit_of = np.searchsorted(np.array(sizes), n_known, side="right") - 1
    for j in np.unique(fit_of[fit_of >= 0]):
        use = fit_of == j
        calibrator = fit_calibrator(p[:sizes[j]], y[:sizes[j]], min_samples=need)
        out[use] = calibrator.predict(q[use])
    return out


def _out_of_fold(p: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each prediction calibrated by an isotonic fit on the other folds."""
    order = np.random.default_rng(seed).permutation(p.size)
    out = np.empty(p.size)
    for part in np.array_split(order, folds):
        rest = np.setdiff1d(order, part, assume_unique=True)
        x_thr, y_thr = _isotonic(p[rest], y[rest])
        out[part] = np.interp(p[part], x_thr, y_thr)
    return out


@dataclass(frozen=True)
class CalibrationReport:
    """For the UI: how well raw predicted win rates matched outcomes, and how well calibrated
    ones do out of fold. Brier scores are mean squared errors (lower is better); ``base_rate``
    is the share of wins; curves as :func:`reliability_curve`."""

    n: int
    fitted: bool
    base_rate: float
    brier_raw: float
    brier_calibrated: float
    curve_raw: pd.DataFrame
    curve_calibrated: pd.DataFrame
    calibrator: WinRateCalibrator
    note: str

    def to_dict(self) -> dict[str, Any]:
        def clean(value: float) -> float | None:
            return None if not np.isfinite(value) else float(value)

        return {"n": self.n, "fitted": self.fitted, "base_rate": clean(self.base_rate),
                "brier_raw": clean(self.brier_raw),
                "brier_calibrated": clean(self.brier_calibrated),
                "curve_raw": json.loads(self.curve_raw.to_json(orient="records")),
                "curve_calibrated": json.loads(self.curve_calibrated.to_json(orient="records")),
                "calibrator": self.calibrator.to_dict(), "note": self.note}


def calibration_report(predicted: Any, won: Any, *, params: StrategyParams | None = None,
                       bins: int = 10, folds: int = 5, seed: int = 0) -> CalibrationReport:
    """Reliability and Brier score of the raw predictions and, once there are enough pairs, of
    ``folds``-fold out-of-fold isotonic calibration, plus the calibrator fitted on all pairs."""
    p, y = _pairs(predicted, won)
    calibrator = fit_calibrator(p, y, params=params)
    base = float(y.mean()) if y.size else float("nan")
    if calibrator.fitted:
        calibrated = _out_of_fold(p, y, max(2, min(folds, p.size)), seed)
        brier_cal = brier_score(calibrated, y)
        curve_cal = reliability_curve(calibrated, y, bins=bins)
        note = (f"Calibrated with isotonic regression on {p.size} evaluated signals; the "
                f"calibrated curve and Brier score are {folds}-fold out of sample.")
    else:
        brier_cal, curve_cal = float("nan"), reliability_curve([], [], bins=bins)
        note = (f"{p.size} evaluated signals: calibration starts at "
                f"{calibrator.min_samples}; win rates are shown uncalibrated.")
    return CalibrationReport(n=int(p.size), fitted=calibrator.fitted, base_rate=base,
                             brier_raw=brier_score(p, y), brier_calibrated=brier_cal,
                             curve_raw=reliability_curve(p, y, bins=bins),
                             curve_calibrated=curve_cal, calibrator=calibrator, note=note)


# --------------------------------------------------------------------------- journal signals


def _raw_win_rate(prior_json: Any, fallback: Any) -> float:
    """The neighbours' own win rate stored in ``prior_json`` (before any calibration), else the
    signal's expected win rate."""
    if isinstance(prior_json, str) and prior_json:
        try:
            value = json.loads(prior_json).get("win_rate")
        except (ValueError, AttributeError):
            value = None
        if value is not None:
            return float(value)
    return float(fallback) if fallback is not None and pd.notna(fallback) else float("nan")


def calibration_pairs(engine: Any, *, run_id: str | None = "live", interval: str | None = None,
                      known_by: Any = None) -> pd.DataFrame:
    """(predicted, won) pairs of evaluated signals with a prior: columns symbol, interval,
    asof, exit_ts, predicted (raw win rate of the neighbours), realized_r, won (R > 0), oldest
    first. ``known_by`` (UTC): only outcomes known by then (``exit_ts <= known_by``)."""
    from swing_core import db

    signals = db.list_signals(engine, evaluated=True, run_id=run_id, interval=interval,
                              limit=None)
    columns = ["symbol", "interval", "asof", "exit_ts", "predicted", "realized_r", "won"]
    if signals.empty:
        return pd.DataFrame(columns=columns)
    frame = signals.assign(predicted=[_raw_win_rate(j, f) for j, f in
                                      zip(signals["prior_json"], signals["expected_winrate"],
                                          strict=True)])
    frame = frame[frame["predicted"].notna() & frame["realized_r"].notna()]
    if known_by is not None:
        limit = pd.Timestamp(known_by)
        limit = limit.tz_localize("UTC") if limit.tzinfo is None else limit.tz_convert("UTC")
        frame = frame[pd.to_datetime(frame["exit_ts"], utc=True) <= limit]
    frame = frame.assign(won=frame["realized_r"] > 0).sort_values(["asof", "id"])
    return frame[columns].reset_index(drop=True)


def fit_from_signals(engine: Any, *, params: StrategyParams | None = None,
                     run_id: str | None = "live", interval: str | None = None,
                     known_by: Any = None) -> tuple[WinRateCalibrator | None, str | None]:
    """A calibrator fitted on the journal's evaluated signals (see :func:`calibration_pairs`),
    or None with a note saying how many more are needed."""
    params = params or StrategyParams()
    pairs = calibration_pairs(engine, run_id=run_id, interval=interval, known_by=known_by)
    calibrator = fit_calibrator(pairs["predicted"], pairs["won"].astype(float), params=params)
    if not calibrator.fitted:
        return None, (f"Win rates uncalibrated: {calibrator.n_samples} evaluated signals with a "
                      f"prior, calibration needs {calibrator.min_samples}.")
    return calibrator, None
