"""The signal frame: truncation invariance (no look-ahead) and known scenarios."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from swing_core.config import INTERVAL_DELTA, StrategyParams
from swing_core.errors import ConfigError
from swing_core.frame import VECTOR_COLUMNS, FrameContext, build_signal_frame


def _session_bars_15m(days: int, seed: int) -> pd.DataFrame:
    """Regular-session 15m bars (09:30-16:00 New York) with trends, ranges and gaps."""
    rng = np.random.default_rng(seed)
    sessions = pd.bdate_range("2024-03-01", periods=days)
    stamps = []
    for day in sessions:
        start = pd.Timestamp(day.date()).tz_localize("America/New_York") + pd.Timedelta("9h30min")
        stamps.extend(start + pd.Timedelta(minutes=15 * i) for i in range(26))
    index = pd.DatetimeIndex(stamps).tz_convert("UTC")
    n = len(index)
    drift = np.repeat(rng.normal(0, 0.002, n // 52 + 1), 52)[:n]
    returns = drift + rng.normal(0, 0.003, n)
    close = 100 * np.exp(np.cumsum(returns))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    volume = rng.integers(1_000, 50_000, n).astype(float)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def _resample(bars: pd.DataFrame, rule: str, offset: str | None = None) -> pd.DataFrame:
    local = bars.tz_convert("America/New_York")
    agg = local.resample(rule, offset=offset, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    )
    return agg.dropna().tz_convert("UTC")


@pytest.fixture(scope="module")
def market():
    bars15 = _session_bars_15m(40, seed=7)
    return {
        "15m": bars15,
        "30m": _resample(bars15, "30min"),
        "1h": _resample(bars15, "1h", offset="30min"),
        "sector": _resample(_session_bars_15m(40, seed=8), "30min"),
        "spy": _resample(_session_bars_15m(40, seed=9), "30min"),
    }


def _frame(market, cut=None):
    """The frame from everything known at the close of the 30m bar ``cut`` (all of it if None):
    bars of every series whose close (open + its interval) is at or before that moment."""
    known_by = None if cut is None else cut + pd.Timedelta("30min")

    def upto(df, interval):
        return df if cut is None else df[df.index + INTERVAL_DELTA[interval] <= known_by]

    context = FrameContext(
        sector=upto(market["sector"], "30m"),
        market=upto(market["spy"], "30m"),
        mtf={"15m": upto(market["15m"], "15m"), "1h": upto(market["1h"], "1h")},
    )
    return build_signal_frame(upto(market["30m"], "30m"), interval="30m", context=context)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_truncation_invariance_every_column(market, data):
    full = _frame(market)
    position = data.draw(st.integers(min_value=0, max_value=len(full) - 1))
    cut = full.index[position]
    truncated = _frame(market, cut)
    assert truncated.index[-1] == cut
    pd.testing.assert_frame_equal(truncated, full.iloc[: position + 1], check_exact=True)


def test_context_columns_are_filled(market):
    frame = _frame(market)
    tail = frame.iloc[100:]
    assert tail["rs_sector"].notna().all() and tail["rs_spy"].notna().all()
    assert (tail["mtf_15m"] != "").all() and (tail["mtf_1h"] != "").all()
    assert set(frame["time_bucket"]) == {"open", "mid", "close"}
    assert set(frame["vol_regime"]) == {"L", "M", "H"}
    assert frame["mtf_alignment"].between(-2, 2).all()


def test_higher_timeframe_bar_counts_only_after_it_closed(market):
    frame = _frame(market)
    hourly_known_at = market["1h"].index + pd.Timedelta("1h")
    base_close = frame.index + pd.Timedelta("30min")
    # a 1h label shown at a 30m bar must come from an hourly bar closed by that bar's close
    from swing_core.frame import trend_series

    hourly_trend = trend_series(market["1h"], params=StrategyParams())
    for i in range(50, len(frame), 37):
        known = hourly_known_at <= base_close[i]
        expected = hourly_trend[known].iloc[-1]
        assert frame["mtf_1h"].iloc[i] == expected


def test_vectors_are_unit_float32(market):
    frame = _frame(market)
    matrix = frame[list(VECTOR_COLUMNS)].to_numpy()
    assert frame[list(VECTOR_COLUMNS)].dtypes.eq(np.float32).all()
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, rtol=1e-5)


def test_rising_market_gives_up_trend_and_momentum_long():
    n = 80
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    close = 100 * 1.01 ** np.arange(n)  # +1 % a bar: slope well above 2 %, RSI 100
    bars = pd.DataFrame(
        {"open": close * 0.998, "high": close * 1.004, "low": close * 0.995, "close": close,
         "volume": 1e6},
        index=index,
    )
    frame = build_signal_frame(bars, interval="1d")
    last = frame.iloc[-1]
    assert last["trend"] == "strong_up"
    assert last["swing_dir"] == "up"
    assert last["setup"] == "momentum" and last["side"] == "long"
    prev_high = bars["high"].iloc[-2]
    assert last["entry"] == pytest.approx(max(prev_high, close[-1]))
    assert last["stop"] == pytest.approx(last["entry"] - 1.2 * last["atr14"])
    assert last["r_multiple"] > 0
    # confidence: strong_up 0.35 + min(0.4, 0.2 R) (no MTF, no benchmark)
    assert last["confidence"] == pytest.approx(0.35 + min(0.4, 0.2 * last["r_multiple"]))


def test_constant_prices_give_no_plan():
    """A flat series has no range (ATR 0): entry, stop and target would coincide with R 0, so
    there is no plan at all (issue 16 item 7)."""
    index = pd.date_range("2024-01-01", periods=80, freq="D", tz="UTC")
    bars = pd.DataFrame({"open": 50.0, "high": 50.0, "low": 50.0, "close": 50.0,
                         "volume": 1e6}, index=index)
    frame = build_signal_frame(bars, interval="1d")
    assert (frame["setup"] == "none").all() and (frame["side"] == "none").all()
    assert frame[["entry", "stop", "target", "r_multiple"]].isna().all().all()


def test_frame_rejects_unknown_interval():
    bars = _session_bars_15m(2, seed=1)
    with pytest.raises(ConfigError, match="Unknown interval"):
        build_signal_frame(bars, interval="5m")
