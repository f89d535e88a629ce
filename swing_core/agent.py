"""``analyze(symbol)`` and ``scan(symbols)``: bars → signal frame → last row → typed signal.

The signal of a symbol is the last row of its signal frame (bars <= the last bar), enriched with
pattern priors (outcomes known by that bar's close) and, optionally, the LLM advisor's vote.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from swing_core import market
from swing_core.config import StrategyParams, validate_interval
from swing_core.errors import SwingError
from swing_core.features import VECTOR_COLUMNS, VECTOR_FIELDS, VECTOR_VERSION
from swing_core.frame import MTF_INTERVALS, FrameContext, build_signal_frame, min_bars_required
from swing_core.perf import timed_fn

__all__ = [
    "Analysis",
    "EntryPlan",
    "ScanResult",
    "Signal",
    "TrendState",
    "advise",
    "analysis",
    "analyze",
    "analyze_frame",
    "load_context",
    "scan",
]

#: History an analysis loads by default (calendar days): enough for every indicator, within
#: Yahoo's limits, and shorter than the market layer's fetch default (its maximum history).
ANALYZE_LOOKBACK_DAYS: dict[str, int] = {"15m": 30, "30m": 59, "1h": 180, "1d": 730}


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
            "expected_winrate": self.expected_winrate,
            "expected_hold_bars": self.expected_hold_bars,
            "expected_hold_days": self.expected_hold_days,
            "prior_n": (self.prior or {}).get("n"),
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


@dataclass(frozen=True)
class ScanResult:
    """One symbol of a scan: a signal, or the error that stopped it (the scan goes on)."""

    symbol: str
    signal: Signal | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.signal is not None


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) or math.isinf(number) else number


def _reasoning(row: pd.Series) -> str:
    parts = [f"Trend {row['trend']} (EMA20 slope {row['ema_slope']:+.4f}, RSI14 {row['rsi14']:.1f})"
             if _num(row["ema_slope"]) is not None and _num(row["rsi14"]) is not None
             else f"Trend {row['trend']} (indicators warming up)"]
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
        golden_pocket_low=_num(row["golden_pocket_low"]),
        golden_pocket_high=_num(row["golden_pocket_high"]),
        fib_ext_1272=_num(row["fib_ext_1272"]),
        fib_ext_1618=_num(row["fib_ext_1618"]),
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
        if (name.startswith("fib_") or name.startswith("golden_pocket")) and _num(row[name]) is not None
    }
    return Signal(
        symbol=symbol,
        interval=interval,
        asof=frame.index[position].to_pydatetime(),
        data_source=str(frame.attrs.get("source", "unknown")),
        last_bar_complete=bool(frame.attrs.get("last_bar_complete", True)) if position in (-1, len(frame) - 1) else True,
        notes=list(notes),
        trend=TrendState(
            label=row["trend"],
            ema_slope=_num(row["ema_slope"]),
            price_above_ema=bool(row["close"] > row["ema20"]),
            rsi14=_num(row["rsi14"]),
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
        rs_sector=_num(row["rs_sector"]),
        rs_spy=_num(row["rs_spy"]),
        sector_symbol=sector_symbol,
        time_bucket=row["time_bucket"],
        atr_pct=_num(row["atr_pct"]),
        vol_regime=row["vol_regime"],
        vector=[float(v) for v in row[list(VECTOR_COLUMNS)].to_numpy(dtype=np.float32)],
    )


#: A prior provider: (signal, params) → fields to set on the signal (expected_r, …, confidence).
PriorProvider = Callable[[Signal, StrategyParams], dict[str, Any]]


def load_context(
    symbol: str,
    interval: str,
    *,
    params: StrategyParams,
    lookback_days: int | None,
    engine: Any = None,
    offline: bool | None = None,
    main_source: str = "demo",
) -> tuple[FrameContext, list[str]]:
    """Benchmark and other-timeframe bars for ``symbol``, from the same source as its own bars
    (``main_source``, the ``source`` attr of those bars: local bars get local benchmarks, demo
    bars demo ones, Yahoo or cached bars Yahoo's with the automatic fallbacks); what cannot be
    had is left out and noted (the signal then carries NaN relative strength / zero alignment).
    Demo context is never mixed into a signal computed on real bars."""
    context_source = {"local": "local", "demo": "demo"}.get(main_source, "auto")
    notes: list[str] = []
    wanted: dict[str, tuple[str, str]] = {}
    if symbol != params.sector_symbol:
        wanted["sector"] = (params.sector_symbol, interval)
    if symbol != params.market_symbol:
        wanted["market"] = (params.market_symbol, interval)
    if interval != "1d":
        for other in MTF_INTERVALS:
            if other != interval:
                wanted[other] = (symbol, other)
    got: dict[str, pd.DataFrame] = {}
    for key, (other_symbol, other_interval) in wanted.items():
        try:
            bars = market.fetch_bars(
                other_symbol, other_interval, lookback_days=lookback_days, engine=engine,
                offline=offline, source=context_source,
            )
        except SwingError as exc:
            notes.append(f"{other_symbol} {other_interval} unavailable ({exc}); left out")
            continue
        if bars.attrs.get("source") == "demo" and main_source != "demo":
            notes.append(f"{other_symbol} {other_interval}: only demo bars available; left out "
                         "so that synthetic prices never mix with real ones")
            continue
        got[key] = bars
    context = FrameContext(
        sector=got.get("sector"),
        market=got.get("market"),
        mtf={k: v for k, v in got.items() if k in MTF_INTERVALS},
    )
    return context, notes


def _vector_with_llm_confidence(vector: list[float], llm_confidence: float) -> list[float]:
    """The setup vector with its LLM-confidence slot set (the raw vector's last slot is the
    constant 1, so the normalized vector divided by its last value recovers the raw one)."""
    normalized = np.asarray(vector, dtype=np.float64)
    if normalized.size != len(VECTOR_COLUMNS) or normalized[-1] <= 0:
        return vector
    raw = normalized / normalized[-1]
    raw[VECTOR_FIELDS.index("llm_confidence")] = llm_confidence
    return [float(v) for v in (raw / np.linalg.norm(raw)).astype(np.float32)]


def advise(
    signal: Signal,
    advisor: Any,
    *,
    params: StrategyParams | None = None,
    plan: bool = False,
    force: bool = False,
) -> Signal:
    """The signal with the LLM advisor's vote (and, with ``plan``, its action plan).

    The advisor is asked only when it can change a decision (a plan exists and confidence is at
    most the ceiling in settings) unless ``force``.  An agreeing vote adds
    ``llm_agree_weight``·its confidence, a disagreeing one subtracts ``llm_disagree_weight``·its
    confidence (STRATEGY.md).  A failure never blocks the signal: it carries a short note.
    """
    from swing_core.llm import apply_vote

    params = params or StrategyParams()
    updates: dict[str, Any] = {}
    notes = list(signal.notes)
    result = advisor.vote(signal.flat(), force=force)
    if result.vote is not None:
        vote = result.vote
        updates.update(
            llm_vote=vote.model_dump(mode="json"),
            llm_explanation=vote.rationale,
            confidence=apply_vote(signal.confidence, vote, params,
                                  side=signal.entry.side if signal.entry else "none"),
            vector=_vector_with_llm_confidence(signal.vector, vote.confidence),
        )
    if result.signal_note:
        notes.append(result.signal_note)
    if plan:
        plan_result = advisor.action_plan(signal.flat(), force=force)
        if plan_result.plan is not None:
            updates.update(action_plan=plan_result.plan.action_plan,
                           risk_notes=plan_result.plan.risk_notes,
                           scenarios=list(plan_result.plan.scenarios))
        if plan_result.signal_note:
            notes.append(plan_result.signal_note)
    updates["notes"] = notes
    return signal.model_copy(update=updates)


def analyze_frame(
    frame: pd.DataFrame,
    *,
    symbol: str,
    interval: str,
    params: StrategyParams,
    prior_provider: PriorProvider | None = None,
    notes: Iterable[str] = (),
) -> Signal:
    """The signal of the last row of ``frame``, with priors when a provider is given."""
    signal = signal_from_frame(
        frame, symbol=symbol, interval=interval, sector_symbol=params.sector_symbol, notes=notes
    )
    if prior_provider is not None and signal.entry is not None:
        updates = prior_provider(signal, params)
        if updates:
            signal = signal.model_copy(update=updates)
    return signal


@dataclass(frozen=True)
class Analysis:
    """One symbol analysed: the signal frame (bars ≤ the signal bar, with context columns),
    the signal of its last row (with priors when a provider was given), and the notes about
    the data (where the bars came from, what context was left out and why)."""

    frame: pd.DataFrame
    signal: Signal
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        """Where the bars came from: "yahoo", "cache", "local", "file" or "demo"."""
        return str(self.frame.attrs.get("source", self.signal.data_source))


@timed_fn("analyze")
def analysis(
    symbol: str,
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    provider: Any = None,
    source: str | None = None,
) -> Analysis:
    """Analyze ``symbol`` on ``interval`` bars: the signal frame and the signal of its last bar.

    The one signal path of the engine: the dashboard, the scanner and the CLI all come here.
    ``source`` says where bars come from ("auto", "yahoo", "local", "demo"; see
    :mod:`swing_core.market.fetch`), for the symbol's bars and for its context (benchmarks,
    other timeframes) alike; ``provider`` (e.g. ``market.FileProvider`` for the user's
    CSV/Parquet file) overrides it for the symbol's own bars. The lookback counts back from
    now (Yahoo, demo) or from the newest stored bar (local library).
    Raises ``MarketDataError`` for an unknown symbol, no data, a malformed file or too few bars.
    """
    params = params or StrategyParams()
    validate_interval(interval)
    symbol = market.normalize_symbol(symbol)
    source = market.check_source(source)
    lookback = lookback_days or ANALYZE_LOOKBACK_DAYS[interval]
    needed = min_bars_required(params)
    bars = market.fetch_bars(symbol, interval, lookback_days=None if provider else lookback,
                             engine=engine, offline=offline, provider=provider, min_bars=needed,
                             source=source)
    main_source = str(bars.attrs.get("source", ""))
    context, notes = load_context(symbol, interval, params=params, lookback_days=lookback,
                                  engine=engine, offline=offline, main_source=main_source)
    notes = list(dict.fromkeys([*bars.attrs.get("notes", []), *notes]))
    frame = build_signal_frame(bars, params=params, interval=interval, context=context)
    signal = analyze_frame(frame, symbol=symbol, interval=interval, params=params,
                           prior_provider=prior_provider, notes=notes)
    return Analysis(frame=frame, signal=signal, notes=tuple(notes))


def analyze(
    symbol: str,
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    provider: Any = None,
    source: str | None = None,
) -> Signal:
    """The signal of :func:`analysis` (same arguments), for callers that need no frame."""
    return analysis(symbol, interval, params=params, lookback_days=lookback_days,
                    engine=engine, offline=offline, prior_provider=prior_provider,
                    provider=provider, source=source).signal


@timed_fn("scan")
def scan(
    symbols: Iterable[str],
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    source: str | None = None,
) -> list[ScanResult]:
    """Analyze every symbol; one result per symbol, in input order. A failing symbol's error is
    in its result and the scan goes on. ``progress(done, total, symbol)`` is called after each."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    results: list[ScanResult] = []
    for done, symbol in enumerate(symbols, start=1):
        try:
            signal = analyze(symbol, interval, params=params, lookback_days=lookback_days,
                             engine=engine, offline=offline, prior_provider=prior_provider,
                             source=source)
            results.append(ScanResult(symbol=symbol, signal=signal))
        except SwingError as exc:  # the symbol's own problem; a bug stops the scan
            results.append(ScanResult(symbol=symbol, signal=None, error=str(exc)))
        if progress is not None:
            progress(done, len(symbols), symbol)
    return results


def scan_table(results: list[ScanResult]) -> pd.DataFrame:
    """Scan results as one sortable table (errors included, with their message)."""
    rows = []
    for result in results:
        if result.signal is None:
            rows.append({"symbol": result.symbol, "error": result.error})
            continue
        flat = result.signal.flat()
        flat["error"] = None
        rows.append(flat)
    table = pd.DataFrame(rows)
    if "confidence" in table:
        table = table.sort_values("confidence", ascending=False, na_position="last")
    return table.reset_index(drop=True)


