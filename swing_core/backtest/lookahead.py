"""Look-ahead check: recompute a run on data cut at many points and compare.

Everything decided by a cut must be identical whether the run saw the data up to the cut or
all of it: every column of every symbol's signal frame (row by row, NaN-aware, floats to
1e-10 relative), every signal (plan, vector, base confidence, whether it was taken), every
prior and calibrated win rate, every fill made and every outcome known by the cut (with the
portfolio's size and P&L) and the equity curve. The model is freqtrade's look-ahead analysis;
here it is cheap because a run is O(N), so a user can run it on any configuration and it is
reported (and stored) with the run.

A leak of one bar shows only near a cut, and only when what leaked changes something there, so
the cuts are many and partly aimed (:func:`_cut_times`): fractions spread over the run, plus
bars where a position is open (between a trade's fill and its exit), bars with a priced signal
whose neighbours could include an outcome known one bar later, and bars where a label read
from another timeframe changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest._rundiff import _first_of_each, _mismatches, _Run
from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.core import CoreResult, core_from_passes
from swing_core.backtest.priors import PriorFn
from swing_core.backtest.walk import prepare_symbol
from swing_core.config import INTERVAL_DELTA
from swing_core.errors import BacktestError
from swing_core.features import bar_interval
from swing_core.frame import (
    MTF_INTERVALS,
    FrameContext,
    build_signal_frame,
    min_bars_required,
)
from swing_core.patterns import PatternIndex

__all__ = ["DEFAULT_CUTS", "LookaheadReport", "cut_fractions", "lookahead_check"]

#: Cut points spread over the run (fractions of its timeline); the check adds aimed cuts.
DEFAULT_CUTS: tuple[float, ...] = tuple(round(i / 9, 4) for i in range(1, 9))

_POSITION_CUTS = 3  # bars with a position open (between a trade's fill and its exit)
_PRIOR_CUTS = 4  # priced signals whose neighbours could include an outcome known a bar later
_CONTEXT_LABELS = tuple(f"mtf_{interval}" for interval in MTF_INTERVALS)


@dataclass(frozen=True)
class LookaheadReport:
    """Result of :func:`lookahead_check`: ``ok`` when everything decided by each cut is
    identical to the full run's. ``cuts``: the cut bars (ISO open labels); ``compared``: how
    many frame rows, signals, priced signals, trades and equity values were compared over all
    cuts; ``mismatches``: the first 50 differences, each naming the column and the first
    differing bar with its value on the cut run and on the full run."""

    ok: bool
    cuts: tuple[str, ...]
    compared: dict[str, int]
    mismatches: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "cuts": list(self.cuts), "compared": dict(self.compared),
                "mismatches": list(self.mismatches)}


def cut_fractions(lookahead: bool | Sequence[float]) -> tuple[float, ...]:
    """Spread cut points of the check: True → :data:`DEFAULT_CUTS`; a sequence of fractions
    as given (the check adds its aimed cuts to either)."""
    if lookahead is True:
        return DEFAULT_CUTS
    if not lookahead:
        return ()
    cuts = tuple(float(c) for c in lookahead)
    if not all(0 < c < 1 for c in cuts):
        raise BacktestError("Look-ahead cut points are fractions of the range, between 0 and 1.")
    return cuts


# --------------------------------------------------------------------------- cut points


def _spread(values: Sequence[Any], n: int) -> list[Any]:
    """Up to ``n`` of ``values`` spread evenly, the first one included."""
    if len(values) <= n:
        return list(values)
    return [values[int(i)] for i in np.linspace(0, len(values) - 1, n).round()]


def _spread_early(values: Sequence[Any], n: int) -> list[Any]:
    """The first ``n // 2`` of ``values``, then the rest of ``n`` spread over the others."""
    head = list(values[:n // 2])
    return head + _spread(values[n // 2:], n - len(head))


def _outcome_next_bar(signals: pd.DataFrame, bar: pd.Timedelta) -> list[pd.Timestamp]:
    """Bars of priced signals whose symbol has an outcome that becomes known one bar after
    their as-of time (an outcome counted a bar early would change their prior), in time
    order."""
    out: list[pd.Timestamp] = []
    for _, rows in signals.groupby("symbol", sort=False):
        exits = np.sort(rows.loc[rows["exit_pos"].to_numpy() >= 0, "exit_ts"]
                        .to_numpy("datetime64[ns]"))
        priced = rows[rows["prior_scope"].notna().to_numpy()]
        asof = priced["asof"].to_numpy("datetime64[ns]")
        soon = (np.searchsorted(exits, asof + bar.to_timedelta64(), "right")
                > np.searchsorted(exits, asof, "right"))
        out += list(priced.loc[soon, "signal_ts"])
    return sorted(out)


def _cut_times(timeline: pd.DatetimeIndex, fractions: Sequence[float], full: CoreResult,
               bars: Mapping[str, pd.DataFrame], frames: Mapping[str, pd.DataFrame],
               interval: str) -> list[pd.Timestamp]:
    """The cut bars: ``fractions`` of the timeline, then aimed ones (see the module doc)."""
    n = len(timeline)
    cuts = [timeline[min(n - 1, int(n * f))] for f in fractions]
    trades = full.trades
    held = trades[(trades["qty"].to_numpy(float) > 0)
                  & (trades["exit_pos"].to_numpy() > trades["fill_pos"].to_numpy())]
    held = held.sort_values("fill_ts")
    middle = (held["fill_pos"].to_numpy(np.int64) + held["exit_pos"].to_numpy(np.int64)) // 2
    for i in _spread(range(len(held)), _POSITION_CUTS):
        cuts.append(bars[held["symbol"].iat[i]].index[middle[i]])
    signals = full.signals if full.signals is not None else trades
    cuts += _spread_early(_outcome_next_bar(signals, INTERVAL_DELTA[interval]), _PRIOR_CUTS)
    for frame in frames.values():
        for col in _CONTEXT_LABELS:
            if col not in frame.columns:
                continue
            labels = frame[col].to_numpy(object)
            changes = np.flatnonzero((labels[1:] != labels[:-1]) & (labels[:-1] != "")) + 1
            changes = changes[frame.index[changes] >= timeline[0]]
            if changes.size:
                cuts.append(frame.index[changes[changes.size // 2]])
    last = timeline[-1]
    return sorted({pd.Timestamp(c) for c in cuts if timeline[0] <= c < last})


def _context_until(context: FrameContext | None, known_by: pd.Timestamp, interval: str
                   ) -> FrameContext | None:
    """The context bars that had closed by ``known_by`` (a higher-timeframe or benchmark bar
    still forming then is not part of the data at that time)."""
    if context is None:
        return None

    def closed(values: Any, its_interval: str) -> Any:
        if values is None:
            return None
        return values[values.index + INTERVAL_DELTA[its_interval] <= known_by]

    return FrameContext(
        sector=closed(context.sector, bar_interval(context.sector, default=interval)),
        market=closed(context.market, bar_interval(context.market, default=interval)),
        mtf={k: closed(v, k) for k, v in context.mtf.items()})


# --------------------------------------------------------------------------- the check


def lookahead_check(bars: Mapping[str, pd.DataFrame], *, config: BacktestConfig,
                    cuts: Sequence[float] = DEFAULT_CUTS, prior_fn: PriorFn | None = None,
                    library: PatternIndex | None = None, full: CoreResult | None = None,
                    context: Mapping[str, FrameContext] | None = None) -> LookaheadReport:
    """Recompute the run on data cut at many bars and compare everything decided by each cut
    with the full run: every column of the signal frames, every signal, prior and calibrated
    win rate, every fill and exit known by the cut, the portfolio's sizes and P&L, the equity.

    ``bars``: trimmed bars per symbol (as the run used them); ``cuts``: fractions of the run's
    timeline, to which aimed cuts are added (bars with a position open, priced signals an
    outcome known a bar later could reach, changes of other-timeframe labels); ``context``:
    benchmark and other-timeframe bars per symbol, as the run used them (each cut keeps those
    closed by the cut bar's close); ``full``: the full run's :class:`CoreResult` (on the same
    bars and context) when already computed. Runs in-process (no executor), through the run's
    own stages: one signal frame per symbol and cut, compared as arrays."""
    context = context or {}
    params, interval = config.params, config.interval
    frames = {s: build_signal_frame(b, params=params, interval=interval,
                                    context=context.get(s)) for s, b in bars.items()}
    if full is None:
        full = core_from_passes([prepare_symbol(b, symbol=s, config=config, frame=frames[s])
                                 for s, b in bars.items()],
                                config, prior_fn=prior_fn, library=library)
    timeline = full.equity.index
    mismatches: list[str] = []
    compared = {"frame_rows": 0, "signals": 0, "priors": 0, "trades": 0, "equity": 0}
    if len(timeline) < 2:
        return LookaheadReport(ok=True, cuts=(), compared=compared, mismatches=())
    cut_times = _cut_times(timeline, cuts, full, bars, frames, interval)
    whole = _Run.of(frames, full)
    keys = {name: pd.MultiIndex.from_arrays([table["symbol"], table["signal_ts"]])
            for name, table in (("signals", whole.signals), ("trades", whole.trades))}
    signal_cols = list(whole.signals)
    portfolio_cols = [c for c in whole.trades if c not in whole.signals]
    done = []
    for cut in cut_times:
        cut_bars = {s: b[b.index <= cut] for s, b in bars.items()}
        cut_bars = {s: b for s, b in cut_bars.items()
                    if len(b) >= min_bars_required(params) + 2}
        if not cut_bars:
            continue
        done.append(cut.isoformat())
        part = _cut_run(cut_bars, cut, config=config, context=context, prior_fn=prior_fn,
                        library=library)
        found, counts = _mismatches(f"cut {cut.isoformat()}", part, whole, cut=cut, keys=keys,
                                    signal_cols=signal_cols, portfolio_cols=portfolio_cols)
        mismatches += found
        for name, n in counts.items():
            compared[name] += n
    return LookaheadReport(ok=not mismatches, cuts=tuple(done), compared=compared,
                           mismatches=_first_of_each(mismatches)[:50])


def _cut_run(cut_bars: Mapping[str, pd.DataFrame], cut: pd.Timestamp, *,
             config: BacktestConfig, context: Mapping[str, FrameContext],
             prior_fn: PriorFn | None, library: PatternIndex | None) -> _Run:
    """The run on the data known at the close of bar ``cut``: one signal frame per symbol
    (its context cut alike), the run's stages on them."""
    params, interval = config.params, config.interval
    known_by = cut + INTERVAL_DELTA[interval]
    frames = {s: build_signal_frame(b, params=params, interval=interval,
                                    context=_context_until(context.get(s), known_by, interval))
              for s, b in cut_bars.items()}
    core = core_from_passes([prepare_symbol(b, symbol=s, config=config, frame=frames[s])
                             for s, b in cut_bars.items()],
                            config, prior_fn=prior_fn, library=library)
    return _Run.of(frames, core)
