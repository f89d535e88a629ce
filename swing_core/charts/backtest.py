"""Figures of backtest results and of the journal: the R distribution, equity with drawdown,
breakdowns, the calibration (reliability) plot and parameter-search heatmaps. Pure functions of
tables computed elsewhere (:mod:`swing_core.metrics`, :mod:`swing_core.calibration`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from swing_core.charts.common import (
    _MARGIN,
    COLORS,
    _time_hover,
    downsample_series,
    empty_figure,
    outcome_color,
)
from swing_core.numbers import finite_or_none
from swing_core.timefmt import bar_times, looks_daily

__all__ = [
    "breakdown_figure",
    "equity_figure",
    "heatmap_figure",
    "outcome_histogram",
    "reliability_figure",
]


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
    if marker is not None and finite_or_none(marker) is not None:
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
            fig.update_xaxes(hoverformat=_time_hover(daily))
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
