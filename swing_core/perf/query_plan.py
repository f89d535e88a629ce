"""EXPLAIN / EXPLAIN QUERY PLAN of a recorded slow statement, planned but never executed."""

from __future__ import annotations

import logging
import re
from typing import Any

import pandas as pd
import sqlalchemy as sa

from swing_core.errors import DatabaseError
from swing_core.perf.sqlhooks import _TRUNCATED, MAX_STATEMENT_CHARS
from swing_core.perf.storage import _tables
from swing_core.perf.timers import _suppressed

logger = logging.getLogger("swing_core.perf")

# --------------------------------------------------------------------------- EXPLAIN


class ExplainRefused(DatabaseError):
    """:func:`explain` will not run this statement; the message says why."""


_EXPLAINABLE = {"select", "insert", "update", "delete", "with"}
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_]\w*)?\$")
_PSYCOPG_PLACEHOLDER = re.compile(r"%(?:\(([^)]+)\))?(.)", re.DOTALL)


def _code_mask(sql: str) -> str:
    """``sql`` with string literals, quoted identifiers, dollar quotes and comments replaced by
    spaces (same length), so keywords, ``;`` and placeholders are only found in code."""
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
    """The statement without a trailing ``;``, or :class:`ExplainRefused`."""
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
    table = _tables()["slow_queries"]
    query = (sa.select(table.c.dialect).where(table.c.statement == statement).limit(1))
    with engine.connect() as conn:
        row = conn.execute(query).first()
    if row is None:
        raise ExplainRefused("Only statements from the slow-query history can be explained; "
                             "this one is not in it.")
    if row.dialect and row.dialect != engine.dialect.name:
        raise ExplainRefused(f"This statement was recorded on {row.dialect}, but this database "
                             f"is {engine.dialect.name}: explain it where it ran.")


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

    The statement is planned, never executed (no ANALYZE), inside a transaction that is rolled
    back. Refused (:class:`ExplainRefused`) unless it is one SELECT / INSERT / UPDATE / DELETE
    (a WITH … query included) and, with ``check_recorded``, is in the slow-query table of this
    database. Bound parameters, whose values were never recorded, are planned as NULL: on
    PostgreSQL as a generic plan (``plan_cache_mode = force_generic_plan``), which does not
    depend on the values. ``frame.attrs["note"]`` says when that was done.
    """
    sql = _check_explainable(statement)
    if check_recorded:
        _assert_recorded(engine, statement)
    dialect = engine.dialect.name
    if dialect not in {"sqlite", "postgresql"}:
        raise ExplainRefused(f"EXPLAIN is only supported on SQLite and PostgreSQL, not {dialect}.")
    note = ""
    with _suppressed(), engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cursor = raw.cursor()
        try:
            if dialect == "sqlite":
                params, what = _sqlite_parameters(_code_mask(sql))
                if params:
                    note = f"The plan was made with NULL for each of the {what}."
                cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            else:
                if engine.dialect.paramstyle in ("pyformat", "format"):
                    sql = _pyformat_to_numeric(sql)
                count = max([0, *map(int, re.findall(r"\$(\d+)", _code_mask(sql)))])
                if count:
                    note = (f"Generic plan with NULL for the {count} parameter(s): it does not "
                            "depend on their values.")
                    cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
                    cursor.execute("PREPARE swing_perf_explain AS " + sql)
                    cursor.execute("EXPLAIN EXECUTE swing_perf_explain("
                                   + ", ".join(["NULL"] * count) + ")")
                else:
                    cursor.execute("EXPLAIN " + sql)
            columns = [d[0] for d in cursor.description]
            frame = pd.DataFrame([tuple(r) for r in cursor.fetchall()], columns=columns)
        except ExplainRefused:
            raise
        except Exception as exc:
            raise DatabaseError(f"EXPLAIN failed on {dialect}: {exc}".strip()) from exc
        finally:
            try:
                cursor.close()
                raw.rollback()
            except Exception:  # the connection is discarded below if it is in doubt
                logger.debug("rollback after EXPLAIN failed", exc_info=True)
                conn.invalidate()
            if not conn.invalidated and dialect == "postgresql" and note:
                conn.invalidate()  # PREPARE outlives a rollback: drop the whole session
    frame.attrs["note"] = note
    frame.attrs["statement"] = sql
    return frame
