"""Stage 1 of a walk-forward backtest, one symbol at a time: the signal frame (row t uses
bars <= t), every bar with a complete plan from ``config.start`` on as a signal, its fill and
exit (:func:`swing_core.exits.simulate_exits`, bars after t) and, optionally, only signals
while no trade of the symbol is open (an unfilled stop order occupies the symbol until its
entry window ends). Picklable results, built in workers (:func:`symbol_task`).

The signal frame is built with the symbol's context (benchmarks, other timeframes: the same as
``analyze`` reads, :mod:`swing_core.backtest.context`), so a signal at bar t is the live signal
at bar t, relative strength and multi-timeframe terms of its confidence included.

Fills (``config.fill``, STRATEGY.md "Exits", :func:`swing_core.exits.simulate_exits`): a market
entry fills at the signal bar's close (``"close"``, the default, what the statistics use unless
told otherwise) or at the next bar's open (``"next_open"``); a stop-order entry fills when a
later bar trades through it.

Time alignment: ``signal_ts`` is the signal bar's open label; the plan is made at its close
(``asof = signal_ts + INTERVAL_DELTA``); ``exit_ts`` is the close time of the exit bar;
``entry_time`` is the moment of entry (:func:`entry_times`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig, trim_bars, validate_config
from swing_core.backtest.priors import PriorFn, attach_priors, no_priors
from swing_core.config import BARS_PER_DAY, INTERVAL_DELTA
from swing_core.exits import simulate_exits
from swing_core.frame import (
    VECTOR_COLUMNS,
    FrameContext,
    build_signal_frame,
    min_bars_required,
)
from swing_core.patterns import PatternIndex

__all__ = [
    "CONTEXT_COLUMNS",
    "SymbolPass",
    "WalkForwardResult",
    "entry_times",
    "prepare_symbol",
    "symbol_task",
    "walk_forward",
]

_PLAN_COLUMNS = ("setup", "side", "trend", "vol_regime", "time_bucket", "entry", "stop",
                 "target", "r_multiple", "atr14", "confidence")
#: The context columns of a signal (relative strength, multi-timeframe labels and alignment).
CONTEXT_COLUMNS = ("rs_sector", "rs_spy", "mtf_15m", "mtf_1h", "mtf_alignment")


def entry_times(signal_ts: pd.DatetimeIndex, fill_ts: pd.DatetimeIndex, delta: pd.Timedelta
                ) -> pd.DatetimeIndex:
    """The moment of each entry: a market entry filled at the signal bar's close at that close
    (``fill_ts == signal_ts``); an entry filled on a later bar (a stop order during its fill
    bar, a next-open fill at its open) at that bar's open label: the conservative end for the
    portfolio's capacity. NaT when not filled."""
    fill_ts = pd.DatetimeIndex(fill_ts)
    return fill_ts.where(fill_ts != pd.DatetimeIndex(signal_ts), fill_ts + delta)


@dataclass(frozen=True)
class SymbolPass:
    """One symbol's walk-forward before priors and portfolio (picklable, built in a worker).

    ``signals``: one row per plan from ``start`` on (see :func:`prepare_symbol`); ``close``:
    closes of the bars used (warm-up included; ``fill_pos`` / ``exit_pos`` index them);
    ``frame``: the signal frame when kept (``keep_frame=True``), else None.
    """

    symbol: str
    signals: pd.DataFrame
    close: pd.Series
    buy_hold_return_pct: float
    n_bars: int
    n_invalid_plans: int
    frame: pd.DataFrame | None = None


def _one_position_chain(signal_pos: np.ndarray, busy_until: np.ndarray) -> np.ndarray:
    """Greedy: take a signal, skip every later one before the previous trade frees the symbol.

    One Python step per *taken* signal (``searchsorted`` jumps over the skipped ones)."""
    taken = np.zeros(signal_pos.size, bool)
    i = 0
    while i < signal_pos.size:
        taken[i] = True
        i = max(int(np.searchsorted(signal_pos, busy_until[i], side="left")), i + 1)
    return taken


