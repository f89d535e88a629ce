"""swing_core.perf.monitor: starting monitoring for a process (retention, recorder, the bar
cache's counters) in one call that never raises."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from swing_core import db, market, perf
from swing_core.models import PerfTiming


@pytest.fixture
def stopped() -> Iterator[list[perf.PerfRecorder]]:
    """Recorders to stop after the test (no thread or exit flush outlives it)."""
    recorders: list[perf.PerfRecorder] = []
    yield recorders
    for recorder in recorders:
        recorder.stop(flush=False)


def test_start_monitoring_prunes_starts_once_and_counts_bar_cache(
        sqlite_engine: sa.Engine, stopped: list[perf.PerfRecorder]) -> None:
    now = datetime.now(UTC)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.insert(PerfTiming.__table__), [
            dict(ts=now - timedelta(days=10), process="app:1", operation="analyze", count=1),
            dict(ts=now - timedelta(hours=1), process="app:1", operation="analyze", count=1)])
    perf.set_enabled(True)

    status = perf.start_monitoring(sqlite_engine, role="cli", interval_s=3600, keep_days=7)
    stopped.append(status.recorder)
    assert status.running and not status.notes
    assert status.pruned["timings"] == 1
    assert status.process.startswith("cli:")
    assert "bars" in status.caches
    again = perf.start_monitoring(sqlite_engine, role="cli", interval_s=3600, keep_days=7)
    assert again.recorder is status.recorder  # one recorder per process and database

    before = perf.get_registry().cache_stats().set_index("cache")
    hits0 = int(before.at["bars", "hits"]) if "bars" in before.index else 0
    market.CACHE_STATS.incr("hits", 2)
    market.CACHE_STATS.incr("topups")  # not a hit or a miss
    after = perf.get_registry().cache_stats().set_index("cache")
    assert int(after.at["bars", "hits"]) == hits0 + 2
    assert len(perf.load_timings(sqlite_engine)) == 1


def test_start_monitoring_never_raises(tmp_path: Path, stopped: list[perf.PerfRecorder]) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'not_migrated.sqlite'}")
    try:
        status = perf.start_monitoring(engine, role="cli", interval_s=3600)
        if status.recorder is not None:
            stopped.append(status.recorder)
        assert status.notes and "could not be pruned" in status.notes[0]
        assert "retried at the next start" in status.notes[0]
    finally:
        engine.dispose()
