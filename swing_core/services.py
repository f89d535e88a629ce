"""The runtime: what a process opens once and every command or page then uses — the settings,
the database engine (migrated) and, for one interval, the pattern index with its prior provider.

:func:`open_runtime` is the one place that opens them: each CLI command calls it once, the
dashboard caches its result with ``st.cache_resource`` (keyed by the database). It never raises
for an unusable database: the runtime then has ``engine=None`` and says why in
``database_error`` (a message naming the host or file, never the password), so the dashboard
can still work on fetched or demo data; a caller that cannot do without storage calls
:meth:`Runtime.require_engine`. Pattern priors that cannot be built become a note.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from swing_core import db
from swing_core.config import Settings, get_settings
from swing_core.errors import DatabaseError, SwingError

__all__ = ["Runtime", "open_engine", "open_runtime"]


@dataclass
class Runtime:
    """The engine resources of one process (or one dashboard database and interval).

    ``engine`` is None when the database is unusable (``database_error`` says why);
    ``pattern_index`` / ``prior_provider`` are None without priors (``notes`` say why);
    ``database`` names the database for messages (host or file, never the password)."""

    settings: Settings
    engine: sa.Engine | None = None
    database: str = ""
    database_error: str | None = None
    interval: str | None = None
    pattern_index: Any = None
    prior_provider: Any = None
    notes: list[str] = field(default_factory=list)

    def require_engine(self) -> sa.Engine:
        """The engine, or the :class:`DatabaseError` that made it unusable."""
        if self.engine is None:
            raise DatabaseError(self.database_error or f"{self.database} is unavailable.")
        return self.engine


def open_engine(settings: Settings | None = None) -> sa.Engine:
    """The configured database engine, at the newest schema version (upgraded to it unless
    ``SWING_DB_AUTO_MIGRATE`` is off; raises :class:`DatabaseError` when it cannot be used, e.g.
    a schema behind the code that this role may not upgrade)."""
    settings = settings or get_settings()
    engine = db.get_engine(settings.effective_database_url)
    db.init_db(engine)
    return engine


def open_runtime(
    *,
    priors: bool = True,
    interval: str | None = None,
    settings: Settings | None = None,
    monitor: str | None = None,
) -> Runtime:
    """Open the database and (with ``priors``) the pattern index of ``interval`` (None: every
    interval) over its stored vectors, as one :class:`Runtime`.

    ``monitor``: a role ("cli", "worker", …) to record this process's timings, memory and slow
    queries in the database for the Performance page (the app starts its own recorder)."""
    settings = settings or get_settings()
    runtime = Runtime(settings=settings, interval=interval,
                      database=db.describe_database(settings.effective_database_url))
    try:
        runtime.engine = open_engine(settings)
    except DatabaseError as exc:
        runtime.database_error = str(exc)
        return runtime
    if monitor:
        from swing_core.perf import start_monitoring

        runtime.notes.extend(start_monitoring(runtime.engine, role=monitor).notes)
    if priors:
        _open_priors(runtime)
    return runtime


def _open_priors(runtime: Runtime) -> None:
    """The pattern index and prior provider of ``runtime.interval``, or a note saying why not
    (signals are then made without priors)."""
    try:
        from swing_core.priors import build_prior_provider

        index, provider, notes = build_prior_provider(runtime.engine, interval=runtime.interval,
                                                      settings=runtime.settings)
    except SwingError as exc:
        runtime.notes.append(f"Pattern priors unavailable: {exc}")
        return
    except ImportError as exc:  # an installation without the pattern layer's dependencies
        runtime.notes.append(f"Pattern priors unavailable in this installation ({exc.name}).")
        return
    runtime.pattern_index = index
    runtime.prior_provider = provider
    runtime.notes.extend(notes)
