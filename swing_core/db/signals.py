"""Signals (the journal's rows): batch inserts, listing, evaluated outcomes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from swing_core.db._convert import (
    Columns,
    _as_frame,
    _column_values,
    _columns,
    _driver_sql,
    _executemany,
    _insert,
    _missing,
    _outcome_updates,
    _raw,
    _read_frame,
    _row,
    _select_table,
    _upsert_statement,
    _utc_index,
    _utc_stamp,
)
from swing_core.db.core import _db_errors, _ready, write_transaction
from swing_core.db.vectors import (
    _REWRITTEN,
    _VECTOR_KEYS,
    _kept_outcomes,
    _upsert_vector_columns,
    _vector_columns,
    _vector_outcome_values,
    _vectors_matrix,
)
from swing_core.models import JOURNAL_RUN_ID, SetupVector, SignalRecord, utc_now

#: Friendlier input names accepted by record_signals.
_SIGNAL_ALIASES = {"trend": "trend_label", "ts": "asof", "source": "data_source",
                   "vector_version": "version"}


def _allocate_ids(conn: Connection, table: sa.Table, n: int) -> list[int]:
    """``n`` new primary keys for ``table``, in order, inside a write transaction: PostgreSQL
    draws them from the id sequence (safe under concurrency); SQLite continues after the
    largest id, safe because ``BEGIN IMMEDIATE`` holds the only write lock until commit."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            sa.text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                    "FROM generate_series(1, :n) ORDER BY 1"), {"table": table.name, "n": n})
        return [int(r[0]) for r in rows]
    last = conn.execute(sa.select(sa.func.coalesce(sa.func.max(table.c.id), 0))).scalar_one()
    return list(range(int(last) + 1, int(last) + 1 + n))


def _vector_ids(conn: Connection, columns: Columns) -> list[int | None]:
    """Ids of the setup vectors with the keys in driver-ready ``columns`` (None where none)."""
    t = SetupVector.__table__
    keys = list(zip(*(columns[k] for k in _VECTOR_KEYS), strict=True))
    found: dict[tuple[Any, ...], int] = {}
    raw_ts = sa.type_coerce(t.c.ts, sa.types.NullType())
    for i in range(0, len(keys), 2000):
        chunk = keys[i:i + 2000]
        stmt = sa.select(t.c.id, t.c.symbol, t.c.interval, raw_ts, t.c.version).where(
            sa.tuple_(t.c.symbol, t.c.interval, raw_ts, t.c.version).in_(chunk))
        for vid, *key in conn.execute(stmt):
            found[tuple(key)] = vid
    return [found.get(k) for k in keys]


#: The journal's unique key (with run_id "live"): the partial unique index ux_signals_live_bar.
_JOURNAL_KEY = ("symbol", "interval", "asof")
_JOURNAL_ROW = sa.text(f"run_id = '{JOURNAL_RUN_ID}'")  # literal: the index's own predicate
_JournalKey = tuple[Any, ...]


def _journal_ids(conn: Connection, keys: list[_JournalKey]) -> dict[_JournalKey, int]:
    """Ids of the journal rows (run_id "live") with these driver-ready (symbol, interval, asof)
    keys, found through the unique index: PostgreSQL joins the keys as three arrays (one
    statement; a long row-value IN list is planned as a filter, ~1 s per 2,000 keys), SQLite
    matches row values, 2,000 keys per SELECT."""
    found: dict[_JournalKey, int] = {}
    if not keys:
        return found
    if len(keys) == 1:  # one signal: one indexed lookup, compiled once per dialect
        sid = _one_row(conn, "journal_id", dict(zip(_JOURNAL_KEY, keys[0], strict=True)))
        return {keys[0]: int(sid)} if sid is not None else found
    if conn.dialect.name == "postgresql":
        symbols, intervals, asofs = (list(column) for column in zip(*keys, strict=True))
        rows = conn.execute(_PG_JOURNAL_IDS, {"symbols": symbols, "intervals": intervals,
                                              "asofs": asofs})
        return {(symbol, interval, asof): int(sid) for sid, symbol, interval, asof in rows}
    t = SignalRecord.__table__
    raw_asof = sa.type_coerce(t.c.asof, sa.types.NullType())
    for i in range(0, len(keys), 2000):
        stmt = sa.select(t.c.id, t.c.symbol, t.c.interval, raw_asof).where(
            t.c.run_id == JOURNAL_RUN_ID,
            sa.tuple_(t.c.symbol, t.c.interval, raw_asof).in_(keys[i:i + 2000]))
        for sid, *key in conn.execute(stmt):
            found[tuple(key)] = int(sid)
    return found


