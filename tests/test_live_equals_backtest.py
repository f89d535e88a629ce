"""A backtested signal at bar t is the live signal at bar t (issue 15, item 4).

Real-shaped bars (``tests/real_bars.py``, not demo) of a symbol and of its benchmarks (SPY and
the sector ETF), in the local bar library: the backtest runs once over the whole history;
``analysis`` runs on the library cut at t (nothing after t exists, as live). Plan, confidence,
relative strength and multi-timeframe fields must agree, context terms included. Also: a
benchmark the source lacks is left out with a note by both (never demo bars under real ones),
and the universe runner and the parameter search read the same context.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from real_bars import daily_bars

from swing_core import agent, db, market
from swing_core.backtest import (
    BacktestConfig,
    gather_context,
    grid_search,
    run_backtest,
    run_universe,
)
from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.market import demo_bars, resample_bars

SYMBOL = "GOOG"
PARAMS = StrategyParams()
BENCHMARKS = (PARAMS.sector_symbol, PARAMS.market_symbol)
#: Every signal taken, no priors: the backtest's confidence is the signal frame's, as a live
#: signal's without a prior provider.
CONFIG = BacktestConfig(interval="1d", priors=False, one_position_per_symbol=False)
_FLOATS = ("entry", "stop", "target", "confidence", "rs_sector", "rs_spy")


def _daily() -> dict[tuple[str, str], pd.DataFrame]:
    return {(s, "1d"): daily_bars(s, end="2012-12-31") for s in (SYMBOL, *BENCHMARKS)}


def _fill_library(engine: Any, series: dict[tuple[str, str], pd.DataFrame],
                  known_by: pd.Timestamp | None = None) -> None:
    """The local library holds ``series``; with ``known_by``, only their bars closed by then
    (the data that exists at that moment)."""
    db.delete_bars(engine)
    for (symbol, interval), bars in series.items():
        if known_by is not None:
            bars = bars[bars.index + INTERVAL_DELTA[interval] <= known_by]
        db.upsert_bars(engine, symbol, interval, bars, source="file")
    market.clear_cache_state()


def _backtest(engine: Any, interval: str = "1d", **kwargs: Any) -> Any:
    config = kwargs.pop("config", CONFIG if interval == "1d" else BacktestConfig(
        interval=interval, priors=False, one_position_per_symbol=False))
    return run_backtest([SYMBOL], config=config, engine=engine, save=False, reuse=False,
                        executor="inline", **kwargs)


def _live(engine: Any, interval: str, **kwargs: Any) -> agent.Signal:
    kwargs.setdefault("source", "local")
    return agent.analysis(SYMBOL, interval, engine=engine, **kwargs).signal


def _same(live: Any, backtested: Any, what: str) -> None:
    if live is None or (isinstance(live, float) and math.isnan(live)):
        assert backtested is None or pd.isna(backtested), what
    else:
        assert backtested == pytest.approx(live, rel=1e-9, abs=1e-12), what


def _assert_same_signal(signal: agent.Signal, row: pd.Series) -> None:
    at = f"{SYMBOL} at {row['signal_ts']}"
    assert signal.entry is not None, f"{at}: the backtest has a plan, the live signal none"
    assert pd.Timestamp(signal.asof) == row["signal_ts"]
    assert signal.entry.side == row["side"] and signal.entry.setup == row["setup"], at
    live = {"entry": signal.entry.entry, "stop": signal.entry.stop,
            "target": signal.entry.target, "confidence": signal.confidence,
            "rs_sector": signal.rs_sector, "rs_spy": signal.rs_spy}
    for name in _FLOATS:
        _same(live[name], row[name], f"{at}: {name}")
    assert signal.confidence == pytest.approx(row["base_confidence"], rel=1e-12), at
    assert signal.mtf_alignment == int(row["mtf_alignment"]), at
    for name in ("mtf_15m", "mtf_1h"):
        assert getattr(signal, name) == (row[name] or None), f"{at}: {name}"


def _spread(frame: pd.DataFrame, n: int) -> pd.DataFrame:
    return frame.iloc[np.linspace(0, len(frame) - 1, n).round().astype(int)]


# --------------------------------------------------------------------------- daily bars


@pytest.fixture(scope="module")
def daily_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    path = tmp_path_factory.mktemp("live") / "bars.sqlite"
    engine = db.get_engine(f"sqlite:///{path}")
    db.init_db(engine)
    _fill_library(engine, _daily())
    return engine, _backtest(engine, source="local")


def test_backtested_signals_equal_live_signals_at_their_bar(daily_run) -> None:
    engine, result = daily_run
    signals = result.trades
    assert not result.notes, "every context series is in the library"
    assert signals["rs_sector"].notna().all() and signals["rs_spy"].notna().all()
    # the relative-strength bonus applies to some signals and not to others
    assert (signals["rs_sector"] > 1).any() and (signals["rs_sector"] < 1).any()
    # live signals load 730 days of history: cut where that covers the indicators' warm-up
    late = signals[signals["signal_ts"] >= pd.Timestamp("2011-06-01", tz="UTC")]
    picked = pd.concat([_spread(late[late["rs_sector"] > 1], 4),
                        _spread(late[late["rs_sector"] < 1], 4)])
    assert len(picked) == 8
    series = _daily()
    try:
        for _, row in picked.iterrows():
            _fill_library(engine, series, known_by=row["asof"])
            _assert_same_signal(_live(engine, "1d"), row)
        # a bar without a backtested signal has no live plan either
        quiet = series[(SYMBOL, "1d")].index.difference(pd.DatetimeIndex(signals["signal_ts"]))
        for t in _spread(pd.DataFrame(index=quiet[quiet >= late["signal_ts"].min()]), 3).index:
            _fill_library(engine, series, known_by=t + INTERVAL_DELTA["1d"])
            signal = _live(engine, "1d")
            assert pd.Timestamp(signal.asof) == t and signal.entry is None
    finally:
        _fill_library(engine, series)


def test_given_bars_and_search_and_universe_read_the_same_context(daily_run) -> None:
    engine, result = daily_run
    series = _daily()
    given = run_backtest([SYMBOL], config=CONFIG, executor="inline", save=False,
                         bars={s: b for (s, _), b in series.items()})
    columns = ["signal_ts", "side", "entry", "stop", "target", "confidence", "rs_sector",
               "rs_spy", "mtf_alignment"]
    pd.testing.assert_frame_equal(given.trades[columns], result.trades[columns])
    without = run_backtest([SYMBOL], config=CONFIG, executor="inline", save=False,
                           bars={SYMBOL: series[(SYMBOL, "1d")]})
    assert without.trades["rs_sector"].isna().all()
    assert any("not among the bars given" in n for n in without.notes[SYMBOL])
    assert not np.allclose(without.trades["confidence"], result.trades["confidence"])


def test_universe_and_search_use_the_backtest_path(daily_run) -> None:
    """Three symbols compete for one position: the confidence (context terms included) decides
    which signal the portfolio takes, so a run without context would differ."""
    engine, _ = daily_run
    symbols = [SYMBOL, "AMZN", "NFLX"]
    extra = {(s, "1d"): daily_bars(s, end="2012-12-31") for s in symbols[1:]}
    _fill_library(engine, {**_daily(), **extra})
    try:
        config = BacktestConfig(interval="1d", start="2011-01-03", max_positions=1)
        ref = run_backtest(symbols, config=config, engine=engine, save=False, reuse=False,
                           executor="inline", source="local")
        bars = {s: b for (s, _), b in {**_daily(), **extra}.items() if s in symbols}
        bare = run_backtest(symbols, config=config, executor="inline", save=False, bars=bars)
        assert ref.stats["Return [%]"] != bare.stats["Return [%]"], "context changes the run"
        universe = run_universe(symbols, config=config, engine=engine, executor="inline",
                                chunk_size=2, source="local", offline=True)
        for key in ("Return [%]", "# Trades", "Avg. R", "Brier Score"):
            assert universe.summary.stats[key] == pytest.approx(ref.stats[key], nan_ok=True), key
        split = pd.Timestamp("2012-01-03", tz="UTC")
        context = gather_context(bars, config, engine=engine, offline=True)
        found = grid_search(bars, {"max_hold_days": [PARAMS.max_hold_days]}, config=config,
                            split=split, metric="Return [%]", min_trades=1, executor="inline",
                            context=context.frames)
        test_period = run_backtest(symbols, config=BacktestConfig(
            interval="1d", start=split, max_positions=1), engine=engine, save=False,
            reuse=False, executor="inline", source="local")
        assert found.best_test_score == pytest.approx(test_period.stats["Return [%]"])
    finally:
        _fill_library(engine, _daily())


def test_missing_benchmark_is_left_out_with_a_note_like_analyze(tmp_path) -> None:
    engine = db.get_engine(f"sqlite:///{tmp_path / 'only.sqlite'}")
    db.init_db(engine)
    series = {(SYMBOL, "1d"): _daily()[(SYMBOL, "1d")]}
    _fill_library(engine, series)
    result = _backtest(engine, source="auto", offline=True)
    notes = result.notes[SYMBOL]
    assert any(s in n and "left out" in n for s in BENCHMARKS for n in notes), notes
    assert result.trades["rs_sector"].isna().all() and result.trades["rs_spy"].isna().all()
    row = result.trades.iloc[-3]
    _fill_library(engine, series, known_by=row["asof"])
    signal = _live(engine, "1d", source="auto", offline=True)
    _assert_same_signal(signal, row)
    assert any("left out" in n for n in signal.notes)


def test_demo_benchmark_never_prices_real_bars() -> None:
    real = _daily()[(SYMBOL, "1d")]
    fake = {s: demo_bars(s, "1d", len(real), end="2012-12-31") for s in BENCHMARKS}
    assert all(b.attrs.get("source") == "demo" for b in fake.values())
    real = real.copy()
    real.attrs["source"] = "local"
    result = run_backtest([SYMBOL], config=CONFIG, executor="inline", save=False,
                          bars={SYMBOL: real, **fake})
    assert result.trades["rs_sector"].isna().all() and result.trades["rs_spy"].isna().all()
    assert all("demo" in n for n in result.notes[SYMBOL])


# --------------------------------------------------------------------------- intraday (MTF)


def _intraday() -> dict[tuple[str, str], pd.DataFrame]:
    """90 sessions of 15m bars (a seeded walk, like real_bars) for the symbol and each
    benchmark, with the 30m and 1h bars they aggregate to."""
    sessions = pd.bdate_range("2012-01-03", periods=90)
    slots = pd.timedelta_range("09:30:00", "15:45:00", freq="15min")
    index = pd.DatetimeIndex([d + s for d in sessions for s in slots]).tz_localize(
        "America/New_York").tz_convert("UTC").rename("ts")
    out = {}
    for seed, symbol in enumerate((SYMBOL, *BENCHMARKS)):
        rng = np.random.default_rng(100 + seed)
        close = 50 * np.exp(np.cumsum(rng.normal(0.00005, 0.004, len(index))))
        open_ = np.r_[50.0, close[:-1]] * np.exp(rng.normal(0, 0.0008, len(index)))
        span = np.abs(rng.normal(0, 0.003, len(index))) * close
        bars = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + span,
                             "low": np.minimum(open_, close) - span, "close": close,
                             "volume": rng.integers(10_000, 90_000, len(index)).astype(float)},
                            index=index)
        out[(symbol, "15m")] = bars
        for interval in ("30m", "1h"):
            out[(symbol, interval)] = resample_bars(bars, interval)
    return out


def test_intraday_signals_with_other_timeframes_equal_live_ones(tmp_path) -> None:
    engine = db.get_engine(f"sqlite:///{tmp_path / 'intraday.sqlite'}")
    db.init_db(engine)
    series = _intraday()
    _fill_library(engine, series)
    result = _backtest(engine, "30m", source="local")
    signals = result.trades
    assert not result.notes
    assert (signals["mtf_15m"] != "").all() and (signals["mtf_1h"] != "").all()
    assert signals["mtf_alignment"].nunique() > 1, "alignment varies, so its term matters"
    late = signals[signals["signal_ts"] >= series[(SYMBOL, "30m")].index[13 * 60]]
    picked = pd.concat([_spread(late[late["mtf_alignment"] == a], 2)
                        for a in sorted(late["mtf_alignment"].unique())])
    assert len(picked) >= 4
    for _, row in picked.iterrows():
        _fill_library(engine, series, known_by=row["asof"])
        _assert_same_signal(_live(engine, "30m"), row)
