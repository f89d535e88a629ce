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
- :mod:`~swing_core.perf.query_plan`: :func:`explain`, the query plan of a recorded slow
  statement.
- :mod:`~swing_core.perf.monitor`: one call that starts monitoring for a process (prune, recorder,
  cache counters of the engine's caches).
- :mod:`~swing_core.perf.selfbench`: the self-benchmark (``benchmarks/run_all.py --quick`` in a
  subprocess) against the original performance guide.

The names are imported on first use (PEP 562), so ``from swing_core.perf import timed`` (what
the compute modules do) loads the timers only: no SQLAlchemy, no psutil.

Time alignment. Durations are wall-clock milliseconds measured with ``perf_counter_ns`` (a
monotonic clock); in-memory windows count back from *now* on that clock. Persisted rows carry
``ts`` as timezone-aware UTC: for a timing or cache row, the end of the interval it aggregates
(the flush time); for a memory row, the sampling time; for a slow query, when the statement
finished. Percentiles use linear interpolation between closest ranks (Hyndman & Fan type 7),
``numpy.percentile``'s default.
"""

from __future__ import annotations

from swing_core.lazy import lazy_exports

_TIMERS = "swing_core.perf.timers"
_SAMPLER = "swing_core.perf.sampler"
_SQLHOOKS = "swing_core.perf.sqlhooks"
_STORAGE = "swing_core.perf.storage"
_MONITOR = "swing_core.perf.monitor"
_QUERY_PLAN = "swing_core.perf.query_plan"

#: public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    **dict.fromkeys(("CACHE_COLUMNS", "SLOW_COLUMNS", "TIMING_COLUMNS", "OpStats", "PerfRegistry",
                     "SlowQueryRecord", "cache_hit", "cache_miss", "cache_stats", "get_registry",
                     "is_enabled", "record", "set_enabled", "slow_queries", "snapshot", "stats",
                     "timed", "timed_fn"), _TIMERS),
    **dict.fromkeys(("MemorySample", "MemorySampler", "get_sampler"), _SAMPLER),
    **dict.fromkeys(("MAX_STATEMENT_CHARS", "install_slow_query_hooks",
                     "remove_slow_query_hooks"), _SQLHOOKS),
    **dict.fromkeys(("FlushResult", "PerfRecorder", "load_cache_counters", "load_memory",
                     "load_slow_queries", "load_timings", "process_name", "prune",
                     "start_recorder", "stop_recorders"), _STORAGE),
    **dict.fromkeys(("MonitoringStatus", "connect_cache_counters", "start_monitoring"),
                    _MONITOR),
    **dict.fromkeys(("ExplainRefused", "explain"), _QUERY_PLAN),
}
#: Internals that tests and tools reach as ``perf._HOOKS`` / ``perf._TRUNCATED``: the very
#: objects of the submodule (``_HOOKS`` is the live map of installed hooks), not copies.
_INTERNALS: dict[str, str] = {"_HOOKS": _SQLHOOKS, "_TRUNCATED": _SQLHOOKS}
_SUBMODULES = frozenset({"monitor", "query_plan", "sampler", "selfbench", "sqlhooks", "storage",
                         "timers"})

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports(
    "swing_core.perf", {**_LAZY, **_INTERNALS}, globals(), submodules=_SUBMODULES
)
