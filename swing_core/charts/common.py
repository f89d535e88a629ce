"""Shared pieces of the figure builders: colours, the empty figure, line helpers, and the
drawing-only thinning of long histories (:func:`downsample_bars`, :func:`downsample_series`).

Thinning never changes its input: no statistic shown next to a chart depends on how it was drawn.
The figures set no template: Streamlit's theme (light or dark) styles them, and the colours below
are mid-tones that read on both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from swing_core.numbers import finite_or_none
from swing_core.timefmt import is_daily

__all__ = [
    "COLORS",
    "MAX_CANDLES",
    "MAX_LINE_POINTS",
    "downsample_bars",
    "downsample_series",
    "empty_figure",
    "outcome_color",
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
_MARGIN = {"l": 10, "r": 10, "t": 40, "b": 10}


def _time_hover(daily: bool) -> str:
    """The hover format of a time axis whose values come from
    :func:`swing_core.timefmt.bar_times`: a daily bar's trading date, an intraday bar's New York
    wall-clock time (the conversion is already done; this only labels it)."""
    return "%Y-%m-%d" if daily else "%Y-%m-%d %H:%M ET"


def _interval_hover(interval: str | None) -> str:
    return _time_hover(is_daily(interval))



def outcome_color(realized_r: Any) -> str:
    """Green for a win (R > 0), red for a loss (R < 0), grey for flat, purple when unknown."""
    r = finite_or_none(realized_r)
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

