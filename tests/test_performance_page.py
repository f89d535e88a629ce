"""The Performance page: renders on an empty history, its live panel (an ``st.fragment`` with
``run_every``) picks up new figures on the next refresh, slow queries and their plan, LLM cost
per day, the self-benchmark panel, and a database that cannot be opened.

Streamlit's AppTest runs the real app in-process (demo data, a fresh data folder per test), so
the app's recorder and this test share the process registry: what the test times is what the
page shows after "Refresh now" (which writes this process's figures at once, instead of within
the 15 s flush interval).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from apptest_support import assert_clean, demo_app
from apptest_support import open_page as open_app_page
from streamlit.testing.v1 import AppTest

from swing_core import db, market, perf
from swing_core.models import LLMCall
from swing_core.perf import selfbench, storage

PAGE = "pages/performance.py"


def _stop_recorders(under: Path) -> None:
    """Stop the recorders this test's app started (their database lives in ``under``)."""
    for key, recorder in list(storage._RECORDERS.items()):
        if str(under) in str(recorder.engine.url):
            recorder.stop(flush=False)
            storage._RECORDERS.pop(key, None)


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"],
                  unset=("SWING_PERF", "SWING_SLOW_QUERY_MS"))
    perf.set_enabled(True)
    perf.get_registry().reset()  # figures of earlier tests in this process are not ours
    yield at
    _stop_recorders(tmp_path)
    perf.get_registry().reset()


def open_page(at: AppTest) -> AppTest:
    assert_clean(open_app_page(at, PAGE))
    return at


def refresh(at: AppTest) -> AppTest:
    """What the fragment does on its next tick, made immediate: write and reload."""
    at.button(key="perf_refresh_now").click().run()
    assert_clean(at)
    return at


