"""Trend labels and entry plans as vectorized columns (rules of ``shared/STRATEGY.md``).

Every function works on whole arrays: row t uses only values of rows <= t that the caller
computed causally (indicators, swing levels, the previous bar's high and low).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from swing_core.config import StrategyParams

TREND_LABELS: tuple[str, ...] = ("strong_up", "up", "sideways", "down", "strong_down")
SETUPS: tuple[str, ...] = ("gp_pullback", "momentum", "mean_reversion", "none")
SIDES: tuple[str, ...] = ("long", "short", "none")

UP_TRENDS = ("up", "strong_up")
DOWN_TRENDS = ("down", "strong_down")

_TREND_NAMES = np.array(TREND_LABELS, dtype=object)
_TREND_INDEX = pd.Index(TREND_LABELS)
#: The direction of each of TREND_LABELS, then of an unknown or missing label (code -1).
_TREND_SIGN = np.array([1, 1, 0, -1, -1, 0], dtype=np.int8)


def trend_codes(trend: np.ndarray) -> np.ndarray:
    """Positions in :data:`TREND_LABELS` (int8; -1 for a missing or unknown label) of trend
    labels; integer input is taken to be codes already. The engine compares codes, not strings:
    one hash lookup per array instead of a string comparison per test."""
    trend = np.asarray(trend)
    if trend.dtype.kind in "iu":
        return trend.astype(np.int8, copy=False)
    return _TREND_INDEX.get_indexer(trend.astype(object, copy=False)).astype(np.int8)


def trend_names(codes: np.ndarray) -> np.ndarray:
    """The labels (object array) of trend codes."""
    return _TREND_NAMES[np.asarray(codes, dtype=np.intp)]


def trend_labels(
    close: np.ndarray,
    ema20: np.ndarray,
    slope: np.ndarray,
    rsi: np.ndarray,
    *,
    params: StrategyParams,
) -> np.ndarray:
    """Label each bar ``strong_up`` / ``up`` / ``sideways`` / ``down`` / ``strong_down``.

    up: slope > slope_up, close > EMA20, RSI >= rsi_trend_up (strong when slope > slope_strong);
    down mirrors it.  NaN inputs (warm-up bars) compare False and give ``sideways``.
    """
    return trend_names(trend_label_codes(close, ema20, slope, rsi, params=params))


def trend_label_codes(close: np.ndarray, ema20: np.ndarray, slope: np.ndarray, rsi: np.ndarray,
                      *, params: StrategyParams) -> np.ndarray:
    """:func:`trend_labels` as codes (positions in :data:`TREND_LABELS`)."""
    with np.errstate(invalid="ignore"):
        up = (slope > params.slope_up) & (close > ema20) & (rsi >= params.rsi_trend_up)
        down = (slope < -params.slope_up) & (close < ema20) & (rsi <= params.rsi_trend_down)
        codes = np.full(len(close), 2, dtype=np.int8)  # sideways
        codes[up] = 1
        codes[up & (slope > params.slope_strong)] = 0
        codes[down] = 3
        codes[down & (slope < -params.slope_strong)] = 4
    return codes


def trend_sign(labels: np.ndarray) -> np.ndarray:
    """+1 for up-ish labels, −1 for down-ish, 0 for sideways or missing (labels or codes)."""
    return _TREND_SIGN[trend_codes(labels)]


#: Setup and side of each rule of :func:`entry_plans` in order, then of "no rule applies".
_RULE_SETUP = np.array(["gp_pullback", "gp_pullback", "momentum", "momentum", "mean_reversion",
                        "mean_reversion", "none"], dtype=object)
_RULE_SIDE = np.array(["long", "short", "long", "short", "long", "short", "none"], dtype=object)


@dataclass(frozen=True)
class EntryPlans:
    """One plan per bar; ``setup == "none"`` rows have NaN prices and R."""

    setup: np.ndarray
    side: np.ndarray
    entry: np.ndarray
    stop: np.ndarray
    target: np.ndarray
    r_multiple: np.ndarray


def entry_plans(
    *,
    trend: np.ndarray,
    close: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    prev_high: np.ndarray,
    prev_low: np.ndarray,
    atr: np.ndarray,
    rsi: np.ndarray,
    swing_up: np.ndarray,
    pocket_low: np.ndarray,
    pocket_high: np.ndarray,
    extension: np.ndarray,
    params: StrategyParams,
) -> EntryPlans:
    """Build the entry plan of every bar; the first rule that applies wins.

    1. golden-pocket pullback, 2. momentum continuation, 3. RSI mean reversion, 4. none.
    ``extension`` is the 1.272 extension of the current swing (above the high for an up swing,
    below the low for a down swing).  ``prev_high``/``prev_low`` are the previous bar's.
    """
    codes = trend_codes(trend)  # labels or codes
    sign = _TREND_SIGN[codes]
    trend_up, trend_down, sideways = sign > 0, sign < 0, codes == 2
    with np.errstate(invalid="ignore"):
        in_pocket = (close >= pocket_low) & (close <= pocket_high)
        # no range, no plan: with ATR 0 (constant prices) entry, stop and target coincide
        valid = np.isfinite(atr) & (atr > 0) & np.isfinite(close)
        gp_long = valid & trend_up & swing_up & in_pocket
        gp_short = valid & trend_down & ~swing_up & in_pocket
        mom_long = valid & trend_up & np.isfinite(prev_high)
        mom_short = valid & trend_down & np.isfinite(prev_low)
        mr_long = valid & sideways & (rsi < params.mr_rsi_long)
        mr_short = valid & sideways & (rsi > params.mr_rsi_short)

    mom_long_entry = np.fmax(prev_high, close)
    mom_short_entry = np.fmin(prev_low, close)
    conditions = [gp_long, gp_short, mom_long, mom_short, mr_long, mr_short]
    entry = np.select(conditions, [close, close, mom_long_entry, mom_short_entry, close, close],
                      default=np.nan)
    stop = np.select(
        conditions,
        [
            np.minimum(low, pocket_low) - params.gp_stop_atr * atr,
            np.maximum(high, pocket_high) + params.gp_stop_atr * atr,
            mom_long_entry - params.momentum_stop_atr * atr,
            mom_short_entry + params.momentum_stop_atr * atr,
            low - params.mr_stop_atr * atr,
            high + params.mr_stop_atr * atr,
        ],
        default=np.nan,
    )
    target = np.select(
        conditions,
        [
            np.fmax(extension, prev_high),
            np.fmin(extension, prev_low),
            np.fmax(extension, mom_long_entry + params.momentum_target_atr * atr),
            np.fmin(extension, mom_short_entry - params.momentum_target_atr * atr),
            close + params.mr_target_atr * atr,
            close - params.mr_target_atr * atr,
        ],
        default=np.nan,
    )
    rule = np.select(conditions, np.arange(len(conditions)), default=len(conditions))
    side = _RULE_SIDE[rule]
    return EntryPlans(
        setup=_RULE_SETUP[rule],
        side=side,
        entry=entry,
        stop=stop,
        target=target,
        r_multiple=r_multiple(side, entry, stop, target),
    )


def r_multiple(
    side: np.ndarray, entry: np.ndarray, stop: np.ndarray, target: np.ndarray
) -> np.ndarray:
    """reward / risk, floored at 0 (0 when the risk is not positive); NaN where there is no plan."""
    direction = np.where(side == "long", 1.0, np.where(side == "short", -1.0, np.nan))
    risk = (entry - stop) * direction
    reward = (target - entry) * direction
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(risk > 0, reward / risk, 0.0)
    ratio = np.maximum(ratio, 0.0)
    return np.where(np.isnan(direction), np.nan, ratio)
