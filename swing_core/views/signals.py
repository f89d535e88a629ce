"""Signals for the Explorer, Home and Scanner pages: the signal view of one symbol, its context
chips and prior card, the watchlist and scan tables, and where the bars came from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.agent import Analysis, scan_table
from swing_core.views.formatting import format_number, table_times
from swing_core.views.labels import predicted_kind

SCAN_COLUMNS: tuple[str, ...] = (
    "symbol", "verdict", "side", "setup", "expected_r_net", "confidence", "expected_r",
    "cost_r", "expected_winrate_raw", "prior_n", "r_multiple", "vol_regime", "data_source",
    "trend_label", "price", "entry", "stop", "target", "mtf_alignment", "rs_sector",
    "time_bucket", "asof", "verdict_reason", "error",
)

_SOURCE_TEXT = {
    "yahoo": "live Yahoo Finance data",
    "cache": "Yahoo Finance bars from the bar cache",
    "local": "your local bar library (imported files and earlier fetches)",
    "file": "your file",
    "demo": "DEMO data: synthetic prices, not the market",
}


#: The Explorer's, Home's and Scanner's view of one symbol is the engine's own
#: :class:`swing_core.agent.Analysis` (frame + signal + notes): there is one signal path.
SignalView = Analysis


def describe_source(source: str | None) -> str:
    """A plain sentence for a bars source (``yahoo``, ``cache``, ``local``, ``file``, ``demo``)."""
    return _SOURCE_TEXT.get(str(source or ""), f"data source {source or 'unknown'}")


@dataclass(frozen=True)
class Chip:
    """One context chip: a short label, its value and a tone (good, bad, neutral)."""

    label: str
    value: str
    tone: str = "neutral"
    help: str = ""


def signal_chips(signal: Any) -> list[Chip]:
    """Multi-timeframe, relative-strength, volatility-regime and time-of-day chips of a signal."""
    chips: list[Chip] = []
    mtf = int(signal.mtf_alignment or 0)
    mtf_parts = [f"15m {signal.mtf_15m}" if signal.mtf_15m else "",
                 f"1h {signal.mtf_1h}" if signal.mtf_1h else ""]
    chips.append(Chip("MTF", f"{mtf:+d} " + " · ".join(p for p in mtf_parts if p),
                      "good" if mtf > 0 else "bad" if mtf < 0 else "neutral",
                      "Multi-timeframe alignment: +1 per timeframe trending the same way, −1 "
                      "per timeframe trending against."))
    for label, value, bench in (("RS sector", signal.rs_sector, signal.sector_symbol or "sector"),
                                ("RS SPY", signal.rs_spy, "SPY")):
        tone = "neutral" if value is None else "good" if value > 1 else "bad"
        chips.append(Chip(label, format_number(value), tone,
                          f"20-bar relative strength against {bench} (> 1: stronger)."))
    regime = {"L": "low", "M": "medium", "H": "high"}.get(signal.vol_regime, signal.vol_regime)
    chips.append(Chip("Volatility", f"{regime} ({signal.vol_regime})", "neutral",
                      "Bollinger width against its last 60 values."))
    chips.append(Chip("Session", str(signal.time_bucket), "neutral",
                      "Time-of-day bucket of the signal bar (New York time)."))
    if signal.atr_pct is not None:
        chips.append(Chip("ATR", f"{format_number(signal.atr_pct)} %", "neutral", "ATR14 as % of price."))
    return chips


def prior_card(signal: Any) -> dict[str, Any] | None:
    """The pattern-prior numbers of a signal (None when it carries no prior): n (every rate
    rests on it), win rate (``win_rate_kind``: :func:`~swing_core.views.labels.predicted_kind`;
    shrunk toward 50 % for a small n, never 0 % or 100 % from a handful), the neighbours' own R
    win rate before costs, expected R before costs, the plan's costs in R and expected R net
    of them, profit factor, average win / loss R, hold times, outcomes by exit reason."""
    prior = dict(signal.prior or {})
    if signal.expected_winrate is None and not prior:
        return None
    return {
        "n": prior.get("n"),
        "win_rate": signal.expected_winrate,
        "win_rate_kind": predicted_kind(prior),
        "win_rate_raw": signal.expected_winrate_raw,
        "expected_r": signal.expected_r,
        "cost_r": signal.cost_r,
        "expected_r_net": signal.expected_r_net,
        "profit_factor": prior.get("profit_factor"),
        "avg_win_r": prior.get("avg_win_r"),
        "avg_loss_r": prior.get("avg_loss_r"),
        "hold_bars": signal.expected_hold_bars,
        "hold_days": signal.expected_hold_days,
        "win_hold_bars": signal.expected_win_hold_bars,
        "loss_hold_bars": signal.expected_loss_hold_bars,
        "exit_reasons": prior.get("exit_reasons"),
        "source": signal.expected_source,
        "notes": signal.expected_notes,
    }


def scan_view(results: Sequence[Any]) -> pd.DataFrame:
    """Scan results (``agent.ScanResult``) as the scanner's table: one row per symbol, the
    columns of :data:`SCAN_COLUMNS` (errors kept with their message), in the engine's ranking
    (:func:`swing_core.agent.scan_table`: "take" first, then expected R net of costs, then
    confidence)."""
    table = scan_table(list(results))
    intervals = set(table["interval"].dropna()) if "interval" in table else set()
    for column in SCAN_COLUMNS:
        if column not in table:
            table[column] = None
    table = table.loc[:, list(SCAN_COLUMNS)]
    if len(table):
        table["asof"] = table_times(table["asof"],
                                    intervals.pop() if len(intervals) == 1 else None)
    for column in ("confidence", "r_multiple", "expected_r", "expected_r_net", "cost_r",
                   "expected_winrate_raw", "prior_n", "price", "entry", "stop", "target",
                   "rs_sector"):
        table[column] = pd.to_numeric(table[column], errors="coerce")
    return table


def filter_table(
    table: pd.DataFrame,
    *,
    equals: Mapping[str, Sequence[Any]] | None = None,
    minimum: Mapping[str, float] | None = None,
    text: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Rows of ``table`` whose column values are in ``equals[col]`` (empty selection: no
    filter), at least ``minimum[col]`` (NaN fails), and contain ``text[col]`` (case-insensitive,
    literal, not a regex)."""
    mask = pd.Series(True, index=table.index)
    for column, allowed in (equals or {}).items():
        if allowed and column in table:
            mask &= table[column].isin(list(allowed))
    for column, floor in (minimum or {}).items():
        if floor is not None and column in table:
            mask &= pd.to_numeric(table[column], errors="coerce").fillna(-np.inf) >= floor
    for column, needle in (text or {}).items():
        if needle and column in table:
            mask &= table[column].astype(str).str.contains(needle, case=False, regex=False)
    return table[mask]


