"""The look-ahead check against planted leaks of one bar: each must FAIL the check with a
message naming the column and the first differing bar; the honest engine must pass.

Leaks planted with monkeypatch, at the boundary where each kind enters the engine:
(a) an indicator shifted one bar into the future, (b) outcomes known one bar early (the
pattern priors' as-of filter), (c) a higher-timeframe bar used before it closed, (d) a
benchmark value from a later bar (and a coarser benchmark aligned by its open time).
The former check (3 cuts, rows with a plan only, no context) passed (a) and (b) on the daily
series here, and could not see (c) or (d) at all.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from real_bars import daily_bars

from swing_core import features, frame, indicators
from swing_core.backtest import BacktestConfig, lookahead, prepare_symbol, trim_bars
from swing_core.backtest.core import core_from_passes
from swing_core.frame import FrameContext
from swing_core.patterns import index as pattern_index

DAY = pd.Timedelta("1D")


@pytest.fixture(scope="module")
def daily() -> dict[str, pd.DataFrame]:
    """Two real-shaped daily series (business days, 2009-2012) on which the former check (3
    cuts at 0.5 / 0.7 / 0.9, rows with a plan only) reported "passed" for leaks (a) and (b)."""
    return {s: daily_bars(s, start="2009-01-02", end="2012-12-31") for s in ("FFF", "HHH")}


def _config(bars: pd.DataFrame) -> BacktestConfig:
    return BacktestConfig(interval="1d", start=bars.index[250])


def _check(bars: dict[str, pd.DataFrame]) -> lookahead.LookaheadReport:
    """The check with its default cuts on a daily run of ``bars`` (signals from bar 250)."""
    config = _config(next(iter(bars.values())))
    trimmed = {s: trim_bars(b, symbol=s, config=config) for s, b in bars.items()}
    return lookahead.lookahead_check(trimmed, config=config)


_MESSAGE = re.compile(r"^cut (?P<cut>\S+): (?P<where>.+) column '(?P<column>\w+)': \d+ of \d+ "
                      r"differ, first at (?:(?P<symbol>[A-Z]+) )?(?P<bar>\S+): (?P<cut_value>.+) "
                      r"with data up to the cut vs (?P<full_value>.+) with all data"
                      r"(?: \(and at (?P<later>\d+) later cuts\))?$")


def _failures(report: lookahead.LookaheadReport, column: str) -> list[dict[str, str]]:
    """The parsed mismatches naming ``column``."""
    assert not report.ok, "the check passed a planted leak"
    found = [m.groupdict() for m in map(_MESSAGE.match, report.mismatches) if m]
    return [f for f in found if f["column"] == column]


# --------------------------------------------------------------------------- (a) indicators


@pytest.mark.parametrize(("function", "column"), [("rsi_wilder", "rsi14"),
                                                   ("atr_wilder", "atr14")])
def test_an_indicator_one_bar_ahead_fails(daily, monkeypatch, function, column) -> None:
    honest = getattr(indicators, function)
    monkeypatch.setattr(indicators, function, lambda *a, **k: honest(*a, **k).shift(-1))
    report = _check(daily)
    failures = _failures(report, column)
    assert failures, report.mismatches[:5]
    first = failures[0]
    # the first differing bar is the cut bar itself: its value is unknown with the data cut
    assert first["where"] == "FFF frame" and first["bar"] == first["cut"] == report.cuts[0]
    assert first["cut_value"] == "nan" and first["full_value"] != "nan"
    assert int(first["later"]) >= len(report.cuts) - 2  # at (nearly) every cut


# --------------------------------------------------------------------------- (b) outcomes


def test_an_outcome_known_one_bar_early_fails(daily, monkeypatch) -> None:
    honest = pattern_index._asof_ns

    def one_bar_late(asof, m):  # outcomes with exit_ts up to one bar after as-of count
        return honest(asof, m) + DAY.value

    monkeypatch.setattr(pattern_index, "_asof_ns", one_bar_late)
    report = _check(daily)
    failures = [f for f in (m.groupdict() for m in map(_MESSAGE.match, report.mismatches) if m)
                if f["where"] == "priors"]
    assert not report.ok and failures, report.mismatches[:5]
    first = failures[0]
    assert first["column"] in {"prior_n", "prior_win_rate", "prior_win_rate_raw", "prior_avg_r",
                               "expected_r", "confidence", "prior_scope"}
    # the signal at the cut bar, the only one whose as-of is a bar before that outcome's exit
    assert first["bar"] == first["cut"] and first["symbol"] in daily
    assert not any(" frame column " in m for m in report.mismatches)  # frames are honest


# --------------------------------------------------------------------------- intraday context


def _session_bars(days: int, seed: int, minutes: int = 15) -> pd.DataFrame:
    """Regular-session bars (09:30-16:00 New York) of a random walk with drifting trends."""
    rng = np.random.default_rng(seed)
    per_day = 390 // minutes
    stamps = []
    for day in pd.bdate_range("2024-01-02", periods=days):
        open_ = pd.Timestamp(day.date()).tz_localize("America/New_York") + pd.Timedelta("9h30min")
        stamps.extend(open_ + pd.Timedelta(minutes=minutes * i) for i in range(per_day))
    index = pd.DatetimeIndex(stamps).tz_convert("UTC")
    n = len(index)
    drift = np.repeat(rng.normal(0, 0.002, n // 40 + 1), 40)[:n]
    close = 100 * np.exp(np.cumsum(drift + rng.normal(0, 0.003, n)))
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.002, n)))
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": rng.integers(1_000, 50_000, n).astype(float)}, index=index)


def _resample(bars: pd.DataFrame, rule: str, interval: str, offset: str | None = None
              ) -> pd.DataFrame:
    local = bars.tz_convert("America/New_York")
    out = local.resample(rule, offset=offset, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    out = out.dropna().tz_convert("UTC")
    out.attrs["interval"] = interval
    return out


@pytest.fixture(scope="module")
def intraday() -> dict[str, object]:
    """30m bars of one symbol with its 15m and 1h bars, a 30m and a daily benchmark."""
    bars15 = _session_bars(60, seed=5)
    other15 = _session_bars(60, seed=6)
    return {"30m": _resample(bars15, "30min", "30m"), "15m": bars15,
            "1h": _resample(bars15, "1h", "1h", offset="30min"),
            "sector": _resample(other15, "30min", "30m"),
            "spy_daily": _resample(other15, "1D", "1d")}


def _intraday_check(intraday, *, market: str = "sector") -> lookahead.LookaheadReport:
    bars = intraday["30m"]
    config = BacktestConfig(interval="30m", start=bars.index[200])
    context = FrameContext(sector=intraday["sector"], market=intraday[market],
                           mtf={"15m": intraday["15m"], "1h": intraday["1h"]})
    return lookahead.lookahead_check({"AAA": trim_bars(bars, symbol="AAA", config=config)},
                                     config=config, context={"AAA": context})


def _label_aligned_trend(base_index, base_interval, other_trend, other_interval):
    """The other timeframe's label from its bar *opened* by the base bar (before it closed)."""
    position = features.last_closed_position(base_index, None, other_trend.index, None)
    labels = other_trend.to_numpy(dtype=object)
    return np.where(position >= 0, labels[np.maximum(position, 0)], "").astype(object)


