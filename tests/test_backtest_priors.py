"""The backtest's prior adapter: every taken signal gets exactly what the pattern engine answers
for it alone (PatternIndex over the run's outcomes known by then, plus the stored library),
with the engine's confidence blend, and a win rate calibrated only on earlier outcomes.

The engine itself (exact k-NN against brute force, fallbacks, regime rule, statistics) is
tested in tests/test_patterns.py; this file checks what the backtest hands it and keeps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core.backtest import (
    PRIOR_COLUMNS,
    BacktestConfig,
    attach_priors,
    no_priors,
    outcome_rows,
    pattern_priors,
    prepare_symbol,
    trim_bars,
)
from swing_core.calibration import fit_calibrator
from swing_core.config import StrategyParams
from swing_core.costs import won_after_costs
from swing_core.frame import VECTOR_COLUMNS
from swing_core.market import demo_bars
from swing_core.patterns import PatternIndex, blend_confidence

CONFIG = BacktestConfig(interval="1d")


@pytest.fixture(scope="module")
def signals() -> pd.DataFrame:
    """Every plan of three symbols' walk-forwards (taken or not), before priors."""
    passes = []
    for symbol in ("AAPL", "MSFT", "XOM"):
        bars = trim_bars(demo_bars(symbol, "1d", 600, end="2025-06-30"), symbol=symbol,
                         config=CONFIG)
        passes.append(prepare_symbol(bars, symbol=symbol, config=CONFIG).signals)
    return pd.concat(passes, ignore_index=True)


def _one_by_one(signals: pd.DataFrame, rows: np.ndarray, params: StrategyParams,
                library: pd.DataFrame | None = None) -> list:
    """The engine's single-query answer for each signal, from an index holding the run's
    outcomes (and the library rows), all of them; the engine applies the as-of rule."""
    outcomes = outcome_rows(signals, interval="1d")
    rows_all = outcomes if library is None else pd.concat([library, outcomes],
                                                          ignore_index=True)
    index = PatternIndex.from_frame(rows_all, interval="1d")
    return [index.priors(signals.iloc[i][list(VECTOR_COLUMNS)].to_numpy(np.float32),
                         asof=signals["asof"].iloc[i], symbol=signals["symbol"].iloc[i],
                         vol_regime=signals["vol_regime"].iloc[i], params=params)
            for i in rows]


def _assert_rows_match(out: pd.DataFrame, rows: np.ndarray, want: list,
                       params: StrategyParams) -> None:
    for i, stats in zip(rows, want, strict=True):
        got = out.iloc[i]
        assert got["prior_n"] == stats.n and got["prior_scope"] == stats.scope
        for column, value in (("prior_win_rate_raw", stats.win_rate),
                              ("prior_avg_r", stats.avg_r), ("expected_r", stats.expected_r),
                              ("prior_avg_win_r", stats.avg_win_r),
                              ("prior_avg_loss_r", stats.avg_loss_r),
                              ("prior_profit_factor", stats.profit_factor),
                              ("prior_median_hold_bars", stats.median_hold_bars),
                              ("prior_median_hold_days", stats.median_hold_days)):
            np.testing.assert_allclose(got[column], value, rtol=1e-9, err_msg=column)
        for reason in ("STOP", "TARGET", "TIME"):
            assert got[f"prior_n_{reason.lower()}"] == stats.exit_reasons.get(reason, 0)
        assert got["confidence"] == pytest.approx(
            blend_confidence(got["base_confidence"], stats, params=params), abs=1e-12)


@settings(max_examples=6, deadline=None)
@given(k=st.integers(1, 70), min_regime=st.integers(1, 25), seed=st.integers(0, 2**16))
def test_each_signal_gets_the_engines_single_query_answer(signals: pd.DataFrame, k: int,
                                                          min_regime: int, seed: int) -> None:
    params = StrategyParams(knn_k=k, min_regime_neighbors=min_regime)
    out = attach_priors(signals, params=params)
    taken = np.flatnonzero(signals["taken"].to_numpy(bool))
    rows = np.sort(np.random.default_rng(seed).choice(taken, 40, replace=False))
    rows[0] = taken[0]  # the first signal: nothing known yet
    _assert_rows_match(out, rows, _one_by_one(signals, rows, params), params)
    assert out.iloc[taken[0]]["prior_n"] == 0 and out.iloc[taken[0]]["prior_scope"] == "none"
    skipped = ~signals["taken"].to_numpy(bool)
    assert out.loc[skipped, "prior_win_rate"].isna().all()
    assert out.loc[skipped, "prior_scope"].isna().all()


def test_stored_library_rows_are_searched_with_the_runs_outcomes(signals: pd.DataFrame
                                                                 ) -> None:
    rng = np.random.default_rng(1)
    base = outcome_rows(signals, interval="1d")
    stored = base.sample(300, random_state=2).assign(
        symbol=rng.choice(["AAPL", "NVDA"], 300), realized_r=rng.normal(0.3, 1.5, 300),
        ts=pd.date_range("1990-01-01", periods=300, freq="D", tz="UTC"))
    library = PatternIndex.from_frame(stored, interval="1d")
    params = StrategyParams()
    out = attach_priors(signals, params=params, library=library)
    taken = np.flatnonzero(signals["taken"].to_numpy(bool))
    rows = taken[::9]
    _assert_rows_match(out, rows, _one_by_one(signals, rows, params, library=stored), params)
    without = attach_priors(signals, params=params)
    assert (out.iloc[taken]["prior_avg_r"] != without.iloc[taken]["prior_avg_r"]).sum() > 20


