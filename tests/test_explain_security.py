"""EXPLAIN is sealed (issue 16): it plans only statements SwingDesk recorded and signed, in a
read-only transaction / connection that runs one statement at most, so the known ways to slip a
second statement past a hand-written SQL reader leave the data intact, on SQLite and PostgreSQL.

Each case records its statement the way the app does (registry → recorder, which signs it), so
the signature check passes and what is tested is the seal itself; then it checks the victim
table still holds every row."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from swing_core import models, perf
from swing_core.config import get_settings
from swing_core.errors import ConfigError, DatabaseError
from swing_core.perf import query_plan, sqlhooks

VICTIM = "explain_victim"
ROWS = 3


def _make_victim(engine: sa.Engine) -> sa.Engine:
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {VICTIM}")
        conn.exec_driver_sql(f"CREATE TABLE {VICTIM} (id integer)")
        conn.exec_driver_sql(f"INSERT INTO {VICTIM} VALUES (1), (2), (3)")
    return engine


@pytest.fixture
def victim(db_engine: sa.Engine) -> Iterator[sa.Engine]:
    """``db_engine`` with a table of ``ROWS`` rows that no EXPLAIN may touch."""
    yield _make_victim(db_engine)
    with db_engine.begin() as conn:
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {VICTIM}")


def _rows(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT count(*) FROM {VICTIM}").scalar_one())


def _record(engine: sa.Engine, statement: str, dialect: str | None = None) -> None:
    """Record ``statement`` as a slow query the way the app does (the recorder signs it)."""
    registry = perf.PerfRegistry()
    registry.add_slow_query(perf.SlowQueryRecord(datetime.now(UTC), 150.0, statement,
                                                 dialect or engine.dialect.name))
    recorder = perf.PerfRecorder(engine, registry=registry, sampler=perf.MemorySampler(),
                                 capture_slow_queries=False, memory_interval_s=None,
                                 at_exit=False)
    assert recorder.flush().slow_queries == 1


def _insert_row(engine: sa.Engine, statement: str, statement_hmac: str | None) -> None:
    """A slow-query row written by something other than the recorder."""
    with engine.begin() as conn:
        conn.execute(sa.insert(models.SlowQuery.__table__),
                     [dict(ts=datetime.now(UTC), process="intruder", duration_ms=999.0,
                           statement=statement, dialect=engine.dialect.name,
                           statement_hmac=statement_hmac)])


#: Statements that try to run a second statement (a DELETE, then COMMIT so a rollback cannot
#: undo it) past a SQL reader that does not know the dialect's quoting exactly.
BYPASSES = {
    # PostgreSQL E'' string: \' is an escaped quote, so the literal ends at the second ';
    # a reader that only knows '' doubling sees one long literal to the final quote.
    "e_string": f"SELECT E'\\''; DELETE FROM {VICTIM}; COMMIT; --'",
    "two_statements": f"SELECT 1; DROP TABLE {VICTIM}",
    # PostgreSQL ends a -- comment at \r as well as \n; a reader that waits for \n hides the
    # rest of the text in the comment.
    "comment_hidden": f"SELECT 1 --\r; DELETE FROM {VICTIM}; COMMIT; --\n",  # (*)
    # a$$ is an identifier on PostgreSQL (a $ may follow the first letter), not a dollar quote
    "dollar_quote": f"SELECT 1 AS a$$; DELETE FROM {VICTIM}; COMMIT; SELECT 1 AS b$$",
    # [..] quotes an identifier on SQLite: the quote inside it opens no literal
    "bracket_identifier": f"SELECT 1 AS [a']; DELETE FROM {VICTIM}; SELECT 1 AS ['b]",
}
#: (*) The texts that really are one harmless statement on a dialect (SQLite ends a -- comment
#: at \n only): planned there; every other case is refused.
ONE_STATEMENT = {("comment_hidden", "sqlite")}


def _explain_bypass(engine: sa.Engine, name: str, *, check_recorded: bool = True) -> None:
    if (name, engine.dialect.name) in ONE_STATEMENT:
        plan = perf.explain(engine, BYPASSES[name], check_recorded=check_recorded)
        assert VICTIM not in " ".join(map(str, plan.iloc[:, -1]))  # only SELECT 1 was planned
    else:
        with pytest.raises(DatabaseError):  # ExplainRefused, or the database refusing it
            perf.explain(engine, BYPASSES[name], check_recorded=check_recorded)


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_a_second_statement_never_runs(victim: sa.Engine, name: str) -> None:
    _record(victim, BYPASSES[name])
    _explain_bypass(victim, name)
    assert _rows(victim) == ROWS


@pytest.mark.parametrize("name", sorted(BYPASSES))
def test_a_second_statement_never_runs_even_unchecked(victim: sa.Engine, name: str) -> None:
    _explain_bypass(victim, name, check_recorded=False)
    assert _rows(victim) == ROWS


def test_the_e_string_bypass_passes_the_light_check(victim: sa.Engine) -> None:
    """The light check alone is fooled (so the seal is what stops it), and on PostgreSQL the
    database itself refuses the second statement."""
    statement = BYPASSES["e_string"]
    assert query_plan._check_explainable(statement)  # not refused by the SQL reader
    _record(victim, statement)
    if victim.dialect.name == "postgresql":
        with pytest.raises(DatabaseError, match="multiple commands"):
            perf.explain(victim, statement)
    else:
        with pytest.raises(DatabaseError):
            perf.explain(victim, statement)
    assert _rows(victim) == ROWS


def test_a_writable_cte_is_planned_not_run(victim: sa.Engine) -> None:
    statement = f"WITH d AS (DELETE FROM {VICTIM} RETURNING *) SELECT * FROM d"
    _record(victim, statement)
    if victim.dialect.name == "postgresql":
        plan = perf.explain(victim, statement)
        assert "Delete" in " ".join(plan["QUERY PLAN"])
    else:  # SQLite has no data-modifying WITH
        with pytest.raises(DatabaseError, match="EXPLAIN failed"):
            perf.explain(victim, statement)
    assert _rows(victim) == ROWS


def test_a_recorded_delete_is_planned_not_run(victim: sa.Engine) -> None:
    statement = f"DELETE FROM {VICTIM} WHERE id > 0"
    _record(victim, statement)
    plan = perf.explain(victim, statement)
    assert VICTIM in " ".join(map(str, plan.iloc[:, -1]))
    assert _rows(victim) == ROWS


def test_a_row_not_recorded_by_the_app_is_refused(victim: sa.Engine) -> None:
    statement = f"DELETE FROM {VICTIM}"
    _insert_row(victim, statement, None)
    with pytest.raises(perf.ExplainRefused, match="did not record it on this installation"):
        perf.explain(victim, statement)
    assert _rows(victim) == ROWS


def test_a_row_whose_signature_does_not_match_is_refused(victim: sa.Engine) -> None:
    statement = f"DELETE FROM {VICTIM}"
    _record(victim, "SELECT 1")  # a genuine signature, but of another statement
    genuine = perf.load_slow_queries(victim)["statement_hmac"].iloc[0]
    _insert_row(victim, statement, genuine)
    _insert_row(victim, statement, sqlhooks.sign_statement(statement, victim.dialect.name,
                                                           key=b"k" * 32))  # another key
    with pytest.raises(perf.ExplainRefused, match="signature is missing or does not match"):
        perf.explain(victim, statement)
    assert _rows(victim) == ROWS


def test_another_installation_key_is_refused(victim: sa.Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    statement = f"SELECT count(*) FROM {VICTIM}"
    monkeypatch.setenv("SWING_SECRET_KEY", "a" * 64)
    _record(victim, statement)
    assert len(perf.explain(victim, statement)) >= 1  # same key: explained
    monkeypatch.setenv("SWING_SECRET_KEY", "b" * 64)
    with pytest.raises(perf.ExplainRefused, match="SWING_SECRET_KEY"):
        perf.explain(victim, statement)


def test_the_signing_key_file_is_private_and_stable(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path / "data"))
    first = sqlhooks.signing_key()
    path = tmp_path / "data" / sqlhooks.KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32 and sqlhooks.signing_key() == first
    assert [p.name for p in path.parent.iterdir()] == [sqlhooks.KEY_FILE]  # no temp file left
    sqlhooks._KEYS.clear()  # another process reads the same key
    assert sqlhooks.signing_key() == first


def test_secret_key_setting_is_checked_and_never_shown(monkeypatch) -> None:
    monkeypatch.setenv("SWING_SECRET_KEY", "short")
    with pytest.raises(ConfigError, match="SWING_SECRET_KEY must be at least 32 characters"):
        get_settings()
    monkeypatch.setenv("SWING_SECRET_KEY", "s3cr3t" * 8)
    assert get_settings().secret_key == "s3cr3t" * 8
    assert "s3cr3t" not in repr(get_settings())


def test_an_in_memory_sqlite_database_is_refused() -> None:
    engine = sa.create_engine("sqlite://")
    try:
        with pytest.raises(perf.ExplainRefused, match="in memory"):
            perf.explain(engine, "SELECT 1", check_recorded=False)
    finally:
        engine.dispose()


def test_the_sqlite_plan_connection_cannot_write(sqlite_engine: sa.Engine) -> None:
    victim = _make_victim(sqlite_engine)
    conn = sqlite3.connect(query_plan._sqlite_read_only_uri(victim.url), uri=True)
    try:
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute(f"DELETE FROM {VICTIM}")
    finally:
        conn.close()
    assert _rows(victim) == ROWS


@pytest.mark.postgres
def test_postgres_explain_has_a_timeout(pg_engine: sa.Engine,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A plan that waits (here for a lock held elsewhere) is cancelled after the timeout; the
    pool stays healthy."""
    monkeypatch.setattr(query_plan, "EXPLAIN_TIMEOUT_S", 0.3)
    statement = "SELECT count(*) FROM perf_timings"
    _record(pg_engine, statement)
    with pg_engine.connect() as holder:
        holder.exec_driver_sql("LOCK TABLE perf_timings IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(DatabaseError, match="statement timeout"):
            perf.explain(pg_engine, statement)
        holder.rollback()
    assert len(perf.explain(pg_engine, statement)) >= 1
    with pg_engine.connect() as conn:
        assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "off"


def test_without_a_signing_key_rows_are_kept_unsigned_and_not_explained(
        sqlite_engine: sa.Engine, tmp_path, monkeypatch) -> None:
    """A data folder where the key cannot be created: the history is still written (unsigned)
    and EXPLAIN says what to do instead of failing with a traceback."""
    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path / "a_file" / "data"))
    _record(sqlite_engine, "SELECT 1")
    assert perf.load_slow_queries(sqlite_engine)["statement_hmac"].isna().all()
    with pytest.raises(perf.ExplainRefused, match="signing key.*SWING_SECRET_KEY"):
        perf.explain(sqlite_engine, "SELECT 1")
