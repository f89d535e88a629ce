"""Calibration from the journal: (predicted, won) pairs of evaluated signals, the calibrator
fitted on them (point in time with ``known_by``), and their calibration report.

A win is a win after costs (:func:`swing_core.costs.won_after_costs`: realized R net of fees and
slippage > 0, the plan's entry taken as the fill): the outcome a trader keeps, so a calibrated
win rate is the chance of making money on the trade, not of an R above 0 before costs."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from swing_core.calibration.isotonic import WinRateCalibrator, fit_calibrator
from swing_core.calibration.report import CalibrationReport, calibration_report
from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.costs import won_after_costs

__all__ = ["calibration_pairs", "fit_from_signals", "report_from_signals"]


def _raw_win_rate(prior_json: Any, fallback: Any) -> float:
    """The neighbours' own win rate stored in ``prior_json`` (before any calibration; shrunk
    toward 50 % for small samples since issue 15, the bare share in signals stored before),
    else the signal's expected win rate."""
    if isinstance(prior_json, str) and prior_json:
        try:
            value = json.loads(prior_json).get("win_rate")
        except (ValueError, AttributeError):
            value = None
        if value is not None:
            return float(value)
    return float(fallback) if fallback is not None and pd.notna(fallback) else float("nan")


def calibration_pairs(engine: Any, *, params: StrategyParams | None = None,
                      run_id: str | None = "live", interval: str | None = None,
                      known_by: Any = None) -> pd.DataFrame:
    """(predicted, won) pairs of evaluated signals with a prior: columns symbol, interval,
    asof, exit_ts, predicted (raw win rate of the neighbours, an R win rate before costs),
    realized_r, won (a win after costs with ``params``' fees and slippage), oldest first.
    ``known_by`` (UTC): only outcomes known by then (``exit_ts <= known_by``)."""
    from swing_core import db

    params = params or StrategyParams()

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
    number = {c: pd.to_numeric(frame[c], errors="coerce").to_numpy(float)
              for c in ("realized_r", "entry", "stop", "exit_price")}
    won = won_after_costs(number["realized_r"], number["entry"], number["stop"],
                          exit_price=number["exit_price"], params=params)
    frame = frame.assign(won=won)
    frame = frame[frame["won"].notna()].sort_values(["asof", "id"])
    return frame[columns].reset_index(drop=True)


def fit_from_signals(engine: Any, *, params: StrategyParams | None = None,
                     run_id: str | None = "live", interval: str | None = None,
                     known_by: Any = None) -> tuple[WinRateCalibrator | None, str | None]:
    """A calibrator fitted on the journal's evaluated signals (see :func:`calibration_pairs`),
    or None with a note saying how many more are needed."""
    params = params or StrategyParams()
    pairs = calibration_pairs(engine, params=params, run_id=run_id, interval=interval,
                              known_by=known_by)
    calibrator = fit_calibrator(pairs["predicted"], pairs["won"].astype(float), params=params)
    if not calibrator.fitted:
        return None, (f"Win rates uncalibrated: {calibrator.n_samples} evaluated signals with a "
                      f"prior, calibration needs {calibrator.min_samples}.")
    return calibrator, None


def report_from_signals(engine: Any, *, params: StrategyParams | None = None,
                        run_id: str | None = "live", interval: str | None = None,
                        known_by: Any = None, bins: int = 10) -> CalibrationReport:
    """:func:`calibration_report` of the journal's evaluated signals
    (:func:`calibration_pairs`): each predicted at the close of its signal bar (``asof`` plus
    the bar's length), known at its ``exit_ts``."""
    pairs = calibration_pairs(engine, params=params, run_id=run_id, interval=interval,
                              known_by=known_by)
    asof = pd.to_datetime(pairs["asof"], utc=True)
    bar = pairs["interval"].map(INTERVAL_DELTA)
    # an unknown interval: the bar's open time, earlier than its close (fewer outcomes known)
    closes = asof + pd.to_timedelta(bar.where(bar.notna(), pd.Timedelta(0)))
    return calibration_report(pairs["predicted"].to_numpy(float),
                              pairs["won"].to_numpy(float),
                              pd.to_datetime(pairs["exit_ts"], utc=True), asof=closes,
                              params=params, bins=bins)
