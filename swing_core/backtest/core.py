"""Stages 2–3 of a walk-forward backtest, on the symbols' signals: pattern priors of the
taken signals (:mod:`swing_core.backtest.priors`), the portfolio across symbols
(:mod:`swing_core.portfolio`), then the run's counts and statistics
(:mod:`swing_core.metrics`: :class:`~swing_core.metrics.RunCounts`,
:func:`~swing_core.metrics.compute_stats`).

Three entry points by what the caller holds: the symbols' passes (:func:`core_from_passes`),
their signals already concatenated (:func:`core_from_signals`), or only the taken signals with
priors attached (:func:`core_from_taken`: the universe's final stage, fed from its spill
files). Each returns a :class:`CoreResult`; :func:`run_statistics` turns it into the
statistics, breakdowns and calibration bins (after the look-ahead check, whose verdict is one
of the statistics).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.priors import PriorFn, attach_priors, no_priors
from swing_core.backtest.walk import SymbolPass
from swing_core.config import INTERVAL_DELTA
from swing_core.metrics import (
    RunCounts,
    breakdown,
    calibration_table,
    closed_mask,
    compute_stats,
    won_pnl,
)
from swing_core.patterns import PatternIndex
from swing_core.portfolio import simulate_portfolio

__all__ = [
    "CoreResult",
    "RunStatistics",
    "core_from_passes",
    "core_from_signals",
    "core_from_taken",
    "run_statistics",
]


@dataclass(frozen=True)
class CoreResult:
    """Stages 2–3 of a run before its statistics: ``trades`` (every taken signal, priors
    attached, the portfolio's columns: ``qty`` 0 when it did not size one), ``equity``
    (Equity, DrawdownPct, Exposed over the union timeline), ``counts`` (:class:`RunCounts`),
    ``buy_hold_return_pct`` (mean over the symbols); ``signals``: every signal with priors
    (None when the caller fed only the taken ones)."""

    trades: pd.DataFrame
    equity: pd.DataFrame
    counts: RunCounts
    buy_hold_return_pct: float
    signals: pd.DataFrame | None = None


@dataclass(frozen=True)
class RunStatistics:
    """A run's statistics (:func:`swing_core.metrics.compute_stats`), breakdowns by setup /
    trend / vol_regime / exit_reason / symbol and calibration bins (closed trades)."""

    stats: pd.Series
    breakdowns: dict[str, pd.DataFrame]
    calibration: pd.DataFrame


def core_from_passes(passes: list[SymbolPass], config: BacktestConfig, *,
                     prior_fn: PriorFn | None, library: PatternIndex | None) -> CoreResult:
    """Stages 2–3 on the symbols' passes (:func:`~swing_core.backtest.prepare_symbol`):
    priors, portfolio, counts."""
    signals = pd.concat([p.signals for p in passes], ignore_index=True)
    bh = [p.buy_hold_return_pct for p in passes if np.isfinite(p.buy_hold_return_pct)]
    return core_from_signals(signals, {p.symbol: p.close for p in passes}, config,
                             prior_fn=prior_fn, library=library,
                             buy_hold_return_pct=float(np.mean(bh)) if bh else math.nan,
                             n_invalid_plans=sum(p.n_invalid_plans for p in passes))


def core_from_signals(signals: pd.DataFrame, closes: Mapping[str, pd.Series],
                      config: BacktestConfig, *, prior_fn: PriorFn | None,
                      library: PatternIndex | None, buy_hold_return_pct: float,
                      n_invalid_plans: int) -> CoreResult:
    """:func:`core_from_passes` on the symbols' signals already concatenated (symbol by symbol,
    each in time order) and their closes."""
    signals = (attach_priors(signals, params=config.params, prior_fn=prior_fn, library=library)
               if config.priors else no_priors(signals))
    taken_mask = signals["taken"].to_numpy(bool)
    out = core_from_taken(signals[taken_mask].reset_index(drop=True), closes, config,
                          buy_hold_return_pct=buy_hold_return_pct,
                          n_invalid_plans=n_invalid_plans, n_signals=len(signals))
    return replace(out, signals=signals)


#: Columns the portfolio simulation reads (it gets only these: no copies of the rest).
_PORTFOLIO_COLUMNS = ("symbol", "entry_time", "exit_ts", "fill_pos", "exit_pos", "fill_price",
                      "exit_price", "stop", "atr", "side_sign", "confidence", "stop_entry")
#: Columns the statistics, breakdowns and calibration read from the closed trades.
_STATS_COLUMNS = ("symbol", "setup", "trend", "vol_regime", "exit_reason", "fill_ts",
                  "exit_ts", "realized_r", "both_touched", "prior_win_rate", "fees", "pnl",
                  "return_pct")


def _subset(frame: pd.DataFrame, rows: np.ndarray | None, columns: Sequence[str]
            ) -> pd.DataFrame:
    """``frame.loc[rows, columns]`` (the columns it has) built column by column: a frame of
    many unconsolidated columns is never copied whole."""
    return pd.DataFrame({c: frame[c] if rows is None else frame[c][rows] for c in columns
                         if c in frame.columns},
                        index=frame.index if rows is None else frame.index[rows])


def core_from_taken(taken: pd.DataFrame, closes: Mapping[str, pd.Series],
                    config: BacktestConfig, *, buy_hold_return_pct: float, n_invalid_plans: int,
                    n_signals: int) -> CoreResult:
    """Portfolio of the taken signals (priors attached, index 0..n-1, in the signals' order);
    ``taken`` gets the portfolio's columns in place and becomes the trades. ``n_signals``:
    every signal of the run (the only figure of the untaken signals the counts need)."""
    filled = taken["filled"].to_numpy(bool)
    candidates = _subset(taken, filled, _PORTFOLIO_COLUMNS)
    closes = dict(closes)
    start = config.start if config.start is not None else min(
        close.index[0] for close in closes.values())
    port = simulate_portfolio(candidates, closes, params=config.params,
                              initial_equity=config.initial_equity,
                              max_positions=config.max_positions, start=start)
    extra_cols = [c for c in port.trades.columns if c not in taken.columns]
    extra = port.trades[extra_cols]  # only these columns copied (set_index copies them all)
    extra.index = candidates.index
    equity, exposure = port.equity, port.exposure
    del port, candidates
    trades = taken
    for col in extra_cols:  # in place: no copy of the (possibly large) taken frame
        trades[col] = extra[col].reindex(taken.index).to_numpy()
    del extra
    trades["qty"] = trades["qty"].fillna(0.0)
    trades["portfolio_status"] = trades["portfolio_status"].fillna("not_filled")
    peak = np.maximum.accumulate(equity.to_numpy()) if len(equity) else np.empty(0)
    equity_frame = pd.DataFrame({"Equity": equity, "DrawdownPct": 1 - equity / peak,
                                 "Exposed": exposure})
    counts = RunCounts.of(trades, signals=n_signals, invalid_plans=n_invalid_plans,
                          symbols=len(closes))
    return CoreResult(trades=trades, equity=equity_frame, counts=counts,
                      buy_hold_return_pct=buy_hold_return_pct)


def run_statistics(core: CoreResult, config: BacktestConfig, *,
                   data_sources: Iterable[str] | None = None,
                   lookahead_ok: bool | None = None) -> RunStatistics:
    """Statistics, breakdowns and calibration bins of a run's closed trades
    (:func:`~swing_core.metrics.closed_mask`). ``data_sources``: where each symbol's bars came
    from; ``lookahead_ok``: the look-ahead check's verdict when it ran. The calibration bins
    compare the predicted win rate with P&L wins (:func:`~swing_core.metrics.won_pnl`, after
    fees and slippage: what it is calibrated to)."""
    closed = _subset(core.trades, closed_mask(core.trades), _STATS_COLUMNS)
    stats = compute_stats(closed, core.equity["Equity"], counts=core.counts,
                          exposure=core.equity["Exposed"],
                          buy_hold_return_pct=core.buy_hold_return_pct,
                          risk_free_rate=config.risk_free_rate,
                          resolution="D" if config.interval == "1d" else "min",
                          bar_delta=INTERVAL_DELTA[config.interval],
                          initial_equity=config.initial_equity, data_sources=data_sources,
                          lookahead_ok=lookahead_ok)
    return RunStatistics(
        stats=stats,
        breakdowns={by: breakdown(closed, by)
                    for by in ("setup", "trend", "vol_regime", "exit_reason", "symbol")},
        calibration=calibration_table(closed["prior_win_rate"].to_numpy(float),
                                      won_pnl(closed["pnl"]).astype(float)),
    )
