"""Plotly figure builders: pure functions of frames returning ``go.Figure``.

Nothing here computes a trading number: every value drawn comes from a signal frame, a signal,
a trade list or a result computed elsewhere. Long histories are thinned *for drawing only*
(:func:`downsample_bars`, at most :data:`MAX_CANDLES` candles): the inputs are never changed, so
no statistic shown next to a chart depends on how it was drawn.

Time: frames are indexed by UTC bar open times; figures place them by the one bar-time rule of
:mod:`swing_core.timefmt` (:func:`~swing_core.timefmt.bar_times`): daily bars at their trading
date (axis and hover show dates), intraday bars at New York wall-clock times, with nights and
weekends folded away when the data has none. The figures set no template: Streamlit's theme
(light or dark) styles them, and the colours below are mid-tones that read on both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from swing_core.config import INTERVAL_DELTA
from swing_core.timefmt import bar_times, is_daily, looks_daily

__all__ = [
    "COLORS",
    "MAX_CANDLES",
    "breakdown_figure",
    "downsample_bars",
    "downsample_series",
    "empty_figure",
    "equity_figure",
    "heatmap_figure",
    "neighbor_paths_figure",
    "outcome_color",
    "outcome_histogram",
    "price_figure",
    "projection_figure",
    "reliability_figure",
]

#: The most candles a price chart draws; longer histories are aggregated into wider candles.
MAX_CANDLES = 10_000
#: The most points a line (equity, drawdown) draws.
MAX_LINE_POINTS = 5_000

COLORS: dict[str, str] = {
    "up": "#16a34a",
    "down": "#dc2626",
    "win": "#16a34a",
    "loss": "#dc2626",
    "flat": "#94a3b8",
    "pending": "#a855f7",
    "ema": "#f59e0b",
    "entry": "#3b82f6",
    "stop": "#ef4444",
    "target": "#22c55e",
    "pocket": "rgba(234, 179, 8, 0.22)",
    "pocket_line": "rgba(202, 138, 4, 0.8)",
    "fib": "#94a3b8",
    "volume_up": "rgba(22, 163, 74, 0.45)",
    "volume_down": "rgba(220, 38, 38, 0.45)",
    "rsi": "#8b5cf6",
    "atr": "#0ea5e9",
    "equity": "#3b82f6",
    "drawdown": "rgba(220, 38, 38, 0.55)",
    "current": "#f59e0b",
}

_FIB_LABELS = {
    "fib_236": "23.6 %",
    "fib_382": "38.2 %",
    "fib_500": "50 %",
    "fib_786": "78.6 %",
    "fib_ext_1272": "1.272 ext",
    "fib_ext_1414": "1.414 ext",
    "fib_ext_1618": "1.618 ext",
}
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}
#: Hover labels of the time axis: a daily bar's trading date, an intraday bar's New York time.
_DATE_HOVER = "%Y-%m-%d"
_CLOCK_HOVER = "%Y-%m-%d %H:%M ET"


# --------------------------------------------------------------------------- helpers


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def outcome_color(realized_r: Any) -> str:
    """Green for a win (R > 0), red for a loss (R < 0), grey for flat, purple when unknown."""
    r = _finite(realized_r)
    if r is None:
        return COLORS["pending"]
    if r > 0:
        return COLORS["win"]
    if r < 0:
        return COLORS["loss"]
    return COLORS["flat"]


def downsample_bars(bars: pd.DataFrame, max_bars: int = MAX_CANDLES) -> pd.DataFrame:
    """At most ``max_bars`` rows for drawing: consecutive bars merged into wider candles.

    Each bucket of ``k = ceil(n / max_bars)`` bars keeps the first open, the highest high, the
    lowest low, the last close, the summed volume and, for every other column, its last value
    (what was known at the bucket's end); it is labelled by its first bar's open time. Returns
    ``bars`` itself when it is short enough. Never modifies ``bars``.
    """
    n = len(bars)
    if max_bars < 1:
        raise ValueError("max_bars must be at least 1")
    if n <= max_bars:
        return bars
    k = math.ceil(n / max_bars)
    groups = np.arange(n) // k
    grouped = bars.groupby(groups, sort=True)
    out = grouped.last()
    for col, how in (("open", "first"), ("high", "max"), ("low", "min"), ("volume", "sum")):
        if col in bars.columns:
            out[col] = getattr(grouped[col], how)()
    out.index = bars.index[::k][: len(out)]
    out.index.name = bars.index.name
    out.attrs.update(bars.attrs)
    out.attrs["downsampled_from"] = n
    return out


def downsample_series(series: pd.Series, max_points: int = MAX_LINE_POINTS) -> pd.Series:
    """At most about ``max_points`` points of a line for drawing, keeping each bucket's minimum
    and maximum (so drawdown troughs and equity peaks survive). Never modifies ``series``."""
    n = len(series)
    if n <= max_points:
        return series
    k = math.ceil(n / max(1, max_points // 2))
    values = series.to_numpy(dtype=float)
    keep = set()
    for start in range(0, n, k):
        chunk = values[start:start + k]
        if np.all(np.isnan(chunk)):
            keep.add(start)
            continue
        keep.add(start + int(np.nanargmin(chunk)))
        keep.add(start + int(np.nanargmax(chunk)))
    keep.add(n - 1)
    return series.iloc[sorted(keep)]


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


def _axis(n: int) -> str:
    """Plotly's suffix of subplot axis ``n`` (1-based): "" for the first, else the number."""
    return "" if n == 1 else str(n)


def _hline(y: float, *, axis: int = 1, line: Mapping[str, Any], text: str | None = None,
           left: bool = False, above: bool = True, font: Mapping[str, Any] | None = None
           ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A horizontal line across subplot ``axis`` and its optional label, as plain layout dicts.

    Plotly's ``add_hline`` validates the whole figure on every call (about 30 ms each on a
    four-panel chart); building the dicts and assigning them once is two orders faster."""
    suffix = _axis(axis)
    shape = {"type": "line", "xref": f"x{suffix} domain", "x0": 0, "x1": 1,
             "yref": f"y{suffix}", "y0": y, "y1": y, "line": dict(line), "layer": "above"}
    if text is None:
        return shape, None
    label = {"xref": f"x{suffix} domain", "x": 0 if left else 1,
             "xanchor": "left" if left else "right", "yref": f"y{suffix}", "y": y,
             "yanchor": "bottom" if above else "top", "text": text, "showarrow": False,
             "font": dict(font or {})}
    return shape, label


def _apply(fig: go.Figure, items: Sequence[tuple[dict[str, Any], dict[str, Any] | None]]) -> None:
    """Add the shapes and labels of :func:`_hline` in one layout update."""
    if not items:
        return
    shapes = [*fig.layout.shapes, *(shape for shape, _ in items)]
    labels = [*fig.layout.annotations, *(label for _, label in items if label is not None)]
    fig.update_layout(shapes=shapes, annotations=labels)


def empty_figure(message: str, *, height: int = 320) -> go.Figure:
    """A blank figure of ``height`` pixels saying ``message`` in its middle (no axes): what a
    chart shows when there is nothing to draw."""
    fig = go.Figure()
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(height=height, margin=_MARGIN)
    return fig


# --------------------------------------------------------------------------- price chart


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
        level = _finite(last.get(column))
        if level is not None:
            items.append(_hline(level, line={"color": COLORS["fib"], "width": 1, "dash": "dot"},
                                text=f"{label} {level:.2f}", left=True, above=False,
                                font={"size": 10, "color": COLORS["fib"]}))
    return items


def _plan_lines(plan: Mapping[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    entry, stop, target = (_finite(plan.get(k)) for k in ("entry", "stop", "target"))
    if entry is None or stop is None or target is None:
        return []
    r = _finite(plan.get("r_multiple"))
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
        r = _finite(row.get("realized_r"))
        parts = [
            f"{row.get('symbol', '')} {row.get('side', '')} · {row.get('setup', '')}".strip(),
            f"entry {_finite(row.get('entry_price')) or float('nan'):.2f}",
            f"exit {_finite(row.get('exit_price')) or float('nan'):.2f} "
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
    fig.update_xaxes(rangeslider_visible=False,
                     hoverformat=_DATE_HOVER if is_daily(interval) else _CLOCK_HOVER)
    if focus is None and initial_bars is not None and len(frame) > initial_bars:
        focus = (frame.index[-initial_bars], frame.index[-1])
        extra = [_finite((plan or {}).get(k)) for k in ("entry", "stop", "target")]
    else:
        extra = []
    if focus is not None:
        _zoom(fig, frame, focus, interval=interval, levels=[v for v in extra if v is not None])
    note = ""
    if "downsampled_from" in drawn.attrs:
        note = f" · {len(drawn):,} of {len(frame):,} bars drawn (merged for display)"
    fig.update_layout(
        title={"text": (title or f"{symbol} {interval or ''}".strip()) + note, "font": {"size": 15}},
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


# --------------------------------------------------------------------------- outcomes


def outcome_histogram(
    realized_r: Sequence[float] | np.ndarray | pd.Series,
    *,
    title: str = "Outcomes (R)",
    marker: float | None = None,
    marker_label: str = "expected R",
    height: int = 300,
) -> go.Figure:
    """Histogram of realized R multiples, wins green and losses red; an optional vertical marker
    (e.g. the expected R of the current setup)."""
    values = pd.Series(realized_r, dtype=float).dropna()
    if values.empty:
        return empty_figure("No known outcomes yet.", height=height)
    lo, hi = float(values.min()), float(values.max())
    size = max((hi - lo) / 30.0, 0.05)
    bins = {"start": math.floor(lo / size) * size, "end": hi + size, "size": size}
    fig = go.Figure()
    for name, part, color in (("losses", values[values <= 0], COLORS["loss"]),
                              ("wins", values[values > 0], COLORS["win"])):
        if len(part):
            fig.add_trace(go.Histogram(x=part, xbins=bins, name=f"{name} ({len(part)})",
                                       marker={"color": color}, opacity=0.8))
    if marker is not None and _finite(marker) is not None:
        value = float(marker)
        fig.update_layout(
            shapes=[{"type": "line", "xref": "x", "x0": value, "x1": value, "yref": "paper",
                     "y0": 0, "y1": 1, "line": {"color": COLORS["current"], "width": 2,
                                                "dash": "dash"}}],
            annotations=[{"xref": "x", "x": value, "yref": "paper", "y": 1, "yanchor": "bottom",
                          "text": f"{marker_label} {value:+.2f}", "showarrow": False}])
    fig.update_layout(barmode="overlay", title=title, height=height,
                      margin={**_MARGIN, "b": 40}, xaxis_title="realized R", yaxis_title="trades",
                      bargap=0.05, legend={"orientation": "h", "y": -0.3, "x": 0,
                                           "xanchor": "left", "yanchor": "top"})
    return fig


def neighbor_paths_figure(
    paths: Sequence[np.ndarray | Sequence[float]],
    *,
    titles: Sequence[str] | None = None,
    outcomes: Sequence[float] | None = None,
    cols: int = 4,
    max_panels: int = 12,
    height_per_row: int = 150,
) -> go.Figure:
    """Small multiples: each neighbour's price path after entry in R units (0 = entry, −1 = the
    stop, +R = the target), coloured by its outcome, with the stop and entry lines."""
    paths = list(paths)[:max_panels]
    if not paths:
        return empty_figure("No neighbour paths to draw.", height=height_per_row * 2)
    rows = math.ceil(len(paths) / cols)
    titles = list(titles or [])[:len(paths)] + [""] * max(0, len(paths) - len(titles or []))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=titles, shared_yaxes=True,
                        vertical_spacing=0.12 if rows > 1 else 0.2, horizontal_spacing=0.03)
    lines = []
    for i, path in enumerate(paths):
        row, col = divmod(i, cols)
        y = np.asarray(path, dtype=float)
        color = outcome_color(outcomes[i] if outcomes is not None and i < len(outcomes) else None)
        fig.add_trace(go.Scatter(x=np.arange(len(y)), y=y, mode="lines", showlegend=False,
                                 line={"color": color, "width": 1.5},
                                 hovertemplate="bar %{x}: %{y:+.2f} R<extra></extra>"),
                      row=row + 1, col=col + 1)
        lines += [_hline(level, axis=i + 1, line={"color": COLORS["fib"], "width": 1,
                                                  "dash": dash})
                  for level, dash in ((0.0, "dot"), (-1.0, "dash"))]
    fig.update_annotations(font_size=10)
    _apply(fig, lines)
    fig.update_layout(height=max(220, height_per_row * rows + 60), margin=_MARGIN,
                      title={"text": "Neighbours after entry (R; dashed = stop)", "font": {"size": 14}})
    return fig


def projection_figure(
    xy: np.ndarray,
    *,
    outcome_r: Sequence[float] | np.ndarray | None = None,
    current: Sequence[float] | None = None,
    neighbors: np.ndarray | None = None,
    hover: Sequence[str] | None = None,
    height: int = 460,
    max_points: int = 20_000,
) -> go.Figure:
    """A 2-D projection of the setup-vector library, coloured by realized R (red losses, green
    wins, clipped to ±3 R); the current setup as a star; optional neighbour positions ringed.
    More than ``max_points`` points are thinned evenly for drawing."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or len(xy) == 0:
        return empty_figure("The vector library is empty.", height=height)
    step = max(1, math.ceil(len(xy) / max_points))
    keep = np.arange(0, len(xy), step)
    r = (np.asarray(outcome_r, dtype=float)[keep] if outcome_r is not None
         else np.full(len(keep), np.nan))
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=xy[keep, 0], y=xy[keep, 1], mode="markers", name="library",
        marker={"size": 5, "color": np.clip(np.nan_to_num(r), -3, 3), "cmin": -3, "cmax": 3,
                "colorscale": [[0, COLORS["loss"]], [0.5, "#cbd5e1"], [1, COLORS["win"]]],
                "colorbar": {"title": "R"}, "opacity": 0.7},
        hovertext=[hover[i] for i in keep] if hover is not None else None,
        hoverinfo="text" if hover is not None else "x+y",
    ))
    if neighbors is not None and len(neighbors):
        nb = np.asarray(neighbors, dtype=float)
        fig.add_trace(go.Scatter(x=nb[:, 0], y=nb[:, 1], mode="markers", name="neighbours",
                                 marker={"size": 9, "color": "rgba(0,0,0,0)",
                                         "line": {"width": 1.5, "color": COLORS["entry"]}}))
    if current is not None:
        fig.add_trace(go.Scatter(x=[current[0]], y=[current[1]], mode="markers", name="current",
                                 marker={"symbol": "star", "size": 18, "color": COLORS["current"],
                                         "line": {"width": 1, "color": "#1e293b"}}))
    fig.update_layout(height=height, margin=_MARGIN, title="Setup library (2-D projection)",
                      xaxis_title="component 1", yaxis_title="component 2",
                      legend={"orientation": "h", "y": 1.02, "x": 1, "xanchor": "right",
                              "yanchor": "bottom"})
    return fig


