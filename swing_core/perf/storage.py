"""Persistence of the performance history: the batched :class:`PerfRecorder` (one per process),
retention (:func:`prune`) and the ``load_*`` read API for the Performance page.

Persisted rows carry ``ts`` as timezone-aware UTC: for a timing or cache row, the end of the
interval it aggregates (the flush time); for a memory row, the sampling time; for a slow query,
when the statement finished.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa

from swing_core import db, models
from swing_core.clock import Clock, utc_now
from swing_core.config import get_settings
from swing_core.errors import SwingError
from swing_core.perf import timers as _timers
from swing_core.perf.sampler import _SAMPLER, MemorySampler
from swing_core.perf.sqlhooks import (
    _HOOKS,
    install_slow_query_hooks,
    remove_slow_query_hooks,
    sign_statement,
    signing_key,
)
from swing_core.perf.timers import _REGISTRY, PerfRegistry, _describe, _Series, _suppressed

logger = logging.getLogger("swing_core.perf")

# --------------------------------------------------------------------------- persistence


def process_name(role: str | None = None) -> str:
    """``"<role>:<pid>"``, e.g. ``"app:5678"``. Role: the argument, else ``SWING_PERF_ROLE``,
    else ``"app"`` inside Streamlit and ``"cli"`` otherwise (workers pass ``"worker"``)."""
    if role is None:
        role = get_settings().perf_role or ("app" if "streamlit" in sys.modules else "cli")
    return f"{role}:{os.getpid()}"


def _tables() -> dict[str, sa.Table]:
    return {"timings": models.PerfTiming.__table__, "memory": models.PerfMemory.__table__,
            "slow_queries": models.SlowQuery.__table__,
            "cache_counters": models.CacheCounter.__table__}


@contextmanager
def _write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    with db.write_transaction(engine) as conn:  # BEGIN IMMEDIATE on SQLite (waits for writers)
        yield conn


@dataclass(frozen=True)
class FlushResult:
    """Rows written by one :meth:`PerfRecorder.flush` (all 0 and ``error`` set if it failed)."""

    timings: int = 0
    memory: int = 0
    slow_queries: int = 0
    cache_counters: int = 0
    error: str | None = None

    @property
    def rows(self) -> int:
        return self.timings + self.memory + self.slow_queries + self.cache_counters


class PerfRecorder:
    """Writes what the registry and the sampler gathered to the database, in batches.

    Every ``interval_s`` seconds (after :meth:`start`), on :meth:`flush` and at interpreter
    exit, one transaction inserts: per operation timed since the last flush, one ``PerfTiming``
    row (count and mean exact; p50/p95/max over the retained samples); the memory samples taken
    since (or one taken now); the slow queries captured since; per cache, one ``CacheCounter``
    row with the hits and misses *since the last flush* (deltas, so sums over any period are
    meaningful across restarts). Its own statements are never captured as slow queries, and a
    failed write is logged and dropped, never raised. Use one recorder per process.
    """

    def __init__(self, engine: sa.Engine, *, interval_s: float = 60.0, process: str | None = None,
                 registry: PerfRegistry | None = None, sampler: MemorySampler | None = None,
                 capture_slow_queries: bool = True, slow_query_ms: float | None = None,
                 memory_interval_s: float | None = 10.0, at_exit: bool = True) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self._process = process
        self.registry = registry if registry is not None else _REGISTRY
        self.sampler = sampler if sampler is not None else _SAMPLER
        self.memory_interval_s = memory_interval_s
        self._timing_cursor: dict[str, tuple[_Series, int, float]] = {}
        self._cache_cursor: dict[str, tuple[list[int], int, int]] = {}
        self._slow_seq = 0
        self._memory_seq = 0
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False
        self._want = (capture_slow_queries, slow_query_ms, at_exit)
        self._at_exit = False
        self._owns_hooks = False
        self._arm()

    def _arm(self) -> None:
        capture, threshold_ms, at_exit = self._want
        if capture and not self._owns_hooks and self.engine not in _HOOKS:
            install_slow_query_hooks(self.engine, threshold_ms=threshold_ms,
                                     registry=self.registry)
            self._owns_hooks = True
        if at_exit and not self._at_exit:
            atexit.register(self._exit_flush)
            self._at_exit = True

    @property
    def process(self) -> str:
        """The ``process`` column value (re-evaluated so a forked worker gets its own pid)."""
        return self._process or process_name()

    def start(self) -> PerfRecorder:
        """Flush every ``interval_s`` seconds in a daemon thread; start the memory sampler
        (after :meth:`stop`, this also re-installs the hooks and the exit handler)."""
        self._arm()
        if self.memory_interval_s is not None:
            self.sampler.start(self.memory_interval_s)
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="swing-perf-recorder", daemon=True)
            self._thread.start()
        return self

    def stop(self, *, flush: bool = True) -> None:
        """Stop the flushing thread, flush what is left (unless ``flush=False``), remove the
        slow-query hooks this recorder installed and its exit handler."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self._thread = None
        if self._at_exit:
            atexit.unregister(self._exit_flush)
            self._at_exit = False
        if flush:
            self.flush()
        if self._owns_hooks:
            remove_slow_query_hooks(self.engine)
            self._owns_hooks = False

    def __enter__(self) -> PerfRecorder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval_s):
            self.flush()

    def _exit_flush(self) -> None:
        self.flush()

    def _collect(self) -> dict[str, list[dict[str, Any]]]:
        now = utc_now()
        proc = self.process
        timings = []
        for op, (count, total_ms, tail) in sorted(
                self.registry._timings_since(self._timing_cursor).items()):
            desc = _describe(op, np.asarray(tail, dtype=np.float64))
            timings.append(dict(ts=now, process=proc, operation=op, count=count,
                                mean_ms=total_ms / count, p50_ms=desc.p50_ms,
                                p95_ms=desc.p95_ms, max_ms=desc.max_ms))
        self._memory_seq, samples = self.sampler._since(self._memory_seq)
        if not samples and _timers._enabled:  # no sampler thread: one sample per flush
            self.sampler.sample()
            self._memory_seq, samples = self.sampler._since(self._memory_seq)
        memory = [dict(ts=s.ts, process=proc, rss_mb=s.rss_mb, peak_rss_mb=s.peak_rss_mb,
                       cpu_pct=s.cpu_pct) for s in samples]
        self._slow_seq, slow = self.registry._slow_since(self._slow_seq)
        key = self._signing_key() if slow else None
        slow_rows = [dict(ts=q.ts, process=proc, duration_ms=q.duration_ms,
                          statement=q.statement, dialect=q.dialect,
                          statement_hmac=(sign_statement(q.statement, q.dialect, key=key)
                                          if key else None)) for q in slow]
        caches = [dict(ts=now, process=proc, cache=name, hits=h, misses=m)
                  for name, h, m in self.registry._caches_since(self._cache_cursor)]
        return {"timings": timings, "memory": memory, "slow_queries": slow_rows,
                "cache_counters": caches}

    def _signing_key(self) -> bytes | None:
        """The key that signs slow queries (EXPLAIN plans only signed ones); None, logged, if
        there is none (e.g. a read-only data folder): the rows are then kept unsigned."""
        try:
            return signing_key()
        except (OSError, SwingError) as exc:
            logger.warning("slow queries are recorded unsigned (EXPLAIN will refuse them): %s",
                           exc)
            return None

    def flush(self) -> FlushResult:
        """Write everything new since the last flush in one transaction; never raises."""
        with self._flush_lock:
            try:
                batches = self._collect()
                if any(batches.values()):
                    tables = _tables()
                    with _suppressed(), _write_transaction(self.engine) as conn:
                        for key, rows in batches.items():
                            if rows:
                                conn.execute(sa.insert(tables[key]), rows)
                if self._failing:
                    logger.info("performance history is being written again")
                    self._failing = False
                return FlushResult(**{k: len(v) for k, v in batches.items()})
            except Exception as exc:  # instrumentation never breaks the caller
                # Warn once per failure streak (not every interval), drop the batch.
                log = logger.debug if self._failing else logger.warning
                log("could not write performance history (batch dropped): %s", exc,
                    exc_info=not self._failing)
                self._failing = True
                return FlushResult(error=f"{type(exc).__name__}: {exc}")


