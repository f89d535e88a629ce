"""Figure builders (swing_core.charts): pure functions of frames, drawing-only downsampling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from swing_core import charts
from swing_core.frame import build_signal_frame
from swing_core.market import demo_bars
from swing_core.timefmt import bar_times


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return build_signal_frame(demo_bars("AAPL", "30m", 600), interval="30m")


def _traces(fig: go.Figure, kind: str) -> list:
    return [t for t in fig.data if t.type == kind]


def test_downsample_bars_keeps_ohlcv_meaning_and_never_touches_input() -> None:
    bars = demo_bars("MSFT", "15m", 25_003)
    before = bars.copy()
    drawn = charts.downsample_bars(bars, 10_000)
    pd.testing.assert_frame_equal(bars, before)
    assert len(drawn) <= 10_000
    k = int(np.ceil(len(bars) / 10_000))
    first = bars.iloc[:k]
    assert drawn.index[0] == bars.index[0]
    assert drawn["open"].iloc[0] == first["open"].iloc[0]
    assert drawn["high"].iloc[0] == first["high"].max()
    assert drawn["low"].iloc[0] == first["low"].min()
    assert drawn["close"].iloc[0] == first["close"].iloc[-1]
    assert drawn["volume"].sum() == pytest.approx(bars["volume"].sum())
    assert drawn["high"].max() == bars["high"].max() and drawn["low"].min() == bars["low"].min()
    assert drawn.attrs["downsampled_from"] == len(bars)
    assert charts.downsample_bars(bars.iloc[:50], 100) is not None
    short = bars.iloc[:50]
    assert charts.downsample_bars(short, 100) is short


def test_downsample_series_keeps_extremes() -> None:
    values = pd.Series(np.sin(np.linspace(0, 40, 50_000)) + np.linspace(0, 1, 50_000))
    values.iloc[12_345] = -9.0
    thin = charts.downsample_series(values, 2_000)
    assert len(thin) <= 2_100
    assert thin.min() == -9.0 and thin.max() == values.max()
    assert thin.index[-1] == values.index[-1]


def test_price_figure_draws_candles_indicators_levels_and_plan(frame: pd.DataFrame) -> None:
    before = frame.copy()
    plan = {"entry": 101.0, "stop": 99.0, "target": 105.0, "r_multiple": 2.0, "side": "long",
            "setup": "gp_pullback"}
    fig = charts.price_figure(frame, plan=plan, interval="30m")
    pd.testing.assert_frame_equal(frame, before)
    assert len(_traces(fig, "candlestick")) == 1
    names = {t.name for t in fig.data}
    assert {"EMA 20", "golden pocket (61.8–65 %)", "RSI 14", "ATR %", "volume"} <= names
    texts = [a.text for a in fig.layout.annotations if a.text]
    assert any(t.startswith("entry 101.00") for t in texts)
    assert any(t == "stop 99.00" for t in texts)
    assert any("target 105.00 · R 2.00" in t for t in texts)
    assert any("1.272 ext" in t for t in texts), "Fibonacci extension levels are labelled"
    breaks = fig.layout.xaxis.rangebreaks
    assert any(b.pattern == "hour" for b in breaks), "nights are folded away for intraday bars"
    candles = _traces(fig, "candlestick")[0]
    # New York wall-clock time on the axis: the regular session opens at 09:30
    first = pd.Timestamp(candles.x[0])
    assert (first.hour, first.minute) >= (9, 30) and first.hour < 16


def test_price_figure_downsamples_long_history_only_for_drawing() -> None:
    bars = demo_bars("QQQ", "15m", 12_000)
    fig = charts.price_figure(bars, interval="15m", show_fib=False, show_indicators=False,
                              max_bars=5_000)
    candles = _traces(fig, "candlestick")[0]
    assert len(candles.x) <= 5_000
    assert "of 12,000 bars drawn" in fig.layout.title.text
    assert max(candles.high) == bars["high"].max()


def test_trade_markers_shape_by_direction_colour_by_outcome_and_hover() -> None:
    bars = demo_bars("AAPL", "1d", 120)
    ts = bars.index
    trades = pd.DataFrame({
        "symbol": ["AAPL", "AAPL", "AAPL"],
        "side": ["long", "short", "long"],
        "setup": ["momentum", "mean_reversion", "gp_pullback"],
        "entry_ts": [ts[10], ts[30], ts[60]],
        "entry_price": [100.0, 110.0, 105.0],
        "exit_ts": [ts[12] + pd.Timedelta(days=1), ts[31] + pd.Timedelta(days=1), None],
        "exit_price": [104.0, 112.0, None],
        "exit_reason": ["TARGET", "STOP", None],
        "realized_r": [2.0, -1.0, np.nan],
    })
    fig = charts.price_figure(bars, trades=trades, interval="1d", show_fib=False)
    entries = next(t for t in fig.data if t.name == "entries")
    exits = next(t for t in fig.data if t.name == "exits")
    assert list(entries.marker.symbol) == ["triangle-up", "triangle-down", "triangle-up"]
    assert list(entries.marker.color) == [charts.COLORS["win"], charts.COLORS["loss"],
                                          charts.COLORS["pending"]]
    assert "momentum" in entries.hovertext[0] and "TARGET" in entries.hovertext[0]
    assert "mean_reversion" in entries.hovertext[1] and "STOP" in entries.hovertext[1]
    assert len(exits.x) == 2, "an open trade has no exit marker"
    # the exit marker sits on the exit bar (exit_ts is that bar's close)
    assert pd.Timestamp(exits.x[0]) == pd.Timestamp(ts[12].date())


def test_daily_chart_x_values_and_hover_are_trading_dates() -> None:
    bars = demo_bars("AAPL", "1d", 60)
    fig = charts.price_figure(bars, interval="1d", show_fib=False, show_indicators=False)
    candles = _traces(fig, "candlestick")[0]
    shown = pd.DatetimeIndex(candles.x)
    # the bar labelled <date> 00:00 UTC sits at <date>, not at the New York evening before
    assert list(shown) == [pd.Timestamp(t.date()) for t in bars.index]
    assert (shown == shown.normalize()).all() and shown.tz is None
    assert (shown.dayofweek < 5).all(), "no bar drawn on a weekend"
    assert fig.layout.xaxis.hoverformat == "%Y-%m-%d"
    untold = charts.price_figure(bars, show_fib=False, show_indicators=False)
    assert list(_traces(untold, "candlestick")[0].x) == list(candles.x)


def test_intraday_chart_x_values_are_new_york_times(frame: pd.DataFrame) -> None:
    fig = charts.price_figure(frame, interval="30m", show_fib=False, show_indicators=False)
    shown = pd.DatetimeIndex(_traces(fig, "candlestick")[0].x)
    assert list(shown) == list(frame.index.tz_convert("America/New_York").tz_localize(None))
    assert fig.layout.xaxis.hoverformat.endswith("%H:%M ET")


def test_focus_zooms_to_a_window(frame: pd.DataFrame) -> None:
    start, end = frame.index[100], frame.index[140]
    fig = charts.price_figure(frame, focus=(start, end), interval="30m")
    lo, hi = (pd.Timestamp(v) for v in fig.layout.xaxis.range)
    assert lo == bar_times([start], "30m")[0] and hi == bar_times([end], "30m")[0]
    window = frame.loc[start:end]
    y0, y1 = fig.layout.yaxis.range
    assert y0 < window["low"].min() and y1 > window["high"].max()


def test_outcome_histogram_splits_wins_and_losses() -> None:
    fig = charts.outcome_histogram([-1.0, -1.0, 0.5, 2.0, np.nan], marker=0.25)
    names = [t.name for t in fig.data]
    assert names == ["losses (2)", "wins (2)"]
    assert any("expected R +0.25" in (a.text or "") for a in fig.layout.annotations)
    empty = charts.outcome_histogram([])
    assert not empty.data and "No known outcomes" in empty.layout.annotations[0].text


def test_equity_figure_drawdown_and_comparison() -> None:
    index = pd.date_range("2025-01-01", periods=5, freq="D", tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 120.0, 108.0], index=index)
    fig = charts.equity_figure(equity)
    drawdown = fig.data[1]
    assert list(np.round(drawdown.y, 2)) == [0.0, 0.0, -10.0, 0.0, -10.0]
    both = charts.equity_figure({"run a": equity, "run b": equity * 1.1})
    assert {t.name for t in both.data} >= {"run a", "run b"}


def test_small_charts_build_and_handle_empty_input() -> None:
    table = pd.DataFrame({"setup": ["momentum", "gp_pullback"], "Avg. R": [0.4, -0.2],
                          "# Trades": [10, 4]})
    bars = charts.breakdown_figure(table, category="setup", value="Avg. R", count="# Trades")
    assert list(bars.data[0].marker.color) == [charts.COLORS["win"], charts.COLORS["loss"]]
    curve = pd.DataFrame({"predicted": [0.3, 0.6], "observed": [0.25, 0.7], "count": [5, 20]})
    rel = charts.reliability_figure(curve)
    assert rel.data[0].name == "perfect" and list(rel.data[1].x) == [0.3, 0.6]
    grid = pd.DataFrame({"a": [1, 1, 2, 2], "b": [3, 4, 3, 4], "score": [0.1, -0.2, 0.3, 0.0]})
    heat = charts.heatmap_figure(grid, x="a", y="b", z="score")
    assert np.asarray(heat.data[0].z).shape == (2, 2)
    paths = charts.neighbor_paths_figure([np.array([0, 0.5, 1.2]), np.array([0, -0.4, -1.0])],
                                         titles=["a", "b"], outcomes=[1.2, -1.0])
    assert [t.line.color for t in paths.data] == [charts.COLORS["win"], charts.COLORS["loss"]]
    proj = charts.projection_figure(np.random.default_rng(0).normal(size=(50, 2)),
                                    outcome_r=np.linspace(-2, 2, 50), current=[0.0, 0.0])
    assert proj.data[-1].name == "current" and proj.data[-1].marker.symbol == "star"
    for empty in (charts.breakdown_figure(pd.DataFrame(), category="x", value="y"),
                  charts.reliability_figure(pd.DataFrame()),
                  charts.heatmap_figure(pd.DataFrame(), x="a", y="b", z="c"),
                  charts.neighbor_paths_figure([]),
                  charts.projection_figure(np.zeros((0, 2))),
                  charts.equity_figure(pd.Series(dtype=float)),
                  charts.price_figure(demo_bars("AAPL", "1d", 5).iloc[:0])):
        assert isinstance(empty, go.Figure) and empty.layout.annotations
