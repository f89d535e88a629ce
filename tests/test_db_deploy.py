"""Deploying on a shared PostgreSQL (issue 16): session timeouts on every connection, and an app
that runs with DML rights only while an owner role runs the migrations (`db upgrade`).

The least-privilege test runs the README's SQL ("Deploying on PostgreSQL with least privilege")
with unique role and schema names, connects as each role (the test server trusts 127.0.0.1, so
no password is needed) and drops the roles at the end (roles are cluster-wide).
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from real_bars import daily_bars, write_daily_csv
from sqlalchemy.engine import make_url

from swing_core import cli, db, journal, perf
from swing_core.backtest import BacktestConfig, load_run, run_backtest
from swing_core.db.core import _db_errors
from swing_core.errors import DatabaseError
from swing_core.market import import_bars, list_library


def _head() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(db.alembic_config()).get_current_head()


def _previous_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(db.alembic_config())
    return script.get_revision(script.get_current_head()).down_revision


# --------------------------------------------------------------------------- session timeouts


@pytest.mark.postgres
def test_every_connection_has_the_configured_timeouts(pg_url: str, monkeypatch) -> None:
    engine = db.make_engine(pg_url)
    try:
        for _ in range(2):  # a new connection, then the same one back from the pool
            with engine.connect() as conn:
                assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "30s"
                assert conn.exec_driver_sql(
                    "SHOW idle_in_transaction_session_timeout").scalar() == "1min"
        assert engine.pool.checkedin() == 1
    finally:
        engine.dispose()
    monkeypatch.setenv("SWING_DB_STATEMENT_TIMEOUT_MS", "1234")
    monkeypatch.setenv("SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "0")  # 0 = no limit
    # the URL's own libpq options and the schema's search path are kept alongside
    url = make_url(pg_url).update_query_dict({"options": "-c work_mem=5MB"})
    engine = db.make_engine(url, schema="some_schema")
    try:
        with engine.connect() as conn:
            show = {name: conn.exec_driver_sql(f"SHOW {name}").scalar() for name in (
                "statement_timeout", "idle_in_transaction_session_timeout", "work_mem",
                "search_path")}
    finally:
        engine.dispose()
    assert show == {"statement_timeout": "1234ms", "idle_in_transaction_session_timeout": "0",
                    "work_mem": "5MB", "search_path": "some_schema"}


@_db_errors
def _sleep_in_query(engine: sa.Engine, seconds: float) -> None:
    with engine.connect() as conn:
        conn.exec_driver_sql(f"SELECT pg_sleep({seconds})")


@_db_errors
def _idle_in_transaction(engine: sa.Engine, seconds: float) -> None:
    with db.write_transaction(engine) as conn:
        conn.exec_driver_sql("SELECT 1")
        time.sleep(seconds)  # e.g. a slow computation between two writes of one transaction
        conn.exec_driver_sql("SELECT 2")


@pytest.mark.postgres
def test_timeouts_give_a_clear_message_naming_the_setting(pg_url: str, pg_schema: str,
                                                          monkeypatch) -> None:
    monkeypatch.setenv("SWING_DB_STATEMENT_TIMEOUT_MS", "100")
    monkeypatch.setenv("SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", "200")
    engine = db.make_engine(pg_url, schema=pg_schema)
    blocker = db.make_engine(pg_url, schema=pg_schema)
    try:
        with pytest.raises(DatabaseError, match="SWING_DB_STATEMENT_TIMEOUT_MS") as info:
            _sleep_in_query(engine, 1)
        assert "ran longer than the statement timeout (100 ms)" in str(info.value)
        with pytest.raises(DatabaseError,
                           match="SWING_DB_IDLE_IN_TRANSACTION_TIMEOUT_MS") as info:
            _idle_in_transaction(engine, 0.6)
        assert "idle inside a transaction longer than 200 ms" in str(info.value)
        # a public call blocked by another session's lock past the timeout: the same message
        db.init_db(engine)
        with blocker.connect() as other, other.begin():
            other.exec_driver_sql("LOCK TABLE bars IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(DatabaseError, match="SWING_DB_STATEMENT_TIMEOUT_MS"):
                db.load_bars(engine, "AAPL", "1d")
        assert db.load_bars(engine, "AAPL", "1d").empty  # the pool recovered
    finally:
        engine.dispose()
        blocker.dispose()


@pytest.mark.postgres
def test_a_migration_is_not_cut_by_a_short_statement_timeout(pg_url: str, pg_schema: str,
                                                             monkeypatch) -> None:
    """Another replica holds the migration lock for longer than the statement timeout: this
    one waits for it (no statement timeout inside the migration transaction), then finds the
    schema current."""
    monkeypatch.setenv("SWING_DB_STATEMENT_TIMEOUT_MS", "100")
    engine = db.make_engine(pg_url, schema=pg_schema)
    other = db.make_engine(pg_url, schema=pg_schema)
    outcome: list[object] = []

    def upgrade() -> None:
        try:
            outcome.append(db.init_db(engine))
        except Exception as exc:  # reported by the assertion below
            outcome.append(exc)

    try:
        with other.connect() as conn, conn.begin():
            db.migration_lock(conn)  # what a replica upgrading the schema holds
            worker = threading.Thread(target=upgrade)
            worker.start()
            time.sleep(0.5)  # five statement timeouts
        worker.join(60)
        assert outcome == [_head()]
        assert db.database_status(engine).up_to_date
    finally:
        engine.dispose()
        other.dispose()


# --------------------------------------------------------------------------- schema checks


def test_auto_migrate_off_never_upgrades_and_says_what_to_run(tmp_path: Path, monkeypatch,
                                                              capsys) -> None:
    monkeypatch.setenv("SWING_DATABASE_URL", f"sqlite:///{tmp_path / 'team.sqlite'}")
    monkeypatch.setenv("SWING_DB_AUTO_MIGRATE", "0")
    engine = db.get_engine()
    try:
        with pytest.raises(DatabaseError) as info:
            db.init_db(engine)
        assert str(info.value).endswith(
            f"is at revision none (no tables yet), this version needs {_head()}: run "
            "`python -m swing_core db upgrade` as the database owner (SWING_DB_AUTO_MIGRATE is "
            "off).")
        assert db.database_status(engine).current_revision is None  # nothing was created
        assert cli.main(["analyze", "AAA", "--interval", "1d", "--source", "demo"]) == 2
        err = capsys.readouterr().err
        assert "run `python -m swing_core db upgrade` as the database owner" in err
        assert "Traceback" not in err
        assert cli.main(["db", "upgrade"]) == 0  # the explicit command upgrades regardless
        assert f"schema at revision {_head()}" in capsys.readouterr().out
        assert db.init_db(engine) == _head()
    finally:
        db.dispose_engines()


def test_a_schema_from_a_newer_version_is_named(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'newer.sqlite'}")
    try:
        db.init_db(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'f00dcafe0099'")
        db.dispose_engines()
        fresh = db.make_engine(engine.url)
        with pytest.raises(DatabaseError, match="is at revision f00dcafe0099, which this "
                                                "version of SwingDesk .* does not know"):
            db.init_db(fresh)
        fresh.dispose()
    finally:
        engine.dispose()


# --------------------------------------------------------------------------- least privilege

#: The README's SQL, run by a superuser (or a role with CREATEROLE), with the test's names.
SETUP_SQL = """
CREATE ROLE {owner} LOGIN;
CREATE ROLE {app} LOGIN;
CREATE SCHEMA {schema} AUTHORIZATION {owner};
ALTER ROLE {owner} IN DATABASE {database} SET search_path = {schema};
ALTER ROLE {app} IN DATABASE {database} SET search_path = {schema};
GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {app};
GRANT USAGE ON SCHEMA {schema} TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {app};
ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA {schema}
    GRANT USAGE, SELECT ON SEQUENCES TO {app};
