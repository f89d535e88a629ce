"""The signal of one bar: :class:`Signal` (with its :class:`TrendState` and :class:`EntryPlan`),
read from one row of the signal frame by :func:`signal_from_frame`.

Row *t* of the signal frame uses bars <= *t*; the signal is known at the close of its bar
(``asof`` is the bar's open time, UTC). Priors and the advisor's vote are added later, by the
analysis (:mod:`swing_core.agent.analyzer`) and :func:`swing_core.agent.advice.advise`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from swing_core.config import StrategyParams
from swing_core.features import VECTOR_COLUMNS, VECTOR_VERSION
from swing_core.numbers import finite_or_none

__all__ = [
    "EntryPlan",
    "PriorProvider",
    "Signal",
    "TrendState",
    "signal_from_frame",
]


class TrendState(BaseModel):
    model_config = ConfigDict(frozen=True)

    label: str
    ema_slope: float | None
    price_above_ema: bool
    rsi14: float | None
    price: float


class EntryPlan(BaseModel):
    """The plan of the signal bar; prices in the symbol's currency."""

    model_config = ConfigDict(frozen=True)

    setup: str
    side: str
    entry: float
    stop: float
    target: float
    r_multiple: float
    stop_order: bool = Field(description="entry beyond the close: a stop order for the next day")
    comment: str
    golden_pocket_low: float | None = None
    golden_pocket_high: float | None = None
    fib_ext_1272: float | None = None
    fib_ext_1618: float | None = None


class Signal(BaseModel):
    """Every field of SwingAgent v1.6.1's signal, plus the data source and bar completeness.

    Field names are SwingDesk's own, the same in the signal frame, here and in storage
    (``rsi14``, ``entry`` / ``stop`` / ``target``, ``golden_pocket_low``, ``rs_sector``, …);
    SwingAgent's spellings (``rsi_14``, ``take_profit``, ``fib_golden_low``, ``rs_sector_20``, …)
    exist only in the export adapter :func:`swing_core.swingagent.to_swingagent`."""

    model_config = ConfigDict(frozen=True)

    symbol: str
    interval: str
    asof: datetime = Field(description="open time (UTC) of the signal bar; known at its close")
    data_source: str
    last_bar_complete: bool
    notes: list[str] = Field(default_factory=list)
    trend: TrendState
    entry: EntryPlan | None
    confidence: float
    confidence_base: float
    reasoning: str
    fib_levels: dict[str, float] = Field(default_factory=dict)
    # pattern priors (filled when a pattern index is available)
    expected_r: float | None = None
    expected_winrate: float | None = None
    expected_winrate_raw: float | None = None
    expected_source: str | None = None
    expected_notes: str | None = None
    expected_hold_bars: float | None = None
    expected_hold_days: float | None = None
    expected_win_hold_bars: float | None = None
    expected_loss_hold_bars: float | None = None
    prior: dict[str, Any] | None = None
    # the verdict (swing_core.verdict, set by the analysis): take / skip / no edge, why, the
    # plan's round-trip costs in R and the expected R net of them
    verdict: str | None = None
    verdict_reason: str | None = None
    cost_r: float | None = None
    expected_r_net: float | None = None
    # the advisor (filled by swing_core.llm when consulted)
    llm_vote: dict[str, Any] | None = None
    llm_explanation: str | None = None
    action_plan: str | None = None
    risk_notes: str | None = None
    scenarios: list[str] | None = None
    # enrichments
    mtf_15m: str | None = None
    mtf_1h: str | None = None
    mtf_alignment: int = 0
    rs_sector: float | None = None
    rs_spy: float | None = None
    sector_symbol: str | None = None
    time_bucket: str
    atr_pct: float | None = None
    vol_regime: str
    vector: list[float] = Field(default_factory=list, repr=False)
    vector_version: str = VECTOR_VERSION

    @property
    def is_demo(self) -> bool:
        return self.data_source == "demo"

    def flat(self) -> dict[str, Any]:
        """Flat fields (what the scanner table, the advisor and the CSV export use)."""
        entry = self.entry
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "asof": self.asof,
            "data_source": self.data_source,
            "last_bar_complete": self.last_bar_complete,
            "trend_label": self.trend.label,
            "ema_slope": self.trend.ema_slope,
            "rsi14": self.trend.rsi14,
            "price": self.trend.price,
            "setup": entry.setup if entry else "none",
            "side": entry.side if entry else "none",
            "entry": entry.entry if entry else None,
            "stop": entry.stop if entry else None,
            "target": entry.target if entry else None,
            "r_multiple": entry.r_multiple if entry else None,
            "golden_pocket_low": self.fib_levels.get("golden_pocket_low"),
            "golden_pocket_high": self.fib_levels.get("golden_pocket_high"),
            "confidence": self.confidence,
            "expected_r": self.expected_r,
            "expected_r_net": self.expected_r_net,
            "cost_r": self.cost_r,
            "expected_winrate": self.expected_winrate,
            "expected_winrate_raw": self.expected_winrate_raw,
            "expected_hold_bars": self.expected_hold_bars,
            "expected_hold_days": self.expected_hold_days,
            "prior_n": (self.prior or {}).get("n"),
            "verdict": self.verdict,
            "verdict_reason": self.verdict_reason,
            "mtf_15m": self.mtf_15m,
            "mtf_1h": self.mtf_1h,
            "mtf_alignment": self.mtf_alignment,
            "rs_sector": self.rs_sector,
            "rs_spy": self.rs_spy,
            "time_bucket": self.time_bucket,
            "atr_pct": self.atr_pct,
            "vol_regime": self.vol_regime,
        }

    def to_record(self) -> dict[str, Any]:
        """The row for the ``signals`` table (``swing_core.db.record_signals``)."""
        record = self.flat()
        record["fib_json"] = json.dumps(self.fib_levels)
        record["prior_json"] = json.dumps(self.prior) if self.prior else None
        record["llm_vote_json"] = json.dumps(self.llm_vote) if self.llm_vote else None
        plan = {k: v for k, v in (("action_plan", self.action_plan), ("risk_notes",
                self.risk_notes), ("scenarios", self.scenarios)) if v}
        record["llm_plan_json"] = json.dumps(plan) if plan else None
        record["note"] = "; ".join(self.notes) or None
        return record

    def vector_row(self) -> dict[str, Any]:
        """The row for the ``setup_vectors`` table (outcome unknown until evaluated)."""
        return {
            "symbol": self.symbol,
            "interval": self.interval,
            "ts": self.asof,
            "version": self.vector_version,
            "setup": self.entry.setup if self.entry else "none",
            "side": self.entry.side if self.entry else "none",
            "trend": self.trend.label,
            "vol_regime": self.vol_regime,
            "vector": np.asarray(self.vector, dtype=np.float32),
        }


