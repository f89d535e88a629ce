"""Shared fixtures: a hermetic environment for every test, migrated databases for storage tests.

- Hermetic by default (so the README's plain ``python3 -m pytest -q`` is the same run as CI's):
  at import, before any test module, ``SWING_OFFLINE=1`` and the variables of the developer's
  environment that would reach a real service or a real file are removed; each test then gets
  its own empty ``SWING_DATA_DIR`` (so the default SQLite database is a fresh file in the test's
  temp folder, never the checkout's ``data/``), and the performance recorders and memory
  sampler that an in-process app run (AppTest) started are stopped after the test.
  ``SWING_TEST_DATABASE_URL`` is kept: it only adds the PostgreSQL variants of storage tests.

- ``sqlite_engine``: a fresh SQLite file in the test's temp folder, at the head revision (a
  template migrated once per session is copied, so each test starts empty and fast).
- ``db_engine``: parametrized over ``sqlite`` (always) and ``postgres`` (when
  ``SWING_TEST_DATABASE_URL`` is set). PostgreSQL tests run in a random schema created for this
  pytest session (so engineers and CI running at once on the same server never collide), emptied
  before each test and dropped at the end.
- ``pg_url``: the PostgreSQL test URL, or a skip when it is not set; ``pg_schema``: a fresh
  empty schema on it (not migrated), dropped after the test.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from swing_core import db, models, perf

PG_ENV = "SWING_TEST_DATABASE_URL"

#: Variables of the developer's environment a test must never see (real database, real LLM
#: endpoint and key, a Dask cluster, a data folder, non-default performance settings).
_FOREIGN_ENV = ("SWING_DATABASE_URL", "SWING_DATA_DIR", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                "SWING_DASK_ADDRESS", "SWING_PATTERN_BACKEND", "SWING_PERF", "SWING_PERF_ROLE",
                "SWING_LLM_MODEL", "SWING_LLM_MONTHLY_BUDGET_USD", "SWING_SLOW_QUERY_MS",
                "SWING_ADMIN_EMAILS", "SWING_DB_AUTO_MIGRATE", "SWING_DB_STATEMENT_TIMEOUT_MS",
                "SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "SWING_LLM_DEADLINE_S",
                "SWING_SECRET_KEY")
for _name in _FOREIGN_ENV:
    os.environ.pop(_name, None)
os.environ["SWING_OFFLINE"] = "1"  # never Yahoo: yfinance is replaced at the boundary in tests
# Anything that runs before the per-test fixture (collection, session fixtures) writes into a
# throw-away folder, never into the checkout's data/.
os.environ["SWING_DATA_DIR"] = tempfile.mkdtemp(prefix="swing-pytest-session-")


@pytest.fixture(autouse=True)
def _hermetic(tmp_path_factory: pytest.TempPathFactory,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Each test: its own empty data folder (and so default database); afterwards, every
    performance recorder and sampler thread started in this process is stopped."""
    data_dir = tmp_path_factory.mktemp("swing_data")
    monkeypatch.setenv("SWING_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SWING_OFFLINE", "1")
    yield data_dir
    perf.stop_recorders(flush=False)


@pytest.fixture(scope="session", autouse=True)
def _dispose_engines_at_end() -> Iterator[None]:
    yield
    perf.stop_recorders(flush=False)
    db.dispose_engines()


def _pg_url() -> str | None:
    return os.environ.get(PG_ENV, "").strip() or None


def new_pg_schema(url: str) -> str:
    """Create a uniquely named empty schema on the test server and return its name."""
    name = f"swt_{uuid.uuid4().hex[:12]}"
    admin = db.make_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{name}"')
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{PG_ENV} is set but PostgreSQL is unreachable: {exc.orig}")
    finally:
        admin.dispose()
    return name


def drop_pg_schema(url: str, name: str) -> None:
    admin = db.make_engine(url)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        admin.dispose()


def _empty_all_tables(engine: sa.Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in models.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")


@pytest.fixture(scope="session")
def pg_url() -> str:
    url = _pg_url()
    if url is None:
        pytest.skip(f"{PG_ENV} is not set: PostgreSQL tests skipped")
    return url


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """A fresh, empty (not migrated) schema on the PostgreSQL test server, dropped afterwards."""
    name = new_pg_schema(pg_url)
    try:
        yield name
    finally:
        drop_pg_schema(pg_url, name)


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite_template") / "template.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    db.init_db(engine)
    engine.dispose()  # last connection closed: WAL checkpointed into the main file
    return path


@pytest.fixture
def sqlite_engine(_sqlite_template: Path, tmp_path: Path) -> Iterator[sa.Engine]:
    """A fresh, migrated SQLite database file (WAL) in the test's temp folder."""
    path = tmp_path / "swingdesk.sqlite"
    shutil.copyfile(_sqlite_template, path)
    engine = db.make_engine(f"sqlite:///{path}")
    db.init_db(engine)  # a no-op revision check; marks the engine as ready
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def _pg_session_engine(pg_url: str) -> Iterator[sa.Engine]:
    schema = new_pg_schema(pg_url)
    engine = db.make_engine(pg_url, schema=schema)
    try:
        db.init_db(engine)
        yield engine
    finally:
        engine.dispose()
        drop_pg_schema(pg_url, schema)


@pytest.fixture
def pg_engine(_pg_session_engine: sa.Engine) -> sa.Engine:
    """The session's PostgreSQL schema, migrated and emptied for this test."""
    _empty_all_tables(_pg_session_engine)
    return _pg_session_engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_engine(request: pytest.FixtureRequest) -> sa.Engine:
    """A migrated, empty database: SQLite always, PostgreSQL when SWING_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_engine")
    return request.getfixturevalue("pg_engine")