_RECORDERS: dict[tuple[int, int], PerfRecorder] = {}
_RECORDERS_LOCK = threading.Lock()


def start_recorder(engine: sa.Engine, *, role: str | None = None,
                   interval_s: float = 60.0) -> PerfRecorder:
    """The process's running recorder for ``engine``, started on first call (idempotent, so
    a Streamlit rerun or a repeated CLI setup call starts nothing twice). ``role`` names the
    process ("app", "cli", "worker"; see :func:`process_name`)."""
    key = (os.getpid(), id(engine))
    with _RECORDERS_LOCK:
        recorder = _RECORDERS.get(key)
        if recorder is None or recorder.engine is not engine:
            recorder = _RECORDERS[key] = PerfRecorder(engine, interval_s=interval_s,
                                                      process=process_name(role))
        return recorder.start()


def stop_recorders(*, flush: bool = True) -> int:
    """Stop every recorder this process started with :func:`start_recorder` (flushing what is
    left unless ``flush=False``) and the memory sampler they started; returns how many were
    running. For a clean shutdown, and for tests that ran the app in-process (AppTest)."""
    with _RECORDERS_LOCK:
        recorders = [r for (pid, _), r in _RECORDERS.items() if pid == os.getpid()]
        _RECORDERS.clear()
    for recorder in recorders:
        recorder.stop(flush=flush)
    _SAMPLER.stop()
    return len(recorders)


