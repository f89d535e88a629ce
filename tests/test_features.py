"""Context features: benchmarks and other timeframes are aligned by close time (one rule)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core.features import (
    bar_interval,
    last_closed_position,
    relative_strength,
    rolling_quantiles,
)
from swing_core.frame import FrameContext, build_signal_frame


def _hourly_sessions(days: int) -> pd.DatetimeIndex:
    """Regular-session hourly bars (Yahoo's labels: 09:30, 10:30, ... 15:30 New York)."""
    stamps = []
    for day in pd.bdate_range("2024-03-04", periods=days):
        open_ = pd.Timestamp(day.date()).tz_localize("America/New_York") + pd.Timedelta("9h30min")
        stamps.extend(open_ + pd.Timedelta(hours=i) for i in range(7))
    return pd.DatetimeIndex(stamps).tz_convert("UTC")


def _daily_labels(hourly: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Daily bars labelled by their open time (midnight New York), one per session day."""
    local = hourly.tz_convert("America/New_York").normalize().unique()
    return local.tz_convert("UTC")


def _old_relative_strength(close: pd.Series, bench: pd.Series, lookback: int) -> np.ndarray:
    """The former alignment (forward fill from the benchmark's own label), for the same-interval
    regression check."""
    bench = bench[~bench.index.duplicated(keep="last")].sort_index()
    aligned = bench.reindex(bench.index.union(close.index)).ffill().reindex(close.index)
    return ((close / close.shift(lookback)) / (aligned / aligned.shift(lookback))).to_numpy()


def test_an_hourly_bar_sees_the_previous_days_daily_close_not_its_own_days() -> None:
    hourly = _hourly_sessions(12)
    days = _daily_labels(hourly)
    bench = pd.Series(100.0 * 1.5 ** np.arange(len(days)), index=days)  # day D closes at 1.5**D
    day_of_bar = np.searchsorted(days.asi8, hourly.tz_convert("America/New_York").normalize()
                                 .tz_convert("UTC").asi8)
    position = last_closed_position(hourly, "1h", days, "1d")
    np.testing.assert_array_equal(position, day_of_bar - 1)  # day D−1's bar, -1 on the first day
    # hourly closes equal to the daily close the bar may know: the ratio is exactly 1 where
    # defined; a bar that saw its own day's close would give 1.5 (or 1/1.5) at day boundaries
    close = pd.Series(bench.to_numpy()[np.maximum(day_of_bar - 1, 0)], index=hourly)
    rs = relative_strength(close, bench, lookback=3, interval="1h", benchmark_interval="1d")
    defined = np.isfinite(rs)
    assert defined.sum() == len(hourly) - 7 - 3  # no benchmark on the first day, then warm-up
    np.testing.assert_array_equal(rs[defined], 1.0)


def test_a_daily_benchmark_under_hourly_bars_in_the_signal_frame() -> None:
    hourly = _hourly_sessions(40)
    days = _daily_labels(hourly)
    rng = np.random.default_rng(3)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.004, len(hourly))))
    bars = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998,
                         "close": close, "volume": 1e5}, index=hourly)
    bench = pd.DataFrame({"close": 400 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))},
                         index=days)
    bench.attrs["interval"] = "1d"
    frame = build_signal_frame(bars, interval="1h", context=FrameContext(sector=bench))
    known = last_closed_position(hourly, "1h", days, "1d")
    aligned = pd.Series(np.where(known >= 0, bench["close"].to_numpy()[np.maximum(known, 0)],
                                 np.nan), index=hourly)
    expected = (bars["close"] / bars["close"].shift(20)) / (aligned / aligned.shift(20))
    np.testing.assert_allclose(frame["rs_sector"], expected, rtol=1e-12)
    assert frame["rs_sector"].notna().sum() > 200
    # the same benchmark without attrs: its interval is read from the label spacing
    bare = build_signal_frame(bars, interval="1h",
                              context=FrameContext(sector=bench["close"].rename(None)))
    np.testing.assert_array_equal(bare["rs_sector"].to_numpy(), frame["rs_sector"].to_numpy())


def test_same_interval_benchmark_is_aligned_as_before() -> None:
    rng = np.random.default_rng(11)
    index = pd.date_range("2024-01-02 14:30", periods=300, freq="30min", tz="UTC")
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.003, 300))), index=index)
    # benchmark with missing bars, a missing close, a duplicate label and extra bars
    keep = np.sort(rng.choice(300, 260, replace=False))
    bench = pd.Series(400 * np.exp(np.cumsum(rng.normal(0, 0.002, 260))), index=index[keep])
    bench.iloc[40] = np.nan
    later = pd.DatetimeIndex([index[-1] + pd.Timedelta("30min"), index[-1] + pd.Timedelta("1h")])
    bench = pd.concat([bench, pd.Series([401.0], index=[index[keep[100]]]),
                       pd.Series([399.0, 398.0], index=later)])
    old = _old_relative_strength(close, bench, 20)
    for kwargs in ({}, {"interval": "30m"}, {"interval": "30m", "benchmark_interval": "30m"}):
        new = relative_strength(close, bench, lookback=20, **kwargs)
        np.testing.assert_array_equal(new, old)
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0})
    frame = build_signal_frame(bars, interval="30m", context=FrameContext(market=bench))
    np.testing.assert_array_equal(frame["rs_spy"].to_numpy(), old)


def test_bar_interval_from_attrs_or_label_spacing() -> None:
    hourly = _hourly_sessions(3)
    days = _daily_labels(hourly)
    assert bar_interval(pd.Series(1.0, index=days), default="1h") == "1d"
    assert bar_interval(pd.Series(1.0, index=hourly), default="1d") == "1h"
    stated = pd.DataFrame({"close": 1.0}, index=hourly)
    stated.attrs["interval"] = "30m"
    assert bar_interval(stated, default="1d") == "30m"
    assert bar_interval(pd.Series(1.0, index=days[:1]), default="15m") == "15m"
    assert bar_interval(None, default="1h") == "1h"


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.one_of(st.floats(0, 1, allow_nan=False), st.sampled_from([0.25, 0.5]),
                              st.just(float("nan"))), min_size=0, max_size=150),
    window=st.integers(1, 70),
    quantile=st.sampled_from([0.0, 0.33, 0.5, 0.66, 1.0]),
)
def test_rolling_quantiles_equal_pandas_bit_for_bit(values, window, quantile):
    """The sorted-window quantiles behind the volatility regime are pandas' rolling quantiles
    exactly (ties, NaNs, warm-up), so the L/M/H labels cannot move."""
    x = np.array(values, dtype=float)
    (got,) = rolling_quantiles(x, window, (quantile,))
    expected = pd.Series(x).rolling(window, min_periods=1).quantile(quantile).to_numpy()
    np.testing.assert_array_equal(got, expected)
