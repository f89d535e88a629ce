"""Start monitoring a process in one call: retention, the batched recorder (with slow-query
hooks and the memory sampler) and the counters of the engine's caches.

The app calls :func:`start_monitoring` once per process and database (Streamlit:
``st.cache_resource``); a CLI command or a worker may call it too (``role="cli"`` / ``"worker"``),
so the Performance page shows their work as well.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from swing_core.clock import utc_now
from swing_core.market import CACHE_STATS
from swing_core.perf.storage import PerfRecorder, process_name, prune, start_recorder
from swing_core.perf.timers import cache_hit, cache_miss

logger = logging.getLogger("swing_core.perf")

#: Days of performance history kept by default (older rows are deleted at start).
KEEP_DAYS = 7.0

_CONNECTED: set[str] = set()
_CONNECT_LOCK = threading.Lock()


@dataclass(frozen=True)
class MonitoringStatus:
    """What :func:`start_monitoring` did: the running recorder (None if it could not start),
    the process name its rows carry, rows pruned per table, when (UTC), and notes for the user
    (e.g. a failed prune), each saying what to do."""

    recorder: PerfRecorder | None
    process: str
    started_at: datetime
    pruned: dict[str, int] = field(default_factory=dict)
    caches: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        return self.recorder is not None


def _bars_listener(name: str, amount: int) -> None:
    if name == "hits":
        cache_hit("bars", amount)
    elif name == "misses":
        cache_miss("bars", amount)


def connect_cache_counters() -> tuple[str, ...]:
    """Mirror the engine's own cache counters into the perf registry (idempotent): the bar
    cache's ``market.CACHE_STATS`` hits / misses count as cache ``"bars"``. Returns the caches
    connected. (The LLM answer cache is read from the ``llm_calls`` table instead: every hit is a
    row with outcome ``cache_hit``, persisted by the advisor itself.)"""
    with _CONNECT_LOCK:
        if "bars" not in _CONNECTED:
            CACHE_STATS.subscribe(_bars_listener)
            _CONNECTED.add("bars")
        return tuple(sorted(_CONNECTED))


def start_monitoring(engine: sa.Engine, *, role: str | None = None, interval_s: float = 60.0,
                     keep_days: float | None = KEEP_DAYS) -> MonitoringStatus:
    """Prune history older than ``keep_days`` (None: keep everything), start this process's
    recorder for ``engine`` (idempotent: a second call returns the same recorder) and connect
    the cache counters. Never raises: a failure is logged and reported in ``notes``."""
    notes: list[str] = []
    pruned: dict[str, int] = {}
    if keep_days is not None:
        try:
            pruned = prune(engine, keep_days=keep_days)
        except Exception as exc:  # monitoring must never stop the app from starting
            logger.warning("could not prune performance history: %s", exc)
            notes.append(f"Old performance history could not be pruned ({exc}); it will be "
                         "retried at the next start. Check that the database is writable.")
    recorder: PerfRecorder | None = None
    try:
        recorder = start_recorder(engine, role=role, interval_s=interval_s)
    except Exception as exc:
        logger.warning("could not start the performance recorder: %s", exc)
        notes.append(f"The performance recorder did not start ({exc}): timings are kept in "
                     "memory only. Restart the app once the database is reachable.")
    return MonitoringStatus(recorder=recorder,
                            process=recorder.process if recorder else process_name(role),
                            started_at=utc_now(), pruned=pruned,
                            caches=connect_cache_counters(), notes=tuple(notes))
