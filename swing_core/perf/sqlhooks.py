"""Slow-query capture: SQLAlchemy cursor-execute hooks that keep the text (never the values) of
every statement slower than a threshold in the registry, and the keyed signature that marks a
recorded statement as SwingDesk's own (EXPLAIN plans nothing else)."""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from swing_core.clock import utc_now
from swing_core.config import get_settings
from swing_core.errors import ConfigError
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


# --------------------------------------------------------------------------- signatures

#: File under ``SWING_DATA_DIR`` holding the installation's signing key when
#: ``SWING_SECRET_KEY`` is not set (created on first use, owner read/write only).
KEY_FILE = "slow_query_signing.key"
_KEYS: dict[Path, bytes] = {}
_KEYS_LOCK = threading.Lock()


def _read_key(path: Path) -> bytes:
    key = path.read_text(encoding="ascii").strip()
    if len(key) < 32:
        raise ConfigError(f"The signing key file {path} is damaged (too short): delete it and a "
                          "new one is made (slow queries recorded before can then no longer "
                          "be explained).")
    return key.encode("ascii")


def _create_key(path: Path) -> None:
    """Write a new random key to ``path`` unless another process got there first: the key is
    written to a private temporary file (mode 0600) and hard-linked into place, so no reader
    ever sees a partial key and a key in use is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def signing_key() -> bytes:
    """This installation's key for :func:`sign_statement`: ``SWING_SECRET_KEY`` if set (give
    every app server that shares a database the same one), else the key in
    :data:`KEY_FILE` under ``SWING_DATA_DIR``, created with mode 0600 on first use."""
    settings = get_settings()
    if settings.secret_key:
        return settings.secret_key.encode("utf-8")
    path = (settings.data_dir / KEY_FILE).resolve()
    with _KEYS_LOCK:
        if path not in _KEYS:
            if not path.exists():
                _create_key(path)
            _KEYS[path] = _read_key(path)
        return _KEYS[path]


def sign_statement(statement: str, dialect: str | None, *, key: bytes | None = None) -> str:
    """HMAC-SHA256 (hex) of a recorded statement and its dialect with ``key`` (default:
    :func:`signing_key`). The recorder stores it with each slow query; EXPLAIN recomputes it
    and refuses a row whose signature differs (a row not written by SwingDesk)."""
    message = f"{dialect or ''}\0{statement}".encode("utf-8", "surrogatepass")
    return hmac.new(signing_key() if key is None else key, message, hashlib.sha256).hexdigest()