_PG_JOURNAL_IDS = sa.text(
    "SELECT s.id, s.symbol, s.interval, s.asof FROM signals AS s "
    "JOIN unnest(CAST(:symbols AS varchar[]), CAST(:intervals AS varchar[]), "
    "CAST(:asofs AS timestamptz[])) AS k(symbol, interval, asof) "
    "ON s.symbol = k.symbol AND s.interval = k.interval AND s.asof = k.asof "
    f"WHERE s.run_id = '{JOURNAL_RUN_ID}'")


@dataclass(frozen=True)
class SignalWrite:
    """What :func:`write_signals` stored: ``ids`` in input order and, per signal, whether its
    row is ``new``. A journal signal (run_id "live") whose (symbol, interval, bar) was already
    stored, or repeats an earlier one of the same batch, is not written again: its id is the
    stored row's and ``new`` is False."""

    ids: list[int]
    new: list[bool]

    @property
    def added(self) -> int:
        return sum(self.new)

    @property
    def already(self) -> int:
        return len(self.new) - self.added


@_db_errors
def write_signals(engine: Engine, signals: list[dict[str, Any]] | pd.DataFrame, *,
                  run_id: str | None = None) -> SignalWrite:
    """Insert signals in one transaction (one driver executemany) and say which rows are new.

    Each signal has the :class:`~swing_core.models.SignalRecord` columns (``symbol`` and ``asof``, the
    UTC open time of the signal bar, are required; aliases: trend, ts, source); dict/list values of
    ``*_json`` columns are JSON-encoded. ``run_id`` overrides the rows' run id (default "live").
    A signal carrying a ``vector`` (16 floats) also upserts its setup vector (key: symbol,
    interval, asof, version) in the same transaction and links it through ``vector_id``.

    The journal (run id "live") holds one row per (symbol, interval, asof): a signal already
    there is left as stored (row and vector untouched); the INSERT's ``ON CONFLICT DO NOTHING``
    on the unique index makes that hold against a concurrent writer too. Other run ids (backtests,
    benchmarks) are stored as given."""
    _ready(engine)
    frame = _as_frame(signals)
    if len(frame) == 0:
        return SignalWrite([], [])
    frame = _signal_input(frame, run_id)
    driver = engine.dialect.name
    columns = _columns(frame, SignalRecord, driver=driver)
    keys = list(zip(*(columns[k] for k in _JOURNAL_KEY), strict=True))
    journal = [r == JOURNAL_RUN_ID for r in columns["run_id"]]
    t = SignalRecord.__table__
    with write_transaction(engine) as conn:
        stored = _journal_ids(conn, list({k for k, j in zip(keys, journal, strict=True) if j}))
        seen: set[_JournalKey] = set()
        chosen: list[int] = []  # rows to insert: not in the journal yet, first of their key
        for pos, (key, in_journal) in enumerate(zip(keys, journal, strict=True)):
            if in_journal and (key in stored or key in seen):
                continue
            if in_journal:
                seen.add(key)
            chosen.append(pos)
        ids = _allocate_ids(conn, t, len(chosen))
        write = {name: [values[p] for p in chosen] for name, values in columns.items()}
        _link_vectors(conn, frame.iloc[chosen].reset_index(drop=True), write, driver)
        _executemany(conn, _journal_insert(conn), {"id": ids, **write})
        if seen:  # a concurrent writer may have stored one of them since the SELECT: ask again
            stored.update(_journal_ids(conn, list(seen)))
    inserted = dict(zip(chosen, ids, strict=True))
    out_ids: list[int] = []
    new: list[bool] = []
    for pos, (key, in_journal) in enumerate(zip(keys, journal, strict=True)):
        sid = stored[key] if in_journal else inserted[pos]
        out_ids.append(sid)
        new.append(inserted.get(pos) == sid)
    return SignalWrite(out_ids, new)


def _link_vectors(conn: Connection, frame: pd.DataFrame, columns: Columns, driver: str) -> None:
    """Upsert the setup vectors of the rows of ``frame`` that carry one and set their
    ``vector_id`` in ``columns`` (driver-ready, same rows)."""
    with_vector = (frame["vector"].notna().to_numpy() if "vector" in frame.columns
                   else np.zeros(len(frame), dtype=bool))
    if not with_vector.any():
        return
    vec_frame = _vector_source(frame.loc[with_vector])
    vec_columns = _vector_columns(vec_frame, driver)
    _upsert_vector_columns(conn, vec_columns, set(vec_frame.columns))
    for pos, vid in zip(np.flatnonzero(with_vector), _vector_ids(conn, vec_columns), strict=True):
        columns["vector_id"][pos] = vid


