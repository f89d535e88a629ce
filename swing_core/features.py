"""Context features and setup vectors, vectorized and causal (row t uses bars <= t).

- time-of-day bucket in New York time,
- volatility regime from Bollinger width against its own trailing distribution,
- relative strength against benchmarks aligned on timestamps,
- multi-timeframe alignment using only higher-timeframe bars that had closed,
- the 16-value, L2-normalized float32 setup vector of ``shared/STRATEGY.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import EXCHANGE_TZ, INTERVAL_DELTA, StrategyParams
from swing_core.strategy import trend_sign

VECTOR_VERSION = "v1"
VECTOR_FIELDS: tuple[str, ...] = (
    "ema_slope",
    "rsi_frac",
    "atr_frac",
    "close_above_ema",
    "prev_range_frac",
    "gap_frac",
    "pocket_position",
    "in_pocket",
    "r_over_5",
    "trend_up",
    "trend_down",
    "sideways",
    "session_bit_a",
    "session_bit_b",
    "llm_confidence",
    "constant",
)
VECTOR_COLUMNS: tuple[str, ...] = tuple(f"vec_{i:02d}" for i in range(len(VECTOR_FIELDS)))


def time_of_day_bucket(index: pd.DatetimeIndex, interval: str) -> np.ndarray:
    """``open`` before 11:00, ``close`` from 15:00, ``mid`` between (New York time of the bar's
    open); daily bars are ``mid``."""
    if interval == "1d" or len(index) == 0:
        return np.full(len(index), "mid", dtype=object)
    local = index.tz_convert(EXCHANGE_TZ)
    minutes = local.hour * 60 + local.minute
    return np.select(
        [minutes < 11 * 60, minutes >= 15 * 60], ["open", "close"], default="mid"
    ).astype(object)


def volatility_regime(bb_width: pd.Series, *, params: StrategyParams) -> np.ndarray:
    """``L`` / ``M`` / ``H``: Bollinger width now against the last ``vol_regime_window`` widths.

    ``L`` at or below the 33rd percentile, ``H`` at or above the 66th (linear interpolation,
    numpy's default), ``M`` between or while the width is undefined (warm-up).
    """
    window = bb_width.rolling(params.vol_regime_window, min_periods=1)
    low_cut = window.quantile(params.vol_regime_low_pct / 100.0).to_numpy()
    high_cut = window.quantile(params.vol_regime_high_pct / 100.0).to_numpy()
    width = bb_width.to_numpy()
    with np.errstate(invalid="ignore"):
        return np.select(
            [np.isnan(width), width <= low_cut, width >= high_cut], ["M", "L", "H"], default="M"
        ).astype(object)


def relative_strength(
    close: pd.Series, benchmark_close: pd.Series | None, *, lookback: int = 20
) -> np.ndarray:
    """(close / close ``lookback`` bars ago) / the same ratio of the benchmark.

    The benchmark is aligned on our timestamps with a forward fill (a benchmark bar counts only
    from its own timestamp on, so no future value leaks in); NaN when no benchmark is given.
    """
    if benchmark_close is None or benchmark_close.empty:
        return np.full(len(close), np.nan)
    bench = benchmark_close[~benchmark_close.index.duplicated(keep="last")].sort_index()
    aligned = bench.reindex(bench.index.union(close.index)).ffill().reindex(close.index)
    ours = close / close.shift(lookback)
    theirs = aligned / aligned.shift(lookback)
    return (ours / theirs).to_numpy(dtype=float)


def higher_timeframe_trend(
    base_index: pd.DatetimeIndex,
    base_interval: str,
    other_trend: pd.Series,
    other_interval: str,
) -> np.ndarray:
    """The other timeframe's trend label as of each base bar's close.

    A bar of the other timeframe counts only once it has closed at or before the base bar's
    close (Yahoo labels bars by their open time, so close = label + interval).
    """
    if other_trend is None or other_trend.empty:
        return np.full(len(base_index), "", dtype=object)
    order = np.argsort(other_trend.index.asi8, kind="stable")
    other_known_at = (other_trend.index + INTERVAL_DELTA[other_interval]).asi8[order]
    labels = other_trend.to_numpy(dtype=object)[order]
    base_known_at = (base_index + INTERVAL_DELTA[base_interval]).asi8
    # the last other-timeframe bar whose close is at or before the base bar's close
    position = np.searchsorted(other_known_at, base_known_at, side="right") - 1
    return np.where(position >= 0, labels[np.maximum(position, 0)], "").astype(object)


def mtf_alignment(base_trend: np.ndarray, *other_trends: np.ndarray) -> np.ndarray:
    """Sum over the other timeframes of +1 (same direction), 0 (either sideways), −1 (opposed)."""
    base = trend_sign(base_trend).astype(np.int64)
    total = np.zeros(len(base), dtype=np.int64)
    for labels in other_trends:
        total += base * trend_sign(labels).astype(np.int64)
    return total


def setup_vectors(
    columns: Mapping[str, Any], *, llm_confidence: np.ndarray | None = None
) -> np.ndarray:
    """The (n, 16) float32 matrix of L2-normalized setup vectors (STRATEGY.md order).

    ``columns`` maps signal-frame column names to arrays (a signal frame or a dict of its
    columns).  Fractions, not percents, so that no component dominates the cosine similarity.
    NaNs (warm-up bars) become 0 before normalizing.
    """

    def col(name: str) -> np.ndarray:
        return np.asarray(columns[name], dtype=float)

    close, high, low = col("close"), col("high"), col("low")
    n = len(close)
    prev_close = np.r_[np.nan, close[:-1]]
    prev_range = np.r_[np.nan, (high - low)[:-1]]
    pocket_low, pocket_high = col("golden_pocket_low"), col("golden_pocket_high")
    pocket_width = pocket_high - pocket_low
    trend = np.asarray(columns["trend"], dtype=object)
    bucket = np.asarray(columns["time_bucket"], dtype=object)
    with np.errstate(divide="ignore", invalid="ignore"):
        pocket_position = np.where(
            pocket_width > 0, np.clip((close - pocket_low) / pocket_width, 0.0, 1.0), 0.5
        )
        matrix = np.column_stack([
            col("ema_slope"),
            col("rsi14") / 100.0,
            col("atr14") / close,
            (close > col("ema20")).astype(float),
            prev_range / prev_close,
            (col("open") - prev_close) / prev_close,
            pocket_position,
            ((close >= pocket_low) & (close <= pocket_high)).astype(float),
            np.nan_to_num(col("r_multiple"), nan=0.0) / 5.0,
            np.isin(trend, ("up", "strong_up")).astype(float),
            np.isin(trend, ("down", "strong_down")).astype(float),
            (trend == "sideways").astype(float),
            np.isin(bucket, ("open", "close")).astype(float),
            np.isin(bucket, ("mid", "close")).astype(float),
            np.zeros(n) if llm_confidence is None else np.asarray(llm_confidence, dtype=float),
            np.ones(n),
        ])
    matrix = np.nan_to_num(matrix, nan=0.0, posinf=0.0, neginf=0.0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def base_confidence(
    trend: np.ndarray,
    r_values: np.ndarray,
    alignment: np.ndarray,
    rs_sector: np.ndarray,
    *,
    params: StrategyParams,
) -> np.ndarray:
    """Confidence before priors and the LLM: base by trend + min(0.4, 0.2·R) + 0.05·MTF
    + 0.05 when relative strength vs the sector > 1; clipped to [0, 1]."""
    base = _map_labels(trend, dict(params.conf_base))
    r_term = np.minimum(params.conf_r_cap, params.conf_r_weight * np.nan_to_num(r_values, nan=0.0))
    with np.errstate(invalid="ignore"):
        rs_term = np.where(rs_sector > 1.0, params.conf_rs_bonus, 0.0)
    total = base + r_term + params.conf_mtf_weight * alignment + rs_term
    return np.clip(total, 0.0, 1.0)


def _map_labels(labels: np.ndarray, mapping: dict[str, float]) -> np.ndarray:
    return pd.Series(labels, dtype=object).map(mapping).fillna(0.15).to_numpy(dtype=float)
