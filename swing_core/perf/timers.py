"""Timers, the global on/off switch and the in-memory registry of durations, cache counters and
slow queries (the hot path of :mod:`swing_core.perf`).

``with timed("analyze"):`` costs two ``time.perf_counter_ns`` calls and one short lock around a
``deque.append`` (about a microsecond): nothing is logged or written per event. The global
switch :func:`set_enabled` (initially off when ``SWING_PERF=0``) turns timers, cache counters and
the slow-query hooks into no-ops.

Durations are wall-clock milliseconds measured with ``perf_counter_ns`` (a monotonic clock); the
rolling windows of :meth:`PerfRegistry.stats` / :meth:`~PerfRegistry.snapshot` count back from
*now* on that clock. Percentiles use linear interpolation between closest ranks (Hyndman & Fan
type 7), which is ``numpy.percentile``'s default ``method="linear"``.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, ParamSpec, TypeVar

import numpy as np
import pandas as pd

from swing_core.config import get_settings
from swing_core.errors import ConfigError

P = ParamSpec("P")
R = TypeVar("R")

_now_ns = time.perf_counter_ns

#: Sequence numbers of slow queries and memory samples: increasing for the whole process life
#: (across reset() and fork), so a recorder's "newer than n" cursor never goes stale.
_SEQUENCE = itertools.count(1)

# --------------------------------------------------------------------------- global switch


def _env_enabled() -> bool:
    try:
        return get_settings().perf_enabled
    except ConfigError:  # another setting is malformed: reported where it is used, not at import
        return True


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

    def __init__(self, *, max_samples: int = 20_000, max_slow_queries: int = 500,
                 monotonic_ns: Callable[[], int] = time.perf_counter_ns) -> None:
        # ``monotonic_ns``: the clock of sample times and windows (nanoseconds; injectable so a
        # window can be tested without sleeping).
        self._now_ns = monotonic_ns
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
            self._add(operation, self._now_ns(), float(duration_ms))

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
            arr = arr[arr[:, 0] >= self._now_ns() - window_s * 1e9]
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
        self._t0 = self._registry._now_ns()
        return self

    def __exit__(self, *exc: object) -> Literal[False]:
        # Failed calls are timed too: a slow failure is still time the user waited.
        end = self._registry._now_ns()
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