def prepare_symbol(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig,
                   frame: pd.DataFrame | None = None, keep_frame: bool = False,
                   context: FrameContext | None = None) -> SymbolPass:
    """Signal frame, plans and exits of one symbol (stage 1; no priors, no sizing).

    ``bars`` must already be trimmed (:func:`trim_bars`); ``context``: the symbol's benchmark
    and other-timeframe bars (:func:`swing_core.backtest.context.symbol_context`; None: none);
    ``frame`` may be passed to reuse a signal frame built from exactly these bars and context.
    Signal rows: every bar labelled >= start whose plan is complete (setup, side, finite
    entry/stop/target on the right sides).
    """
    params, interval = config.params, config.interval
    if frame is None:
        frame = build_signal_frame(bars, params=params, interval=interval, context=context)
    index = frame.index
    range_start = int(np.searchsorted(index, config.start)) if config.start is not None else 0
    first = max(range_start, min_bars_required(params) - 1)  # indicators behind a plan defined
    side_sign = np.select([frame["side"].to_numpy() == "long",
                           frame["side"].to_numpy() == "short"], [1, -1], 0).astype(np.int8)
    entry, stop, target = (frame[c].to_numpy(float) for c in ("entry", "stop", "target"))
    with np.errstate(invalid="ignore"):
        has_plan = (frame["setup"].to_numpy() != "none") & (side_sign != 0)
        sane = (np.isfinite(entry) & np.isfinite(stop) & np.isfinite(target)
                & ((entry - stop) * side_sign > 0) & ((target - entry) * side_sign > 0))
    in_range = np.arange(len(frame)) >= first
    n_invalid = int((has_plan & ~sane & in_range).sum())
    pos = np.flatnonzero(has_plan & sane & in_range)
    exits = simulate_exits(bars, pos, side_sign[pos], entry[pos], stop[pos], target[pos],
                           interval=interval, params=params, fill=config.fill)
    window = BARS_PER_DAY[interval] * params.entry_window_days
    never = np.iinfo(np.int64).max  # still pending: the symbol stays busy
    busy = np.where(exits.exit_pos >= 0, exits.exit_pos,
                    np.where(exits.exit_reason == "NOT_FILLED", pos + window, never))
    taken = (_one_position_chain(pos, busy) if config.one_position_per_symbol
             else np.ones(pos.size, bool))
    delta = INTERVAL_DELTA[interval]
    signal_ts = index[pos]
    rows = frame.iloc[pos]
    fill_ts = pd.DatetimeIndex(exits.fill_ts).tz_localize("UTC")
    signals = pd.DataFrame({
        "symbol": symbol,
        "signal_ts": signal_ts,
        "asof": signal_ts + delta,
        "signal_pos": pos,
        **{col: rows[col].to_numpy() for col in _PLAN_COLUMNS},
        "side_sign": side_sign[pos],
        "filled": exits.filled,
        "stop_entry": exits.stop_entry,
        "fill_pos": exits.fill_pos,
        "fill_ts": fill_ts,
        "entry_time": entry_times(signal_ts, fill_ts, delta),
        "fill_price": exits.fill_price,
        "exit_pos": exits.exit_pos,
        "exit_ts": pd.DatetimeIndex(exits.exit_ts).tz_localize("UTC"),
        "exit_price": exits.exit_price,
        "exit_reason": exits.exit_reason.astype(object),
        "realized_r": exits.realized_r,
        "hold_bars": exits.hold_bars,
        "both_touched": exits.both_touched,
        "taken": taken,
        **{col: rows[col].to_numpy() for col in CONTEXT_COLUMNS},
        **{col: rows[col].to_numpy(np.float32) for col in VECTOR_COLUMNS},
    })
    signals = signals.rename(columns={"atr14": "atr", "confidence": "base_confidence"})
    close = frame["close"].astype(float)
    in_close = close.iloc[range_start:]
    bh = (float(in_close.iloc[-1] / in_close.iloc[0] - 1.0) * 100 if len(in_close) else math.nan)
    return SymbolPass(symbol=symbol, signals=signals, close=close, buy_hold_return_pct=bh,
                      n_bars=len(in_close), n_invalid_plans=n_invalid,
                      frame=frame if keep_frame else None)


def symbol_task(payload: tuple[str, pd.DataFrame, BacktestConfig, FrameContext | None]
                ) -> SymbolPass:
    """:func:`prepare_symbol` of ``(symbol, bars, config, context)``: a worker's task (top
    level: picklable for process pools and Dask)."""
    symbol, bars, config, context = payload
    return prepare_symbol(bars, symbol=symbol, config=config, context=context)


@dataclass(frozen=True)
class WalkForwardResult:
    """One symbol's walk-forward: ``signals`` (every plan, with ``taken`` and, for taken ones,
    priors) and ``trades`` (the taken signals), plus the pass's bookkeeping."""

    signals: pd.DataFrame
    trades: pd.DataFrame
    symbol_pass: SymbolPass


def walk_forward(bars: pd.DataFrame, *, symbol: str, config: BacktestConfig | None = None,
                 prior_fn: PriorFn | None = None, library: PatternIndex | None = None,
                 frame: pd.DataFrame | None = None, context: FrameContext | None = None
                 ) -> WalkForwardResult:
    """Walk-forward of one symbol over its whole signal frame in one pass (no portfolio).

    Row t of the signal frame uses bars <= t (and context bars closed by t's close); its
    plan's exit uses bars after t; its prior uses outcomes known by t's close only.
    ``library``: stored outcomes (a PatternIndex) searched with the run's own; ``prior_fn``:
    see :mod:`swing_core.backtest.priors`. ``context``: the symbol's benchmark and
    other-timeframe bars (None: none); ``frame``: a signal frame of the trimmed bars (and
    context) to reuse."""
    config = config or BacktestConfig()
    validate_config(config)
    bars = trim_bars(bars, symbol=symbol, config=config)
    sp = prepare_symbol(bars, symbol=symbol, config=config, frame=frame, context=context)
    signals = (attach_priors(sp.signals, params=config.params, prior_fn=prior_fn, library=library)
               if config.priors else no_priors(sp.signals))
    return WalkForwardResult(signals=signals, trades=signals[signals["taken"]].copy(),
                             symbol_pass=sp)
