"""One definition of each count, the same on every surface (issue 14).

A run has signals (every complete plan), taken signals (not skipped for an open position of
the symbol: the rows of ``BacktestResult.trades`` and of ``backtest_trades``), filled trades
(the portfolio opened a position: ``qty > 0``, closed or still open at the end) and closed
trades (filled with an exit: STOP, TARGET or TIME). "# Trades" is the closed trades, as in
backtesting.py, and every surface shows that number: the statistics, the Trades tab of the
page, the saved runs, a universe run's summary and the CLI.

Two kinds of win are named apart: ``Win Rate [%]`` is P&L > 0 after costs (backtesting.py);
``R Win Rate [%]`` is R > 0 (before costs), what the neighbours' raw win rate counts. The
predicted win rate is calibrated to a win after costs, so the calibration bins and the Brier
score compare it with P&L wins (issue 15).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from apptest_support import demo_app, open_page, table_with
from real_bars import daily_bars

from swing_core import db, market, views
from swing_core.backtest import BacktestConfig, list_runs, load_run, run_backtest, run_universe
from swing_core.metrics import RunCounts, closed_mask, filled_mask, won_pnl, won_r

SYMBOLS = ["AAA", "BBB", "CCC"]
START, END = "2010-01-04", "2011-06-30"


def _bars(symbol: str) -> pd.DataFrame:
    # ends on a Thursday: a position entered in the last bars is still open at the end
    return daily_bars(symbol, start="2009-01-02", end=END, seed=4)


def _config() -> BacktestConfig:
    return BacktestConfig(interval="1d", start=START)


@pytest.fixture
def run(sqlite_engine):
    result = run_backtest(SYMBOLS, bars={s: _bars(s) for s in SYMBOLS}, config=_config(),
                          executor="inline", engine=sqlite_engine, save=True)
    return sqlite_engine, result


def test_the_counts_differ_in_this_run_so_the_definitions_matter(run) -> None:
    _, result = run
    trades = result.trades
    filled, closed = filled_mask(trades), closed_mask(trades)
    s = result.stats
    # signals > taken > filled > closed: each definition names a different set
    assert s["# Signals"] > len(trades) > filled.sum() > closed.sum() > 20
    assert s["# Skipped (Open Position)"] == s["# Signals"] - len(trades)
    assert s["# Open at End"] == filled.sum() - closed.sum() > 0
    assert (closed <= filled).all()
    assert set(trades.loc[closed, "exit_reason"]) <= {"STOP", "TARGET", "TIME"}


def test_trades_count_is_the_same_everywhere(run) -> None:
    engine, result = run
    n = int(result.stats["# Trades"])
    assert n == int(closed_mask(result.trades).sum()) == len(result.closed_trades)
    # the Trades tab's list (views.trade_list) and its count line
    assert len(views.trade_list(result.trades)) == n
    assert views.trade_count_text(len(views.trade_list(result.trades)), n).endswith(
        f"{n} of {n} trades")
    # the stored run, reloaded
    loaded = load_run(engine, result.run_hash)
    assert int(loaded.stats["# Trades"]) == n
    assert len(views.trade_list(loaded.trades)) == n
    # the saved runs table: n_trades is "# Trades", not the stored rows
    runs = list_runs(engine).set_index("run_hash")
    assert int(runs.loc[result.run_hash, "n_trades"]) == n
    assert int(runs.loc[result.run_hash, "# Trades"]) == n
    assert len(db.load_backtest_run(engine, result.run_hash).trades) == len(result.trades) > n


def test_breakdowns_count_the_same_closed_trades(run) -> None:
    _, result = run
    n = int(result.stats["# Trades"])
    for by, table in result.breakdowns.items():
        assert int(table["# Trades"].sum()) == n, by
    assert int(result.calibration["n"].sum()) == int(result.stats["# Trades With Prior"])


def test_the_two_wins_are_named_apart(run) -> None:
    _, result = run
    closed = result.closed_trades
    s = result.stats
    assert s["Win Rate [%]"] == pytest.approx(won_pnl(closed["pnl"]).mean() * 100)
    assert s["R Win Rate [%]"] == pytest.approx(won_r(closed["realized_r"]).mean() * 100)
    # costs make some R wins P&L losses: the two rates are not the same number
    assert (won_r(closed["realized_r"]) & ~won_pnl(closed["pnl"])).any()
    predicted = closed["prior_win_rate"].to_numpy(float)
    has = np.isfinite(predicted)
    # the predicted win rate is calibrated to a win after costs: scored against P&L wins
    brier = np.mean((predicted[has] - won_pnl(closed["pnl"])[has]) ** 2)
    assert s["Brier Score"] == pytest.approx(brier)


def test_counts_are_written_by_compute_stats_only_from_explicit_counts() -> None:
    from swing_core.metrics import compute_stats

    trades = pd.DataFrame({
        "fill_ts": pd.DatetimeIndex(["2024-01-02"], tz="UTC"),
        "exit_ts": pd.DatetimeIndex(["2024-01-03"], tz="UTC"), "pnl": [10.0],
        "return_pct": [0.01], "realized_r": [1.0], "exit_reason": ["TARGET"],
        "both_touched": [False]})
    equity = pd.Series([100.0, 110.0], index=pd.date_range("2024-01-02", periods=2, tz="UTC"))
    counts = RunCounts(signals=9, taken=6, filled=2, closed=1, not_filled=3, pending=1,
                       skipped_risk_cap=1, invalid_plans=2, symbols=1)
    s = compute_stats(trades, equity, counts=counts, data_sources=["file", "demo", "file"],
                      lookahead_ok=True)
    assert (s["# Signals"], s["# Trades"], s["# Open at End"]) == (9, 1, 1)
    assert (s["# Skipped (Open Position)"], s["# Skipped (Risk Cap)"]) == (3, 1)
    assert (s["# Not Filled"], s["# Pending"], s["# Invalid Plans"], s["# Symbols"]) == (
        3, 1, 2, 1)
    assert s["Data Sources"] == "demo, file" and s["Look-ahead Check"] == "passed"
    with pytest.raises(ValueError, match="closed"):
        compute_stats(trades, equity, counts=RunCounts(signals=1, taken=1, filled=1, closed=2))


def test_universe_summary_counts_the_same_trades(run, tmp_path) -> None:
    engine, result = run
    out = run_universe(SYMBOLS, config=_config(), engine=engine, chunk_size=2,
                       executor="inline", bars_loader=_bars, spill_dir=tmp_path / "spill")
    assert out.status == "done"
    n = int(result.stats["# Trades"])
    assert out.summary.n_trades == int(out.summary.stats["# Trades"]) == n
    runs = list_runs(engine).set_index("run_hash")
    assert int(runs.loc[out.run_hash, "n_trades"]) == n
    assert len(views.trade_list(out.load(engine).trades)) == n


def test_cli_json_counts_the_same_trades(capsys) -> None:
    from swing_core import cli

    engine = db.get_engine()
    db.init_db(engine)
    db.upsert_bars(engine, "AAA", "1d", _bars("AAA"), source="file")
    market.clear_cache_state()
    code = cli.main(["backtest", "AAA", "--interval", "1d", "--source", "local", "--json",
                     "--start", START, "--end", END, "--workers", "1"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    n = out["stats"]["# Trades"]
    loaded = load_run(engine, out["run_hash"])
    assert n == int(loaded.stats["# Trades"]) == len(views.trade_list(loaded.trades)) > 0
    runs = list_runs(engine).set_index("run_hash")
    assert int(runs.loc[out["run_hash"], "n_trades"]) == n
    assert cli.main(["backtest-runs"]) == 0
    listed = capsys.readouterr().out
    assert "# Trades" in listed and "n_trades" not in listed


def test_page_header_trades_equal_the_trades_tab_count(tmp_path, monkeypatch) -> None:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL", "MSFT"], timeout=120)
    at = open_page(at, "pages/backtest_review.py")
    at.text_input(key="bt_symbols").set_value("AAPL, MSFT")
    at.selectbox(key="bt_interval").set_value("1d")
    at.button(key="bt_run").click().run()
    assert not at.exception, [e.value for e in at.exception]
    header = next(m.value for m in at.metric if m.label == "# Trades")
    line = next(c.value for c in at.caption if re.search(r"\d+ of \d+ trades", c.value))
    shown, total = map(int, re.search(r"(\d+) of (\d+) trades", line).groups())
    assert int(header) == shown == total > 0
    assert len(table_with(at, "entry_ts", "exit_reason", "realized_r")) == total
    saved = table_with(at, "run_hash", "n_trades")
    assert saved["n_trades"].astype(int).tolist() == [total]