def test_the_predicted_win_rate_is_calibrated_on_earlier_outcomes_only(signals: pd.DataFrame
                                                                      ) -> None:
    params = StrategyParams(calibration_min_samples=30)
    out = attach_priors(signals, params=params)
    priced = out[out["taken"] & out["prior_win_rate_raw"].notna()]
    # the target: a win after fees and slippage (not an R above 0 before costs)
    pairs = priced[priced["exit_ts"].notna() & (priced["exit_pos"] >= 0)].assign(
        won=lambda f: won_after_costs(f["realized_r"], f["fill_price"], f["stop"],
                                      exit_price=f["exit_price"], params=params))
    # in the order outcomes became known; ties (several exits on one close) by value
    pairs = pairs.sort_values(["exit_ts", "prior_win_rate_raw", "won"], kind="stable")
    # refits at 30, 45, 68, ... known outcomes: a fixed sequence, whatever comes later
    sizes = [30]
    while sizes[-1] < 10_000:
        sizes.append(int(np.ceil(sizes[-1] * 1.5)))
    checked = 0
    for _, row in priced.iloc[::7].iterrows():
        known = pairs[pairs["exit_ts"] <= row["asof"]]
        if len(known) < 30:
            assert row["prior_win_rate"] == row["prior_win_rate_raw"]
            continue
        # the fit used: the largest refit all of whose pairs were known by then
        size = max(s for s in sizes if s <= len(known))
        fit = fit_calibrator(known["prior_win_rate_raw"][:size],
                             known["won"][:size], params=params)
        assert row["prior_win_rate"] == pytest.approx(fit.predict(row["prior_win_rate_raw"]))
        checked += 1
    assert checked > 10


def test_a_custom_prior_function_is_used_and_no_priors_is_empty(signals: pd.DataFrame
                                                               ) -> None:
    seen = {}
    engine = pattern_priors(interval="1d")

    def spy(queries, outcomes, params):
        seen["queries"], seen["outcomes"] = len(queries), outcomes
        return engine(queries, outcomes, params)

    attach_priors(signals, params=StrategyParams(), prior_fn=spy)
    assert seen["queries"] == signals["taken"].sum()
    exited = signals[signals["exit_pos"] >= 0]
    assert len(seen["outcomes"]) == len(exited)  # taken or not, every symbol
    assert set(seen["outcomes"]["symbol"]) == set(signals["symbol"])
    assert (seen["outcomes"]["exit_ts"].to_numpy() == exited["exit_ts"].to_numpy()).all()
    empty = no_priors(signals)
    assert set(PRIOR_COLUMNS) <= set(empty.columns) and (empty["prior_n"] == 0).all()
    assert (empty["confidence"] == signals["base_confidence"]).all()


# --------------------------------------------------------------------------- one setup, once


def test_a_setup_both_stored_and_in_the_run_counts_once(signals: pd.DataFrame) -> None:
    """A library that already holds the run's own setups (a run re-run with use_library after
    it was saved) prices every signal as the run alone does; other stored setups still count.
    A row is identified by (symbol, interval, bar ts): the run's own row is the one kept."""
    params = StrategyParams()
    outcomes = outcome_rows(signals, interval="1d")
    alone = attach_priors(signals, params=params)
    same = attach_priors(signals, params=params,
                         library=PatternIndex.from_frame(outcomes, interval="1d"))
    pd.testing.assert_frame_equal(same, alone)
    rng = np.random.default_rng(3)
    others = outcomes.sample(200, random_state=4).assign(
        symbol="NVDA", realized_r=rng.normal(0.2, 1.4, 200))
    mixed = attach_priors(signals, params=params, library=PatternIndex.from_frame(
        pd.concat([outcomes, others], ignore_index=True), interval="1d"))
    only_others = attach_priors(signals, params=params,
                                library=PatternIndex.from_frame(others, interval="1d"))
    pd.testing.assert_frame_equal(mixed, only_others)


def test_no_neighbour_appears_twice() -> None:
    """30 distinct setups, stored and passed again as the run's rows, k = 60: 30 neighbours."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(30, len(VECTOR_COLUMNS))).astype(np.float32)
    rows = pd.DataFrame(vectors, columns=list(VECTOR_COLUMNS)).assign(
        symbol="AAPL", ts=pd.date_range("2024-01-01", periods=30, freq="D", tz="UTC"),
        exit_ts=pd.date_range("2024-01-03", periods=30, freq="D", tz="UTC"),
        realized_r=rng.normal(0.1, 1.0, 30), hold_bars=2, exit_reason="TIME", setup="momentum",
        side="long", vol_regime="M")
    index = PatternIndex.from_frame(rows, interval="1d")
    params = StrategyParams(knn_k=60, min_regime_neighbors=1)
    asof = pd.Timestamp("2025-01-01", tz="UTC")
    twice = index.query_many(vectors[:5], asof, "AAPL", params=params, extra=rows)
    once = PatternIndex(interval="1d").query_many(vectors[:5], asof, "AAPL", params=params,
                                                  extra=rows)
    assert twice.n.tolist() == once.n.tolist() == [30] * 5
    np.testing.assert_allclose(twice.win_rate, once.win_rate)
    np.testing.assert_allclose(twice.avg_r, once.avg_r)
