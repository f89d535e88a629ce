"""The calibration report: time-ordered evaluation of predicted win rates, the Brier scores of
raw, calibrated, running base rate and constant 50 % side by side, and a verdict."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.calibration.isotonic import (
    _NAT,
    WinRateCalibrator,
    _known_pairs,
    _need,
    _utc_ns,
    _walk_forward,
    fit_calibrator,
)
from swing_core.calibration.scores import reliability_curve
from swing_core.config import StrategyParams
from swing_core.costs import won_after_costs

__all__ = ["VERDICT_Z", "BrierComparison", "CalibrationReport", "calibration_report",
           "report_from_trades"]

#: How many standard errors of the paired Brier difference a verdict needs to call calibrated
#: priors better (or worse) than the running base rate (about 95 % two-sided).
VERDICT_Z = 2.0


@dataclass(frozen=True)
class BrierComparison:
    """Do the priors carry information? Brier scores (mean squared error of a predicted win
    probability against the 0/1 outcome; lower is better) over the same ``n`` pairs, each
    predictor point in time (walk-forward: at each pair, only outcomes known when it was
    predicted):

    - ``brier_raw``: the neighbours' win rate as predicted;
    - ``brier_calibrated``: that rate through the isotonic calibration of
      :func:`calibrate_point_in_time` (raw for the pairs predicted before ``min_samples``
      outcomes were known; NaN when no pair was calibrated);
    - ``brier_base_rate``: the running base rate, the share of wins among the outcomes known
      at that time with one win and one loss added ((wins + 1) / (known + 2), 50 % before any
      outcome is known: no pair is scored against a 0 % or 100 % from one or two outcomes);
    - ``brier_constant``: always 50 % (0.25 on any 0/1 outcomes).

    ``n_calibrated``: pairs predicted with at least ``min_samples`` outcomes known.
    ``gain`` = ``brier_base_rate`` − ``brier_calibrated`` (positive: the calibrated priors do
    better) and ``gain_se`` its standard error (of the paired per-pair differences).

    ``outcome`` and the plain-language ``verdict``, the rule:

    - "too_few": fewer than ``min_samples`` pairs had a calibrated prediction;
    - "beats_base_rate": ``gain`` > ``VERDICT_Z`` · ``gain_se`` (and > 0);
    - "worse_than_base_rate": ``gain`` < −``VERDICT_Z`` · ``gain_se``;
    - "no_information": otherwise: the calibrated win rate does no better than knowing only
      how often setups win, within noise."""

    n: int
    n_calibrated: int
    min_samples: int
    brier_raw: float
    brier_calibrated: float
    brier_base_rate: float
    brier_constant: float
    gain: float
    gain_se: float
    outcome: str
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        return {name: _clean(getattr(self, name)) for name in self.__dataclass_fields__}


def _clean(value: Any) -> Any:
    """JSON-ready: non-finite floats as None."""
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value.item() if isinstance(value, np.generic) else value


def _verdict(n: int, n_calibrated: int, need: int, brier: dict[str, float], gain: float,
             gain_se: float) -> tuple[str, str]:
    """(outcome, verdict text) by the rule of :class:`BrierComparison`."""
    cal, base = brier["calibrated"], brier["base_rate"]
    scores = f"Brier {cal:.4f} vs {base:.4f}, n = {n}"
    if n_calibrated < need:
        return "too_few", (
            f"Too early to judge the priors: {n} evaluated signals, {n_calibrated} of them "
            f"predicted with calibration on; at least {need} such are needed.")
    if gain > 0 and gain > VERDICT_Z * gain_se:
        return "beats_base_rate", (
            f"Calibrated priors beat the base rate on this data: the calibrated win rate does "
            f"better than the running base rate ({scores}).")
    if gain < -VERDICT_Z * gain_se:
        return "worse_than_base_rate", (
            f"Priors mislead on this data: the calibrated win rate does worse than the "
            f"running base rate ({scores}).")
    how = "does no better than" if gain <= 0 else "is not clearly better than"
    return "no_information", (
        f"Priors carry no information yet on this data: the calibrated win rate {how} the "
        f"running base rate ({scores}).")


def _compare(y: np.ndarray, raw: np.ndarray, calibrated: np.ndarray, base_rate: np.ndarray,
             *, n_calibrated: int, need: int) -> BrierComparison:
    n = int(y.size)
    squared = {"raw": (raw - y) ** 2, "calibrated": (calibrated - y) ** 2,
               "base_rate": (base_rate - y) ** 2, "constant": (0.5 - y) ** 2}
    brier = {name: float(v.mean()) if n else float("nan") for name, v in squared.items()}
    if n_calibrated == 0:
        brier["calibrated"] = float("nan")
    difference = squared["base_rate"] - squared["calibrated"]
    gain = brier["base_rate"] - brier["calibrated"]
    gain_se = float(difference.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan")
    outcome, verdict = _verdict(n, n_calibrated, need, brier, gain, gain_se)
    return BrierComparison(
        n=n, n_calibrated=n_calibrated, min_samples=need, brier_raw=brier["raw"],
        brier_calibrated=brier["calibrated"], brier_base_rate=brier["base_rate"],
        brier_constant=brier["constant"], gain=gain, gain_se=gain_se, outcome=outcome,
        verdict=verdict)


@dataclass(frozen=True)
class CalibrationReport:
    """For the UI and the CLI: how well predicted win rates matched outcomes, time-ordered.

    ``comparison``: the Brier scores of raw, calibrated (walk-forward), running base rate and
    constant 50 %, side by side with n and the verdict (:class:`BrierComparison`).
    ``curve_raw`` / ``curve_calibrated``: :func:`reliability_curve` of the raw and of the
    walk-forward calibrated predictions (empty when none was calibrated). ``base_rate``: the
    share of wins over all pairs (hindsight: a summary, not a predictor). ``calibrator``: the
    fit on all pairs (what a live signal made now would use); ``fitted`` whether there were
    enough. ``pairs``: one row per pair scored, in the order outcomes became known: ``row``
    (its position in the input), ``predicted`` (raw), ``calibrated`` (walk-forward),
    ``running_base_rate``, ``won`` (0/1), ``known_before`` (outcomes known when it was
    predicted), ``asof`` and ``known_at`` (UTC)."""

    n: int
    fitted: bool
    base_rate: float
    comparison: BrierComparison
    curve_raw: pd.DataFrame
    curve_calibrated: pd.DataFrame
    calibrator: WinRateCalibrator
    note: str
    pairs: pd.DataFrame

    @property
    def brier_raw(self) -> float:
        return self.comparison.brier_raw

    @property
    def brier_calibrated(self) -> float:
        return self.comparison.brier_calibrated

    @property
    def verdict(self) -> str:
        return self.comparison.verdict

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, "fitted": self.fitted, "base_rate": _clean(self.base_rate),
                **self.comparison.to_dict(),
                "curve_raw": json.loads(self.curve_raw.to_json(orient="records")),
                "curve_calibrated": json.loads(self.curve_calibrated.to_json(orient="records")),
                "calibrator": self.calibrator.to_dict(), "note": self.note}


def calibration_report(predicted: Any, won: Any, known_at: Any, *, asof: Any = None,
                       params: StrategyParams | None = None, min_samples: int | None = None,
                       growth: float = 1.5, bins: int = 10) -> CalibrationReport:
    """Time-ordered evaluation of predicted win rates: each pair's prediction calibrated by
    the fit on the pairs known before it (the rule of :func:`calibrate_point_in_time`, the
    same code), its running base rate likewise, then the Brier scores, reliability curves and
    verdict of :class:`CalibrationReport`. No random folds: a fold would calibrate early
    pairs on later outcomes and flatter the calibration.

    ``known_at``: when each pair's outcome became known (UTC; e.g. the close of its exit bar).
    ``asof``: when each prediction was made (UTC; e.g. the close of the signal bar); default:
    just before its own outcome became known. A pair's own outcome never counts for itself
    (an ``asof`` at or after its ``known_at`` is taken as just before it). Pairs with a NaN
    prediction or outcome, or no known-at time, are left out."""
    need = _need(params, min_samples)
    known_all = _utc_ns(known_at)
    just_before = np.where(known_all == _NAT, _NAT, known_all - 1)
    made_all = just_before if asof is None else np.minimum(_utc_ns(asof), just_before)
    p, y, known, order = _known_pairs(predicted, won, known_at)
    made = made_all[order]
    calibrated, n_known = _walk_forward(p, y, known, p, made, need=need, growth=growth)
    wins_known = np.concatenate([[0.0], np.cumsum(y)])[n_known]
    running_base = (wins_known + 1.0) / (n_known + 2.0)
    on = n_known >= need
    comparison = _compare(y, p, calibrated, running_base, n_calibrated=int(on.sum()),
                          need=need)
    calibrator = fit_calibrator(p, y, min_samples=need)
    if on.any():
        curve_cal = reliability_curve(calibrated, y, bins=bins)
        note = (f"Walk-forward over {p.size} evaluated signals: each win rate calibrated with "
                f"isotonic regression on the outcomes known when it was predicted (refits at "
                f"{need}, {math.ceil(need * growth)}, … known outcomes); the "
                f"{p.size - int(on.sum())} predicted with fewer than {need} known are "
                "scored raw.")
    else:
        curve_cal = reliability_curve([], [], bins=bins)
        note = (f"{p.size} evaluated signals: calibration starts at {need} known outcomes; "
                "win rates are shown uncalibrated.")
    pairs = pd.DataFrame({
        "row": order, "predicted": p, "calibrated": calibrated,
        "running_base_rate": running_base, "won": y, "known_before": n_known,
        "asof": pd.to_datetime(made, utc=True), "known_at": pd.to_datetime(known, utc=True)})
    return CalibrationReport(n=int(p.size), fitted=calibrator.fitted,
                             base_rate=float(y.mean()) if y.size else float("nan"),
                             comparison=comparison, curve_raw=reliability_curve(p, y, bins=bins),
                             curve_calibrated=curve_cal, calibrator=calibrator, note=note,
                             pairs=pairs)


def report_from_trades(trades: pd.DataFrame, *, params: StrategyParams | None = None,
                       bins: int = 10) -> CalibrationReport:
    """:func:`calibration_report` of a backtest's trades: the neighbours' win rate
    (``prior_win_rate_raw``, an R win rate before costs) against a win after costs
    (:func:`swing_core.costs.won_after_costs` of ``realized_r``, ``fill_price``, ``stop``,
    ``exit_price`` with ``params``' fees and slippage: the trade made money, the outcome a
    trader keeps; for a trade the portfolio sized, the same as its net P&L > 0 but for the
    fee's share at another size), predicted at ``asof`` (the close of the signal bar), known
    at ``exit_ts`` (the close of the exit bar). Trades without a prior or an outcome are left
    out. Its calibrated predictions are the run's ``prior_win_rate`` when the run priced these
    trades with the same ``params`` (same target, same rule, same code)."""
    params = params or StrategyParams()
    if trades.empty or "prior_win_rate_raw" not in trades:
        return calibration_report([], [], pd.DatetimeIndex([], tz="UTC"), params=params,
                                  bins=bins)

    def number(column: str) -> np.ndarray:
        return pd.to_numeric(trades[column], errors="coerce").to_numpy(float)

    fill = "fill_price" if "fill_price" in trades else "entry_price"
    won = won_after_costs(number("realized_r"), number(fill), number("stop"),
                          exit_price=number("exit_price"), params=params)
    return calibration_report(number("prior_win_rate_raw"), won,
                              pd.to_datetime(trades["exit_ts"], utc=True),
                              asof=pd.to_datetime(trades["asof"], utc=True), params=params,
                              bins=bins)
