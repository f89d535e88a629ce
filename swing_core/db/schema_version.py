"""Schema versions: is the database at the code's head revision (answered without Alembic),
Alembic's configuration and the lock that serializes upgrades.

:func:`~swing_core.db.core.init_db` runs before the first table access of every process; on a
schema at the head it must change nothing, and importing Alembic just to learn that costs
0.1-0.25 s of every command's start. So the head is a constant here (:data:`SCHEMA_HEAD`, kept
equal to Alembic's head by ``tests/test_coldstart.py``) and the stored revision is read with
one plain ``SELECT``; Alembic is imported only to upgrade, or to explain a schema that is not
at the head.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = ["SCHEMA_HEAD", "alembic_config", "at_schema_head", "migration_lock"]

_MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"

#: The newest revision in ``swing_core/migrations/versions``: the schema this code needs. A new
#: revision there changes it here too (tests/test_coldstart.py fails until it does).
SCHEMA_HEAD = "0006"


def at_schema_head(engine: Engine) -> bool:
    """Is the schema at :data:`SCHEMA_HEAD`? One read of Alembic's version table (no DDL, no
    Alembic import). False when the table cannot be read (a new database: no table yet), so
    that Alembic's own path upgrades or reports whatever is there; connection errors propagate
    (the caller turns them into a :class:`~swing_core.errors.DatabaseError`)."""
    with engine.connect() as conn:
        try:
            rows = conn.exec_driver_sql("SELECT version_num FROM alembic_version").fetchall()
        except sa.exc.DBAPIError:  # e.g. no alembic_version table yet
            return False
    return [row[0] for row in rows] == [SCHEMA_HEAD]


def alembic_config(connection: Connection | None = None, *, url: str | None = None) -> Any:
    """An Alembic ``Config`` pointing at ``swing_core/migrations`` (works from any working
    directory and when installed). ``connection`` is handed to ``env.py``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS_DIR).replace("%", "%%"))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def migration_lock(conn: Connection) -> None:
    """Serialize schema upgrades: on PostgreSQL a transaction-scoped advisory lock per schema
    (and no statement or idle timeout for the rest of the migration transaction: a long upgrade
    must not be killed half-way); on SQLite the ``BEGIN IMMEDIATE`` of the surrounding
    transaction already holds the write lock. Call inside the migration transaction, before
    reading the current revision."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
        conn.exec_driver_sql("SET LOCAL idle_in_transaction_session_timeout = 0")
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext('swingdesk-migrate:' || current_schema()))"
        )
