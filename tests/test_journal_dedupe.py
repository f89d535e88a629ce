"""The journal keeps one signal per (symbol, interval, bar) and only signals with a trade plan:
the rule at the journal API, the CLI and the storage layer (a partial unique index, ON CONFLICT DO
NOTHING against a concurrent writer), and the migration that resolves duplicates stored before.
SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from swing_core import cli, db, journal, models
from swing_core.db import signals as signal_store
from swing_core.errors import DatabaseError

ASOF = pd.Timestamp("2024-03-04 14:30", tz="UTC")
MIGRATION = "0005"  # the revision that added ux_signals_live_bar


def _signal(symbol: str = "AAPL", minutes: int = 0, **extra) -> dict:
    return {"symbol": symbol, "interval": "30m", "asof": ASOF + pd.Timedelta(minutes=minutes),
            "setup": "momentum", "side": "long", "entry": 100.0, "stop": 98.0, "target": 104.0,
            "price": 100.0, "trend_label": "up", "data_source": "demo", **extra}


def _no_plan(symbol: str = "AAPL", **extra) -> dict:
    return _signal(symbol, setup="none", side="none", entry=None, stop=None, target=None, **extra)


def _rows(engine: sa.Engine, run_id: str | None = "live") -> pd.DataFrame:
    return db.list_signals(engine, run_id=run_id, limit=None)


# --------------------------------------------------------------------------- journal API


def test_the_same_signal_twice_is_one_row_and_the_second_save_says_so(
        db_engine: sa.Engine) -> None:
    first = journal.record_signal(db_engine, _signal(vector=np.full(16, 0.25, np.float32)))
    assert (first.added, first.already) == (1, 0)
    assert first.message == f"Saved signal #{first.ids[0]} to the journal."
    # the outcome is known, then the trader saves the same bar again (another vector, a note)
    db.set_signal_outcomes(db_engine, pd.DataFrame({
        "id": [first.ids[0]], "exit_reason": ["TARGET"], "exit_price": [104.0],
        "exit_ts": [ASOF + pd.Timedelta(hours=3)], "realized_r": [2.0], "hold_bars": [5]}))
    again = journal.record_signal(db_engine, _signal(note="again",
                                                     vector=np.full(16, 0.5, np.float32)))
    assert (again.added, again.already, again.ids) == (0, 1, first.ids)
    assert again.message == (f"Already in the journal as signal #{first.ids[0]} (same symbol, "
                             "interval and bar): nothing saved.")
    rows = _rows(db_engine)
    assert len(rows) == 1
    kept = rows.iloc[0]  # the stored row, its outcome and its vector are left as they were
    assert kept["note"] is None and kept["exit_reason"] == "TARGET"
    vectors = db.load_vector_matrix(db_engine, known_only=False)
    assert len(vectors) == 1
    assert vectors.matrix[0] / vectors.matrix[0][0] == pytest.approx(np.ones(16))
    assert vectors.meta["realized_r"].tolist() == [2.0]


def test_a_batch_reports_new_already_and_no_plan(db_engine: sa.Engine) -> None:
    journal.record_signal(db_engine, _signal("AAA"))
    saved = journal.record_signals(db_engine, [
        _signal("AAA"),                 # saved before
        _signal("BBB"), _signal("BBB"),  # twice in the same batch: once
        _signal("BBB", interval="1h"),  # another interval: another signal
        _signal("BBB", minutes=30),     # another bar: another signal
        _no_plan("CCC"),
    ])
    assert (saved.added, saved.already, saved.no_plan) == (3, 2, 1)
    assert saved.message == ("3 signal(s) saved to the journal, 2 already in the journal "
                             "(nothing saved for those), 1 without a trade plan (nothing to "
                             "journal).")
    assert len(saved.ids) == 5 and saved.ids[1] == saved.ids[2]
    rows = _rows(db_engine)
    assert len(rows) == 4 and "CCC" not in set(rows["symbol"])
    assert sorted(rows["id"]) == sorted(set(saved.ids))


@pytest.mark.parametrize("plan", [
    {"side": "none", "entry": None, "stop": None, "target": None},
    {"entry": 100.0, "stop": 100.0, "target": 100.0},   # constant prices: no risk, no reward
    {"side": "long", "entry": 100.0, "stop": 101.0, "target": 104.0},  # stop on the wrong side
    {"entry": float("nan")},
], ids=["none", "flat", "wrong-side", "nan"])
def test_a_signal_without_a_plan_is_refused(db_engine: sa.Engine, plan: dict) -> None:
    signal = _signal(**plan)
    assert not journal.has_trade_plan(signal)
    saved = journal.record_signal(db_engine, signal)
    assert (saved.added, saved.already, saved.no_plan, saved.ids) == (0, 0, 1, ())
    assert saved.message.startswith("No trade plan: nothing to journal")
    assert _rows(db_engine, run_id=None).empty


def test_other_runs_are_stored_as_given(db_engine: sa.Engine) -> None:
    """Backtests and benchmarks are not the journal: no de-duplication, no plan required."""
    ids = db.record_signals(db_engine, [_signal(), _signal(), _no_plan()], run_id="bt-1")
    assert len(set(ids)) == 3
    journal.record_signal(db_engine, _signal())  # the journal's own row beside them
    assert len(_rows(db_engine, run_id="bt-1")) == 3 and len(_rows(db_engine)) == 1


# --------------------------------------------------------------------------- storage layer


def test_the_storage_refuses_a_second_journal_row_for_a_bar(db_engine: sa.Engine) -> None:
    """The unique index itself: a writer that skips the journal code still cannot duplicate."""
    db.record_signals(db_engine, [_signal()])
    row = {"symbol": "AAPL", "interval": "30m", "asof": ASOF.to_pydatetime(), "run_id": "live"}
    with pytest.raises(sa.exc.IntegrityError), db_engine.begin() as conn:
        conn.execute(sa.insert(models.SignalRecord.__table__).values(row))
    assert len(_rows(db_engine)) == 1


def miss_the_other_writer_once(monkeypatch) -> list[int]:
    """Make the first journal-key lookup find nothing (another writer commits the same bar right
    after it); later lookups are real. Returns the sizes of the lookups made."""
    real = signal_store._journal_ids
    calls: list[int] = []

    def missed_the_other_writer(conn, keys):
        calls.append(len(keys))
        return {} if len(calls) == 1 else real(conn, keys)

    monkeypatch.setattr(signal_store, "_journal_ids", missed_the_other_writer)
    return calls


def test_a_concurrent_writer_between_check_and_insert_wins(db_engine: sa.Engine,
                                                            monkeypatch) -> None:
    """Another writer commits the same bar after this one looked: ON CONFLICT DO NOTHING keeps
    one row, and this writer reports the other's row as already there."""
    (theirs,) = db.record_signals(db_engine, [_signal()])
    miss_the_other_writer_once(monkeypatch)
    written = db.write_signals(db_engine, [_signal(note="mine")])
    assert (written.ids, written.new) == ([theirs], [False])
    assert _rows(db_engine)["note"].tolist() == [None]


