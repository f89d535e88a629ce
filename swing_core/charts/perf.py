"""Figures of the Performance page: pure functions of the frames shaped by
:mod:`swing_core.views.perf` (and of a self-benchmark report), returning ``go.Figure``.

Times arrive as UTC ``ts`` and are drawn as New York wall-clock times, like every other chart
of SwingDesk. No template is set: Streamlit's theme styles the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from swing_core.charts.common import _MARGIN, empty_figure
from swing_core.timefmt import exchange_times

__all__ = [
    "cache_figure",
    "latency_figure",
    "llm_cost_figure",
    "memory_figure",
    "profile_icicle",
    "selfbench_figure",
]

_PALETTE = qualitative.Plotly
_GUIDE_COLORS = {"guide before": "#94a3b8", "guide after": "#f59e0b", "SwingDesk": "#3b82f6"}


def _set_window(fig: go.Figure, window: tuple[Any, Any] | None) -> None:
    """Show the whole window (UTC bounds) on the x axis, so a lone point is not blown up to a
    sub-second axis and charts of one window line up."""
    if window is not None:
        start, end = exchange_times(pd.Index([pd.Timestamp(window[0]), pd.Timestamp(window[1])]))
        fig.update_xaxes(range=[start, end])


def _wide_range(values: pd.Series) -> bool:
    """Whether positive values span more than two decades (then a log axis reads better)."""
    positive = values[values > 0]
    return len(positive) > 1 and float(positive.max()) / float(positive.min()) > 100


def latency_figure(latency: pd.DataFrame, *, operations: Sequence[str] | None = None,
                   window: tuple[Any, Any] | None = None, height: int = 380,
                   title: str = "Latency per operation (ms)") -> go.Figure:
    """p95 (solid) and p50 (dotted) per operation over time, one colour per operation, from
    :func:`swing_core.views.perf_frames.latency_series`. A log y axis when values span > 100x.
    ``window``: (since, until) in UTC, the x axis range."""
    if latency.empty:
        return empty_figure("No timings in this window.", height=height)
    frame = latency if operations is None else latency[latency["operation"].isin(operations)]
    if frame.empty:
        return empty_figure("No timings for the chosen operations.", height=height)
    fig = go.Figure()
    for i, (operation, rows) in enumerate(frame.groupby("operation", sort=True)):
        color = _PALETTE[i % len(_PALETTE)]
        x = exchange_times(rows["ts"])
        custom = np.column_stack([rows["count"], rows["mean_ms"], rows["max_ms"]])
        hover = ("%{fullData.name}: %{y:.1f} ms<br>calls %{customdata[0]:,.0f} · mean "
                 "%{customdata[1]:.1f} ms · max %{customdata[2]:.1f} ms<extra></extra>")
        fig.add_trace(go.Scatter(x=x, y=rows["p95_ms"], mode="lines+markers",
                                 name=f"{operation} p95", legendgroup=str(operation),
                                 line={"color": color, "width": 2}, marker={"size": 4},
                                 customdata=custom, hovertemplate=hover))
        fig.add_trace(go.Scatter(x=x, y=rows["p50_ms"], mode="lines+markers",
                                 name=f"{operation} p50", legendgroup=str(operation),
                                 line={"color": color, "width": 1.2, "dash": "dot"},
                                 marker={"size": 3, "symbol": "circle-open"},
                                 customdata=custom, hovertemplate=hover))
    values = pd.concat([frame["p50_ms"], frame["p95_ms"]]).astype(float)
    fig.update_yaxes(title_text="ms", type="log" if _wide_range(values) else "linear",
                     rangemode="tozero")
    _set_window(fig, window)
    fig.update_layout(height=height, margin=_MARGIN, title=title, hovermode="closest",
                      legend={"orientation": "h", "y": -0.15})
    return fig


def memory_figure(memory: pd.DataFrame, *, window: tuple[Any, Any] | None = None,
                  height: int = 340, title: str = "Resident memory (MiB)") -> go.Figure:
    """RSS per process over time (the largest sample in each bucket), from
    :func:`swing_core.views.perf_frames.memory_series`; hover shows the peak RSS and CPU."""
    if memory.empty:
        return empty_figure("No memory samples in this window.", height=height)
    fig = go.Figure()
    for i, (process, rows) in enumerate(memory.groupby("process", sort=True)):
        custom = np.column_stack([rows["peak_rss_mb"], rows["cpu_pct"]])
        fig.add_trace(go.Scatter(
            x=exchange_times(rows["ts"]), y=rows["rss_mb"], mode="lines+markers",
            marker={"size": 3}, name=str(process),
            line={"color": _PALETTE[i % len(_PALETTE)], "width": 1.8}, customdata=custom,
            hovertemplate=("%{fullData.name}: %{y:.0f} MiB<br>peak %{customdata[0]:.0f} MiB · "
                           "CPU %{customdata[1]:.0f} %<extra></extra>")))
    fig.update_yaxes(title_text="MiB", rangemode="tozero")
    _set_window(fig, window)
    fig.update_layout(height=height, margin=_MARGIN, title=title,
                      legend={"orientation": "h", "y": -0.15})
    return fig


def cache_figure(series: pd.DataFrame, *, window: tuple[Any, Any] | None = None,
                 height: int = 300, title: str = "Cache hit rate (%)") -> go.Figure:
    """Hit rate (%) per cache over time, from :func:`swing_core.views.perf_frames.cache_series`;
    buckets without lookups are gaps, not zeros."""
    if series.empty:
        return empty_figure("No cache lookups in this window.", height=height)
    fig = go.Figure()
    for i, (cache, rows) in enumerate(series.groupby("cache", sort=True)):
        custom = np.column_stack([rows["hits"], rows["misses"]])
        fig.add_trace(go.Scatter(
            x=exchange_times(rows["ts"]), y=rows["hit_rate"] * 100.0, mode="lines+markers",
            name=str(cache), line={"color": _PALETTE[i % len(_PALETTE)]}, marker={"size": 4},
            customdata=custom, connectgaps=False,
            hovertemplate=("%{fullData.name}: %{y:.0f} %<br>%{customdata[0]:,.0f} hits · "
                           "%{customdata[1]:,.0f} misses<extra></extra>")))
    fig.update_yaxes(title_text="%", range=[0, 105])
    _set_window(fig, window)
    fig.update_layout(height=height, margin=_MARGIN, title=title,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def llm_cost_figure(daily: pd.DataFrame, *, height: int = 320,
                    title: str = "LLM cost and tokens per day (UTC)") -> go.Figure:
    """Cost per UTC day (bars, USD, left axis) and tokens in + out (line, right axis), from
    :func:`swing_core.views.perf_frames.llm_daily`; hover shows calls, cache hits and failures."""
    if daily.empty:
        return empty_figure("No LLM calls in this window.", height=height)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    days = pd.to_datetime(daily["day"], utc=True).dt.tz_localize(None)
    custom = np.column_stack([daily["api_calls"], daily["cache_hits"], daily["failures"]])
    fig.add_trace(go.Bar(x=days, y=daily["cost_usd"], name="cost (USD)",
                         marker={"color": "#3b82f6"}, customdata=custom,
                         hovertemplate=("%{x|%Y-%m-%d}: $%{y:.4f}<br>%{customdata[0]} requests · "
                                        "%{customdata[1]} cache hits · %{customdata[2]} failed"
                                        "<extra></extra>")),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=days, y=daily["tokens_in"] + daily["tokens_out"],
                             name="tokens (in + out)", mode="lines+markers",
                             line={"color": "#f59e0b"},
                             hovertemplate="%{x|%Y-%m-%d}: %{y:,.0f} tokens<extra></extra>"),
                  secondary_y=True)
    fig.update_yaxes(title_text="USD", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="tokens", rangemode="tozero", secondary_y=True)
    fig.update_xaxes(dtick="D1" if len(daily) <= 14 else None, tickformat="%b %d")
    fig.update_layout(height=height, margin=_MARGIN, title=title, bargap=0.3,
                      legend={"orientation": "h", "y": -0.2})
    return fig


def selfbench_figure(guide: pd.DataFrame, *, height: int = 340,
                     title: str = "Against the original performance guide") -> go.Figure:
    """Per operation of the guide's table: its "before" and "after" figures and SwingDesk's
    measured one, horizontal bars on a log axis (seconds; memory rows in MB on their own
    panel). ``guide``: columns operation, unit, guide_before, guide_after, swingdesk."""
    if guide.empty:
        return empty_figure("Run the self-benchmark to compare.", height=height)
    units = list(dict.fromkeys(guide["unit"]))
    fig = make_subplots(rows=1, cols=len(units), subplot_titles=units, horizontal_spacing=0.18)
    for col, unit in enumerate(units, start=1):
        rows = guide[guide["unit"] == unit]
        for name, column in (("guide before", "guide_before"), ("guide after", "guide_after"),
                             ("SwingDesk", "swingdesk")):
            fig.add_trace(go.Bar(y=rows["operation"], x=rows[column], orientation="h", name=name,
                                 marker={"color": _GUIDE_COLORS[name]}, legendgroup=name,
                                 showlegend=col == 1,
                                 hovertemplate=f"{name}: %{{x:.4g}} {unit}<extra></extra>"),
                          row=1, col=col)
        fig.update_xaxes(type="log" if unit == "s" else "linear", title_text=unit, row=1,
                         col=col)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(height=height, margin=_MARGIN, title=title, barmode="group",
                      legend={"orientation": "h", "y": -0.2})
    return fig


def _package(location: str) -> str:
    """``swing_core/frame.py:103`` → ``swing_core``; ``built-in`` and ``<frozen …>`` as such."""
    if location == "built-in":
        return "built-in"
    if location.startswith("<"):
        return "python"
    return location.split("/", 1)[0] if "/" in location else location.split(".py", 1)[0]


def profile_icicle(tree: pd.DataFrame, *, height: int = 560,
                   title: str = "Where the time went (call tree, sampled stacks)") -> go.Figure:
    """The profile's call tree as an icicle (a flame graph drawn top-down): the profiled
    operation on top, each function below the one that called it, widths in proportion to wall
    time, one colour per package (swing_core, pandas, numpy, …). ``tree``: the columns of
    :data:`swing_core.perf.profile_tree.TREE_COLUMNS` (``value_us``: whole microseconds whose
    children never add up to more than their parent). Click a box to zoom into it."""
    if tree.empty:
        return empty_figure("No call tree: the run was too short to sample.", height=height)
    packages = tree["location"].map(_package)
    order = list(dict.fromkeys(packages))
    colors = {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(order)}
    custom = np.column_stack([tree["location"], tree["seconds"], tree["self_s"],
                              tree["share"] * 100, packages])
    fig = go.Figure(go.Icicle(
        ids=tree["id"], parents=tree["parent"], labels=tree["function"],
        values=tree["value_us"], branchvalues="total", customdata=custom,
        marker={"colors": packages.map(colors).tolist()}, tiling={"orientation": "v"},
        maxdepth=12, sort=False,
        hovertemplate=("<b>%{label}</b><br>%{customdata[0]}<br>%{customdata[1]:.4f} s "
                       "(%{customdata[3]:.1f} % of the run), %{customdata[2]:.4f} s in itself"
                       "<br>%{customdata[4]}<extra></extra>")))
    fig.update_layout(height=height, margin=_MARGIN, title=title)
    return fig
