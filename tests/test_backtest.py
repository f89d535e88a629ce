"""Walk-forward backtest: signals, no look-ahead, planted futures, bad input, storage."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from real_bars import daily_bars

from swing_core.backtest import (
    PRIOR_COLUMNS,
    BacktestConfig,
    attach_priors,
    compare_runs,
    data_fingerprint,
    list_runs,
    load_run,
    lookahead_check,
    pattern_priors,
    prepare_symbol,
    run_backtest,
    trim_bars,
    walk_forward,
)
from swing_core.calibration import report_from_trades
from swing_core.config import StrategyParams
from swing_core.costs import won_after_costs
from swing_core.errors import BacktestError
from swing_core.exits import simulate_exits
from swing_core.frame import VECTOR_COLUMNS, build_signal_frame
from swing_core.market import demo_bars
from swing_core.patterns import PatternIndex

END = "2025-06-30"


@pytest.fixture(scope="module")
def daily() -> dict[str, pd.DataFrame]:
    return {s: demo_bars(s, "1d", 700, end=END) for s in ("AAPL", "MSFT", "XOM")}


def _cfg(**kw) -> BacktestConfig:
    return BacktestConfig(interval="1d", **kw)


def test_walk_forward_has_a_signal_at_every_plan_bar(daily) -> None:
    bars = daily["AAPL"]
    res = walk_forward(bars, symbol="AAPL", config=_cfg(one_position_per_symbol=False))
    frame = build_signal_frame(bars, interval="1d")
    plans = frame[(frame["setup"] != "none")].iloc[1:]  # warm-up rows come first anyway
    got = res.signals.set_index("signal_ts")
    assert set(got.index) <= set(plans.index)
    assert len(got) >= 0.9 * len(plans)
    common = got.index
    np.testing.assert_allclose(got["entry"], frame.loc[common, "entry"])
    assert (got["setup"] == frame.loc[common, "setup"]).all()
    assert res.trades["taken"].all() and len(res.trades) == len(res.signals)
    # the exits are exactly the exit simulator's
    sp = res.signals["signal_pos"].to_numpy()
    ex = simulate_exits(bars, sp, res.signals["side_sign"].to_numpy(), got["entry"].to_numpy(),
                        got["stop"].to_numpy(), got["target"].to_numpy(), interval="1d",
                        params=StrategyParams())
    assert (ex.exit_reason == res.signals["exit_reason"].to_numpy()).all()


def test_one_position_per_symbol_never_overlaps(daily) -> None:
    res = walk_forward(daily["MSFT"], symbol="MSFT", config=_cfg())
    t = res.trades.reset_index(drop=True)
    busy_until = np.where(t["exit_pos"] >= 0, t["exit_pos"],
                          np.where(t["exit_reason"] == "NOT_FILLED", t["signal_pos"] + 1, 10**9))
    assert (t["signal_pos"].to_numpy()[1:] >= busy_until[:-1]).all()
    assert len(res.signals) > len(res.trades) > 20


def test_priors_use_only_outcomes_known_at_the_signal(daily) -> None:
    res = walk_forward(daily["AAPL"], symbol="AAPL", config=_cfg())
    s = res.signals
    known = s[s["exit_pos"] >= 0]
    for _, row in res.trades.iloc[5::25].iterrows():
        visible = int((known["exit_ts"] <= row["asof"]).sum())
        assert row["prior_n"] <= min(visible, 60)
    first = res.trades.iloc[0]
    assert first["prior_n"] == 0 and np.isnan(first["prior_win_rate"])


def test_appending_future_bars_never_changes_earlier_trades_or_priors(daily) -> None:
    cfg = _cfg(start=daily["AAPL"].index[300])
    bars = {s: trim_bars(b, symbol=s, config=cfg) for s, b in daily.items()}
    report = lookahead_check(bars, config=cfg, cuts=(0.3, 0.6, 0.85))
    assert report.ok, report.mismatches
    assert report.compared["priors"] > 50 and report.compared["trades"] > 50
    # and once more by hand for one symbol at one cut, independently of lookahead_check
    full = walk_forward(daily["XOM"], symbol="XOM", config=cfg)
    cut = daily["XOM"].index[520]
    part = walk_forward(daily["XOM"][daily["XOM"].index <= cut], symbol="XOM", config=cfg)
    decided = part.trades[part.trades["exit_reason"] != "PENDING"].set_index("signal_ts")
    same = full.trades.set_index("signal_ts").loc[decided.index]
    cols = ["fill_price", "exit_price", "realized_r", "prior_n", "prior_win_rate",
            "prior_avg_r", "expected_r", "confidence"]
    pd.testing.assert_frame_equal(decided[cols], same[cols])


def test_a_planted_future_outcome_never_reaches_an_earlier_prior(daily) -> None:
    cfg = _cfg()
    bars = trim_bars(daily["AAPL"], symbol="AAPL", config=cfg)
    signals = prepare_symbol(bars, symbol="AAPL", config=cfg).signals
    taken = signals[signals["taken"]]
    plant_at = taken["asof"].iloc[len(taken) // 2]
    # a +50 R outcome, known only at plant_at, sitting exactly on every taken signal's vector
    planted = PatternIndex.from_frame(
        taken[[*VECTOR_COLUMNS, "vol_regime"]].assign(
            symbol="AAPL", ts=pd.date_range("1990-01-01", periods=len(taken), freq="D",
                                            tz="UTC"),
            exit_ts=plant_at, realized_r=50.0, hold_bars=1, exit_reason="TARGET"),
        interval="1d")
    clean = attach_priors(signals, params=cfg.params)
    dirty = attach_priors(signals, params=cfg.params, library=planted)
    before = clean["taken"] & (clean["asof"] < plant_at)
    cols = [c for c in PRIOR_COLUMNS if c != "prior_scope"]
    pd.testing.assert_frame_equal(clean.loc[before, cols], dirty.loc[before, cols])
    after = dirty["taken"] & (dirty["asof"] >= plant_at)
    assert (dirty.loc[after, "prior_avg_r"] > clean.loc[after, "prior_avg_r"]).all()
    # and planting wild future *bars* changes nothing known before them
    wild = bars.copy()
    later = wild.index > plant_at
    wild.loc[later, ["open", "high", "low", "close"]] *= 3.0
    wild.loc[later, "high"] *= 1.2
    redone = attach_priors(prepare_symbol(wild, symbol="AAPL", config=cfg).signals,
                           params=cfg.params)
    early = redone["taken"] & (redone["asof"] <= plant_at - pd.Timedelta(days=10))
    ref = clean.set_index("signal_ts").loc[redone.loc[early, "signal_ts"]]
    np.testing.assert_allclose(redone.loc[early, "prior_avg_r"].to_numpy(float),
                               ref["prior_avg_r"].to_numpy(float), equal_nan=True)


def test_portfolio_run_accounts_for_every_dollar(daily) -> None:
    res = run_backtest(list(daily), config=_cfg(start=daily["AAPL"].index[250]), bars=daily,
                       executor="inline")
    closed = res.closed_trades
    open_ = res.trades[(res.trades["qty"] > 0) & (res.trades["exit_reason"] == "PENDING")]
    equity = res.equity["Equity"]
    assert equity.iloc[0] == pytest.approx(100_000.0, abs=100)  # costs of first-bar entries
    assert res.stats["Return [%]"] == pytest.approx((equity.iloc[-1] / 100_000.0 - 1) * 100)
    if open_.empty:
        assert equity.iloc[-1] == pytest.approx(100_000.0 + closed["pnl"].sum())
    assert res.stats["# Trades"] == len(closed) > 20
    assert res.stats["Equity Final [$]"] == equity.iloc[-1]
    # sizing: each trade risks about 1 % of equity (never more), costs charged both ways
    assert (closed["risk_amount"] <= 0.01 * equity.max() + 1e-6).all()
    assert (closed["fees"] == 2.0).all()
    long_ = closed[closed["side"] == "long"]
    assert (long_["entry_price_net"] > long_["fill_price"]).all()
    for key in ("setup", "trend", "vol_regime"):
        assert res.breakdowns[key]["# Trades"].sum() == len(closed)
    assert {"setup", "trend", "vol_regime", "prior_win_rate", "expected_r"} <= set(res.trades)
    assert res.calibration["n"].sum() == closed["prior_win_rate"].notna().sum()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(start="2025-03-01", end="2025-01-01"), "empty date range"),
        (dict(params={"momentum_stop_atr": -1.0}), "wrong side"),
        (dict(params={"mr_target_atr": -1.0}), "wrong side"),
        (dict(params={"risk_per_trade": 0.05, "max_open_risk": 0.02}), "no position"),
        (dict(max_positions=0), "max_positions"),
    ],
)
def test_absurd_settings_raise_clear_errors(daily, config, message) -> None:
    with pytest.raises(BacktestError, match=message):
        run_backtest(["AAPL"], config=_cfg(**config), bars=daily, executor="inline")


def test_negative_risk_is_a_backtest_error() -> None:
    with pytest.raises(BacktestError, match="risk_per_trade"):
        _cfg(params={"risk_per_trade": -0.01})


def test_range_outside_the_data_and_too_few_bars(daily) -> None:
    with pytest.raises(BacktestError, match="no 1d bars in"):
        run_backtest(["AAPL"], config=_cfg(start="2030-01-01", end="2030-06-01"), bars=daily,
                     executor="inline")
    with pytest.raises(BacktestError, match="at least"):
        run_backtest(["AAPL"], config=_cfg(), bars={"AAPL": daily["AAPL"].iloc[:20]},
                     executor="inline")
    with pytest.raises(BacktestError, match="No symbols"):
        run_backtest([" "], config=_cfg(), bars=daily)


def test_unknown_symbol_in_a_list_the_others_still_run(daily) -> None:
    bars = {**daily, "TINY": daily["AAPL"].iloc[:10]}
    res = run_backtest(["AAPL", "NOPE", "TINY", "MSFT"], config=_cfg(), bars=bars,
                       executor="inline")
    assert res.symbols == ("AAPL", "MSFT")
    assert set(res.errors) == {"NOPE", "TINY"}
    assert "no bars" in res.errors["NOPE"] and "at least" in res.errors["TINY"]


def test_runs_are_saved_reloaded_listed_and_served_from_storage(daily, sqlite_engine) -> None:
    cfg = _cfg(start=daily["AAPL"].index[300])
    first = run_backtest(["AAPL", "MSFT"], config=cfg, bars=daily, engine=sqlite_engine,
                         executor="inline", lookahead=(0.5,), name="demo pair")
    assert first.run_id is not None and not first.from_storage
    again = run_backtest(["MSFT", "AAPL"], config=cfg, bars=daily, engine=sqlite_engine,
                         executor="inline", lookahead=(0.5,))
    assert again.from_storage and again.run_hash == first.run_hash
    for key, value in first.stats.items():
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(again.stats[key]), key
        else:
            assert again.stats[key] == value, key
    assert len(again.trades) == len(first.trades)
    assert again.lookahead is not None and again.lookahead.ok
    assert len(again.equity) == len(first.equity)
    other = run_backtest(["AAPL", "MSFT"], config=_cfg(start=cfg.start, params={
        "max_hold_days": 3}), bars=daily, engine=sqlite_engine, executor="inline")
    assert other.run_hash != first.run_hash
    runs = list_runs(sqlite_engine)
    assert len(runs) == 2 and {"Return [%]", "# Trades", "run_hash"} <= set(runs.columns)
    table = compare_runs(sqlite_engine, [first.run_hash, other.run_hash])
    assert table.shape[1] == 2 and "Sharpe Ratio" in table.index
    assert load_run(sqlite_engine, "not-a-hash") is None
    # different data, different hash
    changed = {**daily, "AAPL": daily["AAPL"].assign(close=daily["AAPL"]["close"] * 1.0001)}
    assert data_fingerprint(changed["AAPL"]) != data_fingerprint(daily["AAPL"])


def test_predicted_win_rate_is_calibrated_point_in_time(daily) -> None:
    trades = walk_forward(daily["AAPL"], symbol="AAPL", config=_cfg()).trades
    has = trades["prior_win_rate_raw"].notna()
    raw, cal = trades.loc[has, "prior_win_rate_raw"], trades.loc[has, "prior_win_rate"]
    # fewer than 50 outcomes known: uncalibrated; later: isotonic values in [0, 1]
    known = [(trades["exit_ts"] <= a).sum() for a in trades.loc[has, "asof"]]
    early = np.array(known) < 50
    assert early.any() and (~early).any()
    np.testing.assert_allclose(cal[early], raw[early])
    assert cal[~early].between(0, 1).all() and (cal[~early] != raw[~early]).any()
    # the calibration report of the trades scores those very values (one rule, one place)
    report = report_from_trades(trades)
    scored = trades.iloc[report.pairs["row"].to_numpy()]
    np.testing.assert_array_equal(report.pairs["calibrated"], scored["prior_win_rate"])
    assert report.n == int((has & trades["realized_r"].notna()).sum())
    # scored against a win after fees and slippage, the outcome it is calibrated to
    won = won_after_costs(scored["realized_r"], scored["fill_price"], scored["stop"],
                          exit_price=scored["exit_price"], params=StrategyParams())
    np.testing.assert_array_equal(report.pairs["won"], won)
    assert report.brier_calibrated == pytest.approx(np.mean((scored["prior_win_rate"] - won) ** 2))


def test_lookahead_check_catches_a_leaky_prior(daily) -> None:
    """A prior that ignores the known-by rule must be caught by the check."""
    engine = pattern_priors(interval="1d")

    def leaky(queries, outcomes, params):  # every outcome counts as known from the start
        return engine(queries, outcomes.assign(exit_ts=outcomes["exit_ts"].min()), params)

    cfg = _cfg()
    bars = {"AAPL": trim_bars(daily["AAPL"], symbol="AAPL", config=cfg)}
    report = lookahead_check(bars, config=cfg, cuts=(0.5,), prior_fn=leaky)
    assert not report.ok and any("priors" in m for m in report.mismatches)


def test_stored_library_priors_are_point_in_time(daily, sqlite_engine) -> None:
    from swing_core import db

    cfg = _cfg()
    base = run_backtest(["AAPL"], config=cfg, bars=daily, engine=sqlite_engine, save=False,
                        executor="inline").trades
    taken = base[base["prior_n"] > 5]
    plant_at = taken["asof"].iloc[len(taken) // 2]
    planted = taken[[*VECTOR_COLUMNS, "setup", "side", "trend", "vol_regime"]].assign(
        symbol="AAPL", interval="1d", version="v1", realized_r=50.0, exit_reason="TARGET",
        hold_bars=1, exit_ts=plant_at,
        ts=pd.date_range("1990-01-01", periods=len(taken), freq="D", tz="UTC"))
    assert db.upsert_vectors(sqlite_engine, planted) == len(taken)
    with_library = run_backtest(["AAPL"], config=_cfg(use_library=True), bars=daily,
                                engine=sqlite_engine, save=False, executor="inline")
    assert with_library.run_hash != run_backtest(
        ["AAPL"], config=cfg, bars=daily, save=False, executor="inline").run_hash
    got = with_library.trades.set_index("signal_ts")
    ref = base.set_index("signal_ts")
    before = ref.index[(ref["asof"] < plant_at).to_numpy()]
    cols = ["prior_n", "prior_win_rate", "prior_avg_r", "expected_r"]
    pd.testing.assert_frame_equal(got.loc[before, cols], ref.loc[before, cols])
    after = ref.index[(ref["asof"] >= plant_at).to_numpy() & (ref["prior_n"] > 0).to_numpy()]
    assert (got.loc[after, "prior_avg_r"] > ref.loc[after, "prior_avg_r"]).mean() > 0.9


def test_saved_runs_feed_the_pattern_library_but_never_with_demo_bars(sqlite_engine):
    """Issue: vectors get their outcomes when backtests run. Real bars (here: demo prices
    relabelled as a user's file) add their exited setups; demo bars and non-default parameters
    add nothing."""
    from dataclasses import replace as dc_replace

    from swing_core import db
    from swing_core.backtest import BacktestConfig, run_backtest
    from swing_core.config import StrategyParams
    from swing_core.market import demo_bars

    bars = demo_bars("REAL", "1d", 400)
    real = bars.copy()
    real.attrs = {**bars.attrs, "source": "file"}
    config = BacktestConfig(interval="1d")
    result = run_backtest(["REAL"], config=config, bars={"REAL": real}, engine=sqlite_engine,
                          executor="inline")
    assert result.data_sources == {"REAL": "file"} and not result.is_demo
    library = db.load_vector_matrix(sqlite_engine, interval="1d")
    exited = result.trades["exit_reason"].isin(["STOP", "TARGET", "TIME"]).sum()
    assert result.library_rows_stored == len(library.meta) >= exited > 0
    assert library.meta["realized_r"].notna().all()
    assert (library.meta["exit_ts"] > library.meta["ts"]).all()  # known after the signal bar

    demo = run_backtest(["DEMO"], config=config, bars={"DEMO": demo_bars("DEMO", "1d", 400)},
                        engine=sqlite_engine, executor="inline")
    assert demo.is_demo and demo.library_rows_stored == 0
    tuned = dc_replace(config, params=StrategyParams(momentum_stop_atr=1.5))
    other = run_backtest(["REAL"], config=tuned, bars={"REAL": real}, engine=sqlite_engine,
                         executor="inline")
    assert other.library_rows_stored == 0
    at_open = run_backtest(["REAL"], config=dc_replace(config, fill="next_open"),
                           bars={"REAL": real}, engine=sqlite_engine, executor="inline")
    assert at_open.library_rows_stored == 0  # live outcomes are evaluated with close fills
    assert len(db.load_vector_matrix(sqlite_engine, interval="1d").meta) == len(library.meta)


def test_rerun_over_its_own_saved_setups_prices_as_without_the_library(db_engine) -> None:
    """Issue 15 item 5: a saved run's setups are in the library; re-running with use_library
    must not count them twice (same priors as use_library=False over the same rows)."""
    real = daily_bars("REAL")
    real.attrs["source"] = "file"
    first = run_backtest(["REAL"], config=_cfg(), bars={"REAL": real}, engine=db_engine,
                         executor="inline")
    assert first.library_rows_stored > 100
    again = run_backtest(["REAL"], config=_cfg(use_library=True), bars={"REAL": real},
                         engine=db_engine, save=False, executor="inline")
    assert again.run_hash != first.run_hash and not again.from_storage
    columns = [*PRIOR_COLUMNS, "confidence", "prior_win_rate_raw"]
    assert (first.trades["prior_n"] > 0).sum() > 50
    pd.testing.assert_frame_equal(again.trades[columns], first.trades[columns])


# --------------------------------------------------------------------------- fill convention


def test_fill_convention_is_validated_hashed_and_used(daily) -> None:
    from swing_core.backtest import run_hash, validate_config
    from swing_core.errors import ConfigError

    with pytest.raises(ConfigError, match="fill convention"):
        validate_config(_cfg(fill="midpoint"))
    with pytest.raises(ConfigError, match="fill convention"):
        run_backtest(["AAPL"], config=_cfg(fill="open"), bars=daily, save=False)
    assert run_hash(["AAPL"], _cfg(), {}) != run_hash(["AAPL"], _cfg(fill="next_open"), {})
    bars = trim_bars(daily["AAPL"], symbol="AAPL", config=_cfg())
    close = prepare_symbol(bars, symbol="AAPL", config=_cfg()).signals
    at_open = prepare_symbol(bars, symbol="AAPL", config=_cfg(fill="next_open")).signals
    market = close[~close["stop_entry"] & close["filled"]]
    assert len(market) > 20
    later = at_open.set_index("signal_ts").loc[market["signal_ts"]]
    opens = bars["open"].to_numpy()
    # a market entry: at the signal bar's close, or at the next bar's open (one bar later)
    np.testing.assert_array_equal(market["fill_price"],
                                  bars["close"].to_numpy()[market["signal_pos"]])
    filled = later["filled"].to_numpy(bool)
    np.testing.assert_array_equal(later["fill_pos"].to_numpy()[filled],
                                  market["signal_pos"].to_numpy()[filled] + 1)
    np.testing.assert_array_equal(later["fill_price"].to_numpy()[filled],
                                  opens[market["signal_pos"].to_numpy()[filled] + 1])
    assert (later["entry_time"].to_numpy()[filled]
            == later["fill_ts"].to_numpy()[filled]).all()  # at that bar's open
    assert (market["entry_time"] == market["signal_ts"] + pd.Timedelta(days=1)).all()
    stops = close[close["stop_entry"]].set_index("signal_ts")
    pd.testing.assert_frame_equal(
        at_open.set_index("signal_ts").loc[stops.index, ["fill_pos", "fill_price"]],
        stops[["fill_pos", "fill_price"]])