def test_a_higher_timeframe_bar_used_before_it_closed_fails(intraday, monkeypatch) -> None:
    monkeypatch.setattr(frame, "higher_timeframe_trend", _label_aligned_trend)
    failures = _failures(_intraday_check(intraday), "mtf_1h")
    assert failures and failures[0]["where"] == "AAA frame"
    first = failures[0]
    assert first["bar"] == first["cut"]  # the 30m bar in the first half of a forming hour
    assert pd.Timestamp(first["bar"]).tz_convert("America/New_York").minute == 30
    assert first["cut_value"] != first["full_value"]


def test_a_benchmark_value_from_a_later_bar_fails(intraday, monkeypatch) -> None:
    honest = frame.relative_strength

    def next_bar(close, benchmark_close, **kw):
        later = None if benchmark_close is None else benchmark_close.shift(-1)
        return honest(close, later, **kw)

    monkeypatch.setattr(frame, "relative_strength", next_bar)
    report = _intraday_check(intraday)
    failures = _failures(report, "rs_sector")
    assert failures and failures[0]["where"] == "AAA frame"
    assert failures[0]["bar"] == failures[0]["cut"] == report.cuts[0]
    assert failures[0]["cut_value"] != failures[0]["full_value"]


def test_a_daily_benchmark_aligned_by_open_time_fails(intraday, monkeypatch) -> None:
    honest = frame.relative_strength

    def by_open_label(close, benchmark_close, *, lookback, **_):  # the former alignment
        return honest(close, benchmark_close, lookback=lookback)

    monkeypatch.setattr(frame, "relative_strength", by_open_label)
    failures = _failures(_intraday_check(intraday, market="spy_daily"), "rs_spy")
    assert failures and failures[0]["where"] == "AAA frame"
    # every bar of the cut's day saw that day's daily close: the first one is the day's first
    bar, cut = (pd.Timestamp(failures[0][k]).tz_convert("America/New_York")
                for k in ("bar", "cut"))
    assert bar.date() == cut.date() and (bar.hour, bar.minute) == (9, 30) and bar <= cut


# --------------------------------------------------------------------------- honest engine


def test_the_honest_engine_passes_on_real_shaped_daily_bars(daily) -> None:
    report = _check(daily)
    assert report.ok, report.mismatches[:5]
    assert len(report.cuts) >= 12
    assert report.compared["priors"] > 100 and report.compared["trades"] > 100
    assert report.compared["frame_rows"] > 10_000


def test_the_honest_engine_passes_with_intraday_context(intraday) -> None:
    report = _intraday_check(intraday, market="spy_daily")
    assert report.ok, report.mismatches[:5]
    assert len(report.cuts) >= 12


def test_cuts_include_bars_with_a_position_open(daily) -> None:
    config = _config(daily["FFF"])
    bars = {"FFF": trim_bars(daily["FFF"], symbol="FFF", config=config)}
    full = core_from_passes([prepare_symbol(bars["FFF"], symbol="FFF", config=config)], config,
                            prior_fn=None, library=None)
    report = lookahead.lookahead_check(bars, config=config, full=full)
    assert report.ok, report.mismatches[:5]
    held = full.trades[full.trades["qty"] > 0]
    index = bars["FFF"].index
    open_at = {index[p] for f, x in zip(held["fill_pos"], held["exit_pos"], strict=True)
               if x > f for p in range(f, x)}
    assert sum(pd.Timestamp(c) in open_at for c in report.cuts) >= 3
