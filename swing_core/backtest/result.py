"""The result of a backtest run: :class:`BacktestResult` (computed by
:func:`swing_core.backtest.run_backtest` or reloaded by :func:`swing_core.backtest.load_run`).
Its own module so that computing a run and storing one need not import each other."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.lookahead import LookaheadReport
from swing_core.metrics import closed_mask

__all__ = ["BacktestResult"]


@dataclass(frozen=True)
class BacktestResult:
    """A finished (or reloaded) run.

    ``stats``: flat Series (backtesting.py names + ours, :func:`swing_core.metrics.compute_stats`;
    ``# Trades`` counts :attr:`closed_trades`); ``trades``: every taken signal
    (NOT_FILLED and PENDING included, ``qty`` 0 when the portfolio skipped it) with setup,
    trend, vol_regime, predicted win rate and expected R at entry; ``equity``: DataFrame
    (Equity, DrawdownPct, Exposed) over bar labels; ``breakdowns``: by setup / trend /
    vol_regime / exit_reason; ``calibration``: reliability bins; ``errors``: symbols that could
    not run and why; ``notes``: per symbol, what its signals' context left out and why (e.g. a
    benchmark without bars from the run's source: no relative strength, as in ``analyze``)."""

    run_hash: str
    config: BacktestConfig
    symbols: tuple[str, ...]
    stats: pd.Series
    trades: pd.DataFrame
    equity: pd.DataFrame
    breakdowns: dict[str, pd.DataFrame]
    calibration: pd.DataFrame
    errors: dict[str, str] = field(default_factory=dict)
    lookahead: LookaheadReport | None = None
    from_storage: bool = False
    run_id: int | None = None
    data_fingerprints: dict[str, str] = field(default_factory=dict)
    data_sources: dict[str, str] = field(default_factory=dict)
    library_rows_stored: int = 0
    notes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def is_demo(self) -> bool:
        """True when any symbol ran on synthetic demo bars (its figures say nothing of the
        market)."""
        return "demo" in self.data_sources.values()

    @property
    def closed_trades(self) -> pd.DataFrame:
        """The closed trades (:func:`swing_core.metrics.closed_mask`): ``# Trades``, what every
        trade statistic is computed over."""
        return self.trades[closed_mask(self.trades)]
