"""Look-ahead check: recompute a run on data cut at several points and compare.

Everything decided before a cut (every signal's plan, vector and base confidence, every prior,
every trade whose outcome was known at the cut: fill, exit, R, size, P&L, and the equity
curve) must be identical whether the run saw the data up to the cut or all of it. The model is
freqtrade's look-ahead analysis; here it is cheap because a run is O(N), so a user can run it
on any configuration and it is reported (and stored) with the run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.backtest.config import BacktestConfig
from swing_core.backtest.core import CoreResult, core_from_passes
from swing_core.backtest.priors import PRIOR_COLUMNS, PriorFn
from swing_core.backtest.walk import prepare_symbol
from swing_core.errors import BacktestError
from swing_core.frame import VECTOR_COLUMNS, min_bars_required
from swing_core.patterns import PatternIndex

__all__ = ["LookaheadReport", "cut_fractions", "lookahead_check"]


@dataclass(frozen=True)
class LookaheadReport:
    """Result of :func:`lookahead_check`: ``ok`` when every signal, prior, trade and equity
    value before each cut is identical to the full run's."""

    ok: bool
    cuts: tuple[str, ...]
    compared: dict[str, int]
    mismatches: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "cuts": list(self.cuts), "compared": dict(self.compared),
                "mismatches": list(self.mismatches)}


def cut_fractions(lookahead: bool | Sequence[float]) -> tuple[float, ...]:
    """Cut points of the check: True → (0.5, 0.7, 0.9); a sequence of fractions as given."""
    if lookahead is True:
        return (0.5, 0.7, 0.9)
    if not lookahead:
        return ()
    cuts = tuple(float(c) for c in lookahead)
    if not all(0 < c < 1 for c in cuts):
        raise BacktestError("Look-ahead cut points are fractions of the range, between 0 and 1.")
    return cuts


def _frames_differ(name: str, a: pd.DataFrame, b: pd.DataFrame, cols: Sequence[str]
                   ) -> list[str]:
    """Column-by-column comparison (floats to 1e-9 relative, NaN == NaN)."""
    out = []
    if len(a) != len(b):
        return [f"{name}: {len(a)} rows with the data cut vs {len(b)} with all data"]
    for col in cols:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind in "fc" or y.dtype.kind in "fc":
            same = np.isclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-12,
                              equal_nan=True)
        else:
            same = (pd.Series(x).astype(str).to_numpy() == pd.Series(y).astype(str).to_numpy())
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            out.append(f"{name}.{col}: {int((~same).sum())} differ, first at row {i} "
                       f"({x[i]!r} with the data cut vs {y[i]!r} with all data)")
    return out


def lookahead_check(bars: Mapping[str, pd.DataFrame], *, config: BacktestConfig,
                    cuts: Sequence[float] = (0.5, 0.7, 0.9), prior_fn: PriorFn | None = None,
                    library: PatternIndex | None = None, full: CoreResult | None = None
                    ) -> LookaheadReport:
    """Recompute the run on data cut at several points and compare everything decided before
    each cut with the full run: every signal (plan, vector, base confidence), every prior,
    every trade whose outcome was known at the cut (fill, exit, R, size, P&L) and the equity.

    ``bars``: trimmed bars per symbol (as the run used them); ``cuts``: fractions of the
    run's timeline; ``full``: the full run's :class:`CoreResult` when already computed. Runs
    in-process (no executor), through the run's own stages."""
    if full is None:
        passes = [prepare_symbol(b, symbol=s, config=config) for s, b in bars.items()]
        full = core_from_passes(passes, config, prior_fn=prior_fn, library=library)
    timeline = full.equity.index
    mismatches: list[str] = []
    compared = {"signals": 0, "priors": 0, "trades": 0, "equity": 0}
    cut_labels = []
    plan_cols = ["setup", "side", "entry", "stop", "target", "base_confidence",
                 *VECTOR_COLUMNS]
    prior_cols = [c for c in PRIOR_COLUMNS if c != "prior_scope"] + ["confidence",
                                                                     "prior_win_rate_raw"]
    trade_cols = ["fill_pos", "fill_price", "exit_pos", "exit_price", "exit_reason",
                  "realized_r", "both_touched", "qty", "pnl", "portfolio_status"]
    for fraction in cuts:
        if len(timeline) < 2:
            break
        cut = timeline[min(len(timeline) - 1, int(len(timeline) * fraction))]
        cut_labels.append(cut.isoformat())
        cut_bars = {s: b[b.index <= cut] for s, b in bars.items()}
        cut_bars = {s: b for s, b in cut_bars.items()
                    if len(b) >= min_bars_required(config.params) + 2}
        if not cut_bars:
            continue
        part = core_from_passes([prepare_symbol(b, symbol=s, config=config)
                                 for s, b in cut_bars.items()],
                                config, prior_fn=prior_fn, library=library)
        key = ["symbol", "signal_ts"]

        def _early(frame: pd.DataFrame, cut: pd.Timestamp = cut) -> pd.DataFrame:
            early = frame[frame["signal_ts"] <= cut]
            return early.sort_values(["symbol", "signal_ts"]).reset_index(drop=True)

        a_sig = _early(part.signals)
        b_sig = _early(full.signals)
        b_sig = b_sig[b_sig["symbol"].isin(list(cut_bars))].reset_index(drop=True)
        mismatches += _frames_differ(f"cut {cut}: signals", a_sig, b_sig, key + plan_cols)
        compared["signals"] += len(a_sig)
        a_taken, b_taken = a_sig[a_sig["taken"]], b_sig[b_sig["taken"]]
        mismatches += _frames_differ(f"cut {cut}: priors", a_taken, b_taken, prior_cols)
        compared["priors"] += len(a_taken)
        a_tr = _early(part.trades)
        a_tr = a_tr[a_tr["exit_reason"] != "PENDING"]
        b_tr = _early(full.trades).set_index(key).reindex(
            pd.MultiIndex.from_frame(a_tr[key])).reset_index()
        mismatches += _frames_differ(f"cut {cut}: trades", a_tr.reset_index(drop=True), b_tr,
                                     trade_cols)
        compared["trades"] += len(a_tr)
        a_eq = part.equity["Equity"]
        b_eq = full.equity["Equity"].reindex(a_eq.index)
        mismatches += _frames_differ(f"cut {cut}: equity", a_eq.to_frame(), b_eq.to_frame(),
                                     ["Equity"])
        compared["equity"] += len(a_eq)
    return LookaheadReport(ok=not mismatches, cuts=tuple(cut_labels), compared=compared,
                           mismatches=tuple(mismatches[:50]))
