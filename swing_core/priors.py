"""Pattern priors for live signals: the stored vector library, point in time, as signal fields.

A signal on bar t (open time ``asof``) is priced with the neighbours whose outcome was known by
the bar's close (``asof + INTERVAL_DELTA``): expected R, win rate (calibrated with isotonic
regression once enough evaluated signals exist), hold times, and the confidence blend of
STRATEGY.md.  The index is loaded once and topped up incrementally (``PatternIndex.refresh``).
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

__all__ = ["PriorProvider", "build_prior_provider", "prior_fields"]

#: Seconds between two incremental refreshes of the index from the database.
REFRESH_EVERY_S = 5.0



def prior_fields(
    stats: PriorStats,
    *,
    confidence: float,
    params: StrategyParams,
    calibrated_win_rate: float | None = None,
) -> dict[str, Any]:
    """Signal fields from neighbour statistics (None where undefined)."""
    if stats.n == 0:
        return {
            "expected_source": "none",
            "expected_notes": "No evaluated setup like this yet: record signals and evaluate "
            "them (Journal), or run a backtest, to build the pattern library.",
            "prior": stats.to_dict(),
        }
    win_rate = finite_or_none(stats.win_rate)
    note = f"{stats.n} nearest setups ({'this symbol' if stats.scope == 'symbol' else 'all symbols'}"
    note += ", same volatility regime)" if stats.regime_filtered else ")"
    fields: dict[str, Any] = {
        "expected_r": finite_or_none(stats.expected_r),
        "expected_winrate_raw": win_rate,
        "expected_winrate": calibrated_win_rate if calibrated_win_rate is not None else win_rate,
        "expected_source": f"knn:{stats.scope}",
        "expected_notes": note + (" · win rate calibrated (isotonic)"
                                  if calibrated_win_rate is not None else ""),
        "expected_hold_bars": finite_or_none(stats.median_hold_bars),
        "expected_hold_days": finite_or_none(stats.median_hold_days),
        "expected_win_hold_bars": finite_or_none(stats.median_hold_bars_wins),
        "expected_loss_hold_bars": finite_or_none(stats.median_hold_bars_losses),
        "prior": stats.to_dict(),
        "confidence": blend_confidence(confidence, stats, params=params),
    }
    return fields


class PriorProvider:
    """Callable ``(signal, params) -> fields`` over a :class:`PatternIndex` kept up to date."""

    def __init__(self, index: PatternIndex, *, engine: sa.Engine | None = None,
                 calibrator: Any = None) -> None:
        self.index = index
        self.engine = engine
        self.calibrator = calibrator
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
                            calibrated_win_rate=calibrated)


def _load_calibrator(engine: sa.Engine, params: StrategyParams) -> tuple[Any, str | None]:
    """An isotonic calibrator fitted on evaluated live signals, when there are enough."""
    try:
        from swing_core.calibration import fit_from_signals
    except ImportError:  # pragma: no cover - calibration ships with patterns
        return None, None
    return fit_from_signals(engine, params=params)


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
        calibrator, note = _load_calibrator(engine, params)
    except SwingError as exc:
        calibrator, note = None, f"calibration unavailable: {exc}"
    if note:
        notes.append(note)
    return index, PriorProvider(index, engine=engine, calibrator=calibrator), notes
