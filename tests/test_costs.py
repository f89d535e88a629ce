"""Costs in R (swing_core.costs): by hand, and the same as the portfolio's net P&L on a run;
the calibration target of a backtest is the P&L win (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from real_bars import daily_bars

from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.calibration import report_from_trades
from swing_core.config import StrategyParams
from swing_core.costs import REFERENCE_EQUITY, cost_r, net_r, won_after_costs
from swing_core.metrics import closed_mask, won_pnl

PARAMS = StrategyParams()  # fee 1.0 per fill, slippage 5 bps, risk 1 % per trade


def test_cost_r_by_hand() -> None:
    # entry 100, stop 99 (1.00 of risk per share): 5 bps on both fills at 100 = 0.10 R; two $1
    # fees over a position risking 1 % of 100 000 ($1 000) = 0.002 R
    assert cost_r(100.0, 99.0, params=PARAMS) == pytest.approx(0.10 + 0.002)
    # a short is charged the same (slippage is against the trader on both fills)
    assert cost_r(100.0, 101.0, params=PARAMS) == pytest.approx(0.102)
    # the exit price enters the exit's slippage; a known quantity spreads the fees over it
    assert cost_r(100.0, 99.0, params=PARAMS, exit_price=102.0) == pytest.approx(0.101 + 0.002)
    assert cost_r(100.0, 99.0, params=PARAMS, qty=200) == pytest.approx(0.10 + 2 / 200)
    # a tight intraday stop pays dearly: 0.35 % of the price is 0.29 R of slippage
    assert cost_r(100.0, 99.65, params=PARAMS) == pytest.approx(0.1 / 0.35 + 0.002)
    assert np.isnan(cost_r(100.0, 100.0, params=PARAMS))  # no risk: no R
    free = StrategyParams(fee_per_fill=0.0, slippage_bps=0.0)
    assert cost_r(100.0, 99.0, params=free) == 0.0
    assert REFERENCE_EQUITY == 100_000.0


def test_net_r_and_the_win_after_costs() -> None:
    realized = np.array([1.0, 0.05, -1.0, np.nan])
    net = net_r(realized, 100.0, 99.0, exit_price=100.0 + realized, params=PARAMS)
    np.testing.assert_allclose(net[:3], realized[:3] - (0.0005 * (200.0 + realized[:3]) + 0.002))
    # +0.05 R before costs is a loss after them; an unknown outcome stays unknown
    won = won_after_costs(realized, 100.0, 99.0, exit_price=100.0 + realized, params=PARAMS)
    assert won[:3].tolist() == [1.0, 0.0, 0.0] and np.isnan(won[3])


@pytest.fixture(scope="module")
def result():
    symbols = ["AAA", "BBB", "CCC"]
    bars = {s: daily_bars(s, start="2008-01-02", end="2011-12-30", seed=11) for s in symbols}
    config = BacktestConfig(interval="1d", start=bars["AAA"].index[250])
    return run_backtest(symbols, bars=bars, config=config, executor="inline", save=False,
                        reuse=False)


def test_net_r_with_the_trades_quantity_is_the_portfolios_net_pnl(result) -> None:
    closed = result.trades[closed_mask(result.trades)]
    assert len(closed) > 100
    net = net_r(closed["realized_r"], closed["fill_price"], closed["stop"],
                exit_price=closed["exit_price"], params=PARAMS, qty=closed["qty"])
    risk = (closed["fill_price"] - closed["stop"]).abs()
    # net R times the money at risk is the P&L, to the cent
    np.testing.assert_allclose(net * closed["qty"] * risk, closed["pnl"], atol=1e-6)
    # at the reference size the win after costs is the P&L win here too (the fee is 0.002 R)
    won = won_after_costs(closed["realized_r"], closed["fill_price"], closed["stop"],
                          exit_price=closed["exit_price"], params=PARAMS)
    assert (won.astype(bool) == won_pnl(closed["pnl"])).mean() > 0.99
    # and costs turn some R wins into P&L losses: the two win rates differ
    assert ((closed["realized_r"] > 0) & ~won_pnl(closed["pnl"])).any()


def test_a_backtests_calibration_targets_wins_after_costs(result) -> None:
    closed = result.trades[closed_mask(result.trades)]
    # reliability bins: the calibrated predicted win rate against P&L wins, per bin
    predicted = closed["prior_win_rate"].to_numpy(float)
    wins = won_pnl(closed["pnl"]).astype(float)
    table = result.calibration.set_index("bin_low")
    for low, row in table[table["n"] > 0].iterrows():
        inside = (predicted >= low - 1e-12) & (predicted < row["bin_high"] - 1e-12)
        if row["bin_high"] >= 1.0:
            inside |= predicted >= 1.0
        assert row["observed_rate"] == pytest.approx(wins[inside].mean()), low
    # the report: raw R win rate against the win after costs, the run's calibrated values
    report = report_from_trades(result.trades, params=PARAMS)
    scored = result.trades.iloc[report.pairs["row"].to_numpy()]
    np.testing.assert_array_equal(report.pairs["calibrated"], scored["prior_win_rate"])
    won = won_after_costs(scored["realized_r"], scored["fill_price"], scored["stop"],
                          exit_price=scored["exit_price"], params=PARAMS)
    np.testing.assert_array_equal(report.pairs["won"], won)
    assert report.base_rate < (scored["realized_r"] > 0).mean()  # costs take wins away
    # before costs the report would score another outcome: the target really changed
    free = report_from_trades(result.trades, params=StrategyParams(fee_per_fill=0.0,
                                                                   slippage_bps=0.0))
    assert free.base_rate == pytest.approx((scored["realized_r"] > 0).mean())
