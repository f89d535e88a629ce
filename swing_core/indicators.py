"""Vectorized, causal indicators: row t of every output uses bars <= t only.

All functions take and return pandas objects aligned on the input index.  Formulas follow
SwingAgent v1.6.1 (see ``shared/STRATEGY.md``): EMA without adjustment, Wilder smoothing
(``alpha = 1/period``) for RSI and ATR, Bollinger width with the population standard deviation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

#: Retracement levels measured back from the swing's end (the textbook definition).
RETRACEMENTS: tuple[float, ...] = (0.236, 0.382, 0.5, 0.618, 0.65, 0.786)
EXTENSIONS: tuple[float, ...] = (1.272, 1.414, 1.618)


def ema(close: pd.Series, span: int = 20) -> pd.Series:
    """Exponential moving average, ``ewm(span, adjust=False)``: a pure recursion from bar 0."""
    return close.ewm(span=span, adjust=False).mean()


def rsi_wilder(close: pd.Series, period: int = 14) -> pd.Series:
    """Wilder RSI in [0, 100]; 100 when the smoothed losses are zero, NaN on the first bar."""
    values = close.to_numpy(dtype=float)
    delta = np.empty_like(values)
    delta[:1] = np.nan
    np.subtract(values[1:], values[:-1], out=delta[1:])
    moves = pd.DataFrame(
        {"gain": np.maximum(delta, 0.0), "loss": np.maximum(-delta, 0.0)}, index=close.index
    )  # NaN stays NaN through maximum, so the smoothing starts on the second bar
    smoothed = moves.ewm(alpha=1.0 / period, adjust=False).mean().to_numpy()
    avg_gain, avg_loss = smoothed[:, 0], smoothed[:, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        rsi = 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    rsi = np.where((avg_loss == 0.0) & ~np.isnan(avg_gain), 100.0, rsi)
    return pd.Series(rsi, index=close.index, name="rsi")


def true_range(high: pd.Series, low: pd.Series, close: pd.Series) -> pd.Series:
    """max(high − low, |high − prev close|, |low − prev close|); high − low on the first bar."""
    h, lo = high.to_numpy(dtype=float), low.to_numpy(dtype=float)
    prev_close = np.r_[np.nan, close.to_numpy(dtype=float)[:-1]]
    # fmax skips a NaN (no previous close on the first bar) as max(skipna=True) did
    ranges = np.fmax(np.fmax(h - lo, np.abs(h - prev_close)), np.abs(lo - prev_close))
    return pd.Series(ranges, index=high.index)


def atr_wilder(high: pd.Series, low: pd.Series, close: pd.Series, period: int = 14) -> pd.Series:
    """Average true range with Wilder smoothing (``ewm(alpha=1/period, adjust=False)``)."""
    return true_range(high, low, close).ewm(alpha=1.0 / period, adjust=False).mean()


def ema_slope(ema_values: pd.Series, close: pd.Series, lookback: int = 6) -> pd.Series:
    """(EMA now − EMA ``lookback`` bars earlier) / close now; NaN for the first ``lookback`` bars."""
    return (ema_values - ema_values.shift(lookback)) / close


def bollinger_width(close: pd.Series, period: int = 20, num_std: float = 2.0) -> pd.Series:
    """(upper − lower) / close with a ``period``-bar mean and population (ddof=0) std."""
    std = close.rolling(period, min_periods=period).std(ddof=0)
    return (2.0 * num_std * std) / close


@dataclass(frozen=True)
class SwingLevels:
    """Swing extremes over a trailing window, one value per bar (numpy arrays, bar-aligned)."""

    swing_high: np.ndarray
    swing_low: np.ndarray
    high_pos: np.ndarray  # bars since the window start where the high occurred
    low_pos: np.ndarray
    direction_up: np.ndarray  # True when the low came before the high


def rolling_swing(high: np.ndarray, low: np.ndarray, lookback: int = 40) -> SwingLevels:
    """Highest high and lowest low over the last ``lookback`` bars (fewer at the start).

    The swing is *up* when the lowest low came strictly before the highest high (first
    occurrence of each, as ``idxmax``/``idxmin`` pick), *down* otherwise.
    """
    n = len(high)
    pad = lookback - 1
    high_padded = np.concatenate([np.full(pad, -np.inf), np.asarray(high, dtype=float)])
    low_padded = np.concatenate([np.full(pad, np.inf), np.asarray(low, dtype=float)])
    high_windows = sliding_window_view(high_padded, lookback)[:n]
    low_windows = sliding_window_view(low_padded, lookback)[:n]
    high_pos = high_windows.argmax(axis=1)
    low_pos = low_windows.argmin(axis=1)
    rows = np.arange(n)
    return SwingLevels(
        swing_high=high_windows[rows, high_pos],
        swing_low=low_windows[rows, low_pos],
        high_pos=high_pos,
        low_pos=low_pos,
        direction_up=low_pos < high_pos,
    )


def fibonacci_levels(
    swing_high: np.ndarray,
    swing_low: np.ndarray,
    direction_up: np.ndarray,
    *,
    pocket: tuple[float, float] = (0.618, 0.65),
    extensions: tuple[float, ...] = EXTENSIONS,
) -> dict[str, np.ndarray]:
    """Retracements (measured back from the swing's end), golden pocket and extensions.

    Up swing: level(f) = high − f·range, extension(f) = low + f·range.
    Down swing: level(f) = low + f·range, extension(f) = high − f·range.
    The original measured retracements from the swing's start (its "golden pocket" sat at the
    35–38.2 % retracement); SwingDesk follows the documented 61.8–65 % pocket.
    """
    swing_range = swing_high - swing_low
    sign = np.where(direction_up, -1.0, 1.0)
    anchor_end = np.where(direction_up, swing_high, swing_low)
    anchor_start = np.where(direction_up, swing_low, swing_high)
    out: dict[str, np.ndarray] = {"fib_range": swing_range}
    for level in RETRACEMENTS:
        out[f"fib_{int(round(level * 1000)):03d}"] = anchor_end + sign * level * swing_range
    edge_a = anchor_end + sign * pocket[0] * swing_range
    edge_b = anchor_end + sign * pocket[1] * swing_range
    out["golden_pocket_low"] = np.minimum(edge_a, edge_b)
    out["golden_pocket_high"] = np.maximum(edge_a, edge_b)
    for level in extensions:
        out[f"fib_ext_{int(round(level * 1000)):04d}"] = anchor_start - sign * level * swing_range
    return out
