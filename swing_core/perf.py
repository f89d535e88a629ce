"""Performance instrumentation: timers, rolling statistics, memory / CPU sampling, slow-query
capture, cache hit / miss counters, and their batched persistence for the Performance page.

Hot path. ``with timed("analyze"):`` costs two ``time.perf_counter_ns`` calls and one short lock
around a ``deque.append`` (about a microsecond): nothing is logged or written per event. The
global switch :func:`set_enabled` (initially off when ``SWING_PERF=0``) turns timers, cache
counters and the slow-query hooks into no-ops.

Time alignment. Durations are wall-clock milliseconds measured with ``perf_counter_ns`` (a
monotonic clock); the rolling windows of :meth:`PerfRegistry.stats` / :meth:`~PerfRegistry.snapshot`
count back from *now* on that clock. Persisted rows carry ``ts`` as timezone-aware UTC: for a
timing or cache row, the end of the interval it aggregates (the flush time); for a memory row,
the sampling time; for a slow query, when the statement finished.

Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7), which is
``numpy.percentile``'s default ``method="linear"``.

One :class:`PerfRecorder` per process writes aggregated rows every ``interval_s`` seconds (and
on :meth:`PerfRecorder.flush` and at exit) to the tables ``PerfTiming``, ``PerfMemory``,
``SlowQuery`` and ``CacheCounter``; the ``load_*`` functions read them back for the page.
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import inspect
import itertools
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np
import pandas as pd
import psutil
import sqlalchemy as sa
from sqlalchemy import event

from swing_core.config import get_settings
from swing_core.errors import DatabaseError

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

_now_ns = time.perf_counter_ns

#: Operation names the engine's timers use (a convention the Performance page can rely on).
OPERATIONS: tuple[str, ...] = ("fetch", "frame", "analyze", "scan", "pattern_query", "backtest",
                               "db_write", "llm_call")
#: Cache names for :func:`cache_hit` / :func:`cache_miss`: bar cache, pattern index, LLM cache.
CACHES: tuple[str, ...] = ("bars", "patterns", "llm")
_MB = 1024.0 * 1024.0
#: Longest statement text kept for a slow query (bulk INSERT … VALUES can be megabytes).
MAX_STATEMENT_CHARS = 20_000
_TRUNCATED = "\n-- [statement truncated by swing_core.perf]"
#: Sequence numbers of slow queries and memory samples: increasing for the whole process life
#: (across reset() and fork), so a recorder's "newer than n" cursor never goes stale.
_SEQUENCE = itertools.count(1)

# --------------------------------------------------------------------------- global switch


def _env_enabled() -> bool:
    return os.environ.get("SWING_PERF", "").strip().lower() not in {"0", "false", "no", "off"}


_enabled: bool = _env_enabled()


def set_enabled(enabled: bool) -> None:
    """Turn all instrumentation on or off for this process (timers, cache counters, SQL hooks)."""
    global _enabled
    _enabled = bool(enabled)


def is_enabled() -> bool:
    """Whether instrumentation is on (initially: unless ``SWING_PERF`` is 0/false/no/off)."""
    return _enabled


#: Set while perf itself talks to the database, so its own statements are never captured.
_SUPPRESS: contextvars.ContextVar[bool] = contextvars.ContextVar("swing_perf_suppress",
                                                                  default=False)


@contextmanager
def _suppressed() -> Iterator[None]:
    token = _SUPPRESS.set(True)
    try:
        yield
    finally:
        _SUPPRESS.reset(token)


# --------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class OpStats:
    """Duration statistics of one operation over a window (milliseconds; NaN when count is 0)."""

    operation: str
    count: int
    mean_ms: float
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass(frozen=True)
class SlowQueryRecord:
    """A statement slower than the threshold: finish time (UTC), duration, text without values."""

    ts: datetime
    duration_ms: float
    statement: str
    dialect: str


TIMING_COLUMNS = ["operation", "count", "mean_ms", "p50_ms", "p95_ms", "max_ms"]
CACHE_COLUMNS = ["cache", "hits", "misses", "hit_rate"]
SLOW_COLUMNS = ["ts", "duration_ms", "statement", "dialect"]


class _Series:
    """Recent samples of one operation: (perf_counter_ns at the end, milliseconds)."""

    __slots__ = ("samples", "count", "total_ms")

    def __init__(self, maxlen: int) -> None:
        self.samples: deque[tuple[int, float]] = deque(maxlen=maxlen)
        self.count = 0  # lifetime, also the sequence number of the newest sample
        self.total_ms = 0.0  # lifetime


def _describe(operation: str, values: np.ndarray) -> OpStats:
    if values.size == 0:
        nan = float("nan")
        return OpStats(operation, 0, nan, nan, nan, nan)
    p50, p95 = np.percentile(values, [50.0, 95.0])  # method="linear" (type 7)
    return OpStats(operation, int(values.size), float(values.mean()), float(p50), float(p95),
                   float(values.max()))


class PerfRegistry:
    """Thread-safe in-memory store of operation durations, cache counters and slow queries.

    Each operation keeps its last ``max_samples`` durations with their time, so a window
    statistic covers the last ``window_s`` seconds *or* the last ``max_samples`` events,
    whichever is shorter; lifetime counts and totals are exact.
    """

    def __init__(self, *, max_samples: int = 20_000, max_slow_queries: int = 500) -> None:
        self._max_samples = max_samples
        self._max_slow = max_slow_queries
        self._reinit()

    def _reinit(self) -> None:
        # Also the after-fork reset: a lock copied while held by another thread stays held.
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._caches: dict[str, list[int]] = {}
        self._slow: deque[tuple[int, SlowQueryRecord]] = deque(maxlen=self._max_slow)

    # -- writing (hot path) ------------------------------------------------------------------
    def _add(self, operation: str, end_ns: int, duration_ms: float) -> None:
        with self._lock:
            series = self._series.get(operation)
            if series is None:
                series = self._series[operation] = _Series(self._max_samples)
            series.samples.append((end_ns, duration_ms))
            series.count += 1
            series.total_ms += duration_ms

    def record(self, operation: str, duration_ms: float) -> None:
        """Add one duration (milliseconds) measured elsewhere, e.g. an API-reported latency."""
        if _enabled:
            self._add(operation, _now_ns(), float(duration_ms))

    def timed(self, operation: str) -> _Timer | _NullTimer:
        """Context manager timing its block into this registry (see :func:`timed`)."""
        return _Timer(operation, self) if _enabled else _NULL_TIMER

    def cache_hit(self, name: str, n: int = 1) -> None:
        """Count ``n`` hits of the cache ``name``."""
        if _enabled:
            with self._lock:
                self._caches.setdefault(name, [0, 0])[0] += n

    def cache_miss(self, name: str, n: int = 1) -> None:
        """Count ``n`` misses of the cache ``name``."""
        if _enabled:
            with self._lock:
                self._caches.setdefault(name, [0, 0])[1] += n

    def add_slow_query(self, record: SlowQueryRecord) -> None:
        with self._lock:
            self._slow.append((next(_SEQUENCE), record))

    # -- reading ------------------------------------------------------------------------------
    def _window(self, operation: str, window_s: float | None) -> np.ndarray:
        with self._lock:
            series = self._series.get(operation)
            samples = list(series.samples) if series is not None else []
        if not samples:
            return np.empty(0)
        arr = np.asarray(samples, dtype=np.float64)
        if window_s is not None:
            arr = arr[arr[:, 0] >= _now_ns() - window_s * 1e9]
        return arr[:, 1]

    def stats(self, operation: str, *, window_s: float | None = 300.0) -> OpStats:
        """Count, mean, p50, p95, max (ms) of ``operation`` over the last ``window_s`` seconds
        (None: every retained sample)."""
        return _describe(operation, self._window(operation, window_s))

    def snapshot(self, window_s: float | None = 300.0) -> pd.DataFrame:
        """One row per operation seen in the window, columns :data:`TIMING_COLUMNS`, by name."""
        rows = [self.stats(op, window_s=window_s) for op in self.operations()]
        frame = pd.DataFrame([r.__dict__ for r in rows if r.count], columns=TIMING_COLUMNS)
        return frame.astype({"count": "int64"}).reset_index(drop=True)

    def operations(self) -> list[str]:
        """Names of every operation recorded since start (or the last reset), sorted."""
        with self._lock:
            return sorted(self._series)

    def lifetime(self, operation: str) -> tuple[int, float]:
        """Exact (count, total milliseconds) of ``operation`` since start (or the last reset)."""
        with self._lock:
            series = self._series.get(operation)
            return (series.count, series.total_ms) if series is not None else (0, 0.0)

    def cache_stats(self) -> pd.DataFrame:
        """Hits, misses and hit rate (0..1, NaN before any lookup) per cache since start."""
        with self._lock:
            items = sorted((k, v[0], v[1]) for k, v in self._caches.items())
        frame = pd.DataFrame(items, columns=CACHE_COLUMNS[:3]).astype({"hits": "int64",
                                                                       "misses": "int64"})
        total = frame["hits"] + frame["misses"]
        frame["hit_rate"] = (frame["hits"] / total.where(total > 0)).astype("float64")
        return frame

    def slow_queries(self, limit: int | None = None) -> pd.DataFrame:
        """Retained slow queries, newest first (columns :data:`SLOW_COLUMNS`)."""
        with self._lock:
            records = [r for _, r in reversed(self._slow)]
        if limit is not None:
            records = records[:limit]
        return pd.DataFrame([r.__dict__ for r in records], columns=SLOW_COLUMNS)

    def reset(self) -> None:
        """Forget every sample, counter and slow query."""
        with self._lock:
            self._series.clear()
            self._caches.clear()
            self._slow.clear()

    # -- for the recorder: what is new since its cursor ----------------------------------------
    # A cursor entry holds the series / counter object it counted, so after reset() or a fork
    # (new objects) counting restarts from zero instead of subtracting stale totals.
    def _timings_since(self, cursor: dict[str, tuple[_Series, int, float]],
                       ) -> dict[str, tuple[int, float, list[float]]]:
        out: dict[str, tuple[int, float, list[float]]] = {}
        with self._lock:
            for op, series in self._series.items():
                seen_series, seen, seen_total = cursor.get(op, (series, 0, 0.0))
                if seen_series is not series:
                    seen, seen_total = 0, 0.0
                new = series.count - seen
                if new:
                    keep = min(new, len(series.samples))
                    tail = [ms for _, ms in list(series.samples)[-keep:]]
                    out[op] = (new, series.total_ms - seen_total, tail)
                cursor[op] = (series, series.count, series.total_ms)
        return out

    def _caches_since(self, cursor: dict[str, tuple[list[int], int, int]],
                      ) -> list[tuple[str, int, int]]:
        out = []
        with self._lock:
            for name, counter in self._caches.items():
                seen_counter, h0, m0 = cursor.get(name, (counter, 0, 0))
                if seen_counter is not counter:
                    h0, m0 = 0, 0
                hits, misses = counter
                if hits - h0 or misses - m0:
                    out.append((name, hits - h0, misses - m0))
                cursor[name] = (counter, hits, misses)
        return out

    def _slow_since(self, seq: int) -> tuple[int, list[SlowQueryRecord]]:
        with self._lock:
            new = [(s, r) for s, r in self._slow if s > seq]
        return (new[-1][0] if new else seq), [r for _, r in new]


class _Timer:
    __slots__ = ("_operation", "_registry", "_t0")

    def __init__(self, operation: str, registry: PerfRegistry) -> None:
        self._operation = operation
        self._registry = registry
        self._t0 = 0

    def __enter__(self) -> _Timer:
        self._t0 = _now_ns()
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        # Failed calls are timed too: a slow failure is still time the user waited.
        end = _now_ns()
        self._registry._add(self._operation, end, (end - self._t0) / 1e6)
        return False


class _NullTimer:
    __slots__ = ()

    def __enter__(self) -> _NullTimer:
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        return False


_NULL_TIMER = _NullTimer()
_REGISTRY = PerfRegistry()


def get_registry() -> PerfRegistry:
    """The process-wide registry that the module-level functions use."""
    return _REGISTRY


def timed(operation: str) -> _Timer | _NullTimer:
    """Time a block: ``with timed("analyze"): ...`` adds its wall-clock duration (ms) to the
    process registry under ``operation``; a no-op while instrumentation is disabled."""
    return _Timer(operation, _REGISTRY) if _enabled else _NULL_TIMER


def timed_fn(operation: str | None = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator timing every call, ``@timed_fn("frame")`` (default name: the qualified name).
    Works for coroutine functions too (their awaited duration)."""

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        name = operation or fn.__qualname__

        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def awrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                if not _enabled:
                    return await fn(*args, **kwargs)
                with _Timer(name, _REGISTRY):
                    return await fn(*args, **kwargs)

            return awrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            if not _enabled:
                return fn(*args, **kwargs)
            with _Timer(name, _REGISTRY):
                return fn(*args, **kwargs)

        return wrapper

    if callable(operation):  # used bare: @timed_fn
        fn, operation = operation, None
        return decorate(fn)  # type: ignore[return-value]
    return decorate