def test_threads_saving_the_same_signal_store_one_row(db_engine: sa.Engine) -> None:
    barrier = threading.Barrier(4)
    results: list[journal.JournalWrite] = []
    errors: list[BaseException] = []

    def save() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(journal.record_signal(db_engine, _signal()))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert sum(r.added for r in results) == 1 and sum(r.already for r in results) == 3
    assert len({r.ids for r in results}) == 1 and len(_rows(db_engine)) == 1


def test_a_failed_batch_still_stores_nothing(db_engine: sa.Engine) -> None:
    with pytest.raises(DatabaseError):
        db.record_signals(db_engine, [_signal("AAA"), _signal("BBB", vector_id=999_999)])
    assert _rows(db_engine, run_id=None).empty


# --------------------------------------------------------------------------- migration


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fresh_engine(request: pytest.FixtureRequest, tmp_path) -> Iterator[sa.Engine]:
    """An engine on a new database (SQLite file, or a new PostgreSQL schema) at the head."""
    if request.param == "sqlite":
        engine = db.make_engine(f"sqlite:///{tmp_path / 'old.sqlite'}")
    else:
        engine = db.make_engine(request.getfixturevalue("pg_url"),
                                schema=request.getfixturevalue("pg_schema"))
    db.init_db(engine)
    yield engine
    engine.dispose()


def _migrate(engine: sa.Engine, target: str, *, down: bool = False) -> None:
    with db.write_transaction(engine) as conn:
        (command.downgrade if down else command.upgrade)(db.alembic_config(conn), target)


