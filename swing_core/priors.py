"""Pattern priors for live signals: the stored vector library, point in time, as signal fields.

A signal on bar t (open time ``asof``) is priced with the neighbours whose outcome was known by
the bar's close (``asof + INTERVAL_DELTA``): expected R, win rate (the neighbours' share of wins
shrunk toward 50 % for small samples, :func:`swing_core.patterns.shrunk_win_rate`, then
calibrated with isotonic regression once enough evaluated signals exist), hold times, and the
confidence blend of STRATEGY.md. Every rate goes with ``prior["n"]``, the neighbours it rests
on.  The index is loaded once and topped up incrementally (``PatternIndex.refresh``).

The neighbours' win rate is an R win rate, before costs; the calibration (fitted on the
journal's evaluated signals) maps it to the chance of a win after fees and slippage
(:func:`swing_core.costs.won_after_costs`), so a calibrated ``expected_winrate`` is after costs.
The journal's calibration report is made once with the calibrator; its outcome goes with every
prior (``prior["calibration"]``) for the verdict (:mod:`swing_core.verdict`).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import sqlalchemy as sa

from swing_core.config import INTERVAL_DELTA, Settings, StrategyParams, get_settings
from swing_core.errors import SwingError
from swing_core.numbers import finite_or_none
from swing_core.patterns import PatternIndex, PriorStats, blend_confidence

__all__ = ["PriorProvider", "build_prior_provider", "calibration_outcome", "prior_fields"]

#: Seconds between two incremental refreshes of the index from the database.
REFRESH_EVERY_S = 5.0



def prior_fields(
    stats: PriorStats,
    *,
    confidence: float,
    params: StrategyParams,
    calibrated_win_rate: float | None = None,
    calibration: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Signal fields from neighbour statistics (None where undefined).

    ``expected_winrate_raw``: the neighbours' win rate before calibration (already shrunk
    toward 50 % for a small n, ``stats.win_rate``); ``expected_winrate``: calibrated when a
    calibrated value is given, else the same; ``prior``: every statistic, with ``n`` (the
    neighbours the rates rest on), ``win_rate_unshrunk`` (the bare share of wins),
    ``calibrated`` (whether ``expected_winrate`` is calibrated: a win after costs) and
    ``calibration`` (the journal's calibration outcome, when given: ``outcome``, ``n``,
    ``n_calibrated`` of :class:`~swing_core.calibration.BrierComparison`)."""
    prior = {**stats.to_dict(), "calibrated": calibrated_win_rate is not None,
             "calibration": calibration}
    if stats.n == 0:
        return {
            "expected_source": "none",
            "expected_notes": "No evaluated setup like this yet: record signals and evaluate "
            "them (Journal), or run a backtest, to build the pattern library.",
            "prior": prior,
        }
    win_rate = finite_or_none(stats.win_rate)
    note = f"{stats.n} nearest setups ({'this symbol' if stats.scope == 'symbol' else 'all symbols'}"
    note += ", same volatility regime)" if stats.regime_filtered else ")"
    share = stats.win_rate_unshrunk
    if win_rate is not None and np.isfinite(share) and abs(win_rate - share) >= 0.005:
        # say so where it shows: 3 wins of 3 are not a 100 % win rate
        note += (f" · win share {share:.0%} of {stats.n} shrunk to {win_rate:.0%} "
                 "(Beta prior toward 50 %)")
    fields: dict[str, Any] = {
        "expected_r": finite_or_none(stats.expected_r),
        "expected_winrate_raw": win_rate,
        "expected_winrate": calibrated_win_rate if calibrated_win_rate is not None else win_rate,
        "expected_source": f"knn:{stats.scope}",
        "expected_notes": note + (" · win rate calibrated to wins after costs (isotonic)"
                                  if calibrated_win_rate is not None else ""),
        "expected_hold_bars": finite_or_none(stats.median_hold_bars),
        "expected_hold_days": finite_or_none(stats.median_hold_days),
        "expected_win_hold_bars": finite_or_none(stats.median_hold_bars_wins),
        "expected_loss_hold_bars": finite_or_none(stats.median_hold_bars_losses),
        "prior": prior,
        "confidence": blend_confidence(confidence, stats, params=params),
    }
    return fields


