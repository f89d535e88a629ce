"""Portfolio rules by hand: sizing, the ATR floor, the open-risk cap, the position limit,
fees and slippage, and the marked-to-market equity curve."""

from __future__ import annotations

import pandas as pd
import pytest

from swing_core.config import StrategyParams
from swing_core.portfolio import simulate_portfolio

IDX = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC", name="ts")
CLOSES = {
    "AAA": pd.Series([100.0, 101.0, 102.0, 104.0, 104.0, 104.0], index=IDX),
    "BBB": pd.Series([50.0, 50.0, 49.0, 48.0, 47.0, 47.0], index=IDX),
}
DAY = pd.Timedelta(days=1)


def _cand(symbol, fill_pos, exit_pos, fill, exit_, stop, side=1, atr=1.0, conf=0.5,
          stop_entry=False):
    return {
        "symbol": symbol, "fill_pos": fill_pos, "exit_pos": exit_pos,
        "entry_time": IDX[fill_pos] + (DAY if not stop_entry else pd.Timedelta(0)),
        "exit_ts": IDX[exit_pos] + DAY if exit_pos >= 0 else pd.NaT,
        "fill_price": fill, "exit_price": exit_, "stop": stop, "atr": atr,
        "side_sign": side, "confidence": conf, "stop_entry": stop_entry,
    }


def test_sizing_costs_and_equity_by_hand() -> None:
    res = simulate_portfolio(pd.DataFrame([_cand("AAA", 0, 3, 100.0, 104.0, 98.0)]), CLOSES,
                             params=StrategyParams(), initial_equity=100_000.0)
    t = res.trades.iloc[0]
    assert t["qty"] == 500  # 1 % of 100,000 / (100 - 98)
    assert t["entry_price_net"] == pytest.approx(100.05)  # 5 bp against the buyer
    assert t["exit_price_net"] == pytest.approx(104 * 0.9995)
    assert t["pnl"] == pytest.approx(500 * (104 * 0.9995 - 100.05) - 2.0)
    assert t["return_pct"] == pytest.approx(t["pnl"] / (500 * 100.05))
    eq = res.equity
    # bar 0: bought at its close (fee paid, marked at 100); bar 2: marked at 102
    assert eq.iloc[0] == pytest.approx(100_000 - 1 + 500 * (100 - 100.05))
    assert eq.iloc[2] == pytest.approx(100_000 - 1 + 500 * (102 - 100.05))
    assert eq.iloc[3] == pytest.approx(100_000 + t["pnl"]) and eq.iloc[-1] == eq.iloc[3]
    # held from the entry bar (filled at its close) through the exit bar, as backtesting.py
    assert res.exposure.tolist() == [True, True, True, True, False, False]


def test_atr_floor_and_minimum_risk_per_share() -> None:
    rows = [_cand("AAA", 0, 1, 100.0, 101.0, 99.5, atr=4.0)]  # 0.5 ATR = 2 > |100 - 99.5|
    res = simulate_portfolio(pd.DataFrame(rows), CLOSES, params=StrategyParams(),
                             initial_equity=100_000.0)
    assert res.trades["qty"].iloc[0] == 500 and res.trades["risk_amount"].iloc[0] == 1000


def test_open_risk_cap_max_positions_and_too_small() -> None:
    rows = [
        _cand("AAA", 0, 3, 100.0, 104.0, 98.0),                  # open bars 0-3, 1 % risk
        _cand("BBB", 1, 4, 50.0, 47.0, 51.0, side=-1, conf=0.9),  # while AAA is open
        _cand("BBB", 4, 5, 47.0, 47.0, 46.0),                     # after AAA closed
    ]
    capped = simulate_portfolio(pd.DataFrame(rows), CLOSES,
                                params=StrategyParams(max_open_risk=0.015),
                                initial_equity=100_000.0)
    assert capped.trades["portfolio_status"].tolist() == ["taken", "open_risk", "taken"]
    limited = simulate_portfolio(pd.DataFrame(rows), CLOSES, params=StrategyParams(),
                                 initial_equity=100_000.0, max_positions=1)
    assert limited.trades["portfolio_status"].tolist() == ["taken", "max_positions", "taken"]
    both = simulate_portfolio(pd.DataFrame(rows), CLOSES, params=StrategyParams(),
                              initial_equity=100_000.0)
    assert both.trades["portfolio_status"].tolist() == ["taken"] * 3
    short = both.trades.iloc[1]
    # sized on 99,999: the first trade's entry fee is already paid
    assert short["qty"] == 999 and short["pnl"] == pytest.approx(
        999 * (50 * 0.9995 - 47 * 1.0005) - 2.0)
    # the third trade is sized on closed-trade equity (after both earlier trades' P&L)
    closed_equity = 100_000 + both.trades["pnl"].iloc[:2].sum() - 1.0
    assert both.trades["qty"].iloc[2] == int(0.01 * closed_equity / 1.0)
    tiny = simulate_portfolio(pd.DataFrame([_cand("AAA", 0, 1, 100.0, 90.0, 1.0)]), CLOSES,
                              params=StrategyParams(), initial_equity=50.0)
    assert tiny.trades["portfolio_status"].tolist() == ["too_small"]
    assert tiny.equity.eq(50.0).all()


def test_same_time_entries_go_by_confidence_and_open_trades_stay_marked() -> None:
    rows = [_cand("AAA", 1, -1, 101.0, float("nan"), 99.0, conf=0.2),
            _cand("BBB", 1, 3, 50.0, 48.0, 51.0, side=-1, conf=0.8)]
    res = simulate_portfolio(pd.DataFrame(rows), CLOSES, params=StrategyParams(),
                             initial_equity=100_000.0, max_positions=1)
    assert res.trades["portfolio_status"].tolist() == ["max_positions", "taken"]
    open_trade = simulate_portfolio(pd.DataFrame(rows[:1]), CLOSES, params=StrategyParams(),
                                    initial_equity=100_000.0)
    t = open_trade.trades.iloc[0]
    assert pd.isna(t["pnl"]) and t["fees"] == 1.0
    assert open_trade.equity.iloc[-1] == pytest.approx(
        100_000 - 1 + t["qty"] * (104 - 101 * 1.0005))
