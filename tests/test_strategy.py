"""Each rule of STRATEGY.md on hand-built inputs where the answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from swing_core.config import StrategyParams
from swing_core.strategy import entry_plans, r_multiple, trend_labels

P = StrategyParams()


@pytest.mark.parametrize(
    ("close", "ema20", "slope", "rsi", "label"),
    [
        (101, 100, 0.015, 65, "up"),
        (101, 100, 0.025, 65, "strong_up"),
        (101, 100, 0.025, 59.9, "sideways"),  # RSI below 60
        (99, 100, 0.025, 65, "sideways"),  # close below EMA
        (101, 100, 0.010, 65, "sideways"),  # slope not > 0.01
        (101, 100, 0.015, 60, "up"),  # RSI >= 60 counts
        (99, 100, -0.015, 35, "down"),
        (99, 100, -0.025, 40, "strong_down"),
        (101, 100, -0.025, 35, "sideways"),
        (99, 100, np.nan, 35, "sideways"),  # warm-up
    ],
)
def test_trend_labels(close, ema20, slope, rsi, label):
    got = trend_labels(np.array([close], float), np.array([ema20], float),
                       np.array([slope], float), np.array([rsi], float), params=P)
    assert got[0] == label


def _plan(**overrides):
    base = dict(
        trend=np.array(["up"], dtype=object),
        close=np.array([100.0]),
        high=np.array([101.0]),
        low=np.array([99.0]),
        prev_high=np.array([102.0]),
        prev_low=np.array([98.0]),
        atr=np.array([2.0]),
        rsi=np.array([62.0]),
        swing_up=np.array([True]),
        pocket_low=np.array([99.5]),
        pocket_high=np.array([100.5]),
        extension=np.array([110.0]),
    )
    for key, value in overrides.items():
        base[key] = np.array([value], dtype=object if key == "trend" else float if not isinstance(value, bool) else bool)
    plans = entry_plans(params=P, **base)
    return {k: getattr(plans, k)[0] for k in ("setup", "side", "entry", "stop", "target", "r_multiple")}


def test_golden_pocket_long():
    plan = _plan()
    assert plan["setup"] == "gp_pullback" and plan["side"] == "long"
    assert plan["entry"] == 100.0
    assert plan["stop"] == pytest.approx(min(99.0, 99.5) - 0.2 * 2.0)
    assert plan["target"] == pytest.approx(max(110.0, 102.0))
    assert plan["r_multiple"] == pytest.approx((110 - 100) / (100 - 98.6))


def test_golden_pocket_short_mirror():
    plan = _plan(trend="strong_down", swing_up=False, extension=90.0, rsi=30.0)
    assert plan["setup"] == "gp_pullback" and plan["side"] == "short"
    assert plan["stop"] == pytest.approx(max(101.0, 100.5) + 0.4)
    assert plan["target"] == pytest.approx(min(90.0, 98.0))


def test_momentum_long_when_outside_pocket():
    plan = _plan(close=103.0, high=103.5, low=101.5)
    assert plan["setup"] == "momentum" and plan["side"] == "long"
    entry = max(102.0, 103.0)
    assert plan["entry"] == entry
    assert plan["stop"] == pytest.approx(entry - 1.2 * 2.0)
    assert plan["target"] == pytest.approx(max(110.0, entry + 4.0))


def test_momentum_long_entry_is_prev_high_stop_order():
    plan = _plan(close=101.0, extension=90.0)  # close outside pocket, below prev high
    assert plan["setup"] == "momentum"
    assert plan["entry"] == 102.0
    assert plan["target"] == pytest.approx(102.0 + 4.0)  # extension below: 2 ATR wins


def test_momentum_short():
    plan = _plan(trend="down", close=97.0, high=98.5, low=96.5, swing_up=False,
                 extension=80.0, rsi=35.0)
    assert plan["setup"] == "momentum" and plan["side"] == "short"
    assert plan["entry"] == min(98.0, 97.0)
    assert plan["stop"] == pytest.approx(97.0 + 2.4)
    assert plan["target"] == pytest.approx(min(80.0, 97.0 - 4.0))


def test_mean_reversion_long_and_short():
    long_plan = _plan(trend="sideways", rsi=30.0)
    assert long_plan["setup"] == "mean_reversion" and long_plan["side"] == "long"
    assert long_plan["stop"] == pytest.approx(99.0 - 2.0)
    assert long_plan["target"] == pytest.approx(100.0 + 3.0)
    assert long_plan["r_multiple"] == pytest.approx(3.0 / 3.0)
    short_plan = _plan(trend="sideways", rsi=70.0)
    assert short_plan["side"] == "short"
    assert short_plan["stop"] == pytest.approx(101.0 + 2.0)
    assert short_plan["target"] == pytest.approx(97.0)


def test_no_plan_when_sideways_and_neutral_rsi():
    plan = _plan(trend="sideways", rsi=50.0)
    assert plan["setup"] == "none" and plan["side"] == "none"
    assert np.isnan(plan["entry"]) and np.isnan(plan["r_multiple"])


def test_r_multiple_floored_at_zero():
    r = r_multiple(np.array(["long", "short", "long"], dtype=object), np.array([100.0, 100, 100]),
                   np.array([95.0, 105, 101]), np.array([90.0, 110, 110]))
    assert list(r) == [0.0, 0.0, 0.0]  # target on the wrong side, and a stop above the entry
