"""swing_core.views.perf (shaping the performance history for the page) and
swing_core.charts.perf (its figures): aggregation rules by hand, a round trip through the
database (SQLite; PostgreSQL when SWING_TEST_DATABASE_URL is set), empty states."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import perf
from swing_core.charts import perf as perf_charts
from swing_core.models import LLMCall
from swing_core.views import perf as perf_views

T0 = pd.Timestamp("2026-11-27 15:00", tz="UTC")


def timing(ts: pd.Timestamp, operation: str, count: int, mean: float, p50: float, p95: float,
           mx: float, process: str = "app:1") -> dict:
    return dict(ts=ts, process=process, operation=operation, count=count, mean_ms=mean,
                p50_ms=p50, p95_ms=p95, max_ms=mx)


def test_latency_series_weights_by_calls_and_keeps_mean_and_max_exact() -> None:
    rows = pd.DataFrame([
        timing(T0 + pd.Timedelta(seconds=10), "analyze", 30, 10.0, 9.0, 20.0, 25.0),
        timing(T0 + pd.Timedelta(seconds=40), "analyze", 10, 30.0, 29.0, 40.0, 90.0, "cli:2"),
        timing(T0 + pd.Timedelta(minutes=6), "analyze", 5, 12.0, 12.0, 13.0, 14.0),
        timing(T0 + pd.Timedelta(seconds=20), "fetch", 2, 5.0, 5.0, 6.0, 6.0),
    ])
    out = perf_views.latency_series(rows, freq="5min")
    assert list(out.columns) == perf_views.LATENCY_COLUMNS
    first = out[(out["ts"] == T0) & (out["operation"] == "analyze")].iloc[0]
    assert first["count"] == 40
    assert first["mean_ms"] == pytest.approx((30 * 10 + 10 * 30) / 40)  # exact
    assert first["p50_ms"] == pytest.approx((30 * 9 + 10 * 29) / 40)  # call-weighted
    assert first["p95_ms"] == pytest.approx((30 * 20 + 10 * 40) / 40)
    assert first["max_ms"] == 90.0
    later = out[out["ts"] == T0 + pd.Timedelta(minutes=5)].iloc[0]
    assert later["count"] == 5 and later["p95_ms"] == 13.0  # one row: exact
    assert set(out["operation"]) == {"analyze", "fetch"}


def test_latency_table_one_row_per_operation_slowest_first() -> None:
    rows = pd.DataFrame([
        timing(T0, "analyze", 30, 10.0, 9.0, 20.0, 25.0),
        timing(T0 + pd.Timedelta(minutes=1), "analyze", 10, 30.0, 29.0, 40.0, 90.0, "cli:2"),
        timing(T0, "fetch", 4, 50.0, 40.0, 80.0, 99.0),
    ])
    table = perf_views.latency_table(rows)
    assert list(table["operation"]) == ["fetch", "analyze"]
    analyze = table.set_index("operation").loc["analyze"]
    assert analyze["calls"] == 40 and analyze["processes"] == 2
    assert analyze["total_s"] == pytest.approx((300 + 300) / 1000)
    assert analyze["last_seen"] == T0 + pd.Timedelta(minutes=1)


def test_memory_series_keeps_the_most_recent_processes() -> None:
    rows = []
    for p in range(10):
        for s in range(6):
            rows.append(dict(ts=T0 + pd.Timedelta(seconds=10 * s + p), process=f"cli:{p}",
                             rss_mb=100.0 + p + s, peak_rss_mb=110.0 + p + s, cpu_pct=10.0))
    out = perf_views.memory_series(pd.DataFrame(rows), freq="1min", max_processes=3)
    assert sorted(out["process"].unique()) == ["cli:7", "cli:8", "cli:9"]
    nine = out[out["process"] == "cli:9"].iloc[0]
    assert nine["rss_mb"] == 100.0 + 9 + 5  # the largest sample in the bucket
    assert perf_views.memory_series(pd.DataFrame(columns=rows[0])).empty


def test_slow_query_groups() -> None:
    long = "SELECT *\n  FROM bars\n WHERE symbol = ?  " + "AND 1 = 1 " * 30
    rows = pd.DataFrame([
        dict(ts=T0, process="app:1", duration_ms=120.0, statement=long, dialect="sqlite"),
        dict(ts=T0 + pd.Timedelta(minutes=2), process="cli:2", duration_ms=480.0,
             statement=long, dialect="sqlite"),
        dict(ts=T0, process="app:1", duration_ms=200.0, statement="DELETE FROM bars",
             dialect="sqlite"),
    ])
    groups = perf_views.slow_query_groups(rows)
    assert list(groups["max_ms"]) == [480.0, 200.0]
    top = groups.iloc[0]
    assert top["count"] == 2 and top["median_ms"] == 300.0 and top["processes"] == 2
    assert top["preview"].startswith("SELECT * FROM bars WHERE symbol = ?")
    assert len(top["preview"]) <= 110 and top["preview"].endswith("…")
    assert top["id"] == perf_views.statement_id(long) and len(top["id"]) == 12
    assert top["statement"] == long  # the full text, for EXPLAIN


def test_cache_table_from_counters_and_llm_calls() -> None:
    counters = pd.DataFrame([
        dict(ts=T0, process="app:1", cache="bars", hits=6, misses=2),
        dict(ts=T0, process="cli:2", cache="bars", hits=2, misses=0),
        dict(ts=T0, process="app:1", cache="patterns", hits=0, misses=0),
    ])
    calls = pd.DataFrame({"outcome": ["cache_hit", "ok", "cache_hit", "timeout"]})
    table = perf_views.cache_table(counters, calls).set_index("cache")
    assert table.at["bars", "hit_rate"] == pytest.approx(0.8)
    assert np.isnan(table.at["patterns", "hit_rate"])  # no lookups: no rate, not 0 %
    assert (table.at["llm", "hits"], table.at["llm", "misses"]) == (2, 2)
    assert table.at["llm", "source"] == "llm_calls table"
    # When the engine counts its LLM cache itself, the counters win (no double counting).
    with_llm = pd.concat([counters, pd.DataFrame([dict(ts=T0, process="app:1", cache="llm",
                                                       hits=1, misses=9)])])
    table = perf_views.cache_table(with_llm, calls).set_index("cache")
    assert table.at["llm", "hits"] == 1 and table.at["llm", "source"] == "perf counters"
    assert perf_views.cache_table(counters.iloc[:0]).empty


def test_llm_daily_by_utc_day_and_outcome() -> None:
    calls = pd.DataFrame([
        dict(ts=pd.Timestamp("2026-11-27 23:59", tz="UTC"), tokens_in=100, tokens_out=20,
             cost_usd=0.01, latency_ms=500.0, outcome="ok"),
        dict(ts=pd.Timestamp("2026-11-28 00:01", tz="UTC"), tokens_in=200, tokens_out=40,
             cost_usd=0.02, latency_ms=700.0, outcome="ok"),
        dict(ts=pd.Timestamp("2026-11-28 01:00", tz="UTC"), tokens_in=0, tokens_out=0,
             cost_usd=0.0, latency_ms=2.0, outcome="cache_hit"),
        dict(ts=pd.Timestamp("2026-11-28 02:00", tz="UTC"), tokens_in=0, tokens_out=0,
             cost_usd=0.0, latency_ms=10_000.0, outcome="timeout"),
        dict(ts=pd.Timestamp("2026-11-28 03:00", tz="UTC"), tokens_in=0, tokens_out=0,
             cost_usd=0.0, latency_ms=1.0, outcome="budget"),
    ])
    daily = perf_views.llm_daily(calls)
    assert list(daily["day"]) == [pd.Timestamp("2026-11-27", tz="UTC"),
                                  pd.Timestamp("2026-11-28", tz="UTC")]
    second = daily.iloc[1]
    assert (second["rows"], second["api_calls"], second["cache_hits"], second["failures"],
            second["skipped"]) == (4, 2, 1, 1, 1)
    assert second["cost_usd"] == pytest.approx(0.02)
    assert second["mean_latency_ms"] == pytest.approx((700 + 10_000) / 2)  # sent requests only
    totals = perf_views.llm_totals(daily)
    assert totals["cost_usd"] == pytest.approx(0.03) and totals["tokens_in"] == 300


def test_bucket_and_role() -> None:
    assert perf_views.bucket_for(timedelta(hours=1)) == "1min"
    assert perf_views.bucket_for(timedelta(days=7)) == "1h"
    assert perf_views.process_role("worker:123") == "worker"
    assert perf_views.process_role(None) == ""


def test_plan_text() -> None:
    sqlite = pd.DataFrame({"id": [3, 7, 12], "parent": [0, 3, 0], "notused": [0, 0, 0],
                           "detail": ["SEARCH bars USING INDEX ix (symbol=?)", "SCAN x",
                                      "USE TEMP B-TREE FOR ORDER BY"]})
    assert perf_views.plan_text(sqlite).splitlines() == [
        "└─ SEARCH bars USING INDEX ix (symbol=?)", "   └─ SCAN x",
        "└─ USE TEMP B-TREE FOR ORDER BY"]
    pg = pd.DataFrame({"QUERY PLAN": ["Index Scan using ix on bars", "  Index Cond: (x = $1)"]})
    assert perf_views.plan_text(pg) == "Index Scan using ix on bars\n  Index Cond: (x = $1)"


def test_load_overview_round_trip(db_engine: sa.Engine) -> None:
    registry, sampler = perf.PerfRegistry(), perf.MemorySampler()
    recorder = perf.PerfRecorder(db_engine, process="cli:42", registry=registry, sampler=sampler,
                                 capture_slow_queries=False, memory_interval_s=None,
                                 at_exit=False)
    perf.set_enabled(True)
    for ms in (5.0, 7.0, 9.0, 30.0):
        registry.record("analyze", ms)
    registry.cache_hit("bars", 3)
    registry.cache_miss("bars")
    registry.add_slow_query(perf.SlowQueryRecord(datetime.now(UTC), 150.0,
                                                 "SELECT * FROM bars", db_engine.dialect.name))
    assert recorder.flush().error is None
    now = datetime.now(UTC)
    with db_engine.begin() as conn:
        conn.execute(sa.insert(LLMCall.__table__), [
            dict(ts=now - timedelta(minutes=1), model="m", tokens_in=10, tokens_out=5,
                 cost_usd=0.5, latency_ms=100.0, outcome="ok"),
            dict(ts=now - timedelta(days=40), model="m", tokens_in=1, tokens_out=1,
                 cost_usd=9.0, latency_ms=1.0, outcome="ok")])

    view = perf_views.load_overview(db_engine, window=timedelta(hours=1))
    assert not view.empty and view.roles == ("cli",)
    table = view.latency_table.set_index("operation")
    assert table.at["analyze", "calls"] == 4
    assert table.at["analyze", "mean_ms"] == pytest.approx(12.75)
    assert table.at["analyze", "max_ms"] == 30.0
    assert view.caches.set_index("cache").at["bars", "hit_rate"] == pytest.approx(0.75)
    assert view.slow_groups.iloc[0]["statement"] == "SELECT * FROM bars"
    assert len(view.memory) == 1  # one sample taken at flush (no sampler thread)
    assert view.llm_totals["cost_usd"] == pytest.approx(0.5)  # the old call is out of window
    assert view.rows["timings"] == 1

    other = perf_views.load_overview(db_engine, window=timedelta(hours=1), role="app")
    assert other.empty and other.latency.empty and other.roles == ("cli",)
    past = perf_views.load_overview(db_engine, window=timedelta(hours=1),
                                    now=now - timedelta(days=2))
    assert past.empty and past.llm_daily.empty


def test_live_status_does_not_add_samples() -> None:
    sampler = perf.get_sampler()
    before = len(sampler.history())
    live = perf_views.live_status(window_s=60)
    assert live.rss_mb > 10 and live.peak_rss_mb >= live.rss_mb
    assert len(sampler.history()) == before
    assert list(live.operations.columns) == perf.TIMING_COLUMNS


# --------------------------------------------------------------------------- figures


def test_figures_draw_data_and_say_when_empty() -> None:
    latency = perf_views.latency_series(pd.DataFrame([
        timing(T0, "analyze", 3, 10.0, 9.0, 20.0, 25.0),
        timing(T0 + pd.Timedelta(minutes=5), "fetch", 3, 1000.0, 900.0, 4000.0, 5000.0),
    ]), freq="5min")
    fig = perf_charts.latency_figure(latency)
    assert [t.name for t in fig.data] == ["analyze p95", "analyze p50", "fetch p95", "fetch p50"]
    assert fig.layout.yaxis.type == "log"  # 9 ms .. 4 s
    # Drawn in New York time: 15:00 UTC is 10:00 in New York.
    assert pd.Timestamp(fig.data[0].x[0]) == pd.Timestamp("2026-11-27 10:00")
    windowed = perf_charts.latency_figure(latency, window=(T0 - pd.Timedelta(hours=1), T0))
    assert [pd.Timestamp(x) for x in windowed.layout.xaxis.range] == [
        pd.Timestamp("2026-11-27 09:00"), pd.Timestamp("2026-11-27 10:00")]  # New York
    only = perf_charts.latency_figure(latency, operations=["fetch"])
    assert {t.legendgroup for t in only.data} == {"fetch"}

    empty = [perf_charts.latency_figure(pd.DataFrame(columns=perf_views.LATENCY_COLUMNS)),
             perf_charts.memory_figure(pd.DataFrame()), perf_charts.cache_figure(pd.DataFrame()),
             perf_charts.llm_cost_figure(pd.DataFrame()),
             perf_charts.selfbench_figure(pd.DataFrame())]
    for fig in empty:
        assert not fig.data and fig.layout.annotations[0].text

    memory = perf_views.memory_series(pd.DataFrame([dict(
        ts=T0, process="app:1", rss_mb=200.0, peak_rss_mb=210.0, cpu_pct=3.0)]))
    assert perf_charts.memory_figure(memory).data[0].name == "app:1"
    series = perf_views.cache_series(pd.DataFrame([dict(ts=T0, process="a", cache="bars",
                                                        hits=3, misses=1)]))
    assert list(perf_charts.cache_figure(series).data[0].y) == [75.0]
    daily = perf_views.llm_daily(pd.DataFrame([dict(ts=T0, tokens_in=10, tokens_out=5,
                                                    cost_usd=0.1, latency_ms=1.0,
                                                    outcome="ok")]))
    fig = perf_charts.llm_cost_figure(daily)
    assert list(fig.data[0].y) == [0.1] and list(fig.data[1].y) == [15]
