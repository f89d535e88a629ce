"""A NUL character (\\x00) in text is refused the same way on SQLite and PostgreSQL (issue 16,
item 10): a DataError naming the field, raised before anything is written, where PostgreSQL
used to fail ("A string literal cannot contain NUL") and SQLite stored it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, journal, models
from swing_core.db._bulk import _text_codes
from swing_core.errors import DataError

ASOF = pd.Timestamp("2024-03-04 14:30", tz="UTC")


def _signal(**changes: object) -> dict[str, object]:
    """A journal signal with a usable long plan."""
    return {"symbol": "AAPL", "interval": "30m", "asof": ASOF, "side": "long", "setup": "momentum",
            "entry": 100.0, "stop": 98.0, "target": 104.0, "note": "breakout", **changes}


def _count(engine: sa.Engine, model: type) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(model.__table__))
                   .scalar_one())


def test_a_journal_note_with_nul_is_refused_and_nothing_is_written(db_engine: sa.Engine) -> None:
    with pytest.raises(DataError, match=r"'note' of signals contains a NUL character"):
        journal.record_signal(db_engine, _signal(note="bought\x00 the dip"))
    assert _count(db_engine, models.SignalRecord) == 0


def test_one_bad_signal_in_a_batch_writes_none_of_it(db_engine: sa.Engine) -> None:
    batch = [_signal(asof=ASOF + pd.Timedelta(minutes=30 * i)) for i in range(3)]
    batch[2]["verdict_reason"] = "edge\x00"
    batch[1]["vector"] = np.ones(16, dtype=np.float32) / 4.0  # its setup vector neither
    with pytest.raises(DataError, match="'verdict_reason' of signals"):
        journal.record_signals(db_engine, batch)
    assert _count(db_engine, models.SignalRecord) == 0
    assert _count(db_engine, models.SetupVector) == 0


def test_same_text_without_nul_is_stored_on_both(db_engine: sa.Engine) -> None:
    """Control: the refusal is about NUL only; other control characters and JSON-escaped NULs
    (\\u0000 inside a JSON text) are stored and read back unchanged."""
    note = "tab\there, bell\x07, é, 🚀"
    prior = {"reason": "nul\x00inside"}
    journal.record_signal(db_engine, _signal(note=note, prior_json=prior))
    stored = db.list_signals(db_engine, run_id=None)
    assert stored["note"].tolist() == [note]
    assert json.loads(stored["prior_json"].iloc[0]) == prior


def _trades(n: int, exit_reason: str = "TARGET") -> pd.DataFrame:
    ts = pd.date_range("2024-01-02 15:00", periods=n, freq="1D", tz="UTC")
    return pd.DataFrame({"symbol": "AAPL", "setup": "momentum", "side": "long", "signal_ts": ts,
                         "entry_ts": ts, "entry_price": 100.0, "stop": 98.0, "target": 104.0,
                         "exit_ts": ts, "exit_price": 104.0, "exit_reason": exit_reason,
                         "realized_r": 2.0, "hold_bars": 3})


def test_a_backtest_run_name_with_nul_is_refused(db_engine: sa.Engine) -> None:
    with pytest.raises(DataError, match="'name' of backtest_runs"):
        db.save_backtest_run(db_engine, {"run_hash": "h1", "name": "my\x00run"}, _trades(2))
    assert _count(db_engine, models.BacktestRun) == 0
    assert _count(db_engine, models.BacktestTrade) == 0


def test_a_bad_trade_in_a_later_batch_rolls_the_whole_run_back(db_engine: sa.Engine) -> None:
    """Trades are converted batch by batch inside the run's transaction: a NUL in the second
    batch leaves neither the run nor the first batch behind."""
    batches = iter([_trades(2), _trades(2, exit_reason="TARGET\x00")])
    with pytest.raises(DataError, match="'exit_reason' of backtest_trades"):
        db.save_backtest_run(db_engine, {"run_hash": "h2", "name": "fine"}, batches)
    assert _count(db_engine, models.BacktestRun) == 0
    assert _count(db_engine, models.BacktestTrade) == 0


def test_setup_vector_labels_with_nul_are_refused(db_engine: sa.Engine) -> None:
    """Vectors go through a binary COPY on PostgreSQL and executemany on SQLite: same rule."""
    frame = pd.DataFrame({"symbol": ["AAPL", "MS\x00FT"], "interval": "30m",
                          "ts": [ASOF, ASOF], "version": "v1", "setup": "momentum",
                          "side": "long", "trend": "up", "vol_regime": "M",
                          "vector": list(np.full((2, 16), 0.25, dtype=np.float32))})
    with pytest.raises(DataError, match="'symbol'.*NUL character"):
        db.upsert_vectors(db_engine, frame)
    assert _count(db_engine, models.SetupVector) == 0


def test_copy_text_codes_refuse_nul() -> None:
    codes, labels = _text_codes(pd.Series(["a", None, "b", "a"], name="setup"))
    assert codes.tolist() == [1, 0, 2, 1] and labels == ["a", "b"]
    with pytest.raises(DataError, match="'setup'"):
        _text_codes(pd.Series(["a", "b\x00"], name="setup"))
