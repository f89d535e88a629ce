"""Long-lived services shared by the CLI and the dashboard: the database engine (migrated) and
the pattern-prior provider built on the pattern index.

``open_services`` is what a page caches with ``st.cache_resource`` and what each CLI command
calls once; it raises :class:`DatabaseError` with a message naming the host or file (never the
password) when the configured database cannot be used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from swing_core import db
from swing_core.config import Settings, get_settings

__all__ = ["Services", "open_engine", "open_services"]


@dataclass
class Services:
    """The engine and, when available, the pattern index and its prior provider."""

    engine: sa.Engine
    prior_provider: Any = None
    pattern_index: Any = None
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, key: str) -> Any:  # dict-style access for simple callers
        return getattr(self, key)


def open_engine(settings: Settings | None = None) -> sa.Engine:
    """The configured database engine, brought up to the newest schema version."""
    settings = settings or get_settings()
    engine = db.get_engine(settings.effective_database_url)
    db.init_db(engine)
    return engine


def open_services(
    *,
    use_priors: bool = True,
    interval: str | None = None,
    settings: Settings | None = None,
    monitor: str | None = None,
) -> Services:
    """Open the database and (with ``use_priors``) the pattern index over its stored vectors.

    ``monitor``: a role ("cli", "worker", …) to record this process's timings, memory and slow
    queries in the database for the Performance page (the app starts its own recorder)."""
    settings = settings or get_settings()
    engine = open_engine(settings)
    services = Services(engine=engine)
    if monitor:
        from swing_core.perf import start_monitoring

        services.notes.extend(start_monitoring(engine, role=monitor).notes)
    if use_priors:
        from swing_core.priors import build_prior_provider

        index, provider, notes = build_prior_provider(engine, interval=interval, settings=settings)
        services.pattern_index = index
        services.prior_provider = provider
        services.notes.extend(notes)
    return services
