"""Signals for the Explorer, Home and Scanner pages: the signal view of one symbol, its context
chips and prior card, the watchlist and scan tables, and where the bars came from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import INTERVALS, StrategyParams
from swing_core.errors import MarketDataError
from swing_core.views.formatting import format_number, local_times

SCAN_COLUMNS: tuple[str, ...] = (
    "symbol", "side", "setup", "confidence", "r_multiple", "expected_r", "expected_winrate",
    "vol_regime", "data_source", "trend_label", "price", "entry", "stop", "target",
    "mtf_alignment", "rs_sector", "time_bucket", "asof", "error",
)

_SOURCE_TEXT = {
    "yahoo": "live Yahoo Finance data",
    "cache": "cached bars (from the local database)",
    "file": "uploaded file data",
    "demo": "DEMO data: synthetic prices, not the market",
}


@dataclass(frozen=True)
class SignalView:
    """What the Signal Explorer shows: the signal frame (bars ≤ the signal bar), the signal of
    its last row (with priors when available), and notes about the data."""

    frame: pd.DataFrame
    signal: Any  # swing_core.agent.Signal
    notes: tuple[str, ...] = ()

    @property
    def source(self) -> str:
        return str(self.frame.attrs.get("source", self.signal.data_source))


def _cached_bars(engine: Any, symbol: str, interval: str, lookback_days: int | None
                 ) -> pd.DataFrame:
    """Bars of the local bar cache (uploaded files, earlier fetches): the last ``lookback_days``
    calendar days before the last cached bar."""
    from swing_core import db, market
    from swing_core.errors import DatabaseError

    if engine is None:
        raise DatabaseError("The bar cache needs the database, which is unavailable: check "
                            "SWING_DATABASE_URL / SWING_DATA_DIR, or choose the automatic source.")
    bars = db.load_bars(engine, symbol, interval)
    if len(bars) == 0:
        raise MarketDataError(f"No cached {interval} bars for {symbol}: upload a CSV/Parquet file "
                              "on the Data page, or use the automatic source (Yahoo or demo).")
    if lookback_days:
        attrs = dict(bars.attrs)
        bars = bars.loc[bars.index >= bars.index[-1] - pd.Timedelta(days=lookback_days)]
        bars.attrs.update(attrs)
    origin = ", ".join(bars.attrs.get("cache_sources", [])) or "unknown"
    bars.attrs["notes"] = [f"Bars from the local cache (originally from: {origin})."]
    bars.attrs["last_bar_complete"] = market.last_bar_complete(bars.index, interval)
    return bars


#: Where the Signal Explorer's bars come from: the engine's choice, or the local cache only.
BAR_SOURCES: dict[str, str] = {
    "auto": "Automatic (Yahoo, cache, or demo offline)",
    "cache": "Local bar cache only (uploaded files)",
}


def signal_view(
    symbol: str,
    interval: str,
    *,
    lookback_days: int | None = None,
    params: StrategyParams | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: Callable[..., dict[str, Any]] | None = None,
    bars_from: str = "auto",
) -> SignalView:
    """Bars → signal frame → signal for one symbol (the same path as ``agent.analyze``, keeping
    the frame for the charts). ``bars_from``: "auto" (``market.fetch_bars``: Yahoo through the
    cache, demo bars offline) or "cache" (the local bar cache only, e.g. an uploaded file).
    Raises ``MarketDataError`` for bad symbols or too few bars."""
    from swing_core import agent, market
    from swing_core.frame import build_signal_frame, min_bars_required

    params = params or StrategyParams()
    symbol = market.normalize_symbol(symbol)
    if interval not in INTERVALS:
        raise MarketDataError(f"Unknown interval {interval!r}: choose one of {', '.join(INTERVALS)}.")
    if bars_from not in BAR_SOURCES:
        raise MarketDataError(f"Unknown bar source {bars_from!r}: choose auto or cache.")
    lookback = lookback_days or agent.ANALYZE_LOOKBACK_DAYS[interval]
    if bars_from == "cache":
        bars = _cached_bars(engine, symbol, interval, lookback_days)
    else:
        bars = market.fetch_bars(symbol, interval, lookback_days=lookback, engine=engine,
                                 offline=offline)
    market.validate_bars(bars, symbol=symbol, interval=interval, min_bars=min_bars_required(params))
    context, notes = agent.load_context(symbol, interval, params=params, lookback_days=lookback,
                                        engine=engine, offline=offline)
    notes = list(bars.attrs.get("notes", [])) + notes
    frame = build_signal_frame(bars, params=params, interval=interval, context=context)
    signal = agent.analyze_frame(frame, symbol=symbol, interval=interval, params=params,
                                 prior_provider=prior_provider, notes=notes)
    return SignalView(frame=frame, signal=signal, notes=tuple(dict.fromkeys(notes)))


def describe_source(source: str | None) -> str:
    """A plain sentence for a bars source (``yahoo``, ``cache``, ``file``, ``demo``)."""
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
    mtf_parts = [f"15m {signal.mtf_15m_trend}" if signal.mtf_15m_trend else "",
                 f"1h {signal.mtf_1h_trend}" if signal.mtf_1h_trend else ""]
    chips.append(Chip("MTF", f"{mtf:+d} " + " · ".join(p for p in mtf_parts if p),
                      "good" if mtf > 0 else "bad" if mtf < 0 else "neutral",
                      "Multi-timeframe alignment: +1 per timeframe trending the same way, −1 "
                      "per timeframe trending against."))
    for label, value, bench in (("RS sector", signal.rs_sector_20, signal.sector_symbol or "sector"),
                                ("RS SPY", signal.rs_spy_20, "SPY")):
        tone = "neutral" if value is None else "good" if value > 1 else "bad"
        chips.append(Chip(label, format_number(value), tone,
                          f"20-bar relative strength against {bench} (> 1: stronger)."))
    regime = {"L": "low", "M": "medium", "H": "high"}.get(signal.vol_regime, signal.vol_regime)
    chips.append(Chip("Volatility", f"{regime} ({signal.vol_regime})", "neutral",
                      "Bollinger width against its last 60 values."))
    chips.append(Chip("Session", str(signal.tod_bucket), "neutral",
                      "Time-of-day bucket of the signal bar (New York time)."))
    if signal.atr_pct is not None:
        chips.append(Chip("ATR", f"{format_number(signal.atr_pct)} %", "neutral", "ATR14 as % of price."))
    return chips


def prior_card(signal: Any) -> dict[str, Any] | None:
    """The pattern-prior numbers of a signal (None when it carries no prior): n, win rate,
    expected R, profit factor, average win / loss R, hold times, outcomes by exit reason."""
    prior = dict(signal.prior or {})
    if signal.expected_winrate is None and not prior:
        return None
    return {
        "n": prior.get("n"),
        "win_rate": signal.expected_winrate,
        "win_rate_raw": signal.expected_winrate_raw,
        "expected_r": signal.expected_r,
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
    columns of :data:`SCAN_COLUMNS` (errors kept with their message), best confidence first."""
    from swing_core.agent import scan_table

    table = scan_table(list(results))
    for column in SCAN_COLUMNS:
        if column not in table:
            table[column] = None
    table = table.loc[:, list(SCAN_COLUMNS)]
    if len(table):
        asof = pd.to_datetime(table["asof"], utc=True)
        table["asof"] = local_times(asof)
    for column in ("confidence", "r_multiple", "expected_r", "expected_winrate", "price",
                   "entry", "stop", "target", "rs_sector"):
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
                "asof": local_times([signal.asof])[0],
                "source": item.source,
                "error": None,
            })
        else:
            rows.append({"symbol": symbol, "closes": [], "side": None, "setup": None,
                         "confidence": None, "r_multiple": None, "trend": None, "price": None,
                         "asof": pd.NaT, "source": None, "error": str(item)})
    columns = ["symbol", "closes", "side", "setup", "confidence", "r_multiple", "trend", "price",
               "asof", "source", "error"]
    return pd.DataFrame(rows, columns=columns)


def source_summary(sources: Iterable[str | None], *, offline: bool) -> tuple[str, str]:
    """(tone, sentence) saying plainly where the shown bars came from: live Yahoo, cached, or
    demo. Tone: "ok", "info" or "warning"."""
    seen = {s for s in sources if s}
    if offline:
        return "warning", ("Offline mode (SWING_OFFLINE=1): every chart and signal uses DEMO "
                           "data, synthetic prices, not the market.")
    if not seen:
        return "info", "No bars loaded yet."
    if seen == {"yahoo"}:
        return "ok", "Live data from Yahoo Finance."
    if "demo" in seen:
        return "warning", ("Yahoo Finance is unreachable: some symbols show DEMO data "
                           "(synthetic prices). Check the connection or upload files.")
    if "cache" in seen:
        return "info", ("Cached bars from the local database (fresh within the interval's "
                        "window, or stale when Yahoo was unreachable).")
    return "info", "Data from: " + ", ".join(sorted(seen)) + "."
