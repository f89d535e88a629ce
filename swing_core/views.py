"""Data shaping for the dashboard: what a page shows, as plain frames and small dataclasses.

No Streamlit here and no trading logic: these functions only call the engine (``agent``,
``market``, ``db``) and reshape its results into tables, chips and cards. Pages call one of them,
cache the result and render it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import (
    BARS_PER_DAY,
    EXCHANGE_TZ,
    INTERVALS,
    Settings,
    StrategyParams,
    get_settings,
)
from swing_core.errors import MarketDataError

__all__ = [
    "DEFAULT_WATCHLIST",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ROWS",
    "MAX_WATCHLIST",
    "BAR_SOURCES",
    "Chip",
    "SignalView",
    "describe_source",
    "exchange_time_text",
    "local_times",
    "format_number",
    "filter_table",
    "evaluate_journal",
    "evaluation_text",
    "journal_summary",
    "journal_table",
    "load_watchlist",
    "parse_symbols",
    "prior_card",
    "project_2d",
    "save_watchlist",
    "scan_view",
    "signal_chips",
    "signal_view",
    "source_summary",
    "watchlist_table",
    "sparkline_values",
    "to_csv_bytes",
]

DEFAULT_WATCHLIST: tuple[str, ...] = ("AAPL", "MSFT", "NVDA", "AMZN", "SPY", "QQQ")
MAX_WATCHLIST = 50
#: Upload limits (the Data page): bytes and rows of one CSV/Parquet file.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_ROWS = 500_000

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


# --------------------------------------------------------------------------- symbols, watchlist


def _normalize_symbol(text: str) -> str:
    from swing_core import market

    return market.normalize_symbol(text)


def parse_symbols(text: str | Iterable[str], *, limit: int = MAX_WATCHLIST
                  ) -> tuple[list[str], list[str]]:
    """Split user input (commas, spaces, new lines, or an iterable) into valid tickers.

    Returns (valid symbols without duplicates in input order, error messages for the rest); at
    most ``limit`` symbols are kept (a message says so).
    """
    items = text.replace(",", " ").split() if isinstance(text, str) else [str(t) for t in text]
    symbols: list[str] = []
    errors: list[str] = []
    for item in items:
        if not item or not item.strip():
            continue
        try:
            symbol = _normalize_symbol(item)
        except MarketDataError as exc:
            errors.append(str(exc))
            continue
        if symbol not in symbols:
            symbols.append(symbol)
    if len(symbols) > limit:
        errors.append(f"Only the first {limit} symbols are kept ({len(symbols)} given).")
        symbols = symbols[:limit]
    return symbols, errors


def _watchlist_path(settings: Settings | None) -> Path:
    settings = settings or get_settings()
    return Path(settings.data_dir) / "watchlist.json"


def load_watchlist(*, settings: Settings | None = None) -> list[str]:
    """The saved watchlist (``SWING_DATA_DIR/watchlist.json``), or the default one when none is
    saved or the file is unreadable."""
    path = _watchlist_path(settings)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return list(DEFAULT_WATCHLIST)
    symbols, _ = parse_symbols(raw.get("symbols", []) if isinstance(raw, dict) else [])
    return symbols or list(DEFAULT_WATCHLIST)


def save_watchlist(symbols: Iterable[str], *, settings: Settings | None = None) -> list[str]:
    """Validate and save the watchlist atomically; returns what was saved. Raises
    ``MarketDataError`` when no valid symbol is left or the folder is not writable."""
    valid, errors = parse_symbols(list(symbols))
    if not valid:
        raise MarketDataError("The watchlist needs at least one valid ticker (e.g. AAPL). "
                              + " ".join(errors))
    path = _watchlist_path(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".watchlist.", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"symbols": valid}, handle)
        os.replace(tmp, path)
    except OSError as exc:
        raise MarketDataError(f"Cannot save the watchlist to {path}: {exc.strerror}. Set "
                              "SWING_DATA_DIR to a writable folder.") from None
    return valid


# --------------------------------------------------------------------------- signal view


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
    lookback = lookback_days or agent.DEFAULT_LOOKBACK_DAYS[interval]
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


def format_number(value: Any, spec: str = ".2f", none: str = "–") -> str:
    """``value`` formatted with ``spec``, or ``none`` when it is missing or not finite."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return none
    return none if not math.isfinite(number) else format(number, spec)