# --------------------------------------------------------------------------- backtests


def equity_figure(
    equity: pd.Series | Mapping[str, pd.Series],
    *,
    drawdown: bool = True,
    height: int = 420,
    title: str = "Equity",
) -> go.Figure:
    """Equity curve(s) and, below, the drawdown in % from the running peak. A mapping draws one
    line per run (for side-by-side comparison). Lines are thinned for drawing only."""
    curves = dict(equity) if isinstance(equity, Mapping) else {"equity": equity}
    curves = {k: v.dropna() for k, v in curves.items() if v is not None and len(v.dropna())}
    if not curves:
        return empty_figure("No equity curve yet.", height=height)
    fig = make_subplots(rows=2 if drawdown else 1, cols=1, shared_xaxes=True,
                        vertical_spacing=0.05, row_heights=[0.7, 0.3] if drawdown else [1.0])
    single = len(curves) == 1
    for name, curve in curves.items():
        x = curve.index
        if isinstance(x, pd.DatetimeIndex):
            daily = looks_daily(x)
            x = bar_times(x, "1d" if daily else None)
            fig.update_xaxes(hoverformat=_DATE_HOVER if daily else _CLOCK_HOVER)
        thin = downsample_series(pd.Series(curve.to_numpy(dtype=float), index=x))
        fig.add_trace(go.Scatter(x=thin.index, y=thin.values, mode="lines", name=str(name),
                                 line={"width": 1.6, **({"color": COLORS["equity"]} if single
                                                        else {})}),
                      row=1, col=1)
        if drawdown:
            values = curve.to_numpy(dtype=float)
            dd = (values / np.maximum.accumulate(values) - 1.0) * 100.0
            dd_thin = downsample_series(pd.Series(dd, index=x))
            fig.add_trace(go.Scatter(x=dd_thin.index, y=dd_thin.values, mode="lines",
                                     name=f"{name} drawdown", showlegend=False,
                                     fill="tozeroy" if single else None,
                                     line={"width": 1, **({"color": COLORS["drawdown"]}
                                                          if single else {})}),
                          row=2, col=1)
    if drawdown:
        fig.update_yaxes(title_text="drawdown %", row=2, col=1)
    fig.update_layout(height=height, margin=_MARGIN, title=title, hovermode="x unified",
                      showlegend=not single)
    return fig


