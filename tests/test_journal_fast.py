"""The one-signal journal write (``journal.record_signal`` -> ``db.write_signal``) keeps the
batch path's rules: the same stored row and vector for the same signal, one journal row per
(symbol, interval, bar) with the duplicate reported, no-plan and NUL refused, the vector stored
and linked, and a concurrent writer settled by ON CONFLICT DO NOTHING. SQLite and PostgreSQL
alike. Also: one value converted without a frame binds exactly what a frame column binds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, journal, models
from swing_core.agent import analysis
from swing_core.agent.signals import signal_from_frame
from swing_core.db import _convert
from swing_core.db import signals as signal_store
from swing_core.errors import DataError
from tests.test_journal_dedupe import miss_the_other_writer_once

ASOF = pd.Timestamp("2024-03-04 14:30", tz="UTC")


def _signal(**extra) -> dict:
    return {"symbol": "AAPL", "interval": "30m", "asof": ASOF, "setup": "momentum",
            "side": "long", "entry": 100.0, "stop": 98.0, "target": 104.0, "price": 100.0,
            "trend_label": "up", "data_source": "demo", **extra}


def _agent_signal(engine: sa.Engine):
    """A real signal with a trade plan: the latest bar of an offline analysis that has one."""
    frame = analysis("AAPL", "30m", engine=engine).frame
    for position in range(len(frame) - 1, 0, -1):
        signal = signal_from_frame(frame, symbol="AAPL", interval="30m", position=position)
        if journal.has_trade_plan(signal):
            return signal
    raise AssertionError("no bar of the demo frame has a trade plan")


def _stored(engine: sa.Engine) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Signals and vectors as stored, without the ids and write times that differ per write;
    the signal's link is checked against its vector instead."""
    rows = db.list_signals(engine, run_id=None, limit=None)
    vectors = db.load_vector_matrix(engine, known_only=False)
    linked = rows["vector_id"].dropna().astype(int).tolist()
    assert linked == vectors.meta["id"].astype(int).tolist()  # every vector linked, in order
    return (rows.drop(columns=["id", "created_at", "vector_id"]),
            vectors.meta.drop(columns=["id"]), vectors.matrix)


def _empty(engine: sa.Engine) -> None:
    with db.write_transaction(engine) as conn:
        conn.execute(sa.delete(models.SignalRecord.__table__))
        conn.execute(sa.delete(models.SetupVector.__table__))


ODD_SIGNAL = _signal(  # values a frame column would coerce: the one-row path must agree
    asof=datetime(2024, 3, 4, 9, 30, tzinfo=timezone(timedelta(hours=-5))),
    rsi14=np.float64(61.5), ema_slope=float("nan"), confidence=np.float32(0.625),
    prior_n=12.0, mtf_alignment=np.int64(-1), last_bar_complete=np.bool_(False),
    prior_json={"n": 12, "win_rate": 0.5}, note=None, exit_ts=None, rs_spy="1.25",
    ts_ignored="not a column", vector=np.linspace(-1, 1, 16, dtype=np.float32), trend="down",
    realized_r=1.5)


@pytest.mark.parametrize("case", ["agent", "odd", "no-vector", "other-run"])
def test_one_signal_stores_what_the_batch_path_stores(db_engine: sa.Engine, case: str) -> None:
    signal = {"agent": lambda: _agent_signal(db_engine), "odd": lambda: ODD_SIGNAL,
              "no-vector": lambda: _signal(note="no vector"),
              "other-run": lambda: _signal(setup="none", side="none", entry=None)}[case]()
    run_id = "bt-7" if case == "other-run" else journal.JOURNAL_RUN_ID
    one = journal.record_signal(db_engine, signal, run_id=run_id)
    assert (one.added, one.already, one.no_plan) == (1, 0, 0)
    single = _stored(db_engine)
    _empty(db_engine)
    batch = journal.record_signals(db_engine, [signal], run_id=run_id)
    assert (batch.added, batch.already, batch.no_plan) == (1, 0, 0)
    assert one.message == batch.message.replace(str(batch.ids[0]), str(one.ids[0]))
    batched = _stored(db_engine)
    pd.testing.assert_frame_equal(single[0], batched[0])
    pd.testing.assert_frame_equal(single[1], batched[1])
    assert np.array_equal(single[2], batched[2])
    assert len(single[0]) == 1 and len(single[1]) == (0 if case in ("no-vector", "other-run")
                                                      else 1)


def test_the_same_bar_twice_is_reported_and_the_stored_row_and_vector_stay(
        db_engine: sa.Engine) -> None:
    first = journal.record_signal(db_engine, _signal(vector=np.full(16, 0.25, np.float32)))
    stored = db.list_signals(db_engine).iloc[0]
    assert first.message == f"Saved signal #{first.ids[0]} to the journal."
    assert stored["vector_id"] is not None
    again = journal.record_signal(db_engine, _signal(note="again", vector=np.ones(16)))
    assert (again.ids, again.added, again.already) == (first.ids, 0, 1)
    assert again.message == (f"Already in the journal as signal #{first.ids[0]} (same symbol, "
                             "interval and bar): nothing saved.")
    rows = db.list_signals(db_engine)
    assert len(rows) == 1 and rows.iloc[0]["note"] is None
    vectors = db.load_vector_matrix(db_engine, known_only=False)
    assert len(vectors) == 1 and np.allclose(vectors.matrix[0], 0.25)
    assert int(vectors.meta["id"].iloc[0]) == int(rows.iloc[0]["vector_id"])
    other_bar = journal.record_signal(db_engine, _signal(asof=ASOF + pd.Timedelta("30min")))
    assert other_bar.added == 1 and other_bar.ids != first.ids


