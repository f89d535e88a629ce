"""EXPLAIN / EXPLAIN QUERY PLAN of a recorded slow statement, planned but never executed."""

from __future__ import annotations

import hmac
import logging
import re
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pandas as pd
import sqlalchemy as sa

from swing_core.errors import DatabaseError, SwingError
from swing_core.perf.sqlhooks import _TRUNCATED, MAX_STATEMENT_CHARS, sign_statement, signing_key
from swing_core.perf.storage import _tables
from swing_core.perf.timers import _suppressed

logger = logging.getLogger("swing_core.perf")

# --------------------------------------------------------------------------- EXPLAIN


class ExplainRefused(DatabaseError):
    """:func:`explain` will not run this statement; the message says why."""


#: Longest time EXPLAIN may take (planning, or waiting for a lock), in seconds.
EXPLAIN_TIMEOUT_S = 5.0


_EXPLAINABLE = {"select", "insert", "update", "delete", "with"}
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_PSYCOPG_PLACEHOLDER = re.compile(r"%(?:\(([^)]+)\))?(.)", re.DOTALL)


def _code_mask(sql: str) -> str:
    """``sql`` with string literals, quoted identifiers, dollar quotes and comments replaced by
    spaces (same length), so keywords, ``;`` and placeholders are only found in code.

    A best effort (it does not know every dialect's quoting, e.g. PostgreSQL's ``E'\\''``): it
    words refusals and counts SQLite placeholders; safety never depends on it (see
    :func:`explain`)."""
    out = list(sql)
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        end = i + 1
        if ch in "'\"`":
            end = i + 1
            while end < n:
                if sql[end] == ch:
                    if end + 1 < n and sql[end + 1] == ch:  # doubled quote inside a literal
                        end += 2
                        continue
                    break
                end += 1
            end = min(end + 1, n)
        elif sql.startswith("--", i):
            found = sql.find("\n", i)
            end = n if found < 0 else found
        elif sql.startswith("/*", i):
            found = sql.find("*/", i + 2)
            end = n if found < 0 else found + 2
        elif ch == "$" and (tag := _DOLLAR_TAG.match(sql, i)):
            found = sql.find(tag.group(0), tag.end())
            end = n if found < 0 else found + len(tag.group(0))
        else:
            i += 1
            continue
        out[i:end] = " " * (end - i)
        i = end
    return "".join(out)


def _pyformat_to_numeric(sql: str) -> str:
    """psycopg's ``%(name)s`` / ``%s`` placeholders to PostgreSQL's ``$1``…, ``%%`` to ``%``
    (SQLAlchemy escapes every literal ``%`` for these drivers, inside string literals too)."""
    numbers: dict[str, int] = {}

    def replace(match: re.Match[str]) -> str:
        name, kind = match.group(1), match.group(2)
        if kind == "%" and name is None:
            return "%"
        if kind not in "sbt":
            raise ExplainRefused(f"Cannot read the placeholder {match.group(0)!r} in this "
                                 "statement; copy it into psql and run EXPLAIN by hand.")
        key = name if name is not None else f"#{len(numbers)}"
        numbers.setdefault(key, len(numbers) + 1)
        return f"${numbers[key]}"

    return _PSYCOPG_PLACEHOLDER.sub(replace, sql)


def _check_explainable(statement: str) -> str:
    """The statement without a trailing ``;``, or :class:`ExplainRefused` for what is plainly
    not one explainable statement: a clear message early, not a security boundary."""
    if _TRUNCATED in statement:
        raise ExplainRefused("This statement was truncated when it was recorded (it is longer "
                             f"than {MAX_STATEMENT_CHARS} characters), so it cannot be explained.")
    sql = statement.strip()
    mask = _code_mask(sql)
    end = len(sql)  # drop trailing semicolons (in code, not in a literal) and blanks
    while end and sql[end - 1] in " \t\r\n;" and mask[end - 1] in " \t\r\n;":
        end -= 1
    sql, mask = sql[:end], mask[:end]
    if not mask.strip():
        raise ExplainRefused("The statement is empty: pick a slow query from the list.")
    if ";" in mask:
        raise ExplainRefused("Only a single statement can be explained; this text holds several.")
    first = re.match(r"[\s(]*([A-Za-z]+)", mask)
    if first is None or first.group(1).lower() not in _EXPLAINABLE:
        word = first.group(1).upper() if first else mask.split()[0]
        raise ExplainRefused(f"Only SELECT, INSERT, UPDATE or DELETE statements can be "
                             f"explained, not {word}.")
    return sql