def local_times(values: Any, *, daily: bool | None = None) -> pd.DatetimeIndex:
    """UTC timestamps as the naive wall-clock times the UI shows: New York time for intraday
    bars; for daily bars (labelled by their trading date at 00:00 UTC) that date itself, since
    converting it would show the evening before. ``daily`` None decides per value (a timestamp
    at exactly 00:00 UTC is a date label: no US intraday bar opens or closes then)."""
    idx = pd.DatetimeIndex(pd.to_datetime(values, utc=True))
    utc = idx.tz_convert("UTC").tz_localize(None)
    if daily is True:
        return utc
    local = idx.tz_convert(EXCHANGE_TZ).tz_localize(None)
    if daily is False:
        return local
    midnight = np.asarray((utc == utc.normalize()) & ~utc.isna())
    return pd.DatetimeIndex(np.where(midnight, utc.to_numpy(), local.to_numpy()))


def exchange_time_text(ts: Any, *, daily: bool | None = None) -> str:
    """A UTC timestamp as the UI shows it: New York wall-clock text (``2026-03-02 10:30``), or
    the trading date of a daily bar (``2026-03-02``; see :func:`local_times`)."""
    utc = pd.Timestamp(ts)
    utc = utc.tz_localize("UTC") if utc.tzinfo is None else utc.tz_convert("UTC")
    is_date = daily if daily is not None else bool(utc == utc.normalize())
    if is_date:
        return utc.strftime("%Y-%m-%d")
    return utc.tz_convert(EXCHANGE_TZ).strftime("%Y-%m-%d %H:%M")


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


# --------------------------------------------------------------------------- scanner


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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as UTF-8 CSV for download; text cells that a spreadsheet would run as a
    formula (starting with = + - @) get a leading apostrophe (CSV injection)."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object:
            safe[column] = safe[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return safe.to_csv(index=False).encode("utf-8")


# --------------------------------------------------------------------------- journal


JOURNAL_COLUMNS: tuple[str, ...] = (
    "id", "asof", "symbol", "interval", "side", "setup", "trend_label", "entry", "stop", "target",
    "r_multiple", "confidence", "expected_winrate", "expected_r", "data_source", "evaluated",
    "exit_reason", "realized_r", "hold_bars", "exit_ts",
)


def journal_table(signals: pd.DataFrame) -> pd.DataFrame:
    """Stored signals (``db.list_signals``) in the journal's column order, times in New York."""
    table = signals.copy()
    for column in JOURNAL_COLUMNS:
        if column not in table:
            table[column] = None
    table = table.loc[:, list(JOURNAL_COLUMNS)]
    for column in ("asof", "exit_ts"):
        stamps = pd.to_datetime(table[column], utc=True, errors="coerce")
        table[column] = local_times(stamps)
    return table.reset_index(drop=True)


def evaluate_journal(engine: Any, *, offline: bool | None = None) -> Any:
    """Evaluate pending live signals (``journal.evaluate_pending``) on bars fetched through the
    market module (the cache topped up from Yahoo, or demo bars offline). Returns its
    ``EvaluationSummary``."""
    from swing_core import market
    from swing_core.journal import evaluate_pending

    def load(symbol: str, interval: str) -> pd.DataFrame:
        return market.fetch_bars(symbol, interval, engine=engine, offline=offline)

    return evaluate_pending(engine, load_bars=load)


def evaluation_text(summary: Any) -> str:
    """One sentence about an ``EvaluationSummary``."""
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_reason.items())) or "none"
    text = (f"Checked {summary.checked} pending signal(s): evaluated {summary.evaluated} "
            f"({reasons}); still pending {summary.still_pending}; skipped {summary.skipped}.")
    if summary.errors:
        text += " Problems: " + "; ".join(f"{k}: {v}" for k, v in summary.errors.items())
    return text