@_db_errors
def write_signal(engine: Engine, signal: dict[str, Any], *,
                 run_id: str | None = None) -> SignalWrite:
    """:func:`write_signals` of one signal: the same row, vector, link and journal rule, in one
    transaction, without a frame. A journal signal already stored is left as it is (its id
    returned, ``new`` False); the INSERT's ``ON CONFLICT DO NOTHING`` settles a concurrent
    writer. Statements are compiled once per dialect."""
    _ready(engine)
    driver = engine.dialect.name
    record = _signal_input(dict(signal), run_id)
    row = _row(record, SignalRecord, driver=driver)
    vector = None
    if not _missing(record.get("vector")):
        source = _vector_source(record)
        source["vector"] = _vectors_matrix([record["vector"]]).tobytes()
        vector = _row(source, SetupVector, fixed={"created_at": utc_now()}, driver=driver)
    key = tuple(row[k] for k in _JOURNAL_KEY)
    with write_transaction(engine) as conn:
        if row["run_id"] == JOURNAL_RUN_ID:
            stored = _journal_ids(conn, [key])
            if stored:
                return SignalWrite([stored[key]], [False])
        if vector is not None:
            row["vector_id"] = _one_row(conn, "vector", vector,
                                        keep=_kept_outcomes(set(source)))
        sid = _one_row(conn, "signal", row)
        if sid is None:  # a concurrent writer stored this bar since the lookup
            return SignalWrite([_journal_ids(conn, [key])[key]], [False])
    return SignalWrite([int(sid)], [True])


def _signal_input(rows: Any, run_id: str | None) -> Any:
    """The input rules of every signal write, for a frame of signals or one signal (a dict of
    its own): aliases renamed, ``run_id`` set when given, symbol and asof required."""
    for alias, name in _SIGNAL_ALIASES.items():
        if alias in rows:
            rows[name] = rows.pop(alias)
    if run_id is not None:
        rows["run_id"] = run_id
    for required in ("symbol", "asof"):
        if required not in rows or np.any(pd.isna(rows[required])):
            raise ValueError(f"record_signals: every signal needs {required!r}.")
    return rows


def _vector_source(rows: Any) -> Any:
    """Setup-vector rows from signal rows (a frame or one dict): the vector's bar ``ts`` is the
    signal's ``asof``, its ``trend`` the signal's trend label unless given."""
    out = rows.copy()
    out["ts"] = rows["asof"]
    if "trend_label" in rows and "trend" not in rows:
        out["trend"] = rows["trend_label"]
    return out


def _journal_insert(conn: Connection) -> Any:
    """INSERT into signals that leaves a journal bar already stored alone (the unique index)."""
    return _insert(conn, SignalRecord.__table__).on_conflict_do_nothing(
        index_elements=list(_JOURNAL_KEY), index_where=_JOURNAL_ROW)


def _one_row_statement(conn: Connection, name: str, keep: tuple[str, ...]) -> Any:
    signals, vectors = SignalRecord.__table__, SetupVector.__table__
    if name == "signal":
        return _journal_insert(conn).returning(signals.c.id)
    if name == "vector":  # upsert_vectors' rule: rewrite the setup, keep known outcomes
        return _upsert_statement(conn, vectors, _VECTOR_KEYS, list(_REWRITTEN),
                                 keep=keep).returning(vectors.c.id)
    return sa.select(signals.c.id).where(  # "journal_id"
        *[signals.c[k] == sa.bindparam(k) for k in _JOURNAL_KEY], _JOURNAL_ROW)


_ONE_ROW_SQL: dict[tuple[Any, ...], tuple[str, list[str]]] = {}


def _one_row(conn: Connection, name: str, values: dict[str, Any], *,
             keep: tuple[str, ...] = ()) -> Any:
    """Run the one-row statement ``name`` with driver-ready ``values``; its first value (an
    id) or None. Compiled once per dialect, statement and columns."""
    key = (conn.dialect.name, name, tuple(values), keep)
    compiled = _ONE_ROW_SQL.get(key)
    if compiled is None:
        compiled = _ONE_ROW_SQL[key] = _driver_sql(_one_row_statement(conn, name, keep),
                                                   conn.dialect, list(values))
    sql, order = compiled
    return conn.exec_driver_sql(sql, tuple(values[n] for n in order)).scalar()


