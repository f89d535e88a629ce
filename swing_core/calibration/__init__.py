"""Calibration of predicted win rates: isotonic regression, reliability curve, Brier score.

STRATEGY.md, "Pattern priors": once at least ``params.calibration_min_samples`` (50) evaluated
signals exist, the win rate the neighbours predict is calibrated with isotonic regression on
past (predicted, realized) pairs. The prediction is the neighbours' R win rate (R > 0, before
costs); the outcome it is calibrated to and scored against is a win after costs
(:func:`swing_core.costs.won_after_costs`: R net of fees and slippage > 0), what a trader keeps.

- :func:`fit_calibrator` fits an increasing isotonic regression bounded to [0, 1] and keeps
  only its thresholds (the ones scikit-learn's ``IsotonicRegression`` keeps; clipped outside
  the fitted range), so a :class:`WinRateCalibrator` is a small frozen value that predicts
  with ``np.interp``.
- :func:`calibrate_point_in_time` is the walk-forward form a backtest needs: each prediction
  calibrated by a fit on the pairs whose outcome was known by its own as-of time, refitted
  when the number of known outcomes reaches fixed thresholds (50, 75, 113, …): the value at a
  query depends only on what was known by then.
- :func:`calibration_report` is what the UI and the CLI show, time-ordered only (no random
  folds): each pair calibrated by the same walk-forward rule, the Brier scores of raw,
  calibrated, running base rate and constant 50 % side by side with n, a plain-language
  verdict (:class:`BrierComparison`), and the reliability curves.
  :func:`report_from_trades` (a backtest) and :func:`report_from_signals` (the journal) feed it.
- :func:`fit_from_signals` fits on the journal's evaluated signals; ``known_by`` keeps it point
  in time (only outcomes known by then).
"""

from __future__ import annotations

from swing_core.calibration.isotonic import (
    WinRateCalibrator,
    calibrate_point_in_time,
    fit_calibrator,
)
from swing_core.calibration.journal import (
    calibration_pairs,
    fit_from_signals,
    report_from_signals,
)
from swing_core.calibration.report import (
    VERDICT_Z,
    BrierComparison,
    CalibrationReport,
    calibration_report,
    report_from_trades,
)
from swing_core.calibration.scores import brier_score, reliability_curve

__all__ = [
    "VERDICT_Z",
    "BrierComparison",
    "CalibrationReport",
    "WinRateCalibrator",
    "brier_score",
    "calibration_pairs",
    "calibrate_point_in_time",
    "calibration_report",
    "fit_calibrator",
    "fit_from_signals",
    "reliability_curve",
    "report_from_signals",
    "report_from_trades",
]
