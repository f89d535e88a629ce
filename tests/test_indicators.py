"""Indicators against independent reference values computed by plain loops."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core import indicators


def _random_bars(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = close * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.01, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.01, n)))
    idx = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close}, index=idx)


def _ref_ema(values, span):
    alpha = 2.0 / (span + 1)
    out, state = [], None
    for value in values:
        state = value if state is None else alpha * value + (1 - alpha) * state
        out.append(state)
    return out


def _ref_wilder(values, period):
    """Wilder smoothing seeded with the first defined value (what ewm(adjust=False) does)."""
    out, state = [], None
    for value in values:
        if value is None:
            out.append(math.nan)
            continue
        state = value if state is None else state + (value - state) / period
        out.append(state)
    return out


def _ref_rsi(closes, period):
    gains = [None] + [max(b - a, 0.0) for a, b in zip(closes, closes[1:], strict=False)]
    losses = [None] + [max(a - b, 0.0) for a, b in zip(closes, closes[1:], strict=False)]
    avg_gain, avg_loss = _ref_wilder(gains, period), _ref_wilder(losses, period)
    out = []
    for g, lo in zip(avg_gain, avg_loss, strict=True):
        if math.isnan(g):
            out.append(math.nan)
        elif lo == 0:
            out.append(100.0)
        else:
            out.append(100 - 100 / (1 + g / lo))
    return out


def _ref_atr(high, low, close, period):
    trs = []
    for i in range(len(close)):
        if i == 0:
            trs.append(high[0] - low[0])
        else:
            pc = close[i - 1]
            trs.append(max(high[i] - low[i], abs(high[i] - pc), abs(low[i] - pc)))
    return _ref_wilder(trs, period)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ema_rsi_atr_match_plain_loops(seed):
    bars = _random_bars(300, seed)
    closes = bars["close"].tolist()
    np.testing.assert_allclose(indicators.ema(bars["close"], 20), _ref_ema(closes, 20), rtol=1e-12)
    np.testing.assert_allclose(
        indicators.rsi_wilder(bars["close"], 14), _ref_rsi(closes, 14), rtol=1e-9, equal_nan=True
    )
    atr = indicators.atr_wilder(bars["high"], bars["low"], bars["close"], 14)
    ref = _ref_atr(bars["high"].tolist(), bars["low"].tolist(), closes, 14)
    np.testing.assert_allclose(atr, ref, rtol=1e-12)


def test_rsi_is_100_without_losses_and_low_when_falling():
    rising = pd.Series(np.arange(1.0, 40.0))
    assert indicators.rsi_wilder(rising).iloc[-1] == 100.0
    falling = pd.Series(np.arange(40.0, 1.0, -1.0))
    assert indicators.rsi_wilder(falling).iloc[-1] == pytest.approx(0.0)


def test_bollinger_width_uses_population_std():
    bars = _random_bars(60, 4)
    width = indicators.bollinger_width(bars["close"], 20, 2.0)
    closes = bars["close"].tolist()
    for i in range(19, 60):
        window = closes[i - 19 : i + 1]
        expected = 4 * statistics.pstdev(window) / closes[i]
        assert width.iloc[i] == pytest.approx(expected, rel=1e-9)
    assert width.iloc[:19].isna().all()


def test_ema_slope_definition():
    close = pd.Series([10.0] * 6 + [11.0, 12.0])
    ema20 = indicators.ema(close, 20)
    slope = indicators.ema_slope(ema20, close, 6)
    assert slope.iloc[7] == pytest.approx((ema20.iloc[7] - ema20.iloc[1]) / 12.0)
    assert slope.iloc[:6].isna().all()


@settings(max_examples=30, deadline=None)
@given(st.integers(min_value=1, max_value=120), st.integers(min_value=2, max_value=45),
       st.integers(min_value=0, max_value=10_000))
def test_rolling_swing_matches_plain_window(n, lookback, seed):
    rng = np.random.default_rng(seed)
    high = rng.integers(0, 20, n).astype(float) + 1  # ties on purpose
    low = high - rng.integers(0, 5, n)
    swing = indicators.rolling_swing(high, low, lookback)
    for t in range(n):
        start = max(0, t - lookback + 1)
        window_high, window_low = list(high[start : t + 1]), list(low[start : t + 1])
        hi_at = window_high.index(max(window_high))  # first occurrence, like idxmax
        lo_at = window_low.index(min(window_low))
        assert swing.swing_high[t] == max(window_high)
        assert swing.swing_low[t] == min(window_low)
        assert bool(swing.direction_up[t]) == (lo_at < hi_at)


def test_fibonacci_levels_up_and_down_swings():
    levels = indicators.fibonacci_levels(
        np.array([110.0, 110.0]), np.array([100.0, 100.0]), np.array([True, False])
    )
    # up swing 100 -> 110: pocket is the 61.8-65 % retracement back from the high
    assert levels["golden_pocket_low"][0] == pytest.approx(110 - 6.5)
    assert levels["golden_pocket_high"][0] == pytest.approx(110 - 6.18)
    assert levels["fib_ext_1272"][0] == pytest.approx(100 + 12.72)
    assert levels["fib_500"][0] == pytest.approx(105.0)
    # down swing 110 -> 100: pocket measured up from the low
    assert levels["golden_pocket_low"][1] == pytest.approx(100 + 6.18)
    assert levels["golden_pocket_high"][1] == pytest.approx(100 + 6.5)
    assert levels["fib_ext_1272"][1] == pytest.approx(110 - 12.72)
    assert levels["fib_ext_1618"][1] == pytest.approx(110 - 16.18)