def breakdown_figure(
    table: pd.DataFrame,
    *,
    category: str,
    value: str,
    count: str | None = None,
    title: str | None = None,
    height: int = 300,
) -> go.Figure:
    """Bars of ``value`` per ``category`` (e.g. average R by setup), green above zero and red
    below, the count in the hover."""
    if table is None or table.empty or value not in table:
        return empty_figure("Nothing to break down yet.", height=height)
    values = table[value].astype(float)
    fig = go.Figure(go.Bar(
        x=table[category].astype(str), y=values,
        marker={"color": [outcome_color(v) for v in values]},
        customdata=table[count] if count and count in table else None,
        hovertemplate=("%{x}: %{y:.3f}" + (" (%{customdata} trades)" if count and count in table
                                           else "") + "<extra></extra>"),
    ))
    fig.update_layout(height=height, margin=_MARGIN, title=title or f"{value} by {category}",
                      yaxis_title=value, xaxis_title=category)
    return fig


def reliability_figure(
    curve: pd.DataFrame,
    *,
    predicted: str = "predicted",
    observed: str = "observed",
    count: str | None = "count",
    title: str = "Calibration: predicted vs observed win rate",
    height: int = 360,
) -> go.Figure:
    """The reliability plot: observed win rate against predicted per bin, the diagonal being
    perfect calibration; marker size by the bin's count."""
    if curve is None or curve.empty:
        return empty_figure("Not enough evaluated trades to judge calibration.", height=height)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect",
                             line={"color": COLORS["fib"], "dash": "dash"}))
    sizes = None
    if count and count in curve:
        n = curve[count].astype(float).to_numpy()
        sizes = 8 + 22 * np.sqrt(n / max(n.max(), 1.0))
    fig.add_trace(go.Scatter(
        x=curve[predicted], y=curve[observed], mode="lines+markers", name="observed",
        marker={"size": sizes if sizes is not None else 10, "color": COLORS["entry"]},
        customdata=curve[count] if count and count in curve else None,
        hovertemplate="predicted %{x:.2f} → observed %{y:.2f}"
        + (" (n=%{customdata})" if count and count in curve else "") + "<extra></extra>",
    ))
    fig.update_layout(height=height, margin=_MARGIN, title=title,
                      xaxis={"title": "predicted win rate", "range": [0, 1]},
                      yaxis={"title": "observed win rate", "range": [0, 1]})
    return fig


def heatmap_figure(
    grid: pd.DataFrame,
    *,
    x: str,
    y: str,
    z: str,
    title: str | None = None,
    height: int = 380,
) -> go.Figure:
    """A parameter-search heatmap: ``z`` (a metric) over two parameters ``x`` and ``y`` (long
    format, one row per combination; duplicates averaged for drawing)."""
    if grid is None or grid.empty or not {x, y, z} <= set(grid.columns):
        return empty_figure("No parameter search to show.", height=height)
    pivot = grid.pivot_table(index=y, columns=x, values=z, aggfunc="mean")
    fig = go.Figure(go.Heatmap(
        z=pivot.to_numpy(), x=[str(c) for c in pivot.columns], y=[str(i) for i in pivot.index],
        colorscale="RdYlGn", colorbar={"title": z}, zmid=0 if (pivot.min().min() < 0 <
                                                                pivot.max().max()) else None,
        hovertemplate=f"{x} %{{x}}, {y} %{{y}}: {z} %{{z:.3f}}<extra></extra>",
    ))
    fig.update_layout(height=height, margin=_MARGIN, title=title or f"{z} by {x} × {y}",
                      xaxis_title=x, yaxis_title=y)
    return fig