def journal_summary(table: pd.DataFrame) -> dict[str, Any]:
    """Counts and outcomes of journal rows: signals, evaluated, pending, wins, win rate (share
    of evaluated signals with R > 0 among those with a realized R), average realized R."""
    evaluated = table["evaluated"].fillna(False).astype(bool) if "evaluated" in table else \
        pd.Series(False, index=table.index)
    realized = pd.to_numeric(table.get("realized_r"), errors="coerce") if "realized_r" in table \
        else pd.Series(dtype=float)
    known = realized.dropna()
    return {
        "signals": int(len(table)),
        "evaluated": int(evaluated.sum()),
        "pending": int((~evaluated).sum()),
        "wins": int((known > 0).sum()),
        "win_rate": float((known > 0).mean()) if len(known) else None,
        "avg_r": float(known.mean()) if len(known) else None,
    }


# --------------------------------------------------------------------------- pattern library


def project_2d(matrix: np.ndarray, *, extra: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray | None]:
    """A 2-D principal-component projection of setup vectors (rows) for drawing; ``extra`` rows
    (e.g. the current setup) are projected on the same axes. Returns (xy, extra_xy)."""
    data = np.asarray(matrix, dtype=np.float64)
    if data.ndim != 2 or len(data) == 0:
        return np.zeros((0, 2)), None
    centre = data.mean(axis=0)
    centred = data - centre
    if len(data) < 2:
        axes = np.eye(data.shape[1])[:2]
    else:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        axes = vt[:2]
        if axes.shape[0] < 2:
            axes = np.vstack([axes, np.zeros((2 - axes.shape[0], data.shape[1]))])
    xy = centred @ axes.T
    extra_xy = None
    if extra is not None:
        extra_xy = (np.atleast_2d(np.asarray(extra, dtype=np.float64)) - centre) @ axes.T
    return xy, extra_xy


# --------------------------------------------------------------------------- backtests

_TRADE_ALIASES = {"fill_ts": "entry_ts", "fill_price": "entry_price",
                  "prior_win_rate": "predicted_winrate"}

TRADE_COLUMNS: tuple[str, ...] = (
    "symbol", "side", "setup", "trend", "vol_regime", "signal_ts", "entry_ts", "entry_price",
    "stop", "target", "exit_ts", "exit_price", "exit_reason", "realized_r", "hold_bars", "qty",
    "pnl", "predicted_winrate", "expected_r",
)


def _trades_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """A backtest's trades with the stored names (a fresh run names the fill ``fill_ts`` /
    ``fill_price``, a stored one ``entry_ts`` / ``entry_price``)."""
    renames = {k: v for k, v in _TRADE_ALIASES.items() if k in trades and v not in trades}
    return trades.rename(columns=renames)


def trade_list(trades: pd.DataFrame, *, taken_only: bool = True) -> pd.DataFrame:
    """The trade list of a backtest: trades the portfolio took (``qty > 0``; all when
    ``taken_only`` is False) in the columns of :data:`TRADE_COLUMNS`, times as UTC (the page
    shows New York time), the original row labels kept as the index."""
    frame = _trades_frame(trades)
    if taken_only and "qty" in frame:
        frame = frame[pd.to_numeric(frame["qty"], errors="coerce").fillna(0) > 0]
    out = pd.DataFrame(index=frame.index)
    for column in TRADE_COLUMNS:
        out[column] = frame[column] if column in frame else None
    for column in ("signal_ts", "entry_ts", "exit_ts"):
        out[column] = pd.to_datetime(out[column], utc=True, errors="coerce")
    return out


