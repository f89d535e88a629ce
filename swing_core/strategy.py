"""Trend labels and entry plans as vectorized columns (rules of ``shared/STRATEGY.md``).

Every function works on whole arrays: row t uses only values of rows <= t that the caller
computed causally (indicators, swing levels, the previous bar's high and low).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from swing_core.config import StrategyParams

TREND_LABELS: tuple[str, ...] = ("strong_up", "up", "sideways", "down", "strong_down")
SETUPS: tuple[str, ...] = ("gp_pullback", "momentum", "mean_reversion", "none")
SIDES: tuple[str, ...] = ("long", "short", "none")

UP_TRENDS = ("up", "strong_up")
DOWN_TRENDS = ("down", "strong_down")


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
    with np.errstate(invalid="ignore"):
        up = (slope > params.slope_up) & (close > ema20) & (rsi >= params.rsi_trend_up)
        down = (slope < -params.slope_up) & (close < ema20) & (rsi <= params.rsi_trend_down)
        strong_up = up & (slope > params.slope_strong)
        strong_down = down & (slope < -params.slope_strong)
    return np.select(
        [strong_up, up, strong_down, down],
        ["strong_up", "up", "strong_down", "down"],
        default="sideways",
    ).astype(object)


def trend_sign(labels: np.ndarray) -> np.ndarray:
    """+1 for up-ish labels, −1 for down-ish, 0 for sideways or missing."""
    labels = np.asarray(labels, dtype=object)
    return np.where(
        np.isin(labels, UP_TRENDS), 1, np.where(np.isin(labels, DOWN_TRENDS), -1, 0)
    ).astype(np.int8)


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
    trend_up = np.isin(trend, UP_TRENDS)
    trend_down = np.isin(trend, DOWN_TRENDS)
    sideways = trend == "sideways"
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
    setup = np.select(
        conditions,
        ["gp_pullback", "gp_pullback", "momentum", "momentum", "mean_reversion", "mean_reversion"],
        default="none",
    ).astype(object)
    side = np.select(
        conditions, ["long", "short", "long", "short", "long", "short"], default="none"
    ).astype(object)
    return EntryPlans(
        setup=setup,
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
