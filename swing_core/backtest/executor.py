"""One ``concurrent.futures``-style executor interface for multi-symbol work.

* default: the process's shared process pool (:func:`shared_pool`: ``forkserver`` start method
  where available, safe inside a threaded app server unlike ``fork``, with the engine imported
  once in the fork server so workers start warm); it lives across runs and is shut down at exit;
* ``SWING_DASK_ADDRESS`` set (or ``address=`` given): a Dask cluster through
  ``distributed.Client.get_executor()`` (the same ``submit`` / futures interface);
* ``"inline"``: run in the calling thread (tests, one symbol, debugging).

Task functions must be importable top-level functions (picklable); they return values or raise.
:func:`map_tasks` never lets one failing item stop the others: each item's exception is
returned in its place, and progress is reported as items finish.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from swing_core import db, perf
from swing_core.config import get_settings
from swing_core.errors import ConfigError

__all__ = ["InlineExecutor", "default_workers", "map_tasks", "open_executor", "shared_pool",
           "shutdown_shared_pools"]

#: Imported once in the fork server, before it forks the workers (each starts with the engine).
PRELOAD = ("numpy", "pandas", "swing_core.backtest.walk", "swing_core.backtest.universe")


class InlineExecutor(Executor):
    """Runs each task at submit time in the calling thread (a ``concurrent.futures`` Executor)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future


def default_workers() -> int:
    """Worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _mp_context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(PRELOAD))  # used when the fork server starts
    return context


_pools: dict[tuple[Any, ...], ProcessPoolExecutor] = {}
_pools_lock = threading.Lock()


def _settings_snapshot() -> tuple[tuple[str, str], ...]:
    """The environment a worker's settings come from: a pool is only reused under the same one
    (its workers keep the environment they started with)."""
    return tuple(sorted((k, v) for k, v in os.environ.items()
                        if k.startswith(("SWING_", "OPENAI_"))))


def shared_pool(max_workers: int | None = None) -> ProcessPoolExecutor:
    """The process pool of this process for ``max_workers`` workers, created on first use and
    reused by every later run (workers started from a fork server that has the engine imported,
    so a run pays neither process start-up nor imports). A pool whose workers died, or made
    under other ``SWING_*`` settings, is replaced. Shut down at exit
    (:func:`shutdown_shared_pools`)."""
    workers = max_workers or default_workers()
    key = (workers, _settings_snapshot())
    with _pools_lock:
        pool = _pools.get(key)
        if pool is not None and getattr(pool, "_broken", False):
            pool.shutdown(wait=False, cancel_futures=True)
            pool = None
        if pool is None:
            for stale in [k for k in _pools if k[0] == workers]:  # other settings: retire it
                _pools.pop(stale).shutdown(wait=False, cancel_futures=True)
            pool = _pools[key] = ProcessPoolExecutor(max_workers=workers,
                                                     mp_context=_mp_context())
        return pool


def shutdown_shared_pools() -> None:
    """Stop the shared pools' workers (at exit; tests)."""
    with _pools_lock:
        pools = list(_pools.values())
        _pools.clear()
    for pool in pools:
        pool.shutdown(wait=True, cancel_futures=True)


atexit.register(shutdown_shared_pools)


@contextmanager
def open_executor(kind: str | Executor | None = None, *, max_workers: int | None = None,
                  address: str | None = None) -> Iterator[Executor]:
    """Yield an executor and shut it down afterwards (a passed-in Executor is left open).

    ``kind``: None (Dask when ``address`` / SWING_DASK_ADDRESS is set, else a process pool),
    ``"process"``, ``"dask"``, ``"inline"``, or an Executor instance to use as is."""
    if isinstance(kind, Executor):
        yield kind
        return
    address = address or get_settings().dask_address
    if kind == "inline":
        yield InlineExecutor()
        return
    if kind == "dask" or (kind is None and address):
        if not address:
            raise ConfigError("A Dask executor needs SWING_DASK_ADDRESS (tcp://host:8786).")
        try:
            from distributed import Client  # lazy: optional, heavy (only with a Dask cluster)
        except ImportError as exc:
            raise ConfigError('SWING_DASK_ADDRESS is set but Dask is not installed: '
                              'pip install "dask[distributed]".') from exc
        client = Client(address)
        try:
            yield client.get_executor()
        finally:
            client.close()
        return
    if kind not in (None, "process"):
        raise ConfigError(f"Unknown executor kind {kind!r}: process, dask or inline.")
    yield shared_pool(max_workers)  # lives on for the next run


class RecordedTask:
    """``fn`` run in a worker process that then writes its timings to the database at
    ``database_url`` (role "worker"), so the Performance page shows work done in pools and on
    Dask. Worker processes exit without running exit handlers, hence a flush per task; a
    monitoring failure never fails the task."""

    def __init__(self, fn: Callable[[Any], Any], database_url: str) -> None:
        self.fn = fn
        self.database_url = database_url

    def __call__(self, item: Any) -> Any:
        try:
            return self.fn(item)
        finally:
            try:
                engine = db.get_engine(self.database_url)
                perf.start_recorder(engine, role="worker", interval_s=3600.0).flush()
            except Exception:  # noqa: BLE001 - monitoring must never fail the work
                pass


def map_tasks(fn: Callable[[Any], Any], items: Sequence[Any], *,
              executor: str | Executor | None = None, max_workers: int | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              labels: Sequence[str] | None = None,
              record_to: str | None = None) -> list[Any]:
    """``[fn(item) for item in items]`` on an executor, results in input order.

    An item whose task raised gets the exception object in its place (the others still run).
    ``progress(done, total, label)`` is called in this thread as each item finishes.
    ``record_to``: a database URL where worker processes write their timings (not used inline:
    the calling process records its own)."""
    if record_to and executor != "inline":
        fn = RecordedTask(fn, record_to)
    total = len(items)
    labels = list(labels) if labels is not None else [str(i) for i in range(total)]
    results: list[Any] = [None] * total
    if total == 0:
        return results
    workers = max_workers or default_workers()
    with open_executor(executor, max_workers=workers) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        try:
            for done, future in enumerate(as_completed(futures), start=1):
                i = futures[future]
                exc = future.exception()
                if isinstance(exc, BrokenProcessPool):
                    raise exc  # a dead worker: the pool is replaced on the next run
                results[i] = exc if exc is not None else future.result()
                if progress is not None:
                    progress(done, total, labels[i])
        finally:
            for future in futures:  # stopped early (an error, a cancel): drop what has not run
                future.cancel()
    return results
