"""swing_core.perf.selfbench: the guide's table, reading run_all's report, and real (short) runs of
``benchmarks/run_all.py`` in a subprocess: a finished run, the time limit, one job at a time,
cancel."""

from __future__ import annotations

import os
import time

import pytest

from swing_core.perf import selfbench

#: The shortest real run: one guide row, no other benchmark (a few seconds).
TINY = ("--only", "batch_insert", "--no-benches")


def test_guide_table_and_ratios() -> None:
    empty = selfbench.guide_frame()
    assert list(empty["operation"]) == ["Signal generation", "Vector search (1,000 vectors)",
                                        "Database batch insert", "Multi-symbol analysis",
                                        "Memory usage (100 signals)"]
    assert list(empty["unit"]) == ["s", "s", "s", "s", "MB"]
    assert empty["swingdesk"].isna().all() and empty["passed"].isna().all()
    measured = selfbench.guide_frame({"signal_generation": 0.036, "multi_symbol": 24.0})
    row = measured.set_index("key")
    assert row.at["signal_generation", "x_vs_guide_after"] == pytest.approx(50.0)
    assert row.at["signal_generation", "x_vs_guide_before"] == pytest.approx(5.2 / 0.036)
    assert row.at["signal_generation", "passed"] is True
    assert row.at["multi_symbol", "passed"] is False  # 24 s is above the guide's 12 s


def test_parse_report() -> None:
    doc = {"benchmark": "run_all", "mode": "full", "seconds": 12.5,
           "guide": [{"key": "batch_insert", "swingdesk": 0.05}],
           "targets": {"guide": {"batch_insert_s": {"value": 0.05, "target": "<= 1.2",
                                                    "pass": True}},
                       "bench_engine": {"analyze_cached_ms": {"value": 41.0, "target": "<= 30",
                                                              "pass": False}}},
           "benches": {"bench_storage": {"error": "timed out after 1200 s"}},
           "errors": ["memory_100_signals: RuntimeError: boom"]}
    report = selfbench.parse_report(doc)
    assert report.mode == "full" and report.seconds == 12.5
    assert (report.passed, report.failed) == (1, 1)
    assert report.guide.set_index("key").at["batch_insert", "swingdesk"] == 0.05
    assert report.errors == ("bench_storage: timed out after 1200 s",
                             "memory_100_signals: RuntimeError: boom")
    with pytest.raises(selfbench.SelfBenchError, match="run_all.py --quick"):
        selfbench.parse_report({"benchmark": "engine"})


def test_a_short_real_run() -> None:
    assert selfbench.benchmarks_dir() is not None
    report = selfbench.run_selfbench(extra_args=TINY, timeout_s=120)
    row = report.guide.set_index("key").loc["batch_insert"]
    assert 0 < row["swingdesk"] < 1.2, row  # 1,000 signals in one transaction
    assert row["passed"] is True
    assert report.figures["figure"].tolist() == ["batch_insert_s"]
    assert report.mode == "quick" and not report.errors
    assert report.raw["details"]["batch_insert"]["rows"] == 1000


def test_time_limit_kills_the_run_and_what_it_started() -> None:
    job = selfbench.SelfBenchJob(timeout_s=1.0, extra_args=("--only", "memory_100_signals",
                                                            "--no-benches")).start()
    pid = job._proc.pid
    state = job.wait(poll_s=0.2)
    assert state.status == "timeout" and "longer than 1 s" in state.error
    assert job._proc.poll() is not None
    deadline = time.monotonic() + 30  # the kernel reaps the group's children asynchronously
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            break  # the whole process group is gone (the memory child too)
        time.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)


def test_one_job_at_a_time_and_cancel() -> None:
    first = selfbench.SelfBenchJob(extra_args=("--only", "multi_symbol", "--no-benches")).start()
    try:
        assert first.poll().status == "running"
        with pytest.raises(selfbench.SelfBenchError, match="already running"):
            selfbench.SelfBenchJob(extra_args=TINY).start()
    finally:
        state = first.cancel()
    assert state.status == "cancelled" and state.finished
    assert first.poll() is state  # finished states are final
    second = selfbench.SelfBenchJob(extra_args=TINY).start()  # the slot is free again
    second.cancel()