"""
#: After the owner's first `db upgrade` on a schema that existed before the default privileges.
GRANT_EXISTING_SQL = """
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {app};
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {app};
"""


@dataclass(frozen=True)
class Deployment:
    owner_url: str
    app_url: str
    names: dict[str, str]


def _run_sql(engine: sa.Engine, script: str, names: dict[str, str]) -> None:
    with engine.begin() as conn:
        for statement in script.format(**names).split(";"):
            if statement.strip():
                conn.exec_driver_sql(statement)


@pytest.fixture
def deployment(pg_url: str) -> Iterator[Deployment]:
    tag = uuid.uuid4().hex[:10]
    admin = db.make_engine(pg_url)
    names = {"owner": f"swo_{tag}", "app": f"swa_{tag}", "schema": f"swd_{tag}",
             "database": admin.url.database}
    url = make_url(pg_url).set(password=None)
    role_url = {r: url.set(username=names[r]).render_as_string(hide_password=False)
                for r in ("owner", "app")}
    try:
        _run_sql(admin, SETUP_SQL, names)
        yield Deployment(role_url["owner"], role_url["app"], names)
    finally:
        db.dispose_engines()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {names['schema']} CASCADE")
            for role in (names["app"], names["owner"]):
                if conn.exec_driver_sql("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                        (role,)).first():
                    conn.exec_driver_sql(f"DROP OWNED BY {role}")
                    conn.exec_driver_sql(f"DROP ROLE {role}")
        admin.dispose()


def _cli(monkeypatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("SWING_DATABASE_URL", url)
    try:
        return cli.main(list(argv))
    finally:
        db.dispose_engines()  # the next command is a new process


def _ddl_statements(engine: sa.Engine) -> list[str]:
    """Every DDL statement ``engine`` sends from now on."""
    seen: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def _watch(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        if re.match(r"\s*(CREATE|ALTER|DROP|TRUNCATE|GRANT|VACUUM|ANALYZE)\b", statement,
                    re.IGNORECASE):
            seen.append(statement.strip().split("(")[0])

    return seen


def _exercise_the_app(engine: sa.Engine, tmp_path: Path) -> None:
    """What the app and its CLI write and read, as the DML-only role."""
    write_daily_csv(tmp_path / "AAA.csv", "AAA", start="2020-01-02", end="2021-06-30")
    report = import_bars(tmp_path / "AAA.csv", engine=engine)  # the Data library
    assert report.ok and list_library(engine)["symbol"].tolist() == ["AAA"]
    asof = pd.Timestamp("2021-06-01", tz="UTC")
    journal.record_signals(engine, [{  # the journal
        "symbol": "AAA", "interval": "1d", "asof": asof, "setup": "momentum", "side": "long",
        "entry": 50.0, "stop": 48.0, "target": 54.0, "price": 50.0, "trend_label": "up",
        "data_source": "file", "vector": np.full(16, 0.25, np.float32)}])
    assert db.list_signals(engine)["symbol"].tolist() == ["AAA"]
    journal.evaluate_pending(engine)
    bars = {"AAA": daily_bars("AAA", start="2009-01-02", end="2011-06-30", seed=4)}
    result = run_backtest(["AAA"], bars=bars, config=BacktestConfig(interval="1d",
                          start="2010-01-04"), executor="inline", engine=engine, save=True)
    assert len(load_run(engine, result.run_hash).trades) == len(result.trades)  # backtests
    ts = pd.date_range("2024-01-02 14:30", periods=40, freq="30min", tz="UTC")
    vectors = pd.DataFrame({"symbol": "AAA", "interval": "30m", "ts": ts, "setup": "momentum",
                            "side": "long", "trend": "up", "vol_regime": "M",
                            "vector": list(np.eye(16, dtype=np.float32)[np.arange(40) % 16]),
                            "realized_r": 1.0, "exit_ts": ts + pd.Timedelta(hours=1)})
    assert db.upsert_vectors(engine, vectors) == 40  # binary COPY into a TEMP table
    assert db.load_vector_matrix(engine, symbol="AAA", interval="30m").matrix.shape == (40, 16)
    registry = perf.PerfRegistry()  # the Performance page's history
    recorder = perf.PerfRecorder(engine, registry=registry, slow_query_ms=0,
                                 sampler=perf.MemorySampler(), at_exit=False)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT count(*) FROM bars")).all()
        registry.record("analyze", 12.0)
        flushed = recorder.flush()
        assert flushed.error is None and flushed.slow_queries >= 1 and flushed.timings == 1
    finally:
        recorder.stop(flush=False)
    assert not perf.load_slow_queries(engine).empty
    perf.prune(engine, keep_days=0)


@pytest.mark.postgres
def test_the_app_runs_with_dml_rights_only(deployment: Deployment, tmp_path: Path,
                                           monkeypatch, capsys) -> None:
    names = deployment.names
    # 1. the owner migrates (even with automatic upgrades off, as the app's env would say)
    monkeypatch.setenv("SWING_DB_AUTO_MIGRATE", "0")
    assert _cli(monkeypatch, deployment.owner_url, "db", "upgrade") == 0
    assert f"schema at revision {_head()}" in capsys.readouterr().out
    owner = db.make_engine(deployment.owner_url)
    _run_sql(owner, GRANT_EXISTING_SQL, names)
    monkeypatch.delenv("SWING_DB_AUTO_MIGRATE")  # the default (on): still no DDL at head

    # 2. the app role: cannot change the schema, and everything it does works
    app = db.make_engine(deployment.app_url)
    try:
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"), app.begin() as c:
            c.exec_driver_sql("CREATE TABLE probe (i int)")
        ddl = _ddl_statements(app)
        _exercise_the_app(app, tmp_path)
        temp_stages = {"CREATE TEMP TABLE swing_vector_stage ",  # COPY stages: TEMP, see README
                       "CREATE TEMP TABLE IF NOT EXISTS swing_trade_stage ",
                       "TRUNCATE pg_temp.swing_trade_stage"}
        assert set(ddl) <= temp_stages, ddl
        assert _cli(monkeypatch, deployment.app_url, "analyze", "AAA", "--interval", "1d",
                    "--source", "local") == 0
        capsys.readouterr()
        # a grant forgotten: the message names the privileges the app needs
        with owner.begin() as conn:
            conn.exec_driver_sql(f"REVOKE DELETE ON bars FROM {names['app']}")
        with pytest.raises(DatabaseError, match=r"permission denied for table bars\. The "
                                                r"database role lacks a privilege: grant it "):
            db.delete_bars(app, symbol="AAA")
        # tables of later migrations reach the app through the default privileges
        with owner.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE later_table (i int)")
        with app.begin() as conn:
            conn.exec_driver_sql("INSERT INTO later_table VALUES (1)")
    finally:
        app.dispose()

    # 3. a schema behind the code: the app says what to run, never a traceback
    with owner.begin() as conn:
        command.downgrade(db.alembic_config(conn), _previous_revision())
    expected = (f"The database schema of PostgreSQL {names['app']}@", f"is at revision "
                f"{_previous_revision()}, this version needs {_head()}: run `python -m "
                "swing_core db upgrade` as the database owner (this database role may not "
                "change the schema: ")
    app = db.make_engine(deployment.app_url)
    try:
        with pytest.raises(DatabaseError) as info:
            db.load_bars(app, "AAA", "1d")
        message = str(info.value)
        assert message.startswith(expected[0]) and expected[1] in message, message
        # the server's reason: ALTER of a table it does not own, or CREATE in the schema
        assert re.search(r"schema: (must be owner of table \w+|permission denied for schema "
                         r"\w+)\)\.$", message), message
    finally:
        app.dispose()
    for argv in (("analyze", "AAA", "--interval", "1d", "--source", "local"),
                 ("db", "upgrade")):
        assert _cli(monkeypatch, deployment.app_url, *argv) == 2
        err = capsys.readouterr().err
        assert expected[1] in err and "Traceback" not in err, err
    assert _cli(monkeypatch, deployment.app_url, "db", "status") == 0
    assert "needs `db upgrade`" in capsys.readouterr().out
    # 4. the owner upgrades: the app works again
    assert _cli(monkeypatch, deployment.owner_url, "db", "upgrade") == 0
    assert _cli(monkeypatch, deployment.app_url, "data", "list") == 0
    assert "AAA" in capsys.readouterr().out
    owner.dispose()