def test_the_vector_is_linked_to_its_signal_on_the_same_bar(db_engine: sa.Engine) -> None:
    (sid,) = journal.record_signal(db_engine, _signal(vector=np.full(16, 0.5))).ids
    row = db.list_signals(db_engine).iloc[0]
    meta = db.load_vector_matrix(db_engine, known_only=False).meta.iloc[0]
    assert int(row["id"]) == sid and int(row["vector_id"]) == int(meta["id"])
    assert (meta["symbol"], meta["interval"], meta["ts"], meta["trend"], meta["setup"]) == (
        "AAPL", "30m", ASOF, "up", "momentum")


def test_no_plan_and_nul_are_refused_and_nothing_is_written(db_engine: sa.Engine) -> None:
    refused = journal.record_signal(db_engine, _signal(stop=101.0))  # stop on the wrong side
    assert (refused.ids, refused.no_plan, refused.message) == ((), 1, journal.NO_PLAN_MESSAGE)
    with pytest.raises(DataError, match="NUL"):
        journal.record_signal(db_engine, _signal(vol_regime="H\x00", vector=np.ones(16)))
    with pytest.raises(DataError, match="NUL"):
        db.write_signal(db_engine, _signal(vol_regime="M", trend="up\x00", vector=np.ones(16)))
    with pytest.raises(ValueError, match="16 values"):
        journal.record_signal(db_engine, _signal(vector=np.ones(3)))
    with pytest.raises(ValueError, match="'asof'"):
        db.write_signal(db_engine, _signal(asof=None))
    assert db.list_signals(db_engine, run_id=None).empty
    assert len(db.load_vector_matrix(db_engine, known_only=False)) == 0


def test_a_concurrent_writer_between_lookup_and_insert_wins(db_engine: sa.Engine,
                                                             monkeypatch) -> None:
    """Another writer commits the bar after this one looked: ON CONFLICT DO NOTHING keeps one
    row, and this write reports the other's row as already there."""
    (theirs,) = db.record_signals(db_engine, [_signal()])
    calls = miss_the_other_writer_once(monkeypatch)
    mine = journal.record_signal(db_engine, _signal(note="mine"))
    assert (mine.ids, mine.added, mine.already) == ((theirs,), 0, 1) and calls == [1, 1]
    assert db.list_signals(db_engine)["note"].tolist() == [None]


def test_statements_are_compiled_once(db_engine: sa.Engine, monkeypatch) -> None:
    journal.record_signal(db_engine, _signal(vector=np.ones(16)))  # compiled (or cached)
    compiled: list[str] = []
    real = signal_store._driver_sql

    def counting(stmt, dialect, names, **kwargs):
        compiled.append(type(stmt).__name__)
        return real(stmt, dialect, names, **kwargs)

    monkeypatch.setattr(signal_store, "_driver_sql", counting)
    for minutes in (30, 60, 90):
        saved = journal.record_signal(
            db_engine, _signal(asof=ASOF + pd.Timedelta(minutes=minutes), vector=np.ones(16)))
        assert saved.added == 1
    assert journal.record_signal(db_engine, _signal()).already == 1
    assert compiled == []


# --------------------------------------------------------------------------- one value


_ODD_VALUES = [
    None, float("nan"), pd.NA, pd.NaT, 0, 1, -7, 2 ** 53 + 1, 2.5, np.float32(0.1), np.float64(-3.25),
    np.int64(42), True, np.bool_(False), "text", "1.5", "", {"a": [1, 2]}, [1, "x"], (3, 4),
    b"\x00\x01", datetime(2024, 3, 4, 14, 30), datetime(2024, 3, 4, 9, 30, 0, 123456,
                                                       tzinfo=timezone(timedelta(hours=-5))),
    pd.Timestamp("2024-03-04 14:30:00.5", tz="America/New_York"),
    pd.Timestamp("2024-03-04 14:30:00.000000789", tz="UTC"), datetime(2300, 1, 1),
    np.datetime64("2024-03-04T14:30"), "2024-03-04T14:30:00Z",
]
_TYPES = {"float": sa.Column("f", sa.Float), "int": sa.Column("i", sa.Integer),
          "bool": sa.Column("b", sa.Boolean), "text": sa.Column("t", sa.String),
          "bytes": sa.Column("y", sa.LargeBinary), "time": sa.Column("ts", models.UTCDateTime())}


def _outcome(fn):
    try:
        return ("value", fn())
    except Exception as exc:  # noqa: BLE001 - the same error type is the expected outcome
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("driver", [None, "sqlite", "postgresql"])
@pytest.mark.parametrize("kind", list(_TYPES))
def test_one_value_binds_as_a_frame_column_binds_it(kind: str, driver: str | None) -> None:
    column = _TYPES[kind]
    for value in _ODD_VALUES:
        one = _outcome(lambda v=value: _convert._bind_value(v, column, driver))
        framed = _outcome(lambda v=value: _convert._column_values(
            pd.DataFrame({"c": [v]})["c"], column, driver)[0])
        assert one == framed, (kind, driver, value)
        if one[0] == "value":
            assert type(one[1]) is type(framed[1]), (kind, driver, value)
