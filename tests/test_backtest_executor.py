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
                          max_workers=2, progress=lambda d, t, m: seen.append(m))
    _same(pooled, inline_result)
    assert sorted(seen) == sorted(SYMBOLS)


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