def prune(engine: sa.Engine, *, keep_days: float = 7,
          clock: Clock | None = None) -> dict[str, int]:
    """Delete performance rows older than ``keep_days`` days before ``clock``'s now (default:
    the system clock): one DELETE per table, one transaction. Returns rows deleted per table."""
    cutoff = utc_now(clock) - timedelta(days=keep_days)
    deleted = {}
    with _suppressed(), _write_transaction(engine) as conn:
        for key, table in _tables().items():
            deleted[key] = conn.execute(sa.delete(table).where(table.c.ts < cutoff)).rowcount
    return deleted


# --------------------------------------------------------------------------- reading back


def _since(since: datetime | pd.Timestamp | timedelta | None) -> datetime | None:
    if since is None:
        return None
    if isinstance(since, timedelta):
        return utc_now() - since
    ts = pd.Timestamp(since)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _load(engine: sa.Engine, key: str, since: datetime | pd.Timestamp | timedelta | None, *,
          process: str | None, order: list[sa.ColumnElement[Any]] | None = None,
          limit: int | None = None, where: list[sa.ColumnElement[bool]] | None = None,
          ) -> pd.DataFrame:
    table = _tables()[key]
    query = sa.select(table)
    start = _since(since)
    if start is not None:
        query = query.where(table.c.ts >= start)
    if process is not None:
        query = query.where(table.c.process == process)
    for clause in where or []:
        query = query.where(clause)
    query = query.order_by(*(order or [table.c.ts, table.c.id]))
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


def load_timings(engine: sa.Engine, since: datetime | pd.Timestamp | timedelta | None = None, *,
                 process: str | None = None, operation: str | None = None) -> pd.DataFrame:
    """Persisted timing rows (ts = end of each flush interval, UTC), oldest first. ``since``: a
    UTC time (naive = UTC), or a timedelta meaning "the last …"; None: everything."""
    where = None
    if operation is not None:
        where = [_tables()["timings"].c.operation == operation]
    return _load(engine, "timings", since, process=process, where=where)


def load_memory(engine: sa.Engine, since: datetime | pd.Timestamp | timedelta | None = None, *,
                process: str | None = None) -> pd.DataFrame:
    """Persisted memory / CPU samples (MiB, percent of one core), oldest first."""
    return _load(engine, "memory", since, process=process)


def load_slow_queries(engine: sa.Engine,
                      since: datetime | pd.Timestamp | timedelta | None = None,
                      limit: int | None = 100, *, process: str | None = None,
                      order_by: Literal["duration", "ts"] = "duration") -> pd.DataFrame:
    """Persisted slow queries, slowest first (``order_by="ts"``: newest first)."""
    table = _tables()["slow_queries"]
    order = ([table.c.duration_ms.desc(), table.c.ts.desc()] if order_by == "duration"
             else [table.c.ts.desc(), table.c.id.desc()])
    return _load(engine, "slow_queries", since, process=process, order=order, limit=limit)


def load_cache_counters(engine: sa.Engine,
                        since: datetime | pd.Timestamp | timedelta | None = None, *,
                        process: str | None = None) -> pd.DataFrame:
    """Persisted cache counter rows (hits / misses during each flush interval), oldest first."""
    return _load(engine, "cache_counters", since, process=process)
