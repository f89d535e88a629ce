"""Parity with backtesting.py: every statistic that carries one of its names means exactly what
it means there. backtesting.py 0.6 (a dev dependency) computes its statistics from our run's
closed trades and equity curve, and every shared key must agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from backtesting._stats import compute_stats as backtesting_stats

from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.metrics import closed_mask
from tests.real_bars import daily_bars

DAY = pd.Timedelta(days=1)
#: Not comparable by construction: backtesting.py shows commissions only for its own Trade
#: objects, and its private entries are objects.
NOT_SHARED = {"Commissions [$]", "_strategy", "_equity_curve", "_trades"}


def _their_trades(closed: pd.DataFrame, index: pd.DatetimeIndex) -> pd.DataFrame:
    """Our closed trades in backtesting.py's trades table (bar positions on the equity index)."""
    entry_bar = index.get_indexer(closed["fill_ts"])
    exit_bar = index.get_indexer(closed["exit_ts"] - DAY)
    assert (entry_bar >= 0).all() and (exit_bar >= 0).all()
    out = pd.DataFrame({
        "Size": closed["qty"].to_numpy(float) * closed["side_sign"].to_numpy(float),
        "EntryBar": entry_bar, "ExitBar": exit_bar,
        "EntryPrice": closed["entry_price_net"].to_numpy(float),
        "ExitPrice": closed["exit_price_net"].to_numpy(float),
        "PnL": closed["pnl"].to_numpy(float), "ReturnPct": closed["return_pct"].to_numpy(float),
        "EntryTime": index[entry_bar], "ExitTime": index[exit_bar],
    })
    out["Duration"] = out["ExitTime"] - out["EntryTime"]
    return out


@pytest.mark.parametrize(("seed", "stop_entries"), [(3, False), (11, True)])
def test_every_shared_statistic_equals_backtesting_py(seed: int, stop_entries: bool) -> None:
    bars = daily_bars("PAR", seed=seed)
    config = BacktestConfig(start=bars.index[260], priors=False)
    first = run_backtest(["PAR"], config=config, bars={"PAR": bars}, save=False,
                         executor="inline")
    # end the run on the last exit so that no position is open at the end (backtesting.py's
    # statistics leave open positions out of every figure, ours count them in the exposure)
    last_exit = first.trades.loc[closed_mask(first.trades), "exit_ts"].max() - DAY
    bars = bars.loc[:last_exit]
    config = BacktestConfig(start=bars.index[260], end=last_exit, priors=False)
    result = run_backtest(["PAR"], config=config, bars={"PAR": bars}, save=False,
                          executor="inline")
    trades = result.trades
    closed = trades[closed_mask(trades)]
    assert len(closed) >= 30
    assert int(result.stats["# Open at End"]) == 0, "parity needs every position closed"
    if stop_entries:  # both fill conventions are exercised by the two series
        assert closed["stop_entry"].any()
    equity = result.equity["Equity"]
    index = equity.index
    ohlc = pd.DataFrame({"Close": bars["close"].reindex(index)})
    theirs = backtesting_stats(_their_trades(closed, index), equity.to_numpy(float), ohlc, None,
                               risk_free_rate=0.0)
    ours = result.stats

    shared = [k for k in theirs.index if k in ours.index and k not in NOT_SHARED]
    assert len(shared) >= 29, shared  # all but Alpha [%] and Beta (no market series)
    for key in shared:
        mine, other = ours[key], theirs[key]
        if isinstance(other, pd.Timestamp | pd.Timedelta):
            assert mine == other, key
        else:
            assert np.isclose(float(mine), float(other), rtol=1e-9, atol=1e-9,
                              equal_nan=True), (key, mine, other)
