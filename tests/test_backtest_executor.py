"""Multi-symbol runs through the executor interface: process pool, Dask, inline; progress."""

from __future__ import annotations

import pandas as pd
import pytest

from swing_core.backtest import (
    BacktestConfig,
    InlineExecutor,
    map_tasks,
    open_executor,
    run_backtest,
)
from swing_core.market import demo_bars

SYMBOLS = ("AAPL", "MSFT", "JPM")


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {s: demo_bars(s, "1h", 900, end="2025-06-30") for s in SYMBOLS}


@pytest.fixture(scope="module")
def inline_result(bars):
    return run_backtest(list(SYMBOLS), config=BacktestConfig(interval="1h"), bars=bars,
                        executor="inline")


def _same(a, b) -> None:
    assert a.run_hash == b.run_hash
    pd.testing.assert_frame_equal(a.trades.reset_index(drop=True),
                                  b.trades.reset_index(drop=True))
    assert a.stats["Equity Final [$]"] == b.stats["Equity Final [$]"]


def _boom(x: int) -> int:
    if x == 2:
        raise ValueError("bad item")
    return x * 10


def test_map_tasks_keeps_order_reports_progress_and_isolates_failures() -> None:
    seen = []
    out = map_tasks(_boom, [1, 2, 3], executor="inline",
                    progress=lambda d, t, label: seen.append((d, t, label)))
    assert out[0] == 10 and isinstance(out[1], ValueError) and out[2] == 30
    assert [s[0] for s in seen] == [1, 2, 3] and {s[2] for s in seen} == {"0", "1", "2"}
    with open_executor(InlineExecutor()) as pool:
        assert pool.submit(_boom, 4).result() == 40


def test_process_pool_gives_the_inline_result(bars, inline_result) -> None:
    seen = []
    pooled = run_backtest(list(SYMBOLS), config=BacktestConfig(interval="1h"), bars=bars,
                          executor="process", max_workers=2,
                          progress=lambda d, t, m: seen.append(m))
    _same(pooled, inline_result)
    assert sorted(seen) == sorted(SYMBOLS)


def _worker_pid(_: int) -> int:
    import os
    import time

    time.sleep(0.05)  # both workers take a share
    return os.getpid()


def test_the_process_pool_persists_across_runs_with_warm_workers() -> None:
    """A second run reuses the first run's pool and worker processes (no start-up, no imports);
    the workers came from a fork server that had the engine imported."""
    from swing_core.backtest.executor import shared_pool

    first = set(map_tasks(_worker_pid, list(range(6)), executor="process", max_workers=2))
    second = set(map_tasks(_worker_pid, list(range(6)), executor="process", max_workers=2))
    assert shared_pool(2) is shared_pool(2)
    assert second <= first and len(first) <= 2
    assert import_in_worker("swing_core.backtest.walk")


def _imported(name: str) -> bool:
    import sys

    return name in sys.modules


def import_in_worker(name: str) -> bool:
    return map_tasks(_imported, [name], executor="process", max_workers=2)[0]


def test_a_pool_made_under_other_settings_is_replaced(monkeypatch, tmp_path) -> None:
    """Workers keep the environment they started with: a change of SWING_* settings gets a
    new pool, so a worker never reads a stale data directory."""
    from swing_core.backtest.executor import shared_pool

    before = shared_pool(2)
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path / "other"))
    after = shared_pool(2)
    assert after is not before
    assert after is shared_pool(2)


def test_small_runs_go_inline_by_default(bars, inline_result, monkeypatch) -> None:
    """Three symbols of 900 bars are below INLINE_BELOW_BARS: no pool is asked for."""
    from swing_core.backtest import executor as executor_module

    def no_pool(*args, **kwargs):
        raise AssertionError("a small run asked for the process pool")

    monkeypatch.setattr(executor_module, "shared_pool", no_pool)
    small = run_backtest(list(SYMBOLS), config=BacktestConfig(interval="1h"), bars=bars,
                         max_workers=2)
    _same(small, inline_result)


def test_dask_cluster_when_swing_dask_address_is_set(bars, inline_result, monkeypatch) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster:
        monkeypatch.setenv("SWING_DASK_ADDRESS", cluster.scheduler_address)
        via_dask = run_backtest(list(SYMBOLS), config=BacktestConfig(interval="1h"), bars=bars)
        ran_there = set(cluster.scheduler.task_prefixes)
    _same(via_dask, inline_result)
    assert any("symbol_task" in name for name in ran_there), ran_there


def test_worker_processes_record_their_timings_for_the_performance_page(bars, sqlite_engine):
    """Pool workers exit without exit handlers: each task flushes its timings (role worker)."""
    from swing_core import perf

    run_backtest(list(SYMBOLS), config=BacktestConfig(interval="1h"), bars=bars,
                 engine=sqlite_engine, executor="process", max_workers=2, save=False)
    timings = perf.load_timings(sqlite_engine)
    worker_rows = timings[timings["process"].str.startswith("worker:")]
    assert "frame" in set(worker_rows["operation"])
    assert worker_rows.loc[worker_rows["operation"] == "frame", "count"].sum() == len(SYMBOLS)