def record(operation: str, duration_ms: float) -> None:
    """Add a duration measured elsewhere (ms) to the process registry."""
    _REGISTRY.record(operation, duration_ms)


def stats(operation: str, *, window_s: float | None = 300.0) -> OpStats:
    """Statistics of ``operation`` in the process registry over the last ``window_s`` seconds."""
    return _REGISTRY.stats(operation, window_s=window_s)


def snapshot(window_s: float | None = 300.0) -> pd.DataFrame:
    """Per-operation statistics of the process registry over the last ``window_s`` seconds."""
    return _REGISTRY.snapshot(window_s)


def cache_hit(name: str, n: int = 1) -> None:
    """Count a hit of a named cache ("bars", "patterns", "llm", …)."""
    if _enabled:
        _REGISTRY.cache_hit(name, n)


def cache_miss(name: str, n: int = 1) -> None:
    """Count a miss of a named cache."""
    if _enabled:
        _REGISTRY.cache_miss(name, n)


def cache_stats() -> pd.DataFrame:
    """Hits, misses and hit rate per cache in this process since start."""
    return _REGISTRY.cache_stats()


def slow_queries(limit: int | None = None) -> pd.DataFrame:
    """Slow queries captured in this process (not yet persisted ones included), newest first."""
    return _REGISTRY.slow_queries(limit)