def test_the_migration_resolves_duplicates_stored_before(fresh_engine: sa.Engine) -> None:
    before = ScriptDirectory.from_config(db.alembic_config()).get_revision(MIGRATION)
    _migrate(fresh_engine, before.down_revision, down=True)  # a database from before the index
    t = models.SignalRecord.__table__
    base = {"symbol": "AAPL", "interval": "30m", "asof": ASOF.to_pydatetime(), "run_id": "live",
            "setup": "momentum", "side": "long", "entry": 100.0, "stop": 98.0, "target": 104.0,
            "llm_vote_json": None}
    with fresh_engine.begin() as conn:
        conn.execute(sa.insert(t), [
            {**base, "id": 1},                                   # the oldest: kept
            {**base, "id": 2},                                   # an exact copy: removed
            {**base, "id": 3, "llm_vote_json": '{"entry_bias": "long"}'},  # differs: kept apart
            {**base, "id": 4, "symbol": "MSFT"},                 # another symbol: untouched
            {**base, "id": 5, "run_id": "bt-1"},                 # a backtest row: untouched
            {**base, "id": 6, "run_id": "bt-1"},
        ])
    _migrate(fresh_engine, "head")
    rows = _rows(fresh_engine, run_id=None).set_index("id")
    assert sorted(rows.index) == [1, 3, 4, 5, 6]
    assert rows["run_id"].to_dict() == {1: "live", 3: "live-duplicate", 4: "live", 5: "bt-1",
                                        6: "bt-1"}
    assert rows.loc[3, "llm_vote_json"] == '{"entry_bias": "long"}'
    names = {ix["name"] for ix in sa.inspect(fresh_engine).get_indexes("signals")}
    assert "ux_signals_live_bar" in names
    again = journal.record_signal(fresh_engine, _signal())
    assert (again.already, again.ids) == (1, (1,))


# --------------------------------------------------------------------------- CLI


def test_cli_journal_add_once_per_bar_and_refuses_no_plan(capsys) -> None:
    assert cli.main(["journal", "add", "AAPL", "--interval", "30m", "--no-priors"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("AAPL 30m bar ") and "Saved signal #1 to the journal." in out
    assert cli.main(["journal", "add", "aapl", "--interval", "30m", "--no-priors"]) == 0
    assert "Already in the journal as signal #1" in capsys.readouterr().out
    assert len(_rows(db.get_engine())) == 1
    # MSFT's demo bars end without a setup: the signal has no plan
    assert cli.main(["journal", "add", "MSFT", "--interval", "30m", "--no-priors"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: MSFT 30m bar ") and "No trade plan: nothing to journal" in err
    assert len(_rows(db.get_engine())) == 1
    db.dispose_engines()


# --------------------------------------------------------------------------- the Explorer page


def test_the_explorer_says_when_the_bar_is_already_in_the_journal(tmp_path, monkeypatch) -> None:
    from apptest_support import demo_app, open_page

    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    at.query_params["lookback"] = "20"  # keep the demo frames small
    open_page(at, "pages/explorer.py")
    at.button(key="save_journal").click().run()
    assert any("Saved signal #1" in s.value for s in at.success)
    at.button(key="save_journal").click().run()
    assert not at.exception
    assert any("Already in the journal as signal #1" in i.value for i in at.info)
    assert len(_rows(db.get_engine())) == 1
    # a symbol whose last bar has no setup: nothing to save, and the button says why
    at.text_input(key="symbol").set_value("MSFT").run()
    button = at.button(key="save_journal")
    assert button.disabled and button.help.startswith("No trade plan: nothing to journal")
    db.dispose_engines()


def test_the_journal_page_points_to_copies_the_upgrade_moved(tmp_path, monkeypatch) -> None:
    from apptest_support import demo_app, open_page

    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    engine = db.get_engine()
    db.init_db(engine)
    journal.record_signal(engine, _signal())
    db.record_signals(engine, [_signal(note="advised")], run_id=journal.DUPLICATE_RUN_ID)
    open_page(at, "pages/journal.py")
    captions = " ".join(c.value for c in at.caption)
    assert "1 differing duplicate(s) of signals above (the same bar saved again)" in captions
    assert "journal list --run-id live-duplicate" in captions
    db.dispose_engines()
