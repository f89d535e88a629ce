"""Figures of the setup library (Explorer, Pattern Search): each neighbour's path after entry
in R units, and the 2-D projection of the stored setup vectors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from swing_core.charts.common import _MARGIN, COLORS, _apply, _hline, empty_figure, outcome_color

__all__ = ["neighbor_paths_figure", "projection_figure"]


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
                      title={"text": "Neighbours after entry (R; dashed = stop)",
                             "font": {"size": 14}})
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
    More than ``max_points`` points are thinned evenly for drawing (callers with many points
    thin first, :func:`swing_core.views.projection_view`, so hover text is made only for the
    points drawn)."""
    xy = np.asarray(xy, dtype=float)
    if xy.ndim != 2 or len(xy) == 0:
        return empty_figure("The vector library is empty.", height=height)
    step = max(1, math.ceil(len(xy) / max_points))
    keep = np.arange(0, len(xy), step) if step > 1 else slice(None)
    r = (np.asarray(outcome_r, dtype=float)[keep] if outcome_r is not None
         else np.full(len(xy[keep]), np.nan))
    text = None if hover is None else np.asarray(hover, dtype=object)[keep]
    fig = go.Figure()
    fig.add_trace(go.Scattergl(
        x=xy[keep, 0], y=xy[keep, 1], mode="markers", name="library",
        marker={"size": 5, "color": np.clip(np.nan_to_num(r), -3, 3), "cmin": -3, "cmax": 3,
                "colorscale": [[0, COLORS["loss"]], [0.5, "#cbd5e1"], [1, COLORS["win"]]],
                "colorbar": {"title": "R"}, "opacity": 0.7},
        hovertext=text, hoverinfo="text" if text is not None else "x+y",
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