def outcome_label(realized_r: Any) -> str:
    """win / loss / flat / open for a realized R (NaN: not exited)."""
    try:
        r = float(realized_r)
    except (TypeError, ValueError):
        return "open"
    if not math.isfinite(r):
        return "open"
    return "win" if r > 0 else "loss" if r < 0 else "flat"


def for_display(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` with tz-aware columns as New York wall-clock times (for st.dataframe)."""
    out = table.copy()
    for column in out.columns:
        if isinstance(out[column].dtype, pd.DatetimeTZDtype):
            out[column] = local_times(out[column])
    return out


def stats_table(stats: pd.Series | Mapping[str, pd.Series]) -> pd.DataFrame:
    """Backtest statistics as text, one row per statistic (one column per run when given a
    mapping of run name -> stats), durations and times rendered readably."""

    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, pd.Timestamp):
            return local_times([value])[0].strftime("%Y-%m-%d")
        if isinstance(value, pd.Timedelta):
            return str(value).replace(" 00:00:00", "")
        if isinstance(value, float | np.floating):
            return format_number(value, ",.3f") if abs(value) < 1e6 else format_number(value,
                                                                                       ",.0f")
        return str(value)

    runs = dict(stats) if isinstance(stats, Mapping) else {"value": stats}
    names = list(dict.fromkeys(k for s in runs.values() for k in s.index))
    data = {run: [text(s.get(name)) for name in names] for run, s in runs.items()}
    return pd.DataFrame(data, index=pd.Index(names, name="statistic")).reset_index()


def breakdown_table(breakdown: pd.DataFrame, name: str) -> pd.DataFrame:
    """A breakdown (statistics by setup, volatility regime, …) with its category as a column."""
    if breakdown is None or breakdown.empty:
        return pd.DataFrame(columns=[name, "# Trades", "Win Rate [%]", "Avg. R"])
    out = breakdown.reset_index()
    if name not in out:
        out = out.rename(columns={out.columns[0]: name})
    return out


def reliability_curve(calibration: pd.DataFrame) -> pd.DataFrame:
    """Calibration bins with at least one trade, named for ``charts.reliability_figure``."""
    if calibration is None or calibration.empty:
        return pd.DataFrame(columns=["predicted", "observed", "count"])
    frame = calibration.reset_index() if "n" not in calibration else calibration
    frame = frame[pd.to_numeric(frame["n"], errors="coerce").fillna(0) > 0]
    return pd.DataFrame({"predicted": frame["mean_predicted"].astype(float).to_numpy(),
                         "observed": frame["observed_rate"].astype(float).to_numpy(),
                         "count": frame["n"].astype(int).to_numpy()})


def backtest_bars(symbols: Sequence[str], *, interval: str, start: Any = None,
                  warmup_bars: int = 200, engine: Any = None, offline: bool | None = None
                  ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Bars for a parameter search over ``symbols`` (through the market layer): enough history
    for ``start`` plus the warm-up bars; per-symbol error messages for the ones that failed.
    A still-forming last bar is dropped (its close is not known)."""
    from swing_core import market

    lookback = None
    if start is not None:
        begin = pd.Timestamp(start)
        begin = begin.tz_localize("UTC") if begin.tzinfo is None else begin
        warm_days = math.ceil(warmup_bars / BARS_PER_DAY[interval] * 7 / 5) + 5
        lookback = max(1, (pd.Timestamp.now(tz="UTC") - begin).days + warm_days)
    fetched = market.fetch_many(list(symbols), interval, lookback_days=lookback, engine=engine,
                                offline=offline)
    bars: dict[str, pd.DataFrame] = {}
    errors: dict[str, str] = {}
    for symbol, value in fetched.items():
        if isinstance(value, pd.DataFrame):
            if value.attrs.get("last_bar_complete") is False:
                value = value.iloc[:-1]
            bars[symbol] = value
        else:
            errors[symbol] = str(value)
    return bars, errors


#: StrategyParams a parameter search may vary from the Backtest Review page, with default grids.
SEARCH_PARAMS: dict[str, tuple[float, ...]] = {
    "momentum_stop_atr": (0.8, 1.2, 1.6),
    "momentum_target_atr": (1.5, 2.0, 2.5, 3.0),
    "mr_stop_atr": (0.75, 1.0, 1.5),
    "mr_target_atr": (1.0, 1.5, 2.0),
    "gp_stop_atr": (0.1, 0.2, 0.4),
    "swing_lookback": (20, 40, 60),
    "mr_rsi_long": (25, 30, 35),
    "mr_rsi_short": (65, 70, 75),
    "slope_up": (0.005, 0.01, 0.015),
}


def parse_grid_values(text: str, *, integer: bool = False, limit: int = 6) -> list[float]:
    """Comma- or space-separated numbers typed by the user (at most ``limit``, duplicates
    dropped). Raises ``ValueError`` naming what could not be read."""
    values: list[float] = []
    for item in text.replace(",", " ").split():
        try:
            number = float(item)
        except ValueError:
            raise ValueError(f"{item[:20]!r} is not a number; type values like 1.0, 1.5, 2.0."
                             ) from None
        if not math.isfinite(number):
            raise ValueError("Values must be finite numbers.")
        value = int(round(number)) if integer else number
        if value not in values:
            values.append(value)
    if not values:
        raise ValueError("Type at least one value.")
    if len(values) > limit:
        raise ValueError(f"At most {limit} values per parameter ({len(values)} given).")
    return values


def trade_window(trade: Mapping[str, Any], interval: str, *, pad_bars: int = 30
                 ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """UTC (start, end) around one trade for zooming a chart to it: from ``pad_bars`` bars
    before its signal (or entry) to ``pad_bars`` bars after its exit."""
    from swing_core.config import INTERVAL_DELTA

    stamps = [pd.Timestamp(trade.get(k)) for k in ("signal_ts", "entry_ts", "exit_ts")
              if trade.get(k) is not None and not pd.isna(trade.get(k))]
    if not stamps:
        return None
    step = INTERVAL_DELTA[interval]
    # intraday bars skip nights and weekends: pad in calendar time generously enough
    scale = 1 if interval == "1d" else 3
    return min(stamps) - pad_bars * step * scale, max(stamps) + pad_bars * step * scale


# --------------------------------------------------------------------------- pattern library

_EXITED = ("STOP", "TARGET", "TIME")


def library_rows(trades: pd.DataFrame, *, interval: str) -> pd.DataFrame:
    """Setup-library rows from a backtest's trades: one per simulated plan that exited (STOP,
    TARGET or TIME), with its vector (``vec_00`` … ``vec_15``), the signal bar's open time as
    ``ts``, the outcome (realized R, exit reason, ``exit_ts`` = close of the exit bar, bars
    held) and entry / stop (for drawing paths). The columns ``PatternIndex.add`` and
    ``db.upsert_vectors`` take."""
    from swing_core.features import VECTOR_COLUMNS

    frame = _trades_frame(trades)
    done = frame[frame["exit_reason"].isin(_EXITED) & frame["realized_r"].notna()]
    rows = pd.DataFrame({
        "symbol": done["symbol"].astype(str).to_numpy(),
        "interval": interval,
        "ts": pd.to_datetime(done["signal_ts"], utc=True).to_numpy(),
        "version": "v1",
        "setup": done["setup"].astype(str).to_numpy(),
        "side": done["side"].astype(str).to_numpy(),
        "trend": done["trend"].astype(str).to_numpy() if "trend" in done else "sideways",
        "vol_regime": done["vol_regime"].astype(str).to_numpy(),
        "realized_r": done["realized_r"].astype(float).to_numpy(),
        "exit_reason": done["exit_reason"].astype(str).to_numpy(),
        "exit_ts": pd.to_datetime(done["exit_ts"], utc=True).to_numpy(),
        "hold_bars": done["hold_bars"].astype("int64").to_numpy(),
        "entry": pd.to_numeric(done.get("entry_price", done.get("entry")), errors="coerce")
        .to_numpy(dtype=float),
        "stop": pd.to_numeric(done["stop"], errors="coerce").to_numpy(dtype=float),
    })
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True)
    rows["exit_ts"] = pd.to_datetime(rows["exit_ts"], utc=True)
    for column in VECTOR_COLUMNS:
        rows[column] = done[column].astype(np.float32).to_numpy()
    return rows.drop_duplicates(subset=["symbol", "interval", "ts"], keep="last")


@dataclass(frozen=True)
class Library:
    """A setup library to search: the index, its rows (metadata) and vectors (for the 2-D
    projection), where it comes from ("stored": the database; "demo": built in memory from a
    walk-forward over demo bars, never stored) and a sentence saying so."""

    index: Any  # swing_core.patterns.PatternIndex
    rows: pd.DataFrame
    matrix: np.ndarray
    source: str
    note: str

    def __len__(self) -> int:
        return len(self.rows)


def stored_library(engine: Any, interval: str, *, index: Any = None) -> Library:
    """The stored setup vectors with a known outcome for ``interval`` (``index``: an already
    loaded ``PatternIndex`` over them, e.g. the services' one)."""
    from swing_core import db
    from swing_core.patterns import PatternIndex

    loaded = db.load_vector_matrix(engine, interval=interval, known_only=True)
    meta = loaded.meta.reset_index(drop=True)
    matrix = np.asarray(loaded.matrix, dtype=np.float32)
    if index is None:
        index = PatternIndex.from_db(engine, interval=interval)
    note = (f"{len(meta):,} stored {interval} setups with known outcomes (database library)."
            if len(meta) else f"The stored library has no {interval} setup with a known "
            "outcome yet.")
    return Library(index=index, rows=meta, matrix=matrix, source="stored", note=note)


def demo_library(symbols: Sequence[str], interval: str, *,
                 params: StrategyParams | None = None) -> Library:
    """A DEMO library built in memory: a walk-forward over demo bars of ``symbols`` (every
    plan, not only one position per symbol), its exited plans indexed. Never stored, so it can
    never pass for real outcomes."""
    from swing_core.backtest import BacktestConfig, run_backtest
    from swing_core.features import VECTOR_COLUMNS
    from swing_core.patterns import PatternIndex

    config = BacktestConfig(interval=interval, params=params or StrategyParams(), priors=False,
                            one_position_per_symbol=False)
    result = run_backtest(list(symbols), config=config, engine=None, save=False,
                          executor="inline", offline=True)
    rows = library_rows(result.trades, interval=interval).reset_index(drop=True)
    index = PatternIndex.from_frame(rows, interval=interval)
    note = (f"DEMO library: {len(rows):,} simulated {interval} setups from a walk-forward over "
            f"demo bars of {', '.join(result.symbols)} (in memory, never stored).")
    return Library(index=index, rows=rows.drop(columns=list(VECTOR_COLUMNS)),
                   matrix=rows[list(VECTOR_COLUMNS)].to_numpy(np.float32), source="demo",
                   note=note)


def neighbors_of(library: Library, signal: Any, *, params: StrategyParams | None = None,
                 k: int | None = None, same_setup: bool = False) -> Any:
    """The neighbours STRATEGY.md prices ``signal`` with (``PatternIndex.neighbors``): outcomes
    known by the signal bar's close, same symbol first, same volatility regime when enough;
    ``k`` (default ``params.knn_k``) and, with ``same_setup``, only setups of the signal's kind."""
    from swing_core.config import INTERVAL_DELTA

    setup = signal.entry.setup if same_setup and signal.entry is not None else None
    return library.index.neighbors(
        np.asarray(signal.vector, dtype=np.float32),
        asof=pd.Timestamp(signal.asof) + INTERVAL_DELTA[signal.interval], symbol=signal.symbol,
        vol_regime=signal.vol_regime, interval=signal.interval, setup=setup, k=k, params=params)


def library_positions(library: Library, neighbors: pd.DataFrame) -> np.ndarray:
    """Row positions in ``library.rows`` of the given neighbours (matched on symbol, interval
    and signal-bar time), for marking them on the projection."""
    if neighbors.empty or library.rows.empty:
        return np.zeros(0, dtype=np.int64)
    keys = library.rows[["symbol", "interval", "ts"]].assign(
        ts=pd.to_datetime(library.rows["ts"], utc=True), _pos=np.arange(len(library.rows)))
    wanted = neighbors[["symbol", "interval", "ts"]].assign(
        ts=pd.to_datetime(neighbors["ts"], utc=True))
    found = wanted.merge(keys, on=["symbol", "interval", "ts"], how="inner")["_pos"]
    return found.to_numpy(dtype=np.int64)


def neighbor_table(neighbors: Any) -> pd.DataFrame:
    """Neighbours for display: most similar first, times in New York."""
    frame = neighbors.frame.copy()
    keep = ["symbol", "ts", "side", "setup", "vol_regime", "similarity", "realized_r",
            "exit_reason", "hold_bars", "exit_ts"]
    return for_display(frame[[c for c in keep if c in frame]])


def neighbor_paths(
    neighbors: pd.DataFrame,
    *,
    interval: str,
    load_bars: Callable[[str, str, pd.Timestamp], pd.DataFrame],
    params: StrategyParams | None = None,
    limit: int = 12,
) -> list[dict[str, Any]]:
    """Price paths after entry of the first ``limit`` neighbours, in R: ``(close - entry) ·
    side / |entry - stop|`` for the bars from the signal bar to the exit bar plus a few (0 =
    entry, −1 = the stop). ``load_bars(symbol, interval, since)`` gives bars covering the
    neighbour's signal bar; when the library does not know a neighbour's entry and stop they are
    read from the signal frame row of that bar (the plan that was simulated). Neighbours whose
    bars or plan cannot be found are skipped."""
    from swing_core.frame import build_signal_frame

    params = params or StrategyParams()
    tail = BARS_PER_DAY[interval]
    paths: list[dict[str, Any]] = []
    frames: dict[str, pd.DataFrame] = {}
    for row in neighbors.head(limit).itertuples(index=False):
        ts = pd.Timestamp(row.ts)
        try:
            bars = load_bars(row.symbol, interval, ts)
        except (MarketDataError, ValueError):
            continue
        pos = bars.index.get_indexer([ts])[0]
        if pos < 0:
            continue
        entry, stop = getattr(row, "entry", None), getattr(row, "stop", None)
        if entry is None or stop is None or not (np.isfinite(entry) and np.isfinite(stop)):
            if row.symbol not in frames:
                frames[row.symbol] = build_signal_frame(bars, params=params, interval=interval)
            plan = frames[row.symbol].iloc[pos]
            entry, stop = float(plan["entry"]), float(plan["stop"])
        risk = abs(entry - stop)
        if not np.isfinite(risk) or risk <= 0:
            continue
        sign = 1.0 if row.side == "long" else -1.0
        hold = int(row.hold_bars) if row.hold_bars is not None and not pd.isna(row.hold_bars) \
            else 2 * tail
        closes = bars["close"].to_numpy(dtype=float)[pos:pos + hold + 2 + tail // 2]
        paths.append({
            "path": (closes - entry) * sign / risk,
            "realized_r": float(row.realized_r),
            "title": f"{row.symbol} {exchange_time_text(ts)[:10]} {row.side} "
                     f"{float(row.realized_r):+.1f}R",
        })
    return paths
