"""One ``concurrent.futures``-style executor interface for multi-symbol work.

* default: a process pool (``forkserver`` start method where available: safe inside a threaded
  app server, unlike ``fork``);
* ``SWING_DASK_ADDRESS`` set (or ``address=`` given): a Dask cluster through
  ``distributed.Client.get_executor()`` (the same ``submit`` / futures interface);
* ``"inline"``: run in the calling thread (tests, one symbol, debugging).

Task functions must be importable top-level functions (picklable); they return values or raise.
:func:`map_tasks` never lets one failing item stop the others: each item's exception is
returned in its place, and progress is reported as items finish.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from swing_core import db, perf
from swing_core.config import get_settings
from swing_core.errors import ConfigError

__all__ = ["InlineExecutor", "default_workers", "map_tasks", "open_executor"]


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
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


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
    pool = ProcessPoolExecutor(max_workers=max_workers or default_workers(),
                               mp_context=_mp_context())
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


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
    workers = min(max_workers or default_workers(), total)
    with open_executor(executor, max_workers=workers) as pool:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for done, future in enumerate(as_completed(futures), start=1):
            i = futures[future]
            exc = future.exception()
            results[i] = exc if exc is not None else future.result()
            if progress is not None:
                progress(done, total, labels[i])
    return results