def sparkline_values(bars: pd.DataFrame | None, *, points: int = 60) -> list[float]:
    """The last ``points`` closes of a bars frame as a plain list (for a table sparkline)."""
    if bars is None or len(bars) == 0 or "close" not in bars:
        return []
    return [float(v) for v in bars["close"].iloc[-points:].to_numpy()]


def watchlist_table(items: Mapping[str, SignalView | str], *, points: int = 60) -> pd.DataFrame:
    """The Home page's watchlist at a glance: one row per symbol with the signal of its last
    bar (side, setup, confidence, R, trend, price), a sparkline of the last ``points`` closes,
    the data source, and the error message for a symbol that failed."""
    rows = []
    for symbol, item in items.items():
        if isinstance(item, SignalView):
            signal = item.signal
            entry = signal.entry
            rows.append({
                "symbol": symbol,
                "closes": sparkline_values(item.frame, points=points),
                "side": entry.side if entry else "none",
                "setup": entry.setup if entry else "none",
                "confidence": float(signal.confidence),
                "r_multiple": entry.r_multiple if entry else None,
                "trend": signal.trend.label,
                "price": signal.trend.price,
                "asof": signal.asof,
                "source": item.source,
                "error": None,
            })
        else:
            rows.append({"symbol": symbol, "closes": [], "side": None, "setup": None,
                         "confidence": None, "r_multiple": None, "trend": None, "price": None,
                         "asof": pd.NaT, "source": None, "error": str(item)})
    columns = ["symbol", "closes", "side", "setup", "confidence", "r_multiple", "trend", "price",
               "asof", "source", "error"]
    table = pd.DataFrame(rows, columns=columns)
    intervals = {item.signal.interval for item in items.values() if isinstance(item, SignalView)}
    if intervals:
        table["asof"] = table_times(table["asof"], intervals.pop() if len(intervals) == 1
                                    else None)
    return table


def source_summary(sources: Iterable[str | None], *, offline: bool) -> tuple[str, str]:
    """(tone, sentence) saying plainly where the shown bars came from: live Yahoo, cached
    Yahoo bars, the local library, or demo. Tone: "ok", "info" or "warning"."""
    seen = {s for s in sources if s}
    if not seen:
        return "info", "No bars loaded yet."
    if "demo" in seen:
        why = ("offline mode (SWING_OFFLINE=1)" if offline
               else "Yahoo Finance unreachable or not chosen")
        which = "every symbol" if seen == {"demo"} else "some symbols"
        return "warning", (f"DEMO data (synthetic prices) for {which}: {why} and no local bars "
                           "for them. Import your own files on the Data page.")
    if seen == {"yahoo"}:
        return "ok", "Live data from Yahoo Finance."
    described = ", ".join(describe_source(s) for s in sorted(seen))
    return "info", f"Data from {described}."
