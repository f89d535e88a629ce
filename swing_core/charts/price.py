"""The price chart: candlesticks with volume, EMA 20, the golden-pocket band, Fibonacci levels,
the plan's entry / stop / target lines, trade markers, and RSI 14 and ATR % panels.

Nothing here computes a trading number: every value drawn comes from a signal frame, a plan or
a trade list. Long histories are thinned *for drawing only* (at most
:data:`~swing_core.charts.common.MAX_CANDLES` candles).

Time: frames are indexed by UTC bar open times; the chart places them by the one bar-time rule
of :mod:`swing_core.timefmt` (:func:`~swing_core.timefmt.bar_times`): daily bars at their trading
date (axis and hover show dates), intraday bars at New York wall-clock times, with nights and
weekends folded away when the data has none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from swing_core.charts.common import (
    _MARGIN,
    COLORS,
    MAX_CANDLES,
    _apply,
    _hline,
    _interval_hover,
    downsample_bars,
    empty_figure,
    outcome_color,
)
from swing_core.config import INTERVAL_DELTA
from swing_core.numbers import finite_or_none
from swing_core.timefmt import bar_times, looks_daily

__all__ = ["price_figure"]

_FIB_LABELS = {
    "fib_236": "23.6 %",
    "fib_382": "38.2 %",
    "fib_500": "50 %",
    "fib_786": "78.6 %",
    "fib_ext_1272": "1.272 ext",
    "fib_ext_1414": "1.414 ext",
    "fib_ext_1618": "1.618 ext",
}


def _rangebreaks(index: pd.DatetimeIndex, interval: str | None) -> list[dict[str, Any]]:
    """Fold away weekends and nights when the data (New York wall time) has no bars there."""
    if len(index) == 0:
        return []
    breaks: list[dict[str, Any]] = []
    if not (index.dayofweek >= 5).any():
        breaks.append({"bounds": ["sat", "mon"]})
    if interval and interval != "1d":
        hours = index.hour + index.minute / 60.0
        if hours.min() >= 9.5 and hours.max() < 16.0:
            breaks.append({"bounds": [16, 9.5], "pattern": "hour"})
    return breaks


def _add_candles(fig: go.Figure, frame: pd.DataFrame, x: pd.DatetimeIndex, symbol: str) -> None:
    fig.add_trace(
        go.Candlestick(
            x=x, open=frame["open"], high=frame["high"], low=frame["low"], close=frame["close"],
            name=symbol or "price", increasing_line_color=COLORS["up"],
            decreasing_line_color=COLORS["down"], showlegend=False,
        ),
        row=1, col=1,
    )


def _add_pocket_band(fig: go.Figure, frame: pd.DataFrame, x: pd.DatetimeIndex) -> None:
    if not {"golden_pocket_low", "golden_pocket_high"} <= set(frame.columns):
        return
    low = frame["golden_pocket_low"]
    high = frame["golden_pocket_high"]
    if low.notna().sum() == 0:
        return
    fig.add_trace(go.Scatter(x=x, y=low, mode="lines", line={"width": 0.6,
                             "color": COLORS["pocket_line"]}, name="golden pocket",
                             legendgroup="pocket", showlegend=False, hoverinfo="skip"),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=high, mode="lines", line={"width": 0.6,
                             "color": COLORS["pocket_line"]}, fill="tonexty",
                             fillcolor=COLORS["pocket"], name="golden pocket (61.8–65 %)",
                             legendgroup="pocket", hovertemplate="pocket %{y:.2f}<extra></extra>"),
                  row=1, col=1)


def _fib_lines(last: pd.Series) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    items = []
    for column, label in _FIB_LABELS.items():
        level = finite_or_none(last.get(column))
        if level is not None:
            items.append(_hline(level, line={"color": COLORS["fib"], "width": 1, "dash": "dot"},
                                text=f"{label} {level:.2f}", left=True, above=False,
                                font={"size": 10, "color": COLORS["fib"]}))
    return items


def _plan_lines(plan: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    entry, stop, target = (finite_or_none(plan.get(k)) for k in ("entry", "stop", "target"))
    if entry is None or stop is None or target is None:
        return []
    r = finite_or_none(plan.get("r_multiple"))
    side = str(plan.get("side") or "")
    setup = str(plan.get("setup") or "").replace("_", " ")
    lines = (
        ("entry", entry, f"entry {entry:.2f} · {side} {setup}".strip()),
        ("stop", stop, f"stop {stop:.2f}"),
        ("target", target, f"target {target:.2f}" + (f" · R {r:.2f}" if r is not None else "")),
    )
    return [_hline(level, line={"color": COLORS[key], "width": 1.6,
                                "dash": "solid" if key == "entry" else "dash"},
                   text=text, font={"color": COLORS[key]}) for key, level, text in lines]


def _trade_hover(trades: pd.DataFrame) -> list[str]:
    def text(row: pd.Series) -> str:
        r = finite_or_none(row.get("realized_r"))
        parts = [
            f"{row.get('symbol', '')} {row.get('side', '')} · {row.get('setup', '')}".strip(),
            f"entry {finite_or_none(row.get('entry_price')) or float('nan'):.2f}",
            f"exit {finite_or_none(row.get('exit_price')) or float('nan'):.2f} "
            f"({row.get('exit_reason', '') or 'open'})",
            f"R {r:+.2f}" if r is not None else "R pending",
        ]
        return "<br>".join(parts)

    return [text(row) for _, row in trades.iterrows()]


def _add_trades(fig: go.Figure, trades: pd.DataFrame, interval: str | None) -> None:
    """Entry markers shaped by direction (▲ long, ▼ short), exit markers (✕), both coloured by
    outcome; the hover names the setup and the exit reason."""
    if trades is None or trades.empty or "entry_ts" not in trades:
        return
    trades = trades.dropna(subset=["entry_ts"]).reset_index(drop=True)
    if trades.empty:
        return
    colors = [outcome_color(r) for r in trades.get("realized_r", pd.Series(np.nan,
                                                                            index=trades.index))]
    long = trades.get("side", pd.Series("long", index=trades.index)).astype(str).eq("long")
    hover = _trade_hover(trades)
    fig.add_trace(
        go.Scatter(
            x=bar_times(trades["entry_ts"], interval), y=trades["entry_price"],
            mode="markers",
            name="entries", marker={"symbol": np.where(long, "triangle-up", "triangle-down"),
                                    "size": 11, "color": colors,
                                    "line": {"width": 1, "color": "#1e293b"}},
            hovertext=hover, hoverinfo="text",
        ),
        row=1, col=1,
    )
    if "exit_ts" not in trades or "exit_price" not in trades:
        return
    has_exit = (trades["exit_ts"].notna() & trades["exit_price"].notna()).to_numpy()
    exits = trades[has_exit]
    if exits.empty:
        return
    # exit_ts is the close time of the exit bar; the marker sits on that bar's candle (its
    # open time; for a daily bar its trading date, never the next day)
    delta = INTERVAL_DELTA.get(interval or "", pd.Timedelta(0))
    exit_x = bar_times(pd.to_datetime(exits["exit_ts"], utc=True) - delta, interval)
    fig.add_trace(
        go.Scatter(
            x=exit_x, y=exits["exit_price"], mode="markers", name="exits",
            marker={"symbol": "x", "size": 9,
                    "color": [outcome_color(r) for r in exits.get("realized_r")],
                    "line": {"width": 1, "color": "#1e293b"}},
            hovertext=[hover[i] for i in np.flatnonzero(has_exit)],
            hoverinfo="text",
        ),
        row=1, col=1,
    )


def price_figure(
    frame: pd.DataFrame,
    *,
    plan: Mapping[str, Any] | None = None,
    trades: pd.DataFrame | None = None,
    interval: str | None = None,
    show_fib: bool = True,
    show_indicators: bool = True,
    focus: tuple[Any, Any] | None = None,
    initial_bars: int | None = None,
    max_bars: int = MAX_CANDLES,
    height: int = 760,
    title: str | None = None,
) -> go.Figure:
    """Candlesticks with volume, EMA20, the golden-pocket band and the current Fibonacci levels,
    the plan's entry / stop / target lines with R, and RSI14 and ATR % panels.

    ``frame``: a signal frame (or a bars frame: missing indicator columns are skipped), UTC index
    of bar open times. ``plan``: a mapping with entry, stop, target, r_multiple, side, setup (e.g.
    ``Signal.flat()``). ``trades``: columns entry_ts, entry_price, exit_ts (close time of the exit
    bar), exit_price, side, setup, exit_reason, realized_r. ``focus``: (start, end) UTC times to
    zoom the x axis to. The frame is drawn at most ``max_bars`` candles wide (see
    :func:`downsample_bars`); levels come from the frame's last row, unchanged.
    """
    symbol = str(frame.attrs.get("symbol", ""))
    interval = interval or frame.attrs.get("interval")
    if frame.empty:
        return empty_figure("No bars to draw.")
    drawn = downsample_bars(frame, max_bars)
    if interval is None:  # not told: daily when every bar is labelled 00:00 UTC
        interval = "1d" if looks_daily(drawn.index) else None
    x = bar_times(drawn.index, interval)
    rows = 4 if show_indicators else 2
    heights = [0.58, 0.12, 0.15, 0.15] if show_indicators else [0.8, 0.2]
    titles = ("", "volume", "RSI 14", "ATR %")[:rows]
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.03,
                        row_heights=heights, subplot_titles=titles)
    _add_candles(fig, drawn, x, symbol)
    if "ema20" in drawn:
        fig.add_trace(go.Scatter(x=x, y=drawn["ema20"], mode="lines", name="EMA 20",
                                 line={"color": COLORS["ema"], "width": 1.4}), row=1, col=1)
    lines: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    if show_fib:
        _add_pocket_band(fig, drawn, x)
        lines += _fib_lines(frame.iloc[-1])
    if plan is not None:
        lines += _plan_lines(plan)
    if trades is not None:
        _add_trades(fig, trades, interval)
    up = (drawn["close"] >= drawn["open"]).to_numpy()
    fig.add_trace(go.Bar(x=x, y=drawn["volume"], name="volume", showlegend=False,
                         marker={"color": np.where(up, COLORS["volume_up"], COLORS["volume_down"]),
                                 "line": {"width": 0}}),
                  row=2, col=1)
    if show_indicators:
        if "rsi14" in drawn:
            fig.add_trace(go.Scatter(x=x, y=drawn["rsi14"], mode="lines", name="RSI 14",
                                     showlegend=False, line={"color": COLORS["rsi"], "width": 1.2}),
                          row=3, col=1)
            lines += [_hline(level, axis=3, line={"color": COLORS["fib"], "width": 1,
                                                  "dash": "dot"}) for level in (30, 70)]
            fig.update_yaxes(range=[0, 100], row=3, col=1)
        if "atr_pct" in drawn:
            fig.add_trace(go.Scatter(x=x, y=drawn["atr_pct"], mode="lines", name="ATR %",
                                     showlegend=False, line={"color": COLORS["atr"], "width": 1.2}),
                          row=4, col=1)
    _apply(fig, lines)
    breaks = _rangebreaks(x, interval)
    if breaks:
        fig.update_xaxes(rangebreaks=breaks)
    fig.update_xaxes(rangeslider_visible=False, hoverformat=_interval_hover(interval))
    if focus is None and initial_bars is not None and len(frame) > initial_bars:
        focus = (frame.index[-initial_bars], frame.index[-1])
        extra = [finite_or_none((plan or {}).get(k)) for k in ("entry", "stop", "target")]
    else:
        extra = []
    if focus is not None:
        _zoom(fig, frame, focus, interval=interval, levels=[v for v in extra if v is not None])
    note = ""
    if "downsampled_from" in drawn.attrs:
        note = f" · {len(drawn):,} of {len(frame):,} bars drawn (merged for display)"
    fig.update_layout(
        title={"text": (title or f"{symbol} {interval or ''}".strip()) + note,
               "font": {"size": 15}},
        height=height, margin=_MARGIN, hovermode="x unified", dragmode="pan",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "xanchor": "right", "x": 1},
    )
    return fig


def _zoom(fig: go.Figure, frame: pd.DataFrame, focus: tuple[Any, Any], *, interval: str | None,
          levels: Sequence[float] = ()) -> None:
    """Set the x range to ``focus`` (UTC) and fit the price axis to the bars in it and to
    ``levels`` (e.g. the plan's entry, stop and target)."""
    start, end = (pd.Timestamp(t) for t in focus)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    end = end.tz_localize("UTC") if end.tzinfo is None else end
    x0, x1 = bar_times([start, end], interval)
    fig.update_xaxes(range=[x0, x1])
    window = frame.loc[start:end]
    if window.empty:
        return
    low = min([float(window["low"].min()), *levels])
    high = max([float(window["high"].max()), *levels])
    pad = 0.03 * ((high - low) or abs(high) or 1.0)
    fig.update_yaxes(range=[low - pad, high + pad], row=1, col=1)

