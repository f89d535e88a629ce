"""Statistics against values computed by hand on a small fixed trade list and equity curve
(backtesting.py's formulas, written out here independently)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from swing_core.metrics import (
    RunCounts,
    breakdown,
    brier_score,
    calibration_table,
    compute_stats,
    drawdown_episodes,
    geometric_mean,
)

DAY = pd.Timedelta(days=1)


def _ts(day: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + day * DAY


@pytest.fixture
def trades() -> pd.DataFrame:
    return pd.DataFrame({
        "fill_ts": [_ts(0), _ts(1), _ts(4)],
        "exit_ts": [_ts(2), _ts(5), _ts(5)],           # durations 2, 4 and 1 days
        "pnl": [100.0, -50.0, 200.0],
        "return_pct": [0.10, -0.05, 0.20],
        "realized_r": [1.0, -0.5, 2.0],
        "exit_reason": ["TARGET", "STOP", "TIME"],
        "both_touched": [False, True, False],
        "prior_win_rate": [0.8, 0.6, 0.5],
        "fees": [2.0, 2.0, 2.0],
        "setup": ["momentum", "momentum", "gp_pullback"],
    })


@pytest.fixture
def equity() -> pd.Series:
    values = [100.0, 110.0, 105.0, 120.0, 90.0, 130.0]
    return pd.Series(values, index=pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC"))


def test_stats_by_hand(trades: pd.DataFrame, equity: pd.Series) -> None:
    exposure = pd.Series([True, True, False, True, True, False], index=equity.index)
    # two more taken signals: one never filled, one still pending at the end
    counts = RunCounts(signals=5, taken=5, filled=3, closed=3, not_filled=1, pending=1)
    s = compute_stats(trades, equity, exposure=exposure, buy_hold_return_pct=12.5,
                      counts=counts)

    assert s["Start"] == _ts(0) and s["End"] == _ts(5) and s["Duration"] == 5 * DAY
    assert s["Exposure Time [%]"] == pytest.approx(4 / 6 * 100)
    assert s["Equity Final [$]"] == 130.0 and s["Equity Peak [$]"] == 130.0
    assert s["Return [%]"] == pytest.approx(30.0)
    assert s["Buy & Hold Return [%]"] == 12.5

    # daily returns, the first day's (undefined) dropped as backtesting.py 0.6 does
    r = np.array([0.10, 105 / 110 - 1, 120 / 105 - 1, 90 / 120 - 1, 130 / 90 - 1])
    gmean = 1.3 ** (1 / 5) - 1
    days = 252.0  # 1 weekend day in 6 is below backtesting.py's 60 % of 2/7: trading days
    ann = (1 + gmean) ** days - 1
    var = np.var(r, ddof=1)
    vol = math.sqrt((var + (1 + gmean) ** 2) ** days - (1 + gmean) ** (2 * days))
    downside = math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(days)
    assert s["Return (Ann.) [%]"] == pytest.approx(ann * 100)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(vol * 100)
    assert s["CAGR [%]"] == pytest.approx((1.3 ** (365.25 / 5) - 1) * 100)
    assert s["Sharpe Ratio"] == pytest.approx(ann / vol)
    assert s["Sortino Ratio"] == pytest.approx(ann / downside)
    assert s["Calmar Ratio"] == pytest.approx(ann / 0.25)

    # drawdowns: 110 -> 105 (recovered at 120), 120 -> 90 (recovered at 130)
    assert s["Max. Drawdown [%]"] == pytest.approx(-25.0)
    assert s["Avg. Drawdown [%]"] == pytest.approx(-((1 - 105 / 110) + 0.25) / 2 * 100)
    assert s["Max. Drawdown Duration"] == 2 * DAY
    assert s["Avg. Drawdown Duration"] == 2 * DAY

    assert s["# Trades"] == 3
    assert s["Win Rate [%]"] == pytest.approx(200 / 3)
    assert s["Best Trade [%]"] == pytest.approx(20.0)
    assert s["Worst Trade [%]"] == pytest.approx(-5.0)
    assert s["Avg. Trade [%]"] == pytest.approx(((1.1 * 0.95 * 1.2) ** (1 / 3) - 1) * 100)
    assert s["Max. Trade Duration"] == 4 * DAY
    assert s["Avg. Trade Duration"] == pd.Timedelta(days=7 / 3)
    assert s["Profit Factor"] == pytest.approx(0.30 / 0.05)
    assert s["Expectancy [%]"] == pytest.approx(0.25 / 3 * 100)
    pnl = np.array([100.0, -50.0, 200.0])
    assert s["SQN"] == pytest.approx(math.sqrt(3) * pnl.mean() / pnl.std(ddof=1))
    assert s["Kelly Criterion"] == pytest.approx(2 / 3 - (1 / 3) / (150 / 50))

    assert s["Avg. R"] == pytest.approx(2.5 / 3)
    assert s["Total R"] == pytest.approx(2.5)
    assert s["Commissions [$]"] == 6.0
    assert (s["# Stop"], s["# Target"], s["# Time"]) == (1, 1, 1)
    assert (s["# Not Filled"], s["# Pending"], s["# Both Touched"]) == (1, 1, 1)
    assert s["Brier Score"] == pytest.approx((0.2**2 + 0.6**2 + 0.5**2) / 3)
    assert s["Avg. Predicted Win Rate [%]"] == pytest.approx(190 / 3)


def test_names_are_backtesting_py_names(trades: pd.DataFrame, equity: pd.Series) -> None:
    names = ["Start", "End", "Duration", "Exposure Time [%]", "Equity Final [$]",
             "Equity Peak [$]", "Return [%]", "Buy & Hold Return [%]", "Return (Ann.) [%]",
             "Volatility (Ann.) [%]", "CAGR [%]", "Sharpe Ratio", "Sortino Ratio", "Calmar Ratio",
             "Max. Drawdown [%]", "Avg. Drawdown [%]", "Max. Drawdown Duration",
             "Avg. Drawdown Duration", "# Trades", "Win Rate [%]", "Best Trade [%]",
             "Worst Trade [%]", "Avg. Trade [%]", "Max. Trade Duration", "Avg. Trade Duration",
             "Profit Factor", "Expectancy [%]", "SQN"]
    s = compute_stats(trades, equity)
    assert list(s.index[: len(names)]) == names


def test_no_trades_gives_nan_not_errors(equity: pd.Series) -> None:
    empty = pd.DataFrame(columns=["fill_ts", "exit_ts", "pnl", "return_pct", "realized_r",
                                  "exit_reason", "both_touched"])
    s = compute_stats(empty, pd.Series(100.0, index=equity.index))
    assert s["# Trades"] == 0 and math.isnan(s["Win Rate [%]"]) and math.isnan(s["SQN"])
    assert s["Max. Drawdown [%]"] == 0 and s["Return [%]"] == 0


def test_drawdown_episode_still_open_ends_at_last_bar() -> None:
    eq = pd.Series([1.0, 2.0, 1.5, 1.0], index=pd.date_range("2024-01-01", periods=4, tz="UTC"))
    ep = drawdown_episodes(eq)
    assert len(ep) == 1 and ep["duration"].iloc[0] == 2 * DAY
    assert ep["peak_dd"].iloc[0] == pytest.approx(0.5)


def test_geometric_mean_and_brier() -> None:
    assert geometric_mean([0.1, -0.1]) == pytest.approx(math.sqrt(1.1 * 0.9) - 1)
    assert geometric_mean([0.1, -1.0]) == 0.0
    assert brier_score(np.array([1.0, 0.0, np.nan]), np.array([1.0, 1.0, 0.0])) == 0.5


def test_calibration_bins(trades: pd.DataFrame) -> None:
    table = calibration_table(trades["prior_win_rate"].to_numpy(),
                              (trades["realized_r"] > 0).to_numpy(float), bins=10)
    assert table["n"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 1, 0]
    assert table.loc[[5, 6, 8], "observed_rate"].tolist() == [1.0, 0.0, 1.0]
    assert table.loc[8, "mean_predicted"] == pytest.approx(0.8)


def test_breakdown_by_setup(trades: pd.DataFrame) -> None:
    table = breakdown(trades, "setup")
    assert table.loc["momentum", "# Trades"] == 2
    assert table.loc["momentum", "Win Rate [%]"] == 50.0
    assert table.loc["momentum", "Avg. R"] == pytest.approx(0.25)
    assert table.loc["momentum", "Profit Factor"] == pytest.approx(2.0)
    assert table.loc["gp_pullback", "PnL [$]"] == 200.0
