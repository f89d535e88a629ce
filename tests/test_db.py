"""Storage: engine factory, bar cache, vectors, signals, backtests (SQLite always, PostgreSQL
when SWING_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db
from swing_core.errors import DatabaseError


def _bars(n: int = 5, start: str = "2024-03-04 14:30", freq: str = "30min",
          base: float = 100.0) -> pd.DataFrame:
    idx = pd.date_range(start, periods=n, freq=freq, tz="UTC", name="ts")
    close = base + np.arange(n, dtype="float64")
    return pd.DataFrame(
        {"open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
         "volume": np.full(n, 1000.0)},
        index=idx,
    )


# --------------------------------------------------------------------------- engine


def test_sqlite_engine_pragmas(sqlite_engine: sa.Engine) -> None:
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


def test_default_engine_creates_file_under_data_dir(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path / "nested" / "data"))
    monkeypatch.delenv("SWING_DATABASE_URL", raising=False)
    engine = db.get_engine()
    try:
        assert engine is db.get_engine()  # cached per URL
        db.init_db(engine)
        assert (tmp_path / "nested" / "data" / "swingdesk.sqlite").exists()
        assert db.database_status(engine).up_to_date
    finally:
        db.dispose_engines()


def test_describe_database_never_shows_password() -> None:
    text = db.describe_database("postgresql+psycopg://alice:s3cret@db.example:6543/swing")
    assert text == "PostgreSQL alice@db.example:6543/swing"
    assert "s3cret" not in text
    assert db.describe_database("sqlite:////tmp/x.sqlite") == "SQLite file /tmp/x.sqlite"


def test_unreachable_postgres_is_one_clear_error() -> None:
    engine = db.make_engine("postgresql://bob:hunter2@127.0.0.1:1/nothing")
    with pytest.raises(DatabaseError) as info:
        db.init_db(engine)
    message = str(info.value)
    assert "127.0.0.1:1/nothing" in message and "hunter2" not in message
    assert "SWING_DATABASE_URL" in message


def test_bad_urls_are_database_errors(tmp_path) -> None:
    with pytest.raises(DatabaseError, match="not valid"):
        db.make_engine("::not a url::")
    with pytest.raises(DatabaseError, match="Unsupported database"):
        db.make_engine("mysql://u:p@h/d")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="SWING_DATA_DIR"):
        db.make_engine(f"sqlite:///{blocker}/sub/x.sqlite")


# --------------------------------------------------------------------------- bars


def test_bars_roundtrip_and_upsert(db_engine: sa.Engine) -> None:
    bars = _bars(5)
    assert db.upsert_bars(db_engine, "AAPL", "30m", bars, source="yahoo") == 5
    loaded = db.load_bars(db_engine, "AAPL", "30m")
    pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    assert str(loaded.index.tz) == "UTC" and loaded.index.name == "ts"
    assert loaded.attrs["source"] == "cache" and loaded.attrs["cache_sources"] == ["yahoo"]
    # overlapping upsert: last bar revised, two new ones: no duplicates
    newer = _bars(3, start="2024-03-04 16:30", base=200.0)
    db.upsert_bars(db_engine, "AAPL", "30m", newer, source="file")
    loaded = db.load_bars(db_engine, "AAPL", "30m")
    assert len(loaded) == 7
    assert loaded["close"].iloc[4] == 200.0
    assert loaded.attrs["cache_sources"] == ["file", "yahoo"]
    window = db.load_bars(db_engine, "AAPL", "30m", start="2024-03-04 15:00",
                          end=pd.Timestamp("2024-03-04 11:00", tz="America/New_York"))
    assert list(window.index.strftime("%H:%M")) == ["15:00", "15:30", "16:00"]


def test_load_bars_empty_has_columns(db_engine: sa.Engine) -> None:
    empty = db.load_bars(db_engine, "NONE", "1d")
    assert list(empty.columns) == db.BAR_COLUMNS and len(empty) == 0
    assert str(empty.index.tz) == "UTC" and all(empty.dtypes == "float64")


def test_bar_cache_summary_and_delete(db_engine: sa.Engine) -> None:
    db.upsert_bars(db_engine, "AAPL", "30m", _bars(5), source="yahoo")
    db.upsert_bars(db_engine, "MSFT", "1d", _bars(3, freq="1D"), source="demo")
    summary = db.bar_cache_summary(db_engine)
    assert list(summary["symbol"]) == ["AAPL", "MSFT"]
    assert list(summary["bars"]) == [5, 3]
    assert summary["last_ts"].iloc[0] == pd.Timestamp("2024-03-04 16:30", tz="UTC")
    assert str(summary["fetched_at"].dt.tz) == "UTC"
    assert db.delete_bars(db_engine, symbol="AAPL") == 5
    assert db.delete_bars(db_engine) == 3
    assert len(db.bar_cache_summary(db_engine)) == 0


def test_naive_index_is_taken_as_utc(db_engine: sa.Engine) -> None:
    bars = _bars(2)
    bars.index = bars.index.tz_localize(None)
    db.upsert_bars(db_engine, "X", "30m", bars, source="file")
    loaded = db.load_bars(db_engine, "X", "30m")
    assert loaded.index[0] == pd.Timestamp("2024-03-04 14:30", tz="UTC")
