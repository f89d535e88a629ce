"""The signal frame: everything the engine knows about a symbol at bar t, for every t at once.

One row per bar, computed with vectorized numpy/pandas from bars <= t only (truncation
invariance: row t is identical whether the frame was built from ``bars[:t+1]`` or from the
whole history).  A live signal is the last row; a walk-forward backtest is every row.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from swing_core import indicators
from swing_core.config import StrategyParams, validate_interval
from swing_core.features import (
    VECTOR_COLUMNS,
    VECTOR_VERSION,
    base_confidence,
    higher_timeframe_trend,
    mtf_alignment,
    relative_strength,
    setup_vectors,
    time_of_day_bucket,
    volatility_regime,
)
from swing_core.strategy import SETUPS, SIDES, entry_plans, trend_labels

__all__ = [
    "FrameContext",
    "MTF_INTERVALS",
    "SETUPS",
    "SIDES",
    "VECTOR_COLUMNS",
    "VECTOR_VERSION",
    "build_signal_frame",
    "min_bars_required",
    "trend_series",
]

#: The other timeframes whose trend labels feed the multi-timeframe alignment.
MTF_INTERVALS: tuple[str, ...] = ("15m", "1h")

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True)
class FrameContext:
    """Optional inputs beyond the symbol's own bars.

    ``sector`` / ``market``: benchmark bars (sector ETF and SPY) or their close series;
    ``mtf``: bars of other intervals keyed by interval (``"15m"``, ``"1h"``).
    """

    sector: pd.DataFrame | pd.Series | None = None
    market: pd.DataFrame | pd.Series | None = None
    mtf: Mapping[str, pd.DataFrame] = field(default_factory=dict)


def min_bars_required(params: StrategyParams) -> int:
    """Bars needed before the indicators behind a plan are all defined."""
    return max(params.bb_period, params.swing_lookback, params.slope_lookback + 1,
               params.atr_period, params.rsi_period) + 1


def trend_series(bars: pd.DataFrame, *, params: StrategyParams) -> pd.Series:
    """The trend label of every bar of ``bars`` (used for the other timeframes)."""
    close = bars["close"].astype(float)
    ema20 = indicators.ema(close, params.ema_span)
    labels = trend_labels(
        close.to_numpy(),
        ema20.to_numpy(),
        indicators.ema_slope(ema20, close, params.slope_lookback).to_numpy(),
        indicators.rsi_wilder(close, params.rsi_period).to_numpy(),
        params=params,
    )
    return pd.Series(labels, index=bars.index, dtype=object)


def _close_series(value: pd.DataFrame | pd.Series | None) -> pd.Series | None:
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        return value["close"].astype(float) if len(value) else None
    return value.astype(float)


def build_signal_frame(
    bars: pd.DataFrame,
    *,
    params: StrategyParams | None = None,
    interval: str = "30m",
    context: FrameContext | None = None,
) -> pd.DataFrame:
    """Build the signal frame of ``bars`` (UTC index of bar open times, OHLCV columns).

    Row t uses bars <= t of the symbol, benchmark closes at timestamps <= t, and
    other-timeframe bars that had closed by bar t's close.  Columns are listed in the module
    docstring of ``swing_core.frame`` and in the README's "Signal frame" section.
    """
    params = params or StrategyParams()
    validate_interval(interval)
    context = context or FrameContext()
    frame = bars.loc[:, list(PRICE_COLUMNS)].astype(float)
    open_, high, low, close = (frame[c] for c in ("open", "high", "low", "close"))

    ema20 = indicators.ema(close, params.ema_span)
    rsi14 = indicators.rsi_wilder(close, params.rsi_period)
    atr14 = indicators.atr_wilder(high, low, close, params.atr_period)
    slope = indicators.ema_slope(ema20, close, params.slope_lookback)
    bb_width = indicators.bollinger_width(close, params.bb_period, params.bb_std)
    frame["ema20"] = ema20
    frame["rsi14"] = rsi14
    frame["atr14"] = atr14
    frame["ema_slope"] = slope
    frame["bb_width"] = bb_width
    frame["atr_pct"] = atr14 / close * 100.0

    close_np = close.to_numpy()
    trend = trend_labels(close_np, ema20.to_numpy(), slope.to_numpy(), rsi14.to_numpy(),
                         params=params)
    frame["trend"] = trend

    swing = indicators.rolling_swing(high.to_numpy(), low.to_numpy(), params.swing_lookback)
    frame["swing_high"] = swing.swing_high
    frame["swing_low"] = swing.swing_low
    frame["swing_dir"] = np.where(swing.direction_up, "up", "down").astype(object)
    fib = indicators.fibonacci_levels(
        swing.swing_high,
        swing.swing_low,
        swing.direction_up,
        pocket=(params.golden_pocket_lo, params.golden_pocket_hi),
    )
    for name, values in fib.items():
        frame[name] = values
    extension = indicators.fibonacci_levels(
        swing.swing_high, swing.swing_low, swing.direction_up, extensions=(params.extension,)
    )[f"fib_ext_{int(round(params.extension * 1000)):04d}"]

    plans = entry_plans(
        trend=trend,
        close=close_np,
        high=high.to_numpy(),
        low=low.to_numpy(),
        prev_high=high.shift(1).to_numpy(),
        prev_low=low.shift(1).to_numpy(),
        atr=atr14.to_numpy(),
        rsi=rsi14.to_numpy(),
        swing_up=swing.direction_up,
        pocket_low=fib["golden_pocket_low"],
        pocket_high=fib["golden_pocket_high"],
        extension=extension,
        params=params,
    )
    frame["setup"] = plans.setup
    frame["side"] = plans.side
    frame["entry"] = plans.entry
    frame["stop"] = plans.stop
    frame["target"] = plans.target
    frame["r_multiple"] = plans.r_multiple

    frame["time_bucket"] = time_of_day_bucket(frame.index, interval)
    frame["vol_regime"] = volatility_regime(bb_width, params=params)
    frame["rs_sector"] = relative_strength(
        close, _close_series(context.sector), lookback=params.rs_lookback
    )
    frame["rs_spy"] = relative_strength(
        close, _close_series(context.market), lookback=params.rs_lookback
    )
    other_trends = []
    for other_interval in MTF_INTERVALS:
        other_bars = context.mtf.get(other_interval)
        if other_interval == interval or other_bars is None or other_bars.empty:
            labels = np.full(len(frame), "", dtype=object)
        else:
            labels = higher_timeframe_trend(
                frame.index, interval, trend_series(other_bars, params=params), other_interval
            )
        frame[f"mtf_{other_interval}"] = labels
        other_trends.append(labels)
    alignment = mtf_alignment(trend, *other_trends)
    frame["mtf_alignment"] = alignment
    frame["confidence"] = base_confidence(
        trend, plans.r_multiple, alignment, frame["rs_sector"].to_numpy(), params=params
    )
    vectors = setup_vectors(frame)
    vector_frame = pd.DataFrame(vectors, index=frame.index, columns=list(VECTOR_COLUMNS))
    frame = pd.concat([frame, vector_frame], axis=1)
    frame.attrs.update(bars.attrs)
    frame.attrs["interval"] = interval
    frame.attrs["vector_version"] = VECTOR_VERSION
    return frame
