"""Backtest Review tables: trade list, statistics, breakdowns, reliability curve, the bars and
parameter grids of a search, and the chart window around one trade."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from swing_core import market
from swing_core.calibration import report_from_trades
from swing_core.config import INTERVAL_DELTA
from swing_core.errors import ConfigError
from swing_core.metrics import closed_mask, filled_mask
from swing_core.views.formatting import bar_time_text, bar_times, format_number
from swing_core.views.labels import stat_label

_TRADE_ALIASES = {"fill_ts": "entry_ts", "fill_price": "entry_price",
                  "prior_win_rate": "predicted_winrate"}


TRADE_COLUMNS: tuple[str, ...] = (
    "symbol", "side", "setup", "trend", "vol_regime", "signal_ts", "entry_ts", "entry_price",
    "stop", "target", "exit_ts", "exit_price", "exit_reason", "realized_r", "hold_bars", "qty",
    "pnl", "predicted_winrate", "prior_n", "expected_r",
)


def _trades_frame(trades: pd.DataFrame) -> pd.DataFrame:
    """A backtest's trades with the stored names (a fresh run names the fill ``fill_ts`` /
    ``fill_price``, a stored one ``entry_ts`` / ``entry_price``)."""
    renames = {k: v for k, v in _TRADE_ALIASES.items() if k in trades and v not in trades}
    return trades.rename(columns=renames)


def trade_list(trades: pd.DataFrame, *, closed_only: bool = True) -> pd.DataFrame:
    """The trade list of a backtest: its closed trades (:func:`swing_core.metrics.closed_mask`,
    the statistics' ``# Trades``; every taken signal when ``closed_only`` is False) in the
    columns of :data:`TRADE_COLUMNS`, times as stored (UTC; ``exit_ts`` the exit bar's close
    time, for charts and :func:`trade_window`), the original row labels kept as the index.
    Show it through ``for_display``: daily trades read as trading dates, the exit as its exit
    bar's date (never the Saturday after a Friday exit)."""
    frame = _trades_frame(trades)
    if closed_only:
        frame = frame[closed_mask(frame)]
    return _trade_columns(frame)


def open_trades(trades: pd.DataFrame) -> pd.DataFrame:
    """Filled trades still open at the end of the data (``# Open at End``: no outcome yet, not
    in the statistics), in the columns of :func:`trade_list`."""
    frame = _trades_frame(trades)
    return _trade_columns(frame[filled_mask(frame) & ~closed_mask(frame)])


def trade_count_text(shown: int, total: int) -> str:
    """The trade list's count line: ``shown`` of ``total`` closed trades (``# Trades``)."""
    return f"{shown:,} of {total:,} trades"


def _trade_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for column in TRADE_COLUMNS:
        out[column] = frame[column] if column in frame else None
    for column in ("signal_ts", "entry_ts", "exit_ts"):
        out[column] = pd.to_datetime(out[column], utc=True, errors="coerce")
    return out


def outcome_label(realized_r: Any) -> str:
    """win / loss / flat / open by realized R (an R win, :func:`swing_core.metrics.won_r`;
    NaN: not exited)."""
    try:
        r = float(realized_r)
    except (TypeError, ValueError):
        return "open"
    if not math.isfinite(r):
        return "open"
    return "win" if r > 0 else "loss" if r < 0 else "flat"


def stats_table(stats: pd.Series | Mapping[str, pd.Series]) -> pd.DataFrame:
    """Backtest statistics as text, one row per statistic (one column per run when given a
    mapping of run name -> stats), durations and times rendered readably."""

    def text(value: Any) -> str:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "–"
        if isinstance(value, pd.Timestamp):
            return bar_time_text(value, None)
        if isinstance(value, pd.Timedelta):
            return str(value).replace(" 00:00:00", "")
        if isinstance(value, float | np.floating):
            return format_number(value, ",.3f") if abs(value) < 1e6 else format_number(value,
                                                                                       ",.0f")
        return str(value)

    runs = dict(stats) if isinstance(stats, Mapping) else {"value": stats}
    names = list(dict.fromkeys(k for s in runs.values() for k in s.index))
    data = {run: [text(s.get(name)) for name in names] for run, s in runs.items()}
    # the two win rates named by what they count (swing_core.views.labels)
    shown = [stat_label(name) for name in names]
    return pd.DataFrame(data, index=pd.Index(shown, name="statistic")).reset_index()


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


def backtest_calibration(result: Any) -> Any:
    """The calibration report of a backtest (:func:`swing_core.calibration.report_from_trades`
    with the run's parameters): its taken signals with a prior and an outcome, the neighbours'
    raw R win rate against a win after costs, walk-forward; a stored run's trades get their
    as-of time (the close of the signal bar) back from ``signal_ts``. Empty (n = 0) for runs
    stored before the raw win rate was kept."""
    trades = _trades_frame(result.trades)
    if "asof" not in trades and "signal_ts" in trades:
        trades = trades.assign(asof=pd.to_datetime(trades["signal_ts"], utc=True)
                               + INTERVAL_DELTA[result.config.interval])
    if "fill_price" not in trades and "entry_price" in trades:
        trades = trades.assign(fill_price=trades["entry_price"])
    if "prior_win_rate_raw" not in trades and "predicted_winrate_raw" in trades:
        trades = trades.assign(prior_win_rate_raw=trades["predicted_winrate_raw"])
    return report_from_trades(trades, params=result.config.params)


def library_date_range(engine: Any, symbols: Sequence[str], interval: str
                       ) -> tuple[dt.date, dt.date] | None:
    """The trading dates spanned by the local library's ``interval`` bars of ``symbols`` (first
    bar of the earliest, last bar of the latest), or None when it holds none of them. For the
    Backtest Review form's default range."""
    if not symbols:
        return None
    held = market.list_library(engine)
    mine = held[held["symbol"].isin(list(symbols)) & (held["interval"] == interval)]
    if mine.empty:
        return None
    first, last = bar_times([mine["first_ts"].min(), mine["last_ts"].max()], interval)
    return first.date(), last.date()  # trading dates (daily), New York dates (intraday)


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
    dropped). Raises :class:`ConfigError` naming what could not be read."""
    values: list[float] = []
    for item in text.replace(",", " ").split():
        try:
            number = float(item)
        except ValueError:
            raise ConfigError(f"{item[:20]!r} is not a number; type values like 1.0, 1.5, 2.0."
                             ) from None
        if not math.isfinite(number):
            raise ConfigError("Values must be finite numbers.")
        value = int(round(number)) if integer else number
        if value not in values:
            values.append(value)
    if not values:
        raise ConfigError("Type at least one value.")
    if len(values) > limit:
        raise ConfigError(f"At most {limit} values per parameter ({len(values)} given).")
    return values


def trade_window(trade: Mapping[str, Any], interval: str, *, pad_bars: int = 30
                 ) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """UTC (start, end) around one trade for zooming a chart to it: from ``pad_bars`` bars
    before its signal (or entry) to ``pad_bars`` bars after its exit."""
    stamps = [pd.Timestamp(trade.get(k)) for k in ("signal_ts", "entry_ts", "exit_ts")
              if trade.get(k) is not None and not pd.isna(trade.get(k))]
    if not stamps:
        return None
    step = INTERVAL_DELTA[interval]
    # intraday bars skip nights and weekends: pad in calendar time generously enough
    scale = 1 if interval == "1d" else 3
    return min(stamps) - pad_bars * step * scale, max(stamps) + pad_bars * step * scale