def shown(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table showing all ``columns`` (st.dataframe keys are not kept without a
    selection, so tables are found by what they show)."""
    for frame in at.dataframe:
        if set(columns) <= set(frame.value.columns):
            return frame.value
    shown_columns = [list(f.value.columns) for f in at.dataframe]
    raise AssertionError(f"no table with {columns}: {shown_columns}")


def infos(at: AppTest) -> str:
    return " | ".join(i.value for i in at.info)


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_empty_history_says_what_to_do(app: AppTest) -> None:
    at = open_page(app)
    assert at.title[0].value == "Performance"
    assert "analyze a symbol on the Signal Explorer" in infos(at)
    assert "No statement slower than" in infos(at)
    assert "No LLM calls in this window" in infos(at)
    assert any("refreshes every 10 s" in c.value for c in at.caption)
    assert metric(at, "Timed calls") == "0"
    guide = shown(at, "guide_before", "workload")
    assert list(guide["guide_before"]) == [5.2, 2.1, 8.5, 45.0, 350.0]
    assert list(guide["guide_after"]) == [1.8, 0.3, 1.2, 12.0, 120.0]


def test_live_panel_updates_with_new_timings(app: AppTest) -> None:
    at = open_page(app)
    assert metric(at, "Timed calls") == "0"
    for i in range(40):
        with perf.timed("test_op"):
            time.sleep(0.001 + (i % 4) * 0.001)
    with perf.timed("test_other"):
        time.sleep(0.002)
    perf.cache_hit("unit_test", 3)
    perf.cache_miss("unit_test")
    market.CACHE_STATS.incr("hits", 2)  # the bar cache's own counter, mirrored as "bars"
    market.CACHE_STATS.incr("misses")

    refresh(at)
    # The app's own work is timed too (pattern priors of the Home page's watchlist).
    assert int(metric(at, "Timed calls").replace(",", "")) >= 41
    table = shown(at, "operation", "calls", "total_s").set_index("operation")
    assert table.at["test_op", "calls"] == 40 and table.at["test_other", "calls"] == 1
    assert 1.0 <= table.at["test_op", "p50_ms"] <= table.at["test_op", "p95_ms"]
    assert table.at["test_op", "p95_ms"] <= table.at["test_op", "max_ms"]
    assert at.get("plotly_chart"), "latency and memory charts are drawn"
    caches = shown(at, "cache", "hit_rate", "source").set_index("cache")
    assert caches.at["unit_test", "hits"] == 3 and caches.at["unit_test", "misses"] == 1
    assert caches.at["unit_test", "hit_rate"] == pytest.approx(0.75)
    assert caches.at["bars", "hits"] >= 2 and caches.at["bars", "misses"] >= 1
    assert metric(at, "Bar cache hit rate").endswith("%")

    with perf.timed("test_op"):  # the next tick shows the next call
        time.sleep(0.001)
    refresh(at)
    table = shown(at, "operation", "calls", "total_s").set_index("operation")
    assert table.at["test_op", "calls"] == 41
    assert "No timings yet" not in infos(at)


def test_slow_query_table_and_its_plan(app: AppTest) -> None:
    at = open_page(app)
    statement = "SELECT * FROM bars WHERE symbol = ? AND interval = ? ORDER BY ts"
    perf.get_registry().add_slow_query(perf.SlowQueryRecord(
        datetime.now(UTC), 250.0, statement, "sqlite"))
    perf.get_registry().add_slow_query(perf.SlowQueryRecord(
        datetime.now(UTC), 150.0, statement, "sqlite"))
    refresh(at)
    slow = shown(at, "preview", "max_ms")
    row = slow[slow["preview"].str.startswith("SELECT * FROM bars")].iloc[0]
    assert row["count"] == 2 and row["max_ms"] == 250.0
    choice = at.selectbox(key="perf_explain_choice")
    labels = list(choice.options)  # "250 ms · ×2 · SELECT * FROM bars …"
    choice.select_index(next(i for i, o in enumerate(labels) if "FROM bars" in o)).run()
    at.button(key="perf_explain_button").click().run()
    assert_clean(at)
    plans = [c.value for c in at.code if "bars" in c.value and "└─" in c.value]
    assert plans, [c.value for c in at.code]
    assert "USING INDEX" in plans[0] or "PRIMARY KEY" in plans[0], plans[0]


def test_explain_refusal_is_an_error_with_what_to_do(app: AppTest) -> None:
    at = open_page(app)
    perf.get_registry().add_slow_query(perf.SlowQueryRecord(
        datetime.now(UTC), 300.0, "VACUUM", "sqlite"))
    refresh(at)
    at.button(key="perf_explain_button").click().run()
    assert not at.exception
    assert any("not VACUUM" in e.value and "SQL console" in e.value for e in at.error)


def test_llm_calls_tokens_and_cost_per_day(app: AppTest) -> None:
    at = open_page(app)
    engine = db.get_engine()
    now = datetime.now(UTC)
    rows = [
        dict(ts=now - timedelta(hours=30), model="gpt-4o-mini", tokens_in=1000, tokens_out=200,
             cost_usd=0.0003, latency_ms=800.0, outcome="ok"),
        dict(ts=now - timedelta(minutes=5), model="gpt-4o-mini", tokens_in=1500, tokens_out=300,
             cost_usd=0.0004, latency_ms=900.0, outcome="ok"),
        dict(ts=now - timedelta(minutes=4), model="gpt-4o-mini", tokens_in=0, tokens_out=0,
             cost_usd=0.0, latency_ms=3.0, outcome="cache_hit"),
        dict(ts=now - timedelta(minutes=3), model="gpt-4o-mini", tokens_in=0, tokens_out=0,
             cost_usd=0.0, latency_ms=10000.0, outcome="timeout"),
    ]
    with engine.begin() as conn:
        conn.execute(sa.insert(LLMCall.__table__), rows)
    at.selectbox(key="perf_window").select("Last 7 days").run()
    assert_clean(at)
    daily = shown(at, "day", "api_calls", "cost_usd")
    assert daily["api_calls"].sum() == 3 and daily["cache_hits"].sum() == 1
    assert daily["failures"].sum() == 1
    assert daily["tokens_in"].sum() == 2500
    assert daily["cost_usd"].sum() == pytest.approx(0.0007)
    assert metric(at, "Requests") == "3"
    caches = shown(at, "cache", "hit_rate", "source").set_index("cache")
    assert caches.at["llm", "hits"] == 1 and caches.at["llm", "misses"] == 3


def _report() -> selfbench.SelfBenchReport:
    guide = [{"key": r.key, "swingdesk": v} for r, v in zip(
        selfbench.GUIDE_ROWS, [0.03, 0.05, 0.04, 0.2, 7.5], strict=True)]
    doc = {"benchmark": "run_all", "mode": "quick", "guide": guide, "seconds": 31.0,
           "targets": {"guide": {"signal_generation_s": {"value": 0.03, "target": "<= 1.8",
                                                         "pass": True}},
                       "memory": {"peak_above_baseline_mb": {"value": 7.5, "target": "<= 120.0",
                                                             "pass": True}},
                       "bench_perf_overhead --rounds 200": {"overhead_pct_cpu": {
                           "value": 3.1, "target": "<= 2.0", "pass": False}}},
           "benches": {}}
    return selfbench.parse_report(json.loads(json.dumps(doc)))


def test_selfbench_report_against_the_guide(app: AppTest) -> None:
    at = open_page(app)
    at.session_state["perf_selfbench_report"] = _report()
    at.run()
    assert_clean(at)
    guide = shown(at, "swingdesk", "x_vs_guide_after").set_index("operation")
    assert guide.at["Signal generation", "swingdesk"] == 0.03
    assert guide.at["Signal generation", "x_vs_guide_after"] == pytest.approx(60.0)
    assert bool(guide.at["Memory usage (100 signals)", "passed"]) is True
    targets = shown(at, "benchmark", "figure", "passed")
    assert list(targets["passed"]) == [True, True, False]
    assert any("2 of 3 targets met" in c.value for c in at.caption)


def test_selfbench_button_starts_a_job_that_can_be_cancelled(app: AppTest) -> None:
    at = open_page(app)
    at.button(key="perf_selfbench_run").click().run()
    assert not at.exception
    job = at.session_state["perf_selfbench_job"]
    assert job is not None and not job.poll().finished
    assert at.button(key="perf_selfbench_run").disabled
    at.button(key="perf_selfbench_cancel").click().run()
    assert not at.exception
    assert any("cancelled" in e.value for e in at.error)
    assert at.session_state["perf_selfbench_job"] is None
    assert not at.button(key="perf_selfbench_run").disabled


def test_unreachable_database_is_an_error_with_what_to_do(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    monkeypatch.setenv("SWING_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:9/none")
    open_app_page(at, PAGE)
    assert any("SWING_DATABASE_URL" in e.value for e in at.error)
    assert at.title[0].value == "Performance"
