"""Slow-query capture: SQLAlchemy cursor-execute hooks that keep the text (never the values) of
every statement slower than a threshold in the registry."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from swing_core.clock import utc_now
from swing_core.config import get_settings
from swing_core.perf import timers as _timers
from swing_core.perf.timers import _REGISTRY, _SUPPRESS, PerfRegistry, SlowQueryRecord, _now_ns

#: Longest statement text kept for a slow query (bulk INSERT … VALUES can be megabytes).
MAX_STATEMENT_CHARS = 20_000
_TRUNCATED = "\n-- [statement truncated by swing_core.perf]"

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
        if _timers._enabled and context is not None and not _SUPPRESS.get():
            context._swing_perf_t0 = _now_ns()

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
              executemany: bool) -> None:
        t0 = getattr(context, "_swing_perf_t0", 0)
        if t0:
            elapsed = _now_ns() - t0
            context._swing_perf_t0 = 0
            if elapsed >= threshold_ns:
                target.add_slow_query(SlowQueryRecord(utc_now(), elapsed / 1e6,
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
