"""Schema versions: Alembic upgrades an empty database to a schema identical to the models (on
SQLite and, when SWING_TEST_DATABASE_URL is set, PostgreSQL), from any working directory, and
concurrent upgrades from several processes are serialized."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from swing_core import db, models

REPO = Path(__file__).resolve().parents[1]


def _schema_diff(engine: sa.Engine) -> list:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return compare_metadata(context, models.metadata)


def _index_names(engine: sa.Engine, table: str) -> set[str]:
    return {ix["name"] for ix in sa.inspect(engine).get_indexes(table)}


def _check_fresh_upgrade(engine: sa.Engine) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert db.database_status(engine).current_revision is None
    assert db.init_db(engine) == head
    assert db.database_status(engine).up_to_date
    assert _schema_diff(engine) == []
    assert {"ix_signals_symbol_asof", "ix_signals_created_at", "ix_signals_trend_label",
            "ix_signals_known"} <= _index_names(engine, "signals")
    assert {"ix_setup_vectors_symbol_ts", "ix_setup_vectors_known"} <= _index_names(
        engine, "setup_vectors")
    assert db.init_db(engine) == head  # idempotent


def test_sqlite_empty_database_upgrades_to_the_models(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        _check_fresh_upgrade(engine)
        with engine.connect() as conn:  # partial indexes really are partial
            sql = conn.exec_driver_sql(
                "SELECT sql FROM sqlite_master WHERE name = 'ix_setup_vectors_known'").scalar()
        assert "WHERE realized_r IS NOT NULL" in sql
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_empty_schema_upgrades_to_the_models(pg_url: str, pg_schema: str) -> None:
    engine = db.make_engine(pg_url, schema=pg_schema)
    try:
        _check_fresh_upgrade(engine)
        with engine.connect() as conn:
            definition = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_signals_known' "
                "AND schemaname = current_schema()").scalar()
        assert "WHERE (realized_r IS NOT NULL)" in definition
    finally:
        engine.dispose()


def test_older_database_is_brought_up_to_date(tmp_path: Path) -> None:
    """Downgrade to an empty schema (base), then the app's start-up upgrade restores it."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    try:
        db.init_db(engine)
        with db.write_transaction(engine) as conn:
            command.downgrade(db.alembic_config(conn), "base")
        assert db.database_status(engine).current_revision is None
        assert "signals" not in sa.inspect(engine).get_table_names()
        db.dispose_engines()
        fresh = db.make_engine(engine.url)  # a new process would start like this
        db.init_db(fresh)
        assert _schema_diff(fresh) == []
        fresh.dispose()
    finally:
        engine.dispose()


def test_migrations_work_from_any_working_directory(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = db.alembic_config()
    assert Path(cfg.get_main_option("script_location")).is_absolute()
    result = subprocess.run(
        [sys.executable, "-c", "from swing_core import db; e = db.get_engine(); "
         "print(db.init_db(e)); print(db.describe_database(e))"],
        cwd=tmp_path, env=_env(SWING_DATA_DIR=str(tmp_path / "d")), capture_output=True,
        text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "swingdesk.sqlite").exists()


def _env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SWING_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


_RACE = textwrap.dedent("""
    import sys, time
    from swing_core import db
    url, schema, start = sys.argv[1], sys.argv[2] or None, float(sys.argv[3])
    engine = db.make_engine(url, schema=schema)
    while time.time() < start:
        time.sleep(0.001)
    print(db.init_db(engine))
""")


def _race_upgrades(url: str, schema: str = "", n: int = 3) -> list[str]:
    start = time.time() + 2.0  # let every interpreter import first, then go at once
    procs = [subprocess.Popen([sys.executable, "-c", _RACE, url, schema, str(start)],
                              env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(n)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
    return [out.strip() for out, _ in outputs]


def test_concurrent_upgrades_on_sqlite_are_serialized(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    revisions = _race_upgrades(url)
    assert len(set(revisions)) == 1
    engine = db.make_engine(url)
    assert _schema_diff(engine) == []
    engine.dispose()


@pytest.mark.postgres
def test_concurrent_upgrades_on_postgres_are_serialized(pg_url: str, pg_schema: str) -> None:
    revisions = _race_upgrades(pg_url, pg_schema)
    assert len(set(revisions)) == 1
    engine = db.make_engine(pg_url, schema=pg_schema)
    assert _schema_diff(engine) == []
    engine.dispose()