# --------------------------------------------------------------------------- memory / CPU


@dataclass(frozen=True)
class MemorySample:
    """Resident memory now and at its peak (MiB), CPU since the previous sample (percent of one
    core, psutil's convention: 200 means two cores busy), sampled at ``ts`` (UTC)."""

    ts: datetime
    rss_mb: float
    peak_rss_mb: float
    cpu_pct: float


def _peak_rss_mb(proc: psutil.Process, rss_mb: float) -> float:
    try:
        import resource

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return max(rss_mb, maxrss / (_MB if sys.platform == "darwin" else 1024.0))
    except ImportError:  # Windows
        peak = getattr(proc.memory_info(), "peak_wset", 0)
        return max(rss_mb, peak / _MB)


class MemorySampler:
    """Samples this process's RSS, peak RSS and CPU on demand or in a daemon thread."""

    def __init__(self, *, max_samples: int = 2_880) -> None:
        self._max_samples = max_samples
        self._reinit()

    def _reinit(self) -> None:
        self._lock = threading.Lock()
        self._proc = psutil.Process()  # binds the pid: rebuilt after fork
        self._proc.cpu_percent(None)  # the first call only starts the measurement
        self._history: deque[tuple[int, MemorySample]] = deque(maxlen=self._max_samples)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval_s: float | None = None

    def sample(self) -> MemorySample:
        """Measure now, keep the sample in the history, and return it."""
        with self._lock:
            rss_mb = self._proc.memory_info().rss / _MB
            result = MemorySample(ts=datetime.now(UTC), rss_mb=rss_mb,
                                  peak_rss_mb=_peak_rss_mb(self._proc, rss_mb),
                                  cpu_pct=float(self._proc.cpu_percent(None)))
            self._history.append((next(_SEQUENCE), result))
        return result

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval_s: float = 10.0) -> MemorySampler:
        """Sample every ``interval_s`` seconds in a daemon thread (no-op if already running)."""
        if not self.running:
            self._stop = threading.Event()
            self.interval_s = interval_s
            self._thread = threading.Thread(target=self._run, args=(interval_s, self._stop),
                                            name="swing-perf-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread (if any) and wait for it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def _run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            try:
                if _enabled:
                    self.sample()
            except Exception:  # a sampler must never kill the process
                logger.debug("memory sample failed", exc_info=True)

    def history(self, window_s: float | None = None) -> pd.DataFrame:
        """Retained samples, oldest first, columns ts, rss_mb, peak_rss_mb, cpu_pct."""
        with self._lock:
            samples = [s for _, s in self._history]
        frame = pd.DataFrame([s.__dict__ for s in samples],
                             columns=["ts", "rss_mb", "peak_rss_mb", "cpu_pct"])
        if window_s is not None and len(frame):
            frame = frame[frame["ts"] >= datetime.now(UTC) - timedelta(seconds=window_s)]
        return frame.reset_index(drop=True)

    def _since(self, seq: int) -> tuple[int, list[MemorySample]]:
        with self._lock:
            new = [(n, s) for n, s in self._history if n > seq]
        return (new[-1][0] if new else seq), [s for _, s in new]


_SAMPLER = MemorySampler()


def get_sampler() -> MemorySampler:
    """The process-wide memory / CPU sampler."""
    return _SAMPLER


def sample_memory() -> MemorySample:
    """Sample this process's memory and CPU now (see :class:`MemorySample`)."""
    return _SAMPLER.sample()


def _after_fork_in_child() -> None:
    # A worker forked from the app starts with empty statistics of its own (and fresh locks).
    _REGISTRY._reinit()
    _SAMPLER._reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


# --------------------------------------------------------------------------- slow queries

_HOOKS: weakref.WeakKeyDictionary[sa.Engine, tuple[Callable[..., None], Callable[..., None]]] = (
    weakref.WeakKeyDictionary())


def _clip(statement: str) -> str:
    if len(statement) <= MAX_STATEMENT_CHARS:
        return statement
    return statement[:MAX_STATEMENT_CHARS] + _TRUNCATED


def install_slow_query_hooks(engine: sa.Engine, *, threshold_ms: float | None = None,
                             registry: PerfRegistry | None = None) -> None:
    """Capture every statement on ``engine`` that takes at least ``threshold_ms`` (default
    ``SWING_SLOW_QUERY_MS``, 100) into ``registry`` (default: the process registry).

    Only the statement text is kept (its placeholders, never the bound values), cut at
    :data:`MAX_STATEMENT_CHARS`. The duration is the driver's ``cursor.execute`` call, from
    SQLAlchemy's ``before_cursor_execute`` to ``after_cursor_execute``. Installing again
    replaces the previous hooks (e.g. a new threshold).
    """
    threshold_ns = (get_settings().slow_query_ms if threshold_ms is None else threshold_ms) * 1e6
    target = registry if registry is not None else _REGISTRY
    dialect = engine.dialect.name
    remove_slow_query_hooks(engine)

    def before(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if _enabled and context is not None and not _SUPPRESS.get():
            context._swing_perf_t0 = _now_ns()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        t0 = getattr(context, "_swing_perf_t0", 0)
        if t0:
            elapsed = _now_ns() - t0
            context._swing_perf_t0 = 0
            if elapsed >= threshold_ns:
                target.add_slow_query(SlowQueryRecord(datetime.now(UTC), elapsed / 1e6,
                                                      _clip(statement), dialect))

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    _HOOKS[engine] = (before, after)


def remove_slow_query_hooks(engine: sa.Engine) -> None:
    """Stop capturing slow queries on ``engine`` (no-op if not installed)."""
    hooks = _HOOKS.pop(engine, None)
    if hooks is not None:
        event.remove(engine, "before_cursor_execute", hooks[0])
        event.remove(engine, "after_cursor_execute", hooks[1])


# --------------------------------------------------------------------------- persistence


def process_name(role: str | None = None) -> str:
    """``"<role>:<pid>"``, e.g. ``"app:5678"``. Role: the argument, else ``SWING_PERF_ROLE``,
    else ``"app"`` inside Streamlit and ``"cli"`` otherwise (workers pass ``"worker"``)."""
    if role is None:
        role = os.environ.get("SWING_PERF_ROLE") or ("app" if "streamlit" in sys.modules
                                                     else "cli")
    return f"{role}:{os.getpid()}"


def _tables() -> dict[str, sa.Table]:
    from swing_core import models  # lazy: db.py may import perf to time its own writes

    return {"timings": models.PerfTiming.__table__, "memory": models.PerfMemory.__table__,
            "slow_queries": models.SlowQuery.__table__,
            "cache_counters": models.CacheCounter.__table__}


@contextmanager
def _write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    from swing_core import db  # lazy, as above; BEGIN IMMEDIATE on SQLite (waits for writers)

    with db.write_transaction(engine) as conn:
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
        now = datetime.now(UTC)
        proc = self.process
        timings = []
        for op, (count, total_ms, tail) in sorted(
                self.registry._timings_since(self._timing_cursor).items()):
            desc = _describe(op, np.asarray(tail, dtype=np.float64))
            timings.append(dict(ts=now, process=proc, operation=op, count=count,
                                mean_ms=total_ms / count, p50_ms=desc.p50_ms,
                                p95_ms=desc.p95_ms, max_ms=desc.max_ms))
        self._memory_seq, samples = self.sampler._since(self._memory_seq)
        if not samples and _enabled:  # no sampler thread: one sample per flush
            self.sampler.sample()
            self._memory_seq, samples = self.sampler._since(self._memory_seq)
        memory = [dict(ts=s.ts, process=proc, rss_mb=s.rss_mb, peak_rss_mb=s.peak_rss_mb,
                       cpu_pct=s.cpu_pct) for s in samples]
        self._slow_seq, slow = self.registry._slow_since(self._slow_seq)
        slow_rows = [dict(ts=q.ts, process=proc, duration_ms=q.duration_ms,
                          statement=q.statement, dialect=q.dialect) for q in slow]
        caches = [dict(ts=now, process=proc, cache=name, hits=h, misses=m)
                  for name, h, m in self.registry._caches_since(self._cache_cursor)]
        return {"timings": timings, "memory": memory, "slow_queries": slow_rows,
                "cache_counters": caches}

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


def prune(engine: sa.Engine, *, keep_days: float = 7) -> dict[str, int]:
    """Delete performance rows older than ``keep_days`` days: one DELETE per table, one
    transaction. Returns rows deleted per table."""
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
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
        return datetime.now(UTC) - since
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


# --------------------------------------------------------------------------- EXPLAIN


class ExplainRefused(DatabaseError):
    """:func:`explain` will not run this statement; the message says why."""


_EXPLAINABLE = {"select", "insert", "update", "delete", "with"}
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_PSYCOPG_PLACEHOLDER = re.compile(r"%(?:\(([^)]+)\))?(.)", re.DOTALL)


def _code_mask(sql: str) -> str:
    """``sql`` with string literals, quoted identifiers, dollar quotes and comments replaced by
    spaces (same length), so keywords, ``;`` and placeholders are only found in code."""
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        end = i + 1
        if ch in "'\"`":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside a literal
                        end += 2
                        continue
                    break
                end += 1
            end = min(end + 1, n)
        elif sql.startswith("--", i):
            found = sql.find("\n", i)
            end = n if found < 0 else found
        elif sql.startswith("/*", i):
            found = sql.find("*/", i + 2)
            end = n if found < 0 else found + 2
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            found = sql.find(tag.group(0), tag.end())
            end = n if found < 0 else found + len(tag.group(0))
        else:
            i += 1
            continue
        out[i:end] = " " * (end - i)
        i = end
    return "".join(out)


def _pyformat_to_numeric(sql: str) -> str:
    """psycopg's ``%(name)s`` / ``%s`` placeholders to PostgreSQL's ``$1``…, ``%%`` to ``%``
    (SQLAlchemy escapes every literal ``%`` for these drivers, inside string literals too)."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        if kind == "%" and name is None:
            return "%"
        if kind not in "sbt":
            raise ExplainRefused(f"Cannot read the placeholder {match.group(0)!r} in this "
                                 "statement; copy it into psql and run EXPLAIN by hand.")
        key = name if name is not None else f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _PSYCOPG_PLACEHOLDER.sub(replace, sql)


def _check_explainable(statement: str) -> str:
    """The statement without a trailing ``;``, or :class:`ExplainRefused`."""
    if _TRUNCATED in statement:
        raise ExplainRefused("This statement was truncated when it was recorded (it is longer "
                             f"than {MAX_STATEMENT_CHARS} characters), so it cannot be explained.")
    sql = statement.strip()
    mask = _code_mask(sql)
    end = len(sql)  # drop trailing semicolons (in code, not in a literal) and blanks
    while end and sql[end - 1] in " \t\r\n;" and mask[end - 1] in " \t\r\n;":
        end -= 1
    sql, mask = sql[:end], mask[:end]
    if not mask.strip():
        raise ExplainRefused("The statement is empty: pick a slow query from the list.")
    if ";" in mask:
        raise ExplainRefused("Only a single statement can be explained; this text holds several.")
    first = re.match(r"[\s(]*([A-Za-z]+)", mask)
    if first is None or first.group(1).lower() not in _EXPLAINABLE:
        word = first.group(1).upper() if first else mask.split()[0]
        raise ExplainRefused(f"Only SELECT, INSERT, UPDATE or DELETE statements can be "
                             f"explained, not {word}.")
    return sql


def _assert_recorded(engine: sa.Engine, statement: str) -> None:
    table = _tables()["slow_queries"]
    query = (sa.select(table.c.dialect).where(table.c.statement == statement).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise ExplainRefused("Only statements from the slow-query history can be explained; "
                             "this one is not in it.")
    if row.dialect and row.dialect != engine.dialect.name:
        raise ExplainRefused(f"This statement was recorded on {row.dialect}, but this database "
                             f"is {engine.dialect.name}: explain it where it ran.")


def _sqlite_parameters(mask: str) -> tuple[Any, str]:
    numbered = [int(x) for x in re.findall(r"\?(\d+)", mask)]
    positional = len(re.findall(r"\?(?!\d)", mask))
    named = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)|[@$]([A-Za-z_]\w*)", mask))
    names = {a or b for a, b in named}
    if names and (positional or numbered):
        raise ExplainRefused("This statement mixes named and positional parameters; run "
                             "EXPLAIN QUERY PLAN on it by hand with values.")
    if names:
        return dict.fromkeys(names), f"{len(names)} parameter(s)"
    count = max([positional, *numbered])
    return (None,) * count, f"{count} parameter(s)"


def explain(engine: sa.Engine, statement: str, *, check_recorded: bool = True) -> pd.DataFrame:
    """The query plan of a recorded slow statement: ``EXPLAIN QUERY PLAN`` on SQLite (columns
    id, parent, notused, detail), ``EXPLAIN`` on PostgreSQL (column "QUERY PLAN").

    The statement is planned, never executed (no ANALYZE), inside a transaction that is rolled
    back. Refused (:class:`ExplainRefused`) unless it is one SELECT / INSERT / UPDATE / DELETE
    (a WITH … query included) and, with ``check_recorded``, is in the slow-query table of this
    database. Bound parameters, whose values were never recorded, are planned as NULL: on
    PostgreSQL as a generic plan (``plan_cache_mode = force_generic_plan``), which does not
    depend on the values. ``frame.attrs["note"]`` says when that was done.
    """
    sql = _check_explainable(statement)
    if check_recorded:
        _assert_recorded(engine, statement)
    dialect = engine.dialect.name
    if dialect not in {"sqlite", "postgresql"}:
        raise ExplainRefused(f"EXPLAIN is only supported on SQLite and PostgreSQL, not {dialect}.")
    note = ""
    with _suppressed(), engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            if dialect == "sqlite":
                params, what = _sqlite_parameters(_code_mask(sql))
                if params:
                    note = f"The plan was made with NULL for each of the {what}."
                cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            else:
                if engine.dialect.paramstyle in ("pyformat", "format"):
                    sql = _pyformat_to_numeric(sql)
                count = max([0, *map(int, re.findall(r"\$(\d+)", _code_mask(sql)))])
                if count:
                    note = (f"Generic plan with NULL for the {count} parameter(s): it does not "
                            "depend on their values.")
                    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    cursor.execute("PREPARE swing_perf_explain AS " + sql)
                    cursor.execute("EXPLAIN EXECUTE swing_perf_explain("
                                   + ", ".join(["NULL"] * count) + ")")
                else:
                    cursor.execute("EXPLAIN " + sql)
            columns = [d[0] for d in cursor.description]
            frame = pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=columns)
        except ExplainRefused:
            raise
        except Exception as exc:
            raise DatabaseError(f"EXPLAIN failed on {dialect}: {exc}".strip()) from exc
        finally:
            try:
                cursor.close()
                raw.rollback()
            except Exception:  # the connection is discarded below if it is in doubt
                logger.debug("rollback after EXPLAIN failed", exc_info=True)
                conn.invalidate()
            if not conn.invalidated and dialect == "postgresql" and note:
                conn.invalidate()  # PREPARE outlives a rollback: drop the whole session
    frame.attrs["note"] = note
    frame.attrs["statement"] = sql
    return frame