def record_signals(engine: Engine, signals: list[dict[str, Any]] | pd.DataFrame, *,
                   run_id: str | None = None) -> list[int]:
    """:func:`write_signals`, returning only the ids (input order; a journal signal already
    stored gets the stored row's id)."""
    return write_signals(engine, signals, run_id=run_id).ids


@_db_errors
def list_signals(engine: Engine, *, symbol: str | None = None, since: Any = None,
                 until: Any = None, trend: str | None = None, evaluated: bool | None = None,
                 run_id: str | None = "live", interval: str | None = None,
                 limit: int | None = 1000) -> pd.DataFrame:
    """Stored signals, newest ``asof`` first, filtered by symbol, signal-bar time (``since`` <=
    asof <= ``until``, UTC), trend label, evaluation state and run id (None: every run).
    Columns: every :class:`~swing_core.models.SignalRecord` column, timestamps tz-aware UTC."""
    _ready(engine)
    t = SignalRecord.__table__
    stmt = _select_table(t)
    if symbol is not None:
        stmt = stmt.where(t.c.symbol == symbol)
    if interval is not None:
        stmt = stmt.where(t.c.interval == interval)
    if since is not None:
        stmt = stmt.where(t.c.asof >= _utc_stamp(since).to_pydatetime())
    if until is not None:
        stmt = stmt.where(t.c.asof <= _utc_stamp(until).to_pydatetime())
    if trend is not None:
        stmt = stmt.where(t.c.trend_label == trend)
    if evaluated is not None:
        stmt = stmt.where(t.c.evaluated == evaluated)
    if run_id is not None:
        stmt = stmt.where(t.c.run_id == run_id)
    stmt = stmt.order_by(t.c.asof.desc(), t.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        df = _read_frame(conn, stmt, t)
    for col in ("realized_r", "exit_price"):
        df[col] = df[col].astype("float64")
    return df


@_db_errors
def set_signal_outcomes(engine: Engine, outcomes: pd.DataFrame) -> int:
    """Store evaluated outcomes on signals and on their setup vectors, in one transaction.

    ``outcomes``: ``id`` (signal id), exit_reason, exit_price, exit_ts (UTC close time of the exit
    bar), realized_r, hold_bars; ``evaluated`` defaults to True. The vector is the one linked by
    ``vector_id``, else the one keyed (symbol, interval, asof, "v1"). Returns signals updated."""
    _ready(engine)
    frame = _as_frame(outcomes)
    if len(frame) == 0:
        return 0
    if "evaluated" not in frame.columns:
        frame = frame.assign(evaluated=True)
    t = SignalRecord.__table__
    values = {c: _column_values(frame[c], t.c[c]) if c in frame.columns else [None] * len(frame)
              for c in ("evaluated", "exit_reason", "exit_price", "exit_ts", "realized_r",
                        "hold_bars")}
    with write_transaction(engine) as conn:
        updated = _outcome_updates(conn, t, frame, ["id"], values)
        ids = [int(i) for i in frame["id"]]
        link_rows: list[Any] = []
        for i in range(0, len(ids), 5000):  # stay below SQLite's bound-parameter limit
            link_rows += conn.execute(
                sa.select(t.c.id, t.c.vector_id, t.c.symbol, t.c.interval, _raw(t.c.asof))
                .where(t.c.id.in_(ids[i:i + 5000]))).all()
        links = pd.DataFrame(link_rows, columns=["id", "vector_id", "symbol", "interval", "asof"])
        merged = frame.drop(columns=["symbol", "interval", "vector_id"], errors="ignore").merge(
            links, on="id")
        linked = merged[merged["vector_id"].notna()]
        linked = linked.assign(id=linked["vector_id"].astype("int64")).reset_index(drop=True)
        _outcome_updates(conn, SetupVector.__table__, linked, ["id"],
                         _vector_outcome_values(linked))
        unlinked = merged[merged["vector_id"].isna()].reset_index(drop=True)
        unlinked = unlinked.assign(ts=_utc_index(unlinked["asof"].tolist()), version="v1")
        _outcome_updates(conn, SetupVector.__table__, unlinked, _VECTOR_KEYS,
                         _vector_outcome_values(unlinked))
    return updated
