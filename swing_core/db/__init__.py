"""Storage: the engine factory, schema versions (Alembic), the bar cache, setup vectors, signals
and backtest runs. Import everything from here (``from swing_core import db``).

- SQLite by default: one file under ``SWING_DATA_DIR`` (``data/swingdesk.sqlite``), created on
  first use, in WAL mode with ``synchronous=NORMAL``, a busy timeout and foreign keys on. Write
  transactions start with ``BEGIN IMMEDIATE`` so that two processes writing at once queue on the
  busy timeout instead of failing with "database is locked".
- PostgreSQL when ``SWING_DATABASE_URL`` is a ``postgresql`` URL (driver: psycopg 3), with a
  connection pool sized by the ``SWING_DB_*`` settings, and ``statement_timeout`` /
  ``idle_in_transaction_session_timeout`` on every connection (``SWING_DB_STATEMENT_TIMEOUT_MS``,
  ``SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS``; none inside a migration).

Every public function raises :class:`~swing_core.errors.DatabaseError` with a message naming the
database (host or file, never the password) when it cannot be reached or used. Functions that
touch tables check the schema first (once per engine), see :func:`init_db`: at the code's head
nothing is changed (no DDL: a role with DML rights only works); behind it, it is upgraded unless
``SWING_DB_AUTO_MIGRATE`` is off or the role may not, and then the error says to run
``python -m swing_core db upgrade`` as the database owner.
Batch writes run in one transaction each: a batch that fails half-way leaves no rows behind.
Bulk writes go through the driver's executemany with driver-ready values (no per-row ORM or
SQLAlchemy processing); bulk reads decode whole columns with numpy/pandas.

Modules: ``core`` (engines, errors, migrations), ``bars``, ``vectors`` (writes; ``vector_copy``
its PostgreSQL COPY path), ``vector_load`` (the matrix load), ``signals``, ``backtests``;
``_convert`` holds the frame <-> row and statement helpers they share, ``_bulk`` the packed-read
decoders and the binary COPY encoder.
"""

from __future__ import annotations

from swing_core.db.backtests import (
    StoredBacktest,
    list_backtest_runs,
    load_backtest_run,
    save_backtest_chunk,
    save_backtest_run,
)
from swing_core.db.bars import (
    BAR_COLUMNS,
    bar_cache_summary,
    delete_bars,
    load_bars,
    upsert_bars,
)
from swing_core.db.core import (
    PG_CONNECT_TIMEOUT_S,
    SQLITE_BUSY_TIMEOUT_S,
    DatabaseStatus,
    alembic_config,
    database_status,
    describe_database,
    dispose_engines,
    get_engine,
    init_db,
    make_engine,
    migration_lock,
    write_transaction,
)
from swing_core.db.signals import (
    SignalWrite,
    list_signals,
    record_signals,
    set_signal_outcomes,
    write_signal,
    write_signals,
)
from swing_core.db.vector_load import VectorRows, load_vector_matrix
from swing_core.db.vectors import VECTOR_COLUMNS, set_vector_outcomes, upsert_vectors
from swing_core.models import metadata

__all__ = [
    "BAR_COLUMNS",
    "PG_CONNECT_TIMEOUT_S",
    "SQLITE_BUSY_TIMEOUT_S",
    "VECTOR_COLUMNS",
    "DatabaseStatus",
    "SignalWrite",
    "StoredBacktest",
    "VectorRows",
    "alembic_config",
    "bar_cache_summary",
    "database_status",
    "delete_bars",
    "describe_database",
    "dispose_engines",
    "get_engine",
    "init_db",
    "list_backtest_runs",
    "list_signals",
    "load_backtest_run",
    "load_bars",
    "load_vector_matrix",
    "make_engine",
    "metadata",
    "migration_lock",
    "record_signals",
    "save_backtest_chunk",
    "save_backtest_run",
    "set_signal_outcomes",
    "set_vector_outcomes",
    "upsert_bars",
    "upsert_vectors",
    "write_signal",
    "write_signals",
    "write_transaction",
]
