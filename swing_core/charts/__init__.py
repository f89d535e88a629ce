"""Plotly figure builders: pure functions of frames returning ``go.Figure``.

Nothing here computes a trading number: every value drawn comes from a signal frame, a signal,
a trade list or a result computed elsewhere; long histories are thinned for drawing only. Bar
times are placed by the one rule of :mod:`swing_core.timefmt`. Pages call
``charts.price_figure(...)`` and hand the figure to ``st.plotly_chart``.

One module per concept:

- :mod:`~swing_core.charts.common`: colours, :func:`empty_figure`, drawing-only thinning;
- :mod:`~swing_core.charts.price`: the price chart (candles, levels, plan, trades, indicators);
- :mod:`~swing_core.charts.backtest`: R distribution, equity and drawdown, breakdowns,
  calibration, parameter-search heatmaps;
- :mod:`~swing_core.charts.library`: neighbour paths and the setup-library projection;
- :mod:`~swing_core.charts.perf`: the Performance page (latency, memory, caches, LLM cost,
  self-benchmark, a profile's call tree).
"""

from __future__ import annotations

from swing_core.charts.backtest import (
    breakdown_figure,
    equity_figure,
    heatmap_figure,
    outcome_histogram,
    reliability_figure,
)
from swing_core.charts.common import (
    COLORS,
    MAX_CANDLES,
    MAX_LINE_POINTS,
    downsample_bars,
    downsample_series,
    empty_figure,
    outcome_color,
)
from swing_core.charts.library import neighbor_paths_figure, projection_figure
from swing_core.charts.perf import (
    cache_figure,
    latency_figure,
    llm_cost_figure,
    memory_figure,
    profile_icicle,
    selfbench_figure,
)
from swing_core.charts.price import price_figure

__all__ = [
    "COLORS",
    "MAX_CANDLES",
    "MAX_LINE_POINTS",
    "breakdown_figure",
    "cache_figure",
    "downsample_bars",
    "downsample_series",
    "empty_figure",
    "equity_figure",
    "heatmap_figure",
    "latency_figure",
    "llm_cost_figure",
    "memory_figure",
    "neighbor_paths_figure",
    "outcome_color",
    "outcome_histogram",
    "price_figure",
    "profile_icicle",
    "projection_figure",
    "reliability_figure",
    "selfbench_figure",
]