def _assert_recorded(engine: sa.Engine, statement: str) -> None:
    """Refuse unless this database's slow-query history holds ``statement`` with a valid
    signature for this dialect (:func:`~swing_core.perf.sqlhooks.sign_statement`): only text
    that SwingDesk itself ran and recorded is ever planned, never a row written by anyone else.
    """
    dialect = engine.dialect.name
    table = _tables()["slow_queries"]
    try:
        key = signing_key()
    except (OSError, SwingError) as exc:
        raise ExplainRefused(f"EXPLAIN needs this installation's signing key, which could not "
                             f"be read or created ({exc}). Make SWING_DATA_DIR writable or set "
                             "SWING_SECRET_KEY.") from exc
    with engine.connect() as conn:
        signed = conn.execute(sa.select(sa.literal(1)).where(
            table.c.statement == statement,
            table.c.statement_hmac == sign_statement(statement, dialect, key=key)).limit(1))
        if signed.first() is not None:
            return
        rows = conn.execute(sa.select(table.c.dialect, table.c.statement_hmac).where(
            table.c.statement == statement, table.c.dialect != dialect).limit(20)).all()
        seen = conn.execute(sa.select(sa.literal(1)).where(
            table.c.statement == statement).limit(1)).first() is not None
    if not seen:
        raise ExplainRefused("Only statements from the slow-query history can be explained; "
                             "this one is not in it.")
    for row in rows:  # signed by us, but on another database kind
        if row.statement_hmac and hmac.compare_digest(
                row.statement_hmac, sign_statement(statement, row.dialect, key=key)):
            raise ExplainRefused(f"This statement was recorded on {row.dialect}, but this "
                                 f"database is {dialect}: explain it where it ran.")
    raise ExplainRefused("This statement is in the slow-query history but SwingDesk did not "
                         "record it on this installation (its signature is missing or does "
                         "not match), so it will not be explained. Slow queries recorded from "
                         "now on can be; app servers that share one database need the same "
                         "SWING_SECRET_KEY.")


def _sqlite_parameters(mask: str) -> tuple[Any, str]:
    numbered = [int(x) for x in re.findall(r"\?(\d+)", mask)]
    positional = len(re.findall(r"\?(?!\d)", mask))
    named = set(re.findall(r"(?<![:\w]):([A-Za-z_]\w*)|[@$]([A-Za-z_]\w*)", mask))
    names = {a or b for a, b in named}
    if names and (positional or numbered):
        raise ExplainRefused("This statement mixes named and positional parameters; run "
                             "EXPLAIN QUERY PLAN on it by hand with values.")
    if names:
        return dict.fromkeys(names), f"{len(names)} parameter(s)"
    count = max([positional, *numbered])
    return (None,) * count, f"{count} parameter(s)"


def explain(engine: sa.Engine, statement: str, *, check_recorded: bool = True) -> pd.DataFrame:
    """The query plan of a recorded slow statement: ``EXPLAIN QUERY PLAN`` on SQLite (columns
    id, parent, notused, detail), ``EXPLAIN`` on PostgreSQL (column "QUERY PLAN").

    The statement is planned, never executed (no ANALYZE). Safety does not rest on reading the
    SQL: with ``check_recorded`` only a statement this installation recorded and signed is
    planned (:func:`_assert_recorded`), and the plan is made where nothing can be written and
    only one statement can run: on SQLite through a separate read-only connection (``mode=ro``,
    ``query_only``; the sqlite3 module runs one statement per call), on PostgreSQL in a
    ``READ ONLY`` transaction that is rolled back, sent with the extended query protocol (which
    the server refuses for more than one statement); both with a timeout of
    :data:`EXPLAIN_TIMEOUT_S`. A light check first refuses what is plainly not one SELECT /
    INSERT / UPDATE / DELETE (a WITH … query included), with a clear message.

    Bound parameters, whose values were never recorded, are planned as NULL: on PostgreSQL as a
    generic plan (``plan_cache_mode = force_generic_plan``), which does not depend on the
    values. ``frame.attrs["note"]`` says when that was done.
    """
    sql = _check_explainable(statement)
    dialect = engine.dialect.name
    if dialect not in {"sqlite", "postgresql"}:
        raise ExplainRefused(f"EXPLAIN is only supported on SQLite and PostgreSQL, not {dialect}.")
    if check_recorded:
        _assert_recorded(engine, statement)
    try:
        if dialect == "sqlite":
            frame, note = _plan_sqlite(engine, sql)
        else:
            if engine.dialect.paramstyle in ("pyformat", "format"):
                sql = _pyformat_to_numeric(sql)
            frame, note = _plan_postgresql(engine, sql)
    except ExplainRefused:
        raise
    except Exception as exc:
        raise DatabaseError(f"EXPLAIN failed on {dialect}: {_first_line(exc)}") from exc
    frame.attrs["note"] = note
    frame.attrs["statement"] = sql
    return frame


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _frame(cursor: Any) -> pd.DataFrame:
    columns = [d[0] for d in cursor.description]
    return pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=columns)