def _reasoning(row: pd.Series) -> str:
    warm = finite_or_none(row["ema_slope"]) is not None and finite_or_none(row["rsi14"]) is not None
    parts = [f"Trend {row['trend']} (EMA20 slope {row['ema_slope']:+.4f}, RSI14 {row['rsi14']:.1f})"
             if warm else f"Trend {row['trend']} (indicators warming up)"]
    if row["setup"] != "none":
        parts.append(
            f"{row['setup'].replace('_', ' ')} {row['side']}: entry {row['entry']:.2f}, "
            f"stop {row['stop']:.2f}, target {row['target']:.2f}, R {row['r_multiple']:.2f}"
        )
    else:
        parts.append("no setup on this bar")
    parts.append(f"volatility regime {row['vol_regime']}, {row['time_bucket']} session")
    if row["mtf_alignment"]:
        parts.append(f"multi-timeframe alignment {int(row['mtf_alignment']):+d}")
    return "; ".join(parts) + "."


def _entry_plan(row: pd.Series) -> EntryPlan | None:
    if row["setup"] == "none":
        return None
    long = row["side"] == "long"
    stop_order = bool(row["entry"] > row["close"] if long else row["entry"] < row["close"])
    comment = {
        "gp_pullback": "pullback into the 61.8–65 % golden pocket",
        "momentum": "momentum continuation beyond the previous bar",
        "mean_reversion": "RSI mean reversion in a sideways market",
    }[row["setup"]]
    if stop_order:
        comment += f" (stop order at {row['entry']:.2f}, valid one trading day)"
    return EntryPlan(
        setup=row["setup"],
        side=row["side"],
        entry=float(row["entry"]),
        stop=float(row["stop"]),
        target=float(row["target"]),
        r_multiple=float(row["r_multiple"]),
        stop_order=stop_order,
        comment=comment,
        golden_pocket_low=finite_or_none(row["golden_pocket_low"]),
        golden_pocket_high=finite_or_none(row["golden_pocket_high"]),
        fib_ext_1272=finite_or_none(row["fib_ext_1272"]),
        fib_ext_1618=finite_or_none(row["fib_ext_1618"]),
    )


def signal_from_frame(
    frame: pd.DataFrame,
    *,
    symbol: str,
    interval: str,
    position: int = -1,
    sector_symbol: str | None = None,
    notes: Iterable[str] = (),
) -> Signal:
    """The signal of one row of a signal frame (the last by default), without priors."""
    row = frame.iloc[position]
    fib_levels = {
        name: float(row[name])
        for name in frame.columns
        if name.startswith(("fib_", "golden_pocket")) and finite_or_none(row[name]) is not None
    }
    last = position in (-1, len(frame) - 1)
    return Signal(
        symbol=symbol,
        interval=interval,
        asof=frame.index[position].to_pydatetime(),
        data_source=str(frame.attrs.get("source", "unknown")),
        last_bar_complete=bool(frame.attrs.get("last_bar_complete", True)) if last else True,
        notes=list(notes),
        trend=TrendState(
            label=row["trend"],
            ema_slope=finite_or_none(row["ema_slope"]),
            price_above_ema=bool(row["close"] > row["ema20"]),
            rsi14=finite_or_none(row["rsi14"]),
            price=float(row["close"]),
        ),
        entry=_entry_plan(row),
        confidence=float(row["confidence"]),
        confidence_base=float(row["confidence"]),
        reasoning=_reasoning(row),
        fib_levels=fib_levels,
        mtf_15m=row.get("mtf_15m") or None,
        mtf_1h=row.get("mtf_1h") or None,
        mtf_alignment=int(row["mtf_alignment"]),
        rs_sector=finite_or_none(row["rs_sector"]),
        rs_spy=finite_or_none(row["rs_spy"]),
        sector_symbol=sector_symbol,
        time_bucket=row["time_bucket"],
        atr_pct=finite_or_none(row["atr_pct"]),
        vol_regime=row["vol_regime"],
        # 16 scalar reads: a list-indexed row (a new Series) cost ~3x the rest of the row
        vector=[float(v) for v in np.array([row[c] for c in VECTOR_COLUMNS],
                                           dtype=np.float32)],
    )


#: A prior provider: (signal, params) → fields to set on the signal (expected_r, …, confidence).
PriorProvider = Callable[[Signal, StrategyParams], dict[str, Any]]