class PriorProvider:
    """Callable ``(signal, params) -> fields`` over a :class:`PatternIndex` kept up to date."""

    def __init__(self, index: PatternIndex, *, engine: sa.Engine | None = None,
                 calibrator: Any = None, calibration: Any = None) -> None:
        """``calibrator``: a fitted :class:`~swing_core.calibration.WinRateCalibrator` (None:
        win rates uncalibrated); ``calibration``: the journal's
        :class:`~swing_core.calibration.CalibrationReport` (None: none was made)."""
        self.index = index
        self.engine = engine
        self.calibrator = calibrator
        self.calibration = calibration
        self._lock = threading.Lock()
        self._last_refresh = time.monotonic()

    def refresh(self, *, force: bool = False) -> None:
        if self.engine is None:
            return
        with self._lock:
            if force or time.monotonic() - self._last_refresh >= REFRESH_EVERY_S:
                self.index.refresh(self.engine)
                self._last_refresh = time.monotonic()

    def stats_for(self, signal: Any, params: StrategyParams) -> PriorStats:
        self.refresh()
        return self.index.priors(
            np.asarray(signal.vector, dtype=np.float32),
            asof=signal.asof + INTERVAL_DELTA[signal.interval],
            symbol=signal.symbol,
            vol_regime=signal.vol_regime,
            interval=signal.interval,
            params=params,
        )

    def __call__(self, signal: Any, params: StrategyParams) -> dict[str, Any]:
        stats = self.stats_for(signal, params)
        calibrated = None
        if self.calibrator is not None and stats.n > 0 and np.isfinite(stats.win_rate):
            calibrated = float(self.calibrator.predict([stats.win_rate])[0])
        return prior_fields(stats, confidence=signal.confidence, params=params,
                            calibrated_win_rate=calibrated,
                            calibration=calibration_outcome(self.calibration))


def calibration_outcome(report: Any) -> dict[str, Any] | None:
    """What a prior carries of the journal's calibration report (None without one): its
    ``outcome`` (``too_few``, ``beats_base_rate``, ``no_information``,
    ``worse_than_base_rate``), ``n`` (evaluated signals) and ``n_calibrated``."""
    if report is None:
        return None
    comparison = report.comparison
    return {"outcome": comparison.outcome, "n": int(comparison.n),
            "n_calibrated": int(comparison.n_calibrated)}


def _load_calibration(engine: sa.Engine, params: StrategyParams
                      ) -> tuple[Any, Any, str | None]:
    """The journal's calibration report (:func:`swing_core.calibration.report_from_signals`,
    one read of the evaluated live signals) and the isotonic calibrator fitted on all of them,
    when there are enough (else None and a note saying how many more are needed)."""
    from swing_core.calibration import report_from_signals

    report = report_from_signals(engine, params=params)
    if not report.calibrator.fitted:
        return None, report, (f"Win rates uncalibrated: {report.n} evaluated signals with a "
                              f"prior, calibration needs {report.calibrator.min_samples}.")
    return report.calibrator, report, None


def build_prior_provider(
    engine: sa.Engine,
    *,
    interval: str | None = None,
    settings: Settings | None = None,
    params: StrategyParams | None = None,
) -> tuple[PatternIndex, PriorProvider, list[str]]:
    """Load the pattern index (vectors with known outcomes) and wrap it as a prior provider."""
    settings = settings or get_settings()
    params = params or StrategyParams()
    notes: list[str] = []
    index = PatternIndex.from_db(engine, interval=interval, backend=settings.pattern_backend)
    try:
        calibrator, report, note = _load_calibration(engine, params)
    except SwingError as exc:
        calibrator, report, note = None, None, f"calibration unavailable: {exc}"
    if note:
        notes.append(note)
    provider = PriorProvider(index, engine=engine, calibrator=calibrator, calibration=report)
    return index, provider, notes
