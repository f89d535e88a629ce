"""swing_core.perf: statistics vs numpy, switch, thread safety, slow queries, persistence,
retention and EXPLAIN, on SQLite always and PostgreSQL when SWING_TEST_DATABASE_URL is set."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, models, perf
from swing_core.errors import DatabaseError

ROOT = Path(__file__).resolve().parents[1]

# A statement that SQLite needs a few hundred milliseconds for (counts to 2 million).
SLOW_SQLITE = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < :n) "
               "SELECT count(*) FROM c")
SLOW_N = 2_000_000


@pytest.fixture(autouse=True)
def _clean_process_registry() -> Iterator[None]:
    """Each test starts with instrumentation on and an empty process registry."""
    perf.set_enabled(True)
    perf.get_registry().reset()
    yield
    perf.set_enabled(True)
    perf.get_registry().reset()


@pytest.fixture
def hooks_off(db_engine: sa.Engine) -> Iterator[sa.Engine]:
    """``db_engine``, with any slow-query hooks a test installs removed afterwards (the
    PostgreSQL engine is shared by the whole session)."""
    yield db_engine
    perf.remove_slow_query_hooks(db_engine)


def _slow_statement(engine: sa.Engine) -> tuple[sa.TextClause, dict[str, object]]:
    if engine.dialect.name == "postgresql":
        return sa.text("SELECT pg_sleep(:s)"), {"s": 0.2}
    return sa.text(SLOW_SQLITE), {"n": SLOW_N}


# --------------------------------------------------------------------------- statistics


def test_percentiles_of_known_samples() -> None:
    registry = perf.PerfRegistry()
    for ms in range(1, 101):  # 1..100 ms
        registry.record("analyze", float(ms))
    got = registry.stats("analyze", window_s=None)
    # Type 7 (numpy "linear"): rank (n-1)q, so p50 = 50.5 and p95 = 95 + 0.05 * (96 - 95).
    assert got.count == 100
    assert got.mean_ms == pytest.approx(50.5)
    assert got.p50_ms == pytest.approx(50.5)
    assert got.p95_ms == pytest.approx(95.05)
    assert got.max_ms == 100.0


@pytest.mark.parametrize("n", [1, 2, 7, 1000])
def test_percentiles_match_numpy_linear(n: int) -> None:
    samples = np.random.default_rng(n).lognormal(mean=2.5, sigma=0.6, size=n)
    registry = perf.PerfRegistry()
    for ms in samples:
        registry.record("frame", float(ms))
    got = registry.stats("frame", window_s=None)
    p50, p95 = np.percentile(samples, [50, 95], method="linear")
    assert got.count == n
    assert got.mean_ms == pytest.approx(samples.mean(), rel=1e-12)
    assert got.p50_ms == pytest.approx(p50, rel=1e-12)
    assert got.p95_ms == pytest.approx(p95, rel=1e-12)
    assert got.max_ms == pytest.approx(samples.max(), rel=1e-12)


def test_window_and_bounded_retention() -> None:
    now_ns = [0]
    registry = perf.PerfRegistry(max_samples=10, monotonic_ns=lambda: now_ns[0])
    registry.record("scan", 500.0)
    now_ns[0] += 300_000_000  # 0.3 s later, on the registry's own clock
    for _ in range(25):
        registry.record("scan", 1.0)
    recent = registry.stats("scan", window_s=0.25)
    assert recent.count == 10 and recent.max_ms == 1.0  # the old sample is outside the window
    assert registry.lifetime("scan") == (26, pytest.approx(525.0))
    assert registry.stats("missing").count == 0
    assert np.isnan(registry.stats("missing").p95_ms)


def test_snapshot_frame() -> None:
    with perf.timed("fetch"):
        time.sleep(0.005)
    with pytest.raises(ValueError), perf.timed("fetch"):  # failures are timed too
        raise ValueError("boom")
    frame = perf.snapshot(window_s=60)
    assert list(frame.columns) == perf.TIMING_COLUMNS
    row = frame.set_index("operation").loc["fetch"]
    assert row["count"] == 2 and row["max_ms"] >= 5.0


def test_timed_fn_sync_and_async() -> None:
    @perf.timed_fn("frame")
    def build(x: int) -> int:
        return x * 2

    @perf.timed_fn()
    async def call_llm() -> str:
        await asyncio.sleep(0.01)
        return "ok"

    assert [build(i) for i in range(3)] == [0, 2, 4]
    assert asyncio.run(call_llm()) == "ok"
    assert build.__name__ == "build"
    assert perf.stats("frame").count == 3
    llm = perf.stats(call_llm.__qualname__)
    assert llm.count == 1 and llm.max_ms >= 10.0


def test_cache_counters() -> None:
    perf.cache_hit("bars", 3)
    perf.cache_miss("bars")
    perf.cache_miss("llm")
    frame = perf.cache_stats().set_index("cache")
    assert frame.loc["bars", "hits"] == 3 and frame.loc["bars", "misses"] == 1
    assert frame.loc["bars", "hit_rate"] == pytest.approx(0.75)
    assert frame.loc["llm", "hit_rate"] == 0.0


# --------------------------------------------------------------------------- switch, threads


def test_disabled_timers_are_no_ops() -> None:
    perf.set_enabled(False)

    @perf.timed_fn("frame")
    def build() -> int:
        return 1

    with perf.timed("analyze"):
        pass
    assert build() == 1
    perf.record("llm", 5.0)
    perf.cache_hit("bars")
    perf.set_enabled(True)
    assert perf.get_registry().operations() == []
    assert perf.cache_stats().empty


def test_env_switch_off() -> None:
    code = "from swing_core import perf; print(perf.is_enabled())"
    env = {**os.environ, "SWING_PERF": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False"


def test_concurrent_timers_lose_nothing() -> None:
    registry = perf.PerfRegistry(max_samples=100_000)
    threads, per_thread = 8, 5_000
    errors: list[BaseException] = []
    stop = threading.Event()

    def work(k: int) -> None:
        for _ in range(per_thread):
            with registry.timed(f"op{k % 2}"):
                pass
            registry.cache_hit("bars")

    def read() -> None:  # snapshots while writers append
        try:
            while not stop.is_set():
                registry.snapshot(window_s=60)
        except BaseException as exc:  # pragma: no cover - the failure we look for
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    reader.join()
    assert not errors
    total = sum(registry.lifetime(op)[0] for op in ("op0", "op1"))
    assert total == threads * per_thread
    assert registry.stats("op0", window_s=None).count == threads // 2 * per_thread
    assert registry.cache_stats()["hits"].item() == threads * per_thread


def _child_operations(queue: multiprocessing.Queue) -> None:  # runs in a forked child
    queue.put(perf.get_registry().operations())


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_forked_worker_starts_empty() -> None:
    perf.record("analyze", 1.0)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_operations, args=(queue,))
    child.start()
    got = queue.get(timeout=20)
    child.join(timeout=20)
    assert got == [] and perf.get_registry().operations() == ["analyze"]


# --------------------------------------------------------------------------- memory


def test_memory_sampler() -> None:
    sampler = perf.MemorySampler()
    first = sampler.sample()
    assert first.rss_mb > 10 and first.peak_rss_mb >= first.rss_mb and first.cpu_pct >= 0
    assert first.ts.tzinfo is not None
    sampler.start(0.02)
    deadline = time.monotonic() + 30  # generous: a loaded machine may starve the thread
    while len(sampler.history()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    sampler.stop()
    assert not sampler.running
    history = sampler.history()
    assert len(history) >= 4  # the first sample plus at least three from the thread
    assert list(history.columns) == ["ts", "rss_mb", "peak_rss_mb", "cpu_pct"]


# --------------------------------------------------------------------------- slow queries


def test_slow_query_captured_fast_one_not(hooks_off: sa.Engine,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    engine = hooks_off
    monkeypatch.setenv("SWING_SLOW_QUERY_MS", "100")
    registry = perf.PerfRegistry()
    perf.install_slow_query_hooks(engine, registry=registry)
    slow, params = _slow_statement(engine)
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT 1")).all()
        conn.execute(slow, params).all()
    got = registry.slow_queries()
    assert len(got) == 1
    row = got.iloc[0]
    assert row["duration_ms"] >= 100
    assert row["dialect"] == engine.dialect.name
    assert ("pg_sleep" in row["statement"]) or ("RECURSIVE" in row["statement"])
    assert str(SLOW_N) not in row["statement"] and "0.2" not in row["statement"]  # no values
    assert row["ts"].tzinfo is not None


def test_threshold_from_settings_and_switch(sqlite_engine: sa.Engine,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWING_SLOW_QUERY_MS", "0")  # everything counts as slow
    registry = perf.PerfRegistry()
    perf.install_slow_query_hooks(sqlite_engine, registry=registry)
    try:
        with sqlite_engine.connect() as conn:
            conn.execute(sa.text("SELECT 1")).all()
            perf.set_enabled(False)
            conn.execute(sa.text("SELECT 2")).all()
            perf.set_enabled(True)
    finally:
        perf.remove_slow_query_hooks(sqlite_engine)
    statements = registry.slow_queries()["statement"].tolist()
    assert "SELECT 1" in statements and "SELECT 2" not in statements
    with sqlite_engine.connect() as conn:  # removed: nothing more is captured
        conn.execute(sa.text("SELECT 3")).all()
    assert "SELECT 3" not in registry.slow_queries()["statement"].tolist()


def test_recorder_does_not_capture_its_own_writes(sqlite_engine: sa.Engine) -> None:
    registry = perf.PerfRegistry()
    recorder = perf.PerfRecorder(sqlite_engine, registry=registry, slow_query_ms=0,
                                 sampler=perf.MemorySampler(), at_exit=False)
    try:
        with sqlite_engine.connect() as conn:
            conn.execute(sa.text("SELECT 42")).all()
        registry.record("analyze", 12.0)
        first = recorder.flush()
        assert first.error is None and first.slow_queries >= 1 and first.timings == 1
        second = recorder.flush()  # would hold the first flush's INSERTs if they were captured
        assert second.slow_queries == 0 and second.timings == 0
        captured = " ".join(registry.slow_queries()["statement"])
        assert "perf_timings" not in captured and "slow_queries" not in captured
    finally:
        recorder.stop(flush=False)
    assert sqlite_engine not in perf._HOOKS


# --------------------------------------------------------------------------- persistence


def _reopen(engine: sa.Engine) -> sa.Engine:
    """A brand-new engine on the same database (a "restart")."""
    if engine.dialect.name == "sqlite":
        return db.make_engine(engine.url)
    return engine  # the session's PostgreSQL engine: its schema is only on its search_path


def test_persistence_round_trip(hooks_off: sa.Engine) -> None:
    engine = hooks_off
    registry = perf.PerfRegistry()
    recorder = perf.PerfRecorder(engine, registry=registry, process="cli:1",
                                 sampler=perf.MemorySampler(), slow_query_ms=100, at_exit=False)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for ms in (10.0, 20.0, 30.0, 40.0):
        registry.record("analyze", ms)
    registry.cache_hit("bars", 3)
    registry.cache_miss("bars")
    slow, params = _slow_statement(engine)
    with engine.connect() as conn:
        conn.execute(slow, params).all()
    result = recorder.flush()
    assert result.error is None
    assert (result.timings, result.memory, result.slow_queries, result.cache_counters) == (
        1, 1, 1, 1)
    registry.cache_hit("bars", 2)  # second interval: deltas only
    registry.record("analyze", 50.0)
    assert recorder.flush().rows >= 2
    recorder.stop(flush=False)

    fresh = _reopen(engine)
    try:
        timings = perf.load_timings(fresh, before)
        assert timings["process"].unique().tolist() == ["cli:1"]
        first = timings.iloc[0]
        assert (first["operation"], first["count"]) == ("analyze", 4)
        assert first["mean_ms"] == pytest.approx(25.0)
        assert first["p50_ms"] == pytest.approx(25.0) and first["max_ms"] == 40.0
        assert first["p95_ms"] == pytest.approx(np.percentile([10, 20, 30, 40], 95))
        assert timings["count"].tolist() == [4, 1]
        assert isinstance(timings["ts"].dtype, pd.DatetimeTZDtype)

        caches = perf.load_cache_counters(fresh, timedelta(minutes=5))
        assert caches[["cache", "hits", "misses"]].values.tolist() == [["bars", 3, 1],
                                                                      ["bars", 2, 0]]
        memory = perf.load_memory(fresh, before, process="cli:1")
        assert len(memory) == 2 and (memory["rss_mb"] > 0).all()
        slow_rows = perf.load_slow_queries(fresh, before, limit=10)
        assert len(slow_rows) == 1 and slow_rows.iloc[0]["duration_ms"] >= 100
        assert perf.load_timings(fresh, datetime.now(UTC) + timedelta(hours=1)).empty
        assert perf.load_timings(fresh, before, operation="nothing").empty
    finally:
        if fresh is not engine:
            fresh.dispose()


def test_persistence_from_a_subprocess_at_exit(sqlite_engine: sa.Engine) -> None:
    """A CLI run that never calls flush(): the exit handler writes its history."""
    script = textwrap.dedent("""
        import os, sys
        from swing_core import db, perf
        engine = db.make_engine(sys.argv[1])
        perf.PerfRecorder(engine, interval_s=3600)   # no start(), no flush()
        with perf.timed("scan"):
            pass
        perf.cache_miss("patterns")
        print(os.getpid())
    """)
    env = {**os.environ, "SWING_PERF_ROLE": "cli"}
    env.pop("SWING_PERF", None)
    out = subprocess.run([sys.executable, "-c", script, str(sqlite_engine.url)], cwd=ROOT,
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pid = int(out.stdout.strip())
    timings = perf.load_timings(sqlite_engine)
    assert timings[["process", "operation", "count"]].values.tolist() == [
        [f"cli:{pid}", "scan", 1]]
    assert perf.load_cache_counters(sqlite_engine)["misses"].tolist() == [1]
    assert perf.load_memory(sqlite_engine)["process"].tolist() == [f"cli:{pid}"]


def test_background_thread_flushes(sqlite_engine: sa.Engine) -> None:
    registry = perf.PerfRegistry()
    with perf.PerfRecorder(sqlite_engine, registry=registry, interval_s=0.05, process="app:7",
                           sampler=perf.MemorySampler(), memory_interval_s=0.02,
                           at_exit=False) as recorder:
        registry.record("scan", 3.0)
        deadline = time.monotonic() + 5
        while perf.load_timings(sqlite_engine).empty and time.monotonic() < deadline:
            time.sleep(0.02)
        recorder.sampler.stop()
    assert perf.load_timings(sqlite_engine)["operation"].tolist() == ["scan"]
    assert len(perf.load_memory(sqlite_engine)) >= 1


def test_flush_counts_restart_after_reset(sqlite_engine: sa.Engine) -> None:
    registry = perf.PerfRegistry()
    recorder = perf.PerfRecorder(sqlite_engine, registry=registry, process="cli:2",
                                 sampler=perf.MemorySampler(), capture_slow_queries=False,
                                 at_exit=False)
    for _ in range(3):
        registry.record("scan", 1.0)
    registry.cache_hit("bars", 3)
    recorder.flush()
    registry.reset()  # fresh series: counting starts again, not from the stale totals
    for _ in range(5):
        registry.record("scan", 2.0)
    registry.cache_hit("bars", 4)
    recorder.flush()
    recorder.stop(flush=False)
    timings = perf.load_timings(sqlite_engine)
    assert timings[["count", "mean_ms"]].values.tolist() == [[3, 1.0], [5, 2.0]]
    assert perf.load_cache_counters(sqlite_engine)["hits"].tolist() == [3, 4]


def test_flush_failure_is_logged_not_raised(tmp_path: Path,
                                            caplog: pytest.LogCaptureFixture) -> None:
    bare = db.make_engine(f"sqlite:///{tmp_path / 'no_tables.sqlite'}")  # never migrated
    try:
        registry = perf.PerfRegistry()
        recorder = perf.PerfRecorder(bare, registry=registry, sampler=perf.MemorySampler(),
                                     at_exit=False)
        registry.record("analyze", 1.0)
        result = recorder.flush()
        assert result.error is not None and result.rows == 0
        assert "batch dropped" in caplog.text
        registry.record("analyze", 1.0)
        assert recorder.flush().error is not None  # again: still no exception
        recorder.stop(flush=False)
    finally:
        bare.dispose()


def test_prune_keeps_recent_rows(db_engine: sa.Engine) -> None:
    old = datetime.now(UTC) - timedelta(days=10)
    new = datetime.now(UTC) - timedelta(days=1)
    with db_engine.begin() as conn:
        for ts in (old, new):
            conn.execute(sa.insert(models.PerfTiming.__table__),
                         [dict(ts=ts, process="cli:1", operation="scan", count=1, mean_ms=1.0)])
            conn.execute(sa.insert(models.PerfMemory.__table__),
                         [dict(ts=ts, process="cli:1", rss_mb=1.0)])
            conn.execute(sa.insert(models.SlowQuery.__table__),
                         [dict(ts=ts, process="cli:1", duration_ms=200.0, statement="SELECT 1")])
            conn.execute(sa.insert(models.CacheCounter.__table__),
                         [dict(ts=ts, process="cli:1", cache="bars", hits=1, misses=0)])
    deleted = perf.prune(db_engine, keep_days=7)
    assert deleted == {"timings": 1, "memory": 1, "slow_queries": 1, "cache_counters": 1}
    assert len(perf.load_timings(db_engine)) == 1
    assert perf.load_slow_queries(db_engine)["ts"].iloc[0] > old


# --------------------------------------------------------------------------- EXPLAIN


def _record_slow(engine: sa.Engine, statement: str, dialect: str | None = None) -> None:
    """Record ``statement`` as the app does (registry, then the recorder signs and writes it)."""
    registry = perf.PerfRegistry()
    registry.add_slow_query(perf.SlowQueryRecord(datetime.now(UTC), 150.0, statement,
                                                 dialect or engine.dialect.name))
    recorder = perf.PerfRecorder(engine, registry=registry, sampler=perf.MemorySampler(),
                                 capture_slow_queries=False, at_exit=False)
    assert recorder.flush().slow_queries == 1


def test_explain_recorded_slow_query(hooks_off: sa.Engine) -> None:
    engine = hooks_off
    registry = perf.PerfRegistry()
    recorder = perf.PerfRecorder(engine, registry=registry, sampler=perf.MemorySampler(),
                                 slow_query_ms=100, at_exit=False)
    slow, params = _slow_statement(engine)
    with engine.connect() as conn:
        conn.execute(slow, params).all()
    recorder.stop()
    statement = perf.load_slow_queries(engine).iloc[0]["statement"]
    plan = perf.explain(engine, statement)
    assert len(plan) >= 1
    assert "parameter" in plan.attrs["note"]  # the value was bound, so it was never recorded
    if engine.dialect.name == "sqlite":
        assert "detail" in plan.columns
    else:
        assert plan.columns.tolist() == ["QUERY PLAN"]
    with engine.connect() as conn:  # the connection pool is still healthy afterwards
        assert conn.execute(sa.text("SELECT 1")).scalar() == 1


def test_explain_parameterised_where_uses_the_index(db_engine: sa.Engine) -> None:
    table = models.PerfTiming.__table__
    query = sa.select(table.c.operation).where(table.c.ts >= datetime(2026, 1, 1, tzinfo=UTC))
    statement = str(query.compile(db_engine))  # what after_cursor_execute would have seen
    _record_slow(db_engine, statement)
    plan = perf.explain(db_engine, statement)
    text = " ".join(map(str, plan.iloc[:, -1]))
    assert "perf_timings" in text
    assert "parameter" in plan.attrs["note"]


def test_explain_without_parameters_and_literal_percent(db_engine: sa.Engine) -> None:
    statement = "SELECT count(*) FROM perf_timings WHERE operation LIKE 'an%'"
    if db_engine.dialect.name == "postgresql":
        statement = statement.replace("%", "%%")  # as SQLAlchemy hands it to psycopg
    _record_slow(db_engine, statement + ";")
    plan = perf.explain(db_engine, statement + ";")
    assert len(plan) >= 1 and plan.attrs["note"] == ""


@pytest.mark.parametrize(("statement", "reason"), [
    ("DROP TABLE perf_timings", "not DROP"),
    ("PRAGMA table_info(perf_timings)", "not PRAGMA"),
    ("SELECT 1; DELETE FROM perf_timings", "single statement"),
    ("SELECT 1 ; ; DELETE FROM perf_timings;", "single statement"),
    ("EXPLAIN SELECT 1", "not EXPLAIN"),
    ("   ", "empty"),
    ("SELECT 1" + perf._TRUNCATED, "truncated"),
])
def test_explain_refuses(sqlite_engine: sa.Engine, statement: str, reason: str) -> None:
    with pytest.raises(perf.ExplainRefused, match=reason):
        perf.explain(sqlite_engine, statement, check_recorded=False)


def test_explain_accepts_semicolons_inside_literals_and_comments(
        sqlite_engine: sa.Engine) -> None:
    statement = "SELECT ';' AS a /* ; */ -- ;\n FROM perf_timings WHERE process = 'x;y';"
    plan = perf.explain(sqlite_engine, statement, check_recorded=False)
    assert "perf_timings" in " ".join(plan["detail"])


def test_explain_only_recorded_statements(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(perf.ExplainRefused, match="slow-query history"):
        perf.explain(sqlite_engine, "SELECT * FROM perf_timings")
    _record_slow(sqlite_engine, "SELECT * FROM perf_memory", "postgresql")
    with pytest.raises(perf.ExplainRefused, match="recorded on postgresql"):
        perf.explain(sqlite_engine, "SELECT * FROM perf_memory")


def test_explain_reports_database_errors(sqlite_engine: sa.Engine) -> None:
    with pytest.raises(DatabaseError, match="EXPLAIN failed"):
        perf.explain(sqlite_engine, "SELECT * FROM no_such_table", check_recorded=False)


def test_start_recorder_is_idempotent(sqlite_engine: sa.Engine) -> None:
    first = perf.start_recorder(sqlite_engine, role="app", interval_s=3600)
    try:
        assert perf.start_recorder(sqlite_engine, role="app") is first
        assert first.process == f"app:{os.getpid()}"
        assert sqlite_engine in perf._HOOKS
        first.stop()
        assert sqlite_engine not in perf._HOOKS
        assert perf.start_recorder(sqlite_engine) is first and sqlite_engine in perf._HOOKS
    finally:
        first.stop(flush=False)
        first.sampler.stop()
