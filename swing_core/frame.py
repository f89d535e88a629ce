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
    bar_interval,
    base_confidence,
    bucket_names,
    higher_timeframe_trend,
    mtf_alignment,
    relative_strength,
    setup_vectors,
    time_bucket_codes,
    volatility_regime,
)
from swing_core.perf import timed_fn
from swing_core.strategy import (
    SETUPS,
    SIDES,
    entry_plans,
    trend_label_codes,
    trend_labels,
    trend_names,
)

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

    ``sector`` / ``market``: benchmark bars (sector ETF and SPY) or their close series, of
    any interval (``attrs["interval"]``, else read from the label spacing); ``mtf``: bars of
    other intervals keyed by interval (``"15m"``, ``"1h"``). Every context bar counts from the
    close of the first of the symbol's bars that closes at or after its own close.
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
    close = pd.Series(bars["close"].to_numpy(dtype=float), index=bars.index)
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
        value = value["close"]
    if len(value) == 0:
        return None
    return pd.Series(value.to_numpy(dtype=float), index=value.index)


@timed_fn("frame")
def build_signal_frame(
    bars: pd.DataFrame,
    *,
    params: StrategyParams | None = None,
    interval: str = "30m",
    context: FrameContext | None = None,
) -> pd.DataFrame:
    """Build the signal frame of ``bars`` (UTC index of bar open times, OHLCV columns).

    Row t uses bars <= t of the symbol, and benchmark and other-timeframe bars that had
    closed by bar t's close.  Columns are listed in the module
    docstring of ``swing_core.frame`` and in the README's "Signal frame" section.
    """
    params = params or StrategyParams()
    validate_interval(interval)
    context = context or FrameContext()
    index = bars.index
    # Plain series without attrs: pandas deep-copies ``attrs`` on every operation otherwise.
    # Copies: the frame is assembled without copying (below) and must not share the caller's bars.
    columns: dict[str, object] = {
        name: pd.Series(np.array(bars[name], dtype=float), index=index) for name in PRICE_COLUMNS
    }
    open_, high, low, close = (columns[c] for c in ("open", "high", "low", "close"))

    ema20 = indicators.ema(close, params.ema_span)
    rsi14 = indicators.rsi_wilder(close, params.rsi_period)
    atr14 = indicators.atr_wilder(high, low, close, params.atr_period)
    slope = indicators.ema_slope(ema20, close, params.slope_lookback)
    bb_width = indicators.bollinger_width(close, params.bb_period, params.bb_std)
    close_np, high_np, low_np = close.to_numpy(), high.to_numpy(), low.to_numpy()
    atr_np, rsi_np = atr14.to_numpy(), rsi14.to_numpy()
    columns.update(
        ema20=ema20.to_numpy(),
        rsi14=rsi_np,
        atr14=atr_np,
        ema_slope=slope.to_numpy(),
        bb_width=bb_width.to_numpy(),
        atr_pct=atr_np / close_np * 100.0,
    )
    trend_code = trend_label_codes(close_np, columns["ema20"], columns["ema_slope"], rsi_np,
                                   params=params)
    columns["trend"] = trend_names(trend_code)

    swing = indicators.rolling_swing(high_np, low_np, params.swing_lookback)
    columns["swing_high"] = swing.swing_high
    columns["swing_low"] = swing.swing_low
    columns["swing_dir"] = np.where(swing.direction_up, "up", "down").astype(object)
    fib = indicators.fibonacci_levels(
        swing.swing_high,
        swing.swing_low,
        swing.direction_up,
        pocket=(params.golden_pocket_lo, params.golden_pocket_hi),
    )
    columns.update(fib)
    extension = indicators.fibonacci_levels(
        swing.swing_high, swing.swing_low, swing.direction_up, extensions=(params.extension,)
    )[f"fib_ext_{int(round(params.extension * 1000)):04d}"]

    prev_high = np.r_[np.nan, high_np[:-1]]
    prev_low = np.r_[np.nan, low_np[:-1]]
    plans = entry_plans(
        trend=trend_code,
        close=close_np,
        high=high_np,
        low=low_np,
        prev_high=prev_high,
        prev_low=prev_low,
        atr=atr_np,
        rsi=rsi_np,
        swing_up=swing.direction_up,
        pocket_low=fib["golden_pocket_low"],
        pocket_high=fib["golden_pocket_high"],
        extension=extension,
        params=params,
    )
    columns.update(setup=plans.setup, side=plans.side, entry=plans.entry, stop=plans.stop,
                   target=plans.target, r_multiple=plans.r_multiple)

    bucket = time_bucket_codes(index, interval)
    columns["time_bucket"] = bucket_names(bucket)
    columns["vol_regime"] = volatility_regime(bb_width, params=params)
    # benchmarks are aligned by close time, like the other timeframes: a daily benchmark under
    # hourly bars gives day D's bars day D-1's close (its interval: attrs or label spacing)
    columns["rs_sector"] = relative_strength(
        close, _close_series(context.sector), lookback=params.rs_lookback, interval=interval,
        benchmark_interval=bar_interval(context.sector, default=interval),
    )
    columns["rs_spy"] = relative_strength(
        close, _close_series(context.market), lookback=params.rs_lookback, interval=interval,
        benchmark_interval=bar_interval(context.market, default=interval),
    )
    other_trends = []
    for other_interval in MTF_INTERVALS:
        other_bars = context.mtf.get(other_interval)
        if other_interval == interval or other_bars is None or other_bars.empty:
            columns[f"mtf_{other_interval}"] = np.full(len(index), "", dtype=object)
            other_trends.append(np.full(len(index), -1, dtype=np.int8))  # no trend: code -1
            continue
        labels = higher_timeframe_trend(
            index, interval, trend_series(other_bars, params=params), other_interval
        )
        columns[f"mtf_{other_interval}"] = labels
        other_trends.append(labels)
    alignment = mtf_alignment(trend_code, *other_trends)
    columns["mtf_alignment"] = alignment
    columns["confidence"] = base_confidence(
        trend_code, plans.r_multiple, alignment, columns["rs_sector"], params=params
    )
    vectors = np.asfortranarray(setup_vectors(columns, trend=trend_code,
                                                 bucket=bucket))  # contiguous columns
    for position, name in enumerate(VECTOR_COLUMNS):
        columns[name] = vectors[:, position]
    frame = pd.DataFrame(columns, index=index, copy=False)  # no block consolidation (copies)
    frame.attrs.update(bars.attrs)
    frame.attrs["interval"] = interval
    frame.attrs["vector_version"] = VECTOR_VERSION
    return frame
