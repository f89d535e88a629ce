"""Context features and setup vectors, vectorized and causal (row t uses bars <= t).

- time-of-day bucket in New York time,
- volatility regime from Bollinger width against its own trailing distribution,
- relative strength against benchmarks and multi-timeframe alignment, both using only bars of
  the other series that had closed by the bar's close (one rule: :func:`last_closed_position`),
- the 16-value, L2-normalized float32 setup vector of ``shared/STRATEGY.md``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from swing_core.config import EXCHANGE_TZ, INTERVAL_DELTA, StrategyParams
from swing_core.strategy import TREND_LABELS, trend_codes, trend_sign

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


_BUCKET_INDEX = pd.Index(("open", "mid", "close"))
_BUCKET_NAMES = np.array(("open", "mid", "close"), dtype=object)
_REGIME_NAMES = np.array(("M", "L", "H"), dtype=object)


def time_of_day_bucket(index: pd.DatetimeIndex, interval: str) -> np.ndarray:
    """``open`` before 11:00, ``close`` from 15:00, ``mid`` between (New York time of the bar's
    open); daily bars are ``mid``."""
    return bucket_names(time_bucket_codes(index, interval))


def bucket_names(codes: np.ndarray) -> np.ndarray:
    """The labels (object array) of time-bucket codes."""
    return _BUCKET_NAMES[codes]


def time_bucket_codes(index: pd.DatetimeIndex, interval: str) -> np.ndarray:
    """:func:`time_of_day_bucket` as codes: 0 open, 1 mid, 2 close."""
    if interval == "1d" or len(index) == 0:
        return np.ones(len(index), dtype=np.int8)
    # minutes since New York midnight from the local wall-clock nanoseconds (one conversion,
    # no per-field accessors)
    local_ns = index.tz_convert(EXCHANGE_TZ).tz_localize(None).as_unit("ns").asi8
    minutes = (local_ns // 60_000_000_000) % 1440
    return np.select([minutes < 11 * 60, minutes >= 15 * 60], [0, 2], default=1).astype(np.int8)


def volatility_regime(bb_width: pd.Series, *, params: StrategyParams) -> np.ndarray:
    """``L`` / ``M`` / ``H``: Bollinger width now against the last ``vol_regime_window`` widths.

    ``L`` at or below the 33rd percentile, ``H`` at or above the 66th (linear interpolation,
    numpy's default), ``M`` between or while the width is undefined (warm-up).
    """
    width = bb_width.to_numpy(dtype=float)
    low_cut, high_cut = rolling_quantiles(
        width, params.vol_regime_window,
        (params.vol_regime_low_pct / 100.0, params.vol_regime_high_pct / 100.0))
    with np.errstate(invalid="ignore"):
        code = np.select([np.isnan(width), width <= low_cut, width >= high_cut], [0, 1, 2],
                         default=0)
    return _REGIME_NAMES[code]


def rolling_quantiles(values: np.ndarray, window: int, quantiles: tuple[float, ...]
                      ) -> tuple[np.ndarray, ...]:
    """``pd.Series(values).rolling(window, min_periods=1).quantile(q)`` for each ``q`` (linear
    interpolation, NaNs skipped), with the same values: rows whose window is full and free of
    NaN are computed from one sort of the (rows, window) window matrix (pandas keeps a skiplist
    per quantile), the others (warm-up, a NaN in the window) by pandas on the prefix that holds
    them (rolling windows are causal, so the prefix gives the same rows)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    out = [np.full(n, np.nan) for _ in quantiles]
    full = np.zeros(n, dtype=bool)
    if window >= 1 and n >= window:
        nan_seen = np.concatenate([[0], np.cumsum(np.isnan(values))])
        ends = np.arange(window - 1, n)
        full[ends] = (nan_seen[ends + 1] - nan_seen[ends + 1 - window]) == 0
        rows = np.flatnonzero(full)
        windows = sliding_window_view(values, window)
        if rows.size and rows[-1] - rows[0] + 1 == rows.size:  # the usual case: one run of rows
            windows = windows[rows[0] - window + 1: rows[-1] - window + 2]
        else:
            windows = windows[rows - window + 1]
        ordered = np.sort(windows, axis=1)
        for result, q in zip(out, quantiles, strict=True):
            position = q * (window - 1)
            lower = int(position)
            low = ordered[:, lower]
            if position == lower:
                result[rows] = low
            else:
                result[rows] = low + (ordered[:, lower + 1] - low) * (position - lower)
    rest = np.flatnonzero(~full)
    if rest.size:
        prefix = pd.Series(values[: rest[-1] + 1]).rolling(window, min_periods=1)
        for result, q in zip(out, quantiles, strict=True):
            result[rest] = prefix.quantile(q).to_numpy()[rest]
    return tuple(out)


def bar_interval(values: pd.DataFrame | pd.Series | None, *, default: str) -> str:
    """The bar interval of ``values`` (bars or a close series, labelled by bar open time).

    ``attrs["interval"]`` when the market layer set it; else read from the labels: the
    longest known interval not longer than the smallest gap between two labels (bars never
    overlap, so a bar lasts at most that gap); ``default`` when that cannot be told (fewer than
    two bars)."""
    if values is None:
        return default
    stated = values.attrs.get("interval")
    if stated in INTERVAL_DELTA:
        return str(stated)
    labels = pd.DatetimeIndex(values.index).unique().sort_values()
    if len(labels) < 2:
        return default
    gap = pd.Timedelta(np.diff(labels.as_unit("ns").asi8).min())
    fitting = [name for name, delta in INTERVAL_DELTA.items() if delta <= gap]
    return max(fitting, key=INTERVAL_DELTA.__getitem__) if fitting else default


def last_closed_position(
    base_index: pd.DatetimeIndex,
    base_interval: str | None,
    other_index: pd.DatetimeIndex,
    other_interval: str | None,
) -> np.ndarray:
    """For each base bar, the position in ``other_index`` (sorted, ascending) of the last bar
    of the other series that had closed at or before the base bar's close; -1 when none.

    The one known-at rule of the engine for series of other timeframes (multi-timeframe trend,
    relative-strength benchmarks): Yahoo labels bars by their open time, so a bar labelled
    ``t`` is known at ``t + INTERVAL_DELTA[interval]``. An interval of None counts as zero
    (labels compared as they are: for two series of the same interval that is the same rule).
    """
    base_delta = INTERVAL_DELTA[base_interval] if base_interval else pd.Timedelta(0)
    other_delta = INTERVAL_DELTA[other_interval] if other_interval else pd.Timedelta(0)
    other_known_at = (other_index + other_delta).as_unit("ns").asi8
    base_known_at = (base_index + base_delta).as_unit("ns").asi8
    return np.searchsorted(other_known_at, base_known_at, side="right") - 1


def relative_strength(
    close: pd.Series,
    benchmark_close: pd.Series | None,
    *,
    lookback: int = 20,
    interval: str | None = None,
    benchmark_interval: str | None = None,
) -> np.ndarray:
    """(close / close ``lookback`` bars ago) / the same ratio of the benchmark.

    Bar t sees the last benchmark close known by t's close (:func:`last_closed_position`):
    a benchmark bar counts from the first of our bars whose close is at or after its own
    close, so a coarser benchmark never leaks (an hourly bar on day D sees day D−1's daily
    close, not day D's). ``interval`` / ``benchmark_interval``: the bar intervals of ``close``
    and of the benchmark (one given: the other is taken to be the same; neither: labels are
    compared as they are, right for two series of the same interval). Missing benchmark closes
    carry the previous one forward; NaN when no benchmark is given.
    """
    if benchmark_close is None or benchmark_close.empty:
        return np.full(len(close), np.nan)
    bench = benchmark_close[~benchmark_close.index.duplicated(keep="last")].dropna().sort_index()
    interval = interval or benchmark_interval
    benchmark_interval = benchmark_interval or interval
    position = last_closed_position(pd.DatetimeIndex(close.index), interval,
                                    pd.DatetimeIndex(bench.index), benchmark_interval)
    values = bench.to_numpy(dtype=float)
    aligned = pd.Series(np.where(position >= 0, values[np.maximum(position, 0)], np.nan)
                        if len(values) else np.full(len(close), np.nan), index=close.index)
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
    close (:func:`last_closed_position`; Yahoo labels bars by their open time).
    """
    if other_trend is None or other_trend.empty:
        return np.full(len(base_index), "", dtype=object)
    order = np.argsort(other_trend.index.as_unit("ns").asi8, kind="stable")
    labels = other_trend.to_numpy(dtype=object)[order]
    position = last_closed_position(base_index, base_interval, other_trend.index[order],
                                    other_interval)
    return np.where(position >= 0, labels[np.maximum(position, 0)], "").astype(object)


def mtf_alignment(base_trend: np.ndarray, *other_trends: np.ndarray) -> np.ndarray:
    """Sum over the other timeframes of +1 (same direction), 0 (either sideways), −1 (opposed)."""
    base = trend_sign(base_trend).astype(np.int64)
    total = np.zeros(len(base), dtype=np.int64)
    for labels in other_trends:
        total += base * trend_sign(labels).astype(np.int64)
    return total


def setup_vectors(
    columns: Mapping[str, Any], *, llm_confidence: np.ndarray | None = None,
    trend: np.ndarray | None = None, bucket: np.ndarray | None = None,
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
    codes = trend_codes(columns["trend"] if trend is None else trend)  # ``trend``: its codes
    trend = trend_sign(codes)
    if bucket is None:  # ``bucket``: the codes of :func:`time_bucket_codes`
        bucket = _BUCKET_INDEX.get_indexer(np.asarray(columns["time_bucket"], dtype=object))
    with np.errstate(divide="ignore", invalid="ignore"):
        pocket_position = np.where(
            pocket_width > 0, np.clip((close - pocket_low) / pocket_width, 0.0, 1.0), 0.5
        )
        parts = [
            col("ema_slope"),
            col("rsi14") / 100.0,
            col("atr14") / close,
            (close > col("ema20")).astype(float),
            prev_range / prev_close,
            (col("open") - prev_close) / prev_close,
            pocket_position,
            ((close >= pocket_low) & (close <= pocket_high)).astype(float),
            np.nan_to_num(col("r_multiple"), nan=0.0) / 5.0,
            (trend > 0).astype(float),
            (trend < 0).astype(float),
            (codes == TREND_LABELS.index("sideways")).astype(float),
            ((bucket == 0) | (bucket == 2)).astype(float),  # open or close
            ((bucket == 1) | (bucket == 2)).astype(float),  # mid or close
            np.zeros(n) if llm_confidence is None else np.asarray(llm_confidence, dtype=float),
            np.ones(n),
        ]
    matrix = np.empty((n, len(parts)))  # (n, 16), row-major as column_stack made it
    for position, part in enumerate(parts):
        matrix[:, position] = part
    np.nan_to_num(matrix, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
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
    """The value of each trend label (or code) in ``mapping``; 0.15 for a label not in it."""
    values = np.array([mapping.get(name, 0.15) for name in TREND_LABELS] + [0.15])
    return values[trend_codes(labels)]
