"""Alembic environment: runs on the connection swing_core.db.init_db hands over
(``config.attributes["connection"]``), or opens one from ``sqlalchemy.url`` / the settings.

SQLite tables are altered in batch mode (copy-and-move), the only way SQLite can change most
column definitions. UTC timestamps are rendered as plain ``sa.DateTime(timezone=True)`` so
revision files never import the models.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from swing_core import models
from swing_core.db import get_engine, migration_lock, write_transaction

config = context.config
target_metadata = models.metadata


def _render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    if type_ == "type" and isinstance(obj, models.UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and obj.__class__.__module__.startswith("sqlmodel"):
        return "sa.String()"  # sqlmodel's AutoString is a plain VARCHAR
    return False


def _configure(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        render_item=_render_item,
        compare_type=True,
        transactional_ddl=True,
    )


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_item=_render_item)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # init_db: already in a locked transaction
        _configure(connection)
        context.run_migrations()
        return
    engine = get_engine(config.get_main_option("sqlalchemy.url") or None)
    with write_transaction(engine) as conn:
        migration_lock(conn)
        _configure(conn)
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
