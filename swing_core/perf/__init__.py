"""Performance instrumentation: timers, rolling statistics, memory / CPU sampling, slow-query
capture, cache hit / miss counters, and their batched persistence for the Performance page.

The package, one concept per module (``from swing_core.perf import …`` is the public API):

- :mod:`~swing_core.perf.timers`: the on/off switch, ``timed`` / ``timed_fn``, the in-memory
  :class:`PerfRegistry` (durations, cache counters, slow queries). Hot path: a timed block costs
  about a microsecond and nothing is logged or written per event.
- :mod:`~swing_core.perf.sampler`: RSS, peak RSS and CPU of this process.
- :mod:`~swing_core.perf.sqlhooks`: slow-query capture on a SQLAlchemy engine.
- :mod:`~swing_core.perf.storage`: the batched :class:`PerfRecorder` (one per process), retention
  and the ``load_*`` read API.
- :mod:`~swing_core.perf.explain`: the query plan of a recorded slow statement.
- :mod:`~swing_core.perf.monitor`: one call that starts monitoring for a process (prune, recorder,
  cache counters of the engine's caches).

Time alignment. Durations are wall-clock milliseconds measured with ``perf_counter_ns`` (a
monotonic clock); in-memory windows count back from *now* on that clock. Persisted rows carry
``ts`` as timezone-aware UTC: for a timing or cache row, the end of the interval it aggregates
(the flush time); for a memory row, the sampling time; for a slow query, when the statement
finished. Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7),
``numpy.percentile``'s default.
"""

from __future__ import annotations

from swing_core.perf.explain import ExplainRefused, explain
from swing_core.perf.monitor import MonitoringStatus, connect_cache_counters, start_monitoring
from swing_core.perf.sampler import MemorySample, MemorySampler, get_sampler, sample_memory
from swing_core.perf.sqlhooks import (
    MAX_STATEMENT_CHARS,
    install_slow_query_hooks,
    remove_slow_query_hooks,
)
from swing_core.perf.storage import (
    FlushResult,
    PerfRecorder,
    load_cache_counters,
    load_memory,
    load_slow_queries,
    load_timings,
    process_name,
    prune,
    start_recorder,
    stop_recorders,
)
from swing_core.perf.timers import (
    CACHE_COLUMNS,
    CACHES,
    OPERATIONS,
    SLOW_COLUMNS,
    TIMING_COLUMNS,
    OpStats,
    PerfRegistry,
    SlowQueryRecord,
    cache_hit,
    cache_miss,
    cache_stats,
    get_registry,
    is_enabled,
    record,
    set_enabled,
    slow_queries,
    snapshot,
    stats,
    timed,
    timed_fn,
)

__all__ = [
    "CACHES",
    "CACHE_COLUMNS",
    "MAX_STATEMENT_CHARS",
    "OPERATIONS",
    "SLOW_COLUMNS",
    "TIMING_COLUMNS",
    "ExplainRefused",
    "FlushResult",
    "MemorySample",
    "MemorySampler",
    "MonitoringStatus",
    "OpStats",
    "PerfRecorder",
    "PerfRegistry",
    "SlowQueryRecord",
    "cache_hit",
    "cache_miss",
    "cache_stats",
    "connect_cache_counters",
    "explain",
    "get_registry",
    "get_sampler",
    "install_slow_query_hooks",
    "is_enabled",
    "load_cache_counters",
    "load_memory",
    "load_slow_queries",
    "load_timings",
    "process_name",
    "prune",
    "record",
    "remove_slow_query_hooks",
    "sample_memory",
    "set_enabled",
    "slow_queries",
    "snapshot",
    "start_monitoring",
    "start_recorder",
    "stop_recorders",
    "stats",
    "timed",
    "timed_fn",
]

# Internals that tests and tools reach as ``perf._HOOKS`` / ``perf._TRUNCATED``: the very objects
# of the submodule (``_HOOKS`` is the live map of installed hooks), not copies.
from swing_core.perf.sqlhooks import _HOOKS, _TRUNCATED  # noqa: E402, F401