def _sqlite_read_only_uri(url: sa.URL) -> str:
    """A ``file:`` URI that opens the database of ``url`` read-only (``mode=ro``)."""
    database = url.database or ""
    if database.startswith("file:"):  # already a URI (``?uri=true`` in the engine URL)
        parts = urlsplit(database)
        query = dict(parse_qsl(parts.query))
        in_memory = query.get("mode") == "memory" or parts.path in ("", ":memory:")
        uri = urlunsplit(parts._replace(query=urlencode({**query, "mode": "ro"})))
    else:
        in_memory = database in ("", ":memory:")
        uri = Path(database).resolve().as_uri() + "?mode=ro"
    if in_memory:
        raise ExplainRefused("EXPLAIN needs a SQLite database file that it can open read-only; "
                             "this one is in memory. Use a database file (the default "
                             "SWING_DATABASE_URL) to see query plans.")
    return uri


def _plan_sqlite(engine: sa.Engine, sql: str) -> tuple[pd.DataFrame, str]:
    params, what = _sqlite_parameters(_code_mask(sql))
    note = f"The plan was made with NULL for each of the {what}." if params else ""
    conn = sqlite3.connect(_sqlite_read_only_uri(engine.url), uri=True,
                           timeout=EXPLAIN_TIMEOUT_S, check_same_thread=False)
    try:
        conn.execute("PRAGMA query_only = ON")
        deadline = time.monotonic() + EXPLAIN_TIMEOUT_S
        conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)  # True: abort
        # sqlite3 refuses a second statement in one execute() ("one statement at a time")
        cursor = conn.execute("EXPLAIN QUERY PLAN " + sql, params)
        return _frame(cursor), note
    finally:
        conn.close()


_PREPARED = "swing_perf_explain"


def _plan_postgresql(engine: sa.Engine, sql: str) -> tuple[pd.DataFrame, str]:
    if engine.dialect.driver != "psycopg":
        raise ExplainRefused("EXPLAIN on PostgreSQL needs the psycopg 3 driver "
                             "(SWING_DATABASE_URL=postgresql+psycopg://…).")
    with _suppressed(), engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        clean = False
        try:
            raw.rollback()  # whatever the pool left: the next statement opens a new transaction
            with raw.cursor() as cursor:
                cursor.execute("SET TRANSACTION READ ONLY")  # first statement: nothing writes
                cursor.execute(f"SET LOCAL statement_timeout = {int(EXPLAIN_TIMEOUT_S * 1000)}")
                cursor.execute("SHOW transaction_read_only")
                if cursor.fetchone()[0] != "on":
                    raise ExplainRefused("EXPLAIN could not make its transaction read-only, so "
                                         "it did not run.")
                # binary=True makes psycopg use the extended query protocol (PQsendQueryParams)
                # even without parameters: the server accepts exactly one statement there
                # ("cannot insert multiple commands into a prepared statement"). PREPARE plans
                # nothing and runs nothing; EXPLAIN EXECUTE without ANALYZE runs nothing.
                cursor.execute(f"PREPARE {_PREPARED} AS " + sql, binary=True)
                cursor.execute("SELECT cardinality(parameter_types) FROM pg_prepared_statements "
                               "WHERE name = %s", [_PREPARED])
                count = int(cursor.fetchone()[0] or 0)
                note = ""
                if count:
                    note = (f"Generic plan with NULL for the {count} parameter(s): it does not "
                            "depend on their values.")
                    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                args = f"({', '.join(['NULL'] * count)})" if count else ""
                cursor.execute(f"EXPLAIN EXECUTE {_PREPARED}{args}", binary=True)
                frame = _frame(cursor)
            raw.rollback()
            raw.execute(f"DEALLOCATE {_PREPARED}")  # a prepared statement outlives a rollback
            raw.rollback()
            clean = True
        finally:
            if not clean:  # the session is in doubt (error, PREPARE left behind): drop it
                try:
                    raw.rollback()
                except Exception:
                    logger.debug("rollback after EXPLAIN failed", exc_info=True)
                conn.invalidate()
    return frame, note
