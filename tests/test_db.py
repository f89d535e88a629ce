"""Storage: engine factory, bar cache, vectors, signals, backtests (SQLite always, PostgreSQL
when SWING_TEST_DATABASE_URL is set)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from swing_core import db
from swing_core.db import vector_load
from swing_core.db._bulk import _Unpackable
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


def test_postgres_pool_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SWING_DB_POOL_SIZE", "3")
    monkeypatch.setenv("SWING_DB_MAX_OVERFLOW", "7")
    monkeypatch.setenv("SWING_DB_POOL_RECYCLE_S", "600")
    engine = db.make_engine("postgres://u:p@db.example/swing")  # nothing connects yet
    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.pool.size() == 3 and engine.pool._max_overflow == 7
    assert engine.pool._recycle == 600 and engine.pool._pre_ping


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "garbage.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(DatabaseError, match="garbage.sqlite"):
        db.init_db(db.make_engine(f"sqlite:///{path}"))


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


@settings(max_examples=30, deadline=None)
@given(
    stamps=st.lists(st.datetimes(min_value=dt.datetime(1990, 1, 1),
                                 max_value=dt.datetime(2100, 1, 1)),
                    min_size=1, max_size=20, unique=True),
    price=st.floats(min_value=1e-6, max_value=1e9, allow_nan=False),
)
def test_bar_timestamps_and_prices_roundtrip_exactly(tmp_path_factory, stamps, price) -> None:
    """Microsecond timestamps survive the driver-level text format SQLite stores."""
    path = tmp_path_factory.mktemp("prop") / "p.sqlite"
    engine = db.make_engine(f"sqlite:///{path}")
    try:
        idx = pd.DatetimeIndex(sorted(stamps), tz="UTC", name="ts")
        bars = pd.DataFrame({"open": price, "high": price, "low": price, "close": price,
                             "volume": 1.0}, index=idx)
        db.upsert_bars(engine, "P", "1d", bars, source="file")
        loaded = db.load_bars(engine, "P", "1d", start=idx[0], end=idx[-1])
        pd.testing.assert_frame_equal(loaded, bars, check_freq=False)
    finally:
        engine.dispose()


def test_naive_index_is_taken_as_utc(db_engine: sa.Engine) -> None:
    bars = _bars(2)
    bars.index = bars.index.tz_localize(None)
    db.upsert_bars(db_engine, "X", "30m", bars, source="file")
    loaded = db.load_bars(db_engine, "X", "30m")
    assert loaded.index[0] == pd.Timestamp("2024-03-04 14:30", tz="UTC")


# --------------------------------------------------------------------------- vectors


def _vector_frame(n: int, *, start: str = "2024-01-02 14:30", symbol: str | None = None,
                  outcome: bool = True, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    matrix = rng.normal(size=(n, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ts = pd.date_range(start, periods=n, freq="30min", tz="UTC")
    frame = pd.DataFrame({
        "symbol": symbol or "AAPL", "interval": "30m", "ts": ts, "version": "v1",
        "setup": "momentum", "side": "long", "trend": "up", "vol_regime": "M",
        "vector": list(matrix),
    })
    if outcome:
        frame["realized_r"] = rng.normal(size=n)
        frame["exit_reason"] = "TIME"
        frame["exit_ts"] = ts + pd.Timedelta(hours=20)
        frame["hold_bars"] = 26
    return frame, matrix


def test_vectors_roundtrip_as_float32_bytes(db_engine: sa.Engine) -> None:
    frame, matrix = _vector_frame(50)
    assert db.upsert_vectors(db_engine, frame) == 50
    rows = db.load_vector_matrix(db_engine)
    assert rows.matrix.dtype == np.float32 and rows.matrix.shape == (50, 16)
    np.testing.assert_array_equal(rows.matrix, matrix)
    assert list(rows.meta["ts"]) == list(frame["ts"])
    assert str(rows.meta["exit_ts"].dt.tz) == "UTC"
    np.testing.assert_allclose(rows.meta["realized_r"], frame["realized_r"])
    assert rows.meta["hold_bars"].tolist() == [26] * 50
    with db_engine.connect() as conn:  # stored as raw little-endian float32, not JSON text
        blob = conn.execute(sa.text("SELECT vector FROM setup_vectors ORDER BY id")).scalar()
    assert isinstance(blob, bytes) and len(blob) == 64
    np.testing.assert_array_equal(np.frombuffer(blob, "<f4"), matrix[0])


def test_vectors_accept_vec_columns_and_upsert_is_idempotent(db_engine: sa.Engine) -> None:
    frame, matrix = _vector_frame(10, outcome=False)
    wide = frame.drop(columns=["vector"])
    for i in range(16):
        wide[f"vec_{i:02d}"] = matrix[:, i]
    db.upsert_vectors(db_engine, wide)
    db.upsert_vectors(db_engine, wide)  # same keys again: no duplicates
    rows = db.load_vector_matrix(db_engine, known_only=False)
    assert len(rows) == 10
    assert rows.meta["realized_r"].isna().all()
    assert db.load_vector_matrix(db_engine, known_only=True).matrix.shape == (0, 16)


def test_vector_upsert_never_erases_a_known_outcome(db_engine: sa.Engine) -> None:
    frame, _ = _vector_frame(5)
    db.upsert_vectors(db_engine, frame)
    again, matrix2 = _vector_frame(5, outcome=False, seed=1)  # same keys, new vectors
    db.upsert_vectors(db_engine, again)
    rows = db.load_vector_matrix(db_engine)
    assert len(rows) == 5
    np.testing.assert_array_equal(rows.matrix, matrix2)
    np.testing.assert_allclose(rows.meta["realized_r"], frame["realized_r"])


def test_set_vector_outcomes_and_point_in_time_load(db_engine: sa.Engine) -> None:
    frame, _ = _vector_frame(4, outcome=False)
    db.upsert_vectors(db_engine, frame)
    outcomes = pd.DataFrame({
        "symbol": "AAPL", "interval": "30m", "ts": frame["ts"].iloc[:2],
        "realized_r": [1.5, -1.0], "exit_reason": ["TARGET", "STOP"],
        "exit_ts": pd.to_datetime(["2024-01-03 15:00", "2024-01-05 15:00"], utc=True),
        "hold_bars": [3, 9],
    })
    assert db.set_vector_outcomes(db_engine, outcomes) == 2
    known = db.load_vector_matrix(db_engine)
    assert known.meta["exit_reason"].tolist() == ["TARGET", "STOP"]
    by_then = db.load_vector_matrix(db_engine, known_by="2024-01-04")
    assert by_then.meta["realized_r"].tolist() == [1.5]
    by_id = db.set_vector_outcomes(db_engine, pd.DataFrame({
        "id": [int(known.meta["id"].iloc[1])], "realized_r": [2.0], "exit_reason": ["TARGET"],
        "exit_ts": [pd.Timestamp("2024-01-05 15:00", tz="UTC")], "hold_bars": [4]}))
    assert by_id == 1
    assert db.load_vector_matrix(db_engine).meta["realized_r"].tolist() == [1.5, 2.0]


def test_load_vector_matrix_filters_and_time_order(db_engine: sa.Engine) -> None:
    late, _ = _vector_frame(3, start="2024-02-01 14:30", symbol="MSFT")
    early, _ = _vector_frame(3, start="2024-01-01 14:30", symbol="AAPL")
    db.upsert_vectors(db_engine, late)  # inserted first, but later in time
    db.upsert_vectors(db_engine, early)
    day, _ = _vector_frame(2, symbol="SPY")
    db.upsert_vectors(db_engine, day.assign(interval="1d"))
    rows = db.load_vector_matrix(db_engine, interval="30m")
    assert rows.meta["symbol"].tolist() == ["AAPL"] * 3 + ["MSFT"] * 3
    assert rows.meta["ts"].is_monotonic_increasing
    assert db.load_vector_matrix(db_engine, symbol="SPY").meta["interval"].tolist() == ["1d"] * 2
    assert len(db.load_vector_matrix(db_engine, version="v2")) == 0


def test_bad_vectors_are_rejected(db_engine: sa.Engine) -> None:
    frame, _ = _vector_frame(2)
    frame["vector"] = [np.zeros(15, np.float32), np.zeros(15, np.float32)]
    with pytest.raises(ValueError, match="16 values"):
        db.upsert_vectors(db_engine, frame)
    frame["vector"] = [np.full(16, np.nan, np.float32)] * 2
    with pytest.raises(ValueError, match="NaN"):
        db.upsert_vectors(db_engine, frame)


_META_DTYPES = {"id": "int64", "symbol": "object", "interval": "object",
                "ts": "datetime64[ns, UTC]", "version": "object", "setup": "object",
                "side": "object", "trend": "object", "vol_regime": "object",
                "realized_r": "float64", "exit_reason": "object",
                "exit_ts": "datetime64[ns, UTC]", "hold_bars": "Int64"}


def _plain_read(engine: sa.Engine, **filters) -> db.VectorRows:
    """The same load through the plain per-row read (the packed read's fallback)."""
    query = vector_load._Query(engine.dialect.name, filters.get("interval"),
                               filters.get("version", "v1"), filters.get("known_only", True),
                               filters.get("symbol"), filters.get("known_by"))
    with engine.connect() as conn:
        return vector_load._vector_rows(vector_load._read_rows(conn, query), query)


def packed_is_used(engine: sa.Engine, *, interval: str | None = None,
                   known_only: bool = True, query: vector_load._Query | None = None) -> bool:
    """Whether the packed (one query, per-column) read serves ``query`` (default: the matrix
    load of ``interval``), rather than the row-by-row fallback."""
    if query is None:
        query = vector_load._Query(engine.dialect.name, interval, "v1", known_only, None, None)
    with engine.connect() as conn:
        try:
            vector_load._read_packed(conn, query)
        except _Unpackable:
            return False
    return True


def _assert_same_rows(got: db.VectorRows, want: db.VectorRows) -> None:
    pd.testing.assert_frame_equal(got.meta, want.meta)
    np.testing.assert_array_equal(got.matrix, want.matrix)
    assert got.matrix.dtype == np.float32 and got.matrix.flags.writeable


#: Doubles that SQLite's float-to-text does not always round-trip, and the edges of the exact
#: integer split the packed SQLite read uses (2**-30 <= |r| < 2**43, the rest re-read).
_TRICKY_R = np.concatenate([
    [0.0, -0.0, 0.1, 1 / 3, -2.5, 1e-300, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
     -1.7976931348623157e308, np.inf, -np.inf, 1.4210854715202004e-14, -2.220446049250313e-16,
     2.0 ** 43, -(2.0 ** 43), np.nextafter(2.0 ** 43, 0), 2.0 ** -30, -(2.0 ** -30),
     np.nextafter(2.0 ** -30, 0), np.nextafter(2.0 ** -30, 1), 9007199254740993.0],
    np.random.default_rng(7).normal(0, 2, 300),
    np.random.default_rng(8).integers(1, 2 ** 63, 300, dtype=np.uint64).view(np.float64),
])
_TRICKY_R = _TRICKY_R[np.isfinite(_TRICKY_R) | np.isinf(_TRICKY_R)]  # no NaN: that is NULL


def test_realized_r_reads_back_bit_exact(db_engine: sa.Engine) -> None:
    n = len(_TRICKY_R)
    frame, matrix = _vector_frame(n)
    frame["realized_r"] = _TRICKY_R
    db.upsert_vectors(db_engine, frame)
    rows = db.load_vector_matrix(db_engine)
    assert packed_is_used(db_engine)
    assert (rows.meta["realized_r"].to_numpy() == _TRICKY_R).all()  # -0.0 == 0.0 is fine
    _assert_same_rows(rows, _plain_read(db_engine))
    np.testing.assert_array_equal(rows.matrix, matrix)


def test_packed_load_matches_the_plain_read(db_engine: sa.Engine, monkeypatch) -> None:
    """NULL outcomes, labels with quotes and non-ASCII text, several intervals, rows inserted
    out of time order with ties, every filter; and the same with the packed read split into
    many id ranges."""
    rng = np.random.default_rng(3)
    frames = []
    for i, (symbol, interval) in enumerate([("MSFT", "30m"), ("AAPL", "30m"), ("SPY", "1d"),
                                            ("BRK-B", "30m")]):
        frame, _ = _vector_frame(40, start="2024-01-02 14:30", symbol=symbol, seed=i)
        frame["interval"] = interval
        frame["setup"] = rng.choice(["gp_pullback", "it's", "momentum", "é ü"], 40)
        frame["exit_reason"] = rng.choice(["TIME", "STOP", None, "a\\b", "q'"], 40)
        frame["hold_bars"] = pd.array(rng.choice([3, 26, None], 40), dtype="Int64")
        frame.loc[rng.random(40) < 0.3, "realized_r"] = np.nan
        frame.loc[rng.random(40) < 0.2, "exit_ts"] = pd.NaT
        frame["exit_ts"] = frame["exit_ts"] + pd.Timedelta(microseconds=7)
        frames.append(frame)
    for frame in frames:
        db.upsert_vectors(db_engine, frame)
    cases = [{}, {"known_only": False}, {"interval": "30m"}, {"interval": "1d"},
             {"symbol": "BRK-B", "known_only": False},
             {"known_by": pd.Timestamp("2024-01-03 12:00:00.000007", tz="UTC")},
             {"known_by": "2024-01-03 12:00:00.000006"}, {"version": "v2"}]
    for chunk in (vector_load._PACKED_CHUNK_IDS, 7):
        monkeypatch.setattr(vector_load, "_PACKED_CHUNK_IDS", chunk)
        for filters in cases:
            got = db.load_vector_matrix(db_engine, **filters)
            _assert_same_rows(got, _plain_read(db_engine, **filters))
            assert got.meta.dtypes.astype(str).to_dict() == _META_DTYPES
            assert list(zip(got.meta["ts"], got.meta["id"], strict=True)) == sorted(
                zip(got.meta["ts"], got.meta["id"], strict=True))
    assert packed_is_used(db_engine) and packed_is_used(db_engine, known_only=False)
    everything = db.load_vector_matrix(db_engine, known_only=False)
    assert everything.meta["exit_reason"].isna().sum() > 0
    assert set(everything.meta["exit_reason"].dropna()) == {"TIME", "STOP", "a\\b", "q'"}
    assert everything.meta["hold_bars"].isna().sum() > 0 and everything.meta["ts"].is_unique is \
        False  # the same bar of several symbols
    late = db.load_vector_matrix(db_engine, known_by="2024-01-03 12:00:00.000007")
    assert (late.meta["exit_ts"] <= pd.Timestamp("2024-01-03 12:00:00.000007", tz="UTC")).all()
    assert len(late) == len(db.load_vector_matrix(db_engine, known_by=pd.Timestamp(
        "2024-01-03 07:00:00.000007", tz="America/New_York")))


def test_labels_the_packed_read_cannot_carry_fall_back(db_engine: sa.Engine) -> None:
    frame, matrix = _vector_frame(6)
    frame["setup"] = ["a\x1eb", "c\x1fd", "e],[f", 'g"h', "tab\there", "none"]
    db.upsert_vectors(db_engine, frame)
    rows = db.load_vector_matrix(db_engine)
    assert rows.meta["setup"].tolist() == frame["setup"].tolist()
    np.testing.assert_array_equal(rows.matrix, matrix)
    _assert_same_rows(rows, _plain_read(db_engine))


def test_sqlite_timestamp_text_written_by_others_still_loads(sqlite_engine: sa.Engine) -> None:
    """Text without fractional seconds (another writer) takes the per-value parse; text with a
    UTC offset the per-row read."""
    frame, _ = _vector_frame(5)
    db.upsert_vectors(sqlite_engine, frame)
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE setup_vectors SET exit_ts = substr(exit_ts, 1, 19) "
                             "WHERE id % 2 = 0")
    rows = db.load_vector_matrix(sqlite_engine)
    assert rows.meta["exit_ts"].tolist() == frame["exit_ts"].tolist()
    assert packed_is_used(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE setup_vectors SET ts = replace(ts, '.000000', '+00:00')")
    assert not packed_is_used(sqlite_engine)
    rows = db.load_vector_matrix(sqlite_engine)
    assert rows.meta["ts"].tolist() == frame["ts"].tolist()
    _assert_same_rows(rows, _plain_read(sqlite_engine))


def test_empty_loads_have_the_documented_dtypes(db_engine: sa.Engine) -> None:
    for rows in (db.load_vector_matrix(db_engine), db.load_vector_matrix(db_engine,
                                                                         interval="1h")):
        assert len(rows) == 0 and rows.matrix.shape == (0, 16)
        assert rows.meta.dtypes.astype(str).to_dict() == _META_DTYPES


def test_vector_upsert_inputs(db_engine: sa.Engine) -> None:
    """Naive and non-UTC times, float hold_bars, NaN/NaT outcomes, missing label columns (model
    defaults), and a key repeated in one batch (applied in order: the last one wins, a NULL
    outcome of it keeps the earlier one)."""
    _, matrix = _vector_frame(4)
    ts = pd.date_range("2024-05-01 09:30", periods=4, freq="30min", tz="America/New_York")
    frame = pd.DataFrame({"symbol": "X", "interval": "30m", "ts": ts, "vector": list(matrix),
                          "realized_r": [1.0, np.nan, 2.0, None], "hold_bars": [5.0, None, 7, 8],
                          "exit_ts": [ts[0].tz_localize(None), pd.NaT, ts[2], ts[3]],
                          "exit_reason": ["TIME", None, np.nan, "STOP"]})
    assert db.upsert_vectors(db_engine, frame) == 4
    rows = db.load_vector_matrix(db_engine, known_only=False)
    assert rows.meta["ts"].tolist() == list(ts.tz_convert("UTC"))
    assert rows.meta["exit_ts"].iloc[0] == ts[0].tz_localize(None).tz_localize("UTC")
    assert rows.meta["hold_bars"].tolist() == [5, pd.NA, 7, 8]
    assert rows.meta["exit_reason"].tolist() == ["TIME", None, None, "STOP"]
    assert rows.meta[["version", "setup", "side", "trend", "vol_regime"]].iloc[0].tolist() == [
        "v1", "none", "none", "sideways", "M"]
    again = pd.concat([frame.iloc[[1]].assign(realized_r=3.0, vector=[matrix[3]]),
                       frame.iloc[[1]].assign(realized_r=np.nan, setup="momentum")])
    db.upsert_vectors(db_engine, again)
    second = db.load_vector_matrix(db_engine, known_only=False).meta.iloc[1]
    assert second["realized_r"] == 3.0 and second["setup"] == "momentum"
    with pytest.raises(ValueError, match="symbol"):
        db.upsert_vectors(db_engine, frame.drop(columns=["symbol"]))
    with pytest.raises(ValueError, match="ts"):
        db.upsert_vectors(db_engine, frame.assign(ts=pd.NaT))


def test_postgres_vector_pages_keep_room_for_rewrites(db_engine: sa.Engine) -> None:
    """Revision 0002: fillfactor 70, so a re-upserted vector is rewritten in place (HOT)."""
    if db_engine.dialect.name != "postgresql":
        pytest.skip("a PostgreSQL storage parameter")
    with db_engine.connect() as conn:
        options = conn.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE oid = 'setup_vectors'::regclass").scalar()
    assert "fillfactor=70" in options
    frame, matrix = _vector_frame(200)
    db.upsert_vectors(db_engine, frame)
    db.upsert_vectors(db_engine, frame.assign(vector=list(matrix[::-1])))
    np.testing.assert_array_equal(db.load_vector_matrix(db_engine).matrix, matrix[::-1])


def test_reupserting_keeps_outcomes_given_as_nulls(db_engine: sa.Engine) -> None:
    frame, _ = _vector_frame(30)
    db.upsert_vectors(db_engine, frame)
    blank = frame.assign(realized_r=np.nan, exit_reason=None, exit_ts=pd.NaT, hold_bars=None,
                         trend="down")
    db.upsert_vectors(db_engine, blank)
    rows = db.load_vector_matrix(db_engine)
    np.testing.assert_array_equal(rows.meta["realized_r"], frame["realized_r"])
    assert rows.meta["exit_ts"].tolist() == frame["exit_ts"].tolist()
    assert rows.meta["trend"].eq("down").all() and rows.meta["hold_bars"].eq(26).all()
    db.upsert_vectors(db_engine, frame.assign(realized_r=frame["realized_r"] + 1))
    np.testing.assert_array_equal(db.load_vector_matrix(db_engine).meta["realized_r"],
                                  frame["realized_r"] + 1)


# --------------------------------------------------------------------------- signals


def _signal(i: int = 0, **extra) -> dict:
    base = {
        "symbol": "AAPL", "interval": "30m",
        "asof": pd.Timestamp("2024-03-04 14:30", tz="UTC") + pd.Timedelta(minutes=30 * i),
        "data_source": "demo", "trend_label": "up", "price": 100.0 + i, "setup": "momentum",
        "side": "long", "entry": 101.0, "stop": 99.0, "target": 105.0, "r_multiple": 2.0,
        "confidence": 0.6, "fib_json": {"golden_pocket_low": 97.5}, "rsi14": float("nan"),
    }
    base.update(extra)
    return base


def test_record_and_list_signals(db_engine: sa.Engine) -> None:
    ids = db.record_signals(db_engine, [_signal(i) for i in range(5)])
    assert ids == sorted(ids) and len(set(ids)) == 5
    db.record_signals(db_engine, [_signal(0, symbol="MSFT", trend_label="down")])
    db.record_signals(db_engine, pd.DataFrame([_signal(1)]), run_id="bt-1")
    live = db.list_signals(db_engine)
    assert len(live) == 6 and live["run_id"].eq("live").all()
    assert live["asof"].is_monotonic_decreasing  # newest first
    first = live.loc[live["id"] == ids[0]].iloc[0]
    assert first["asof"] == pd.Timestamp("2024-03-04 14:30", tz="UTC")
    assert str(live["created_at"].dt.tz) == "UTC"
    assert first["fib_json"] == '{"golden_pocket_low": 97.5}'
    assert first["rsi14"] is None or np.isnan(first["rsi14"])
    assert bool(first["evaluated"]) is False
    assert len(db.list_signals(db_engine, symbol="MSFT")) == 1
    assert len(db.list_signals(db_engine, trend="down")) == 1
    assert len(db.list_signals(db_engine, since="2024-03-04 15:00", until="2024-03-04 16:00")) == 3
    assert len(db.list_signals(db_engine, run_id="bt-1")) == 1
    assert len(db.list_signals(db_engine, run_id=None)) == 7
    assert len(db.list_signals(db_engine, limit=2)) == 2
    assert len(db.list_signals(db_engine, evaluated=True)) == 0


def test_record_signals_requires_symbol_and_asof(db_engine: sa.Engine) -> None:
    with pytest.raises(ValueError, match="asof"):
        db.record_signals(db_engine, [{"symbol": "AAPL"}])
    assert db.record_signals(db_engine, []) == []


def test_signal_with_vector_links_it_in_one_transaction(db_engine: sa.Engine) -> None:
    vec = np.ones(16, np.float32) / 4.0
    (sid,) = db.record_signals(db_engine, [_signal(0, vector=vec, vol_regime="H")])
    signal = db.list_signals(db_engine).iloc[0]
    rows = db.load_vector_matrix(db_engine, known_only=False)
    assert len(rows) == 1 and int(signal["vector_id"]) == int(rows.meta["id"].iloc[0])
    assert rows.meta["trend"].iloc[0] == "up" and rows.meta["vol_regime"].iloc[0] == "H"
    outcome = pd.DataFrame({"id": [sid], "exit_reason": ["TARGET"], "exit_price": [105.0],
                            "exit_ts": [pd.Timestamp("2024-03-05 15:00", tz="UTC")],
                            "realized_r": [2.0], "hold_bars": [7]})
    assert db.set_signal_outcomes(db_engine, outcome) == 1
    stored = db.list_signals(db_engine, evaluated=True).iloc[0]
    assert stored["exit_reason"] == "TARGET" and stored["realized_r"] == 2.0
    assert stored["exit_ts"] == pd.Timestamp("2024-03-05 15:00", tz="UTC")
    known = db.load_vector_matrix(db_engine)
    assert known.meta["realized_r"].tolist() == [2.0]
    assert known.meta["exit_ts"].iloc[0] == pd.Timestamp("2024-03-05 15:00", tz="UTC")


def test_outcome_reaches_an_unlinked_vector_by_key(db_engine: sa.Engine) -> None:
    frame, _ = _vector_frame(1, start="2024-03-04 14:30", outcome=False)
    db.upsert_vectors(db_engine, frame)
    (sid,) = db.record_signals(db_engine, [_signal(0)])
    db.set_signal_outcomes(db_engine, pd.DataFrame({
        "id": [sid], "exit_reason": ["STOP"], "exit_price": [99.0],
        "exit_ts": [pd.Timestamp("2024-03-04 17:00", tz="UTC")], "realized_r": [-1.0],
        "hold_bars": [4]}))
    assert db.load_vector_matrix(db_engine).meta["exit_reason"].tolist() == ["STOP"]


def test_failed_batch_leaves_no_partial_rows(db_engine: sa.Engine) -> None:
    vec = np.ones(16, np.float32) / 4.0
    batch = [_signal(i, vector=vec) for i in range(3000)]
    batch[2500] = _signal(2500, vector_id=999_999)  # no such vector: FK violation at row 2500
    with pytest.raises(DatabaseError):
        db.record_signals(db_engine, batch)
    assert len(db.list_signals(db_engine, run_id=None, limit=None)) == 0
    assert len(db.load_vector_matrix(db_engine, known_only=False)) == 0


def test_timestamps_in_other_zones_are_stored_as_utc(db_engine: sa.Engine) -> None:
    asof = pd.Timestamp("2024-03-04 09:30", tz="America/New_York")
    db.record_signals(db_engine, [_signal(0, asof=asof)])
    got = db.list_signals(db_engine)["asof"].iloc[0]
    assert got == asof and str(got.tz) == "UTC"


# --------------------------------------------------------------------------- backtests


def _trades(n: int) -> pd.DataFrame:
    ts = pd.date_range("2024-01-02 15:00", periods=n, freq="1D", tz="UTC")
    return pd.DataFrame({
        "symbol": "AAPL", "setup": "momentum", "side": "long", "signal_ts": ts,
        "entry_ts": ts, "entry_price": 100.0, "stop": 98.0, "target": 104.0,
        "exit_ts": ts + pd.Timedelta(hours=3), "exit_price": 104.0, "exit_reason": "TARGET",
        "realized_r": 2.0, "hold_bars": np.arange(n), "qty": 10.0, "pnl": 40.0, "fees": 2.0,
        "both_touched": [False] * n, "unknown_column": "ignored",
    })


def test_backtest_run_save_load_replace(db_engine: sa.Engine) -> None:
    run = {"run_hash": "abc123", "name": "test", "symbols": ["AAPL", "MSFT"], "interval": "30m",
           "start": pd.Timestamp("2024-01-01", tz="UTC"), "params": {"knn_k": 60},
           "metrics": {"Win Rate [%]": 55.0}, "engine_version": "0.1.0"}
    run_id = db.save_backtest_run(db_engine, run, _trades(3))
    stored = db.load_backtest_run(db_engine, "abc123")
    assert stored is not None and stored.run["id"] == run_id
    assert stored.run["symbols"] == ["AAPL", "MSFT"]
    assert stored.run["params"] == {"knn_k": 60}
    assert stored.run["metrics"]["Win Rate [%]"] == 55.0
    assert stored.run["start"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert len(stored.trades) == 3 and stored.trades["entry_ts"].is_monotonic_increasing
    assert str(stored.trades["exit_ts"].dt.tz) == "UTC"
    assert stored.trades["hold_bars"].tolist() == [0, 1, 2]
    # the same inputs again: replaced in place, same id, no duplicate trades
    assert db.save_backtest_run(db_engine, {**run, "name": "again"}, _trades(2)) == run_id
    again = db.load_backtest_run(db_engine, "abc123")
    assert again.run["name"] == "again" and len(again.trades) == 2
    db.save_backtest_run(db_engine, {"run_hash": "def456"}, pd.DataFrame())
    runs = db.list_backtest_runs(db_engine)
    assert set(runs["run_hash"]) == {"abc123", "def456"}
    assert dict(zip(runs["run_hash"], runs["n_trade_rows"], strict=True)) == {"abc123": 2,
                                                                          "def456": 0}
    assert db.load_backtest_run(db_engine, "missing") is None
    with pytest.raises(ValueError, match="run_hash"):
        db.save_backtest_run(db_engine, {"name": "x"}, pd.DataFrame())


# --------------------------------------------------------------------------- concurrency

_WRITER = """
import sys, time
import pandas as pd
from swing_core import db
url, tag, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
engine = db.get_engine(url)
db.init_db(engine)
asof = pd.Timestamp("2024-03-04 14:30", tz="UTC")
while time.time() < start:
    time.sleep(0.001)
for i in range(40):
    batch = [{"symbol": tag, "asof": asof + pd.Timedelta(minutes=i), "note": f"{tag}-{i}-{j}"}
             for j in range(25)]
    # not the journal (run "live" keeps one row per bar): every row here must be stored
    db.record_signals(engine, batch, run_id="writers")   # a batch of 25 in one transaction
    db.record_signals(engine, [{"symbol": tag, "asof": asof, "note": f"{tag}-{i}-single"}],
                      run_id="writers")
    db.upsert_bars(engine, tag, "30m", pd.DataFrame(
        {"open": [1.0], "high": [2.0], "low": [0.5], "close": [1.5], "volume": [10.0]},
        index=pd.DatetimeIndex([asof + pd.Timedelta(minutes=30 * i)], name="ts")), source="demo")
print("ok")
"""


def test_two_processes_write_the_same_sqlite_file(sqlite_engine: sa.Engine) -> None:
    """Real processes writing at once: no 'database is locked', no lost row."""
    import os
    import subprocess
    import sys
    import time
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    url = str(sqlite_engine.url)
    start = time.time() + 2.0
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, url, tag, str(start)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("P1", "P2")]
    results = [p.communicate(timeout=120) for p in procs]
    for proc, (out, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0 and out.strip() == "ok", err
    signals = db.list_signals(sqlite_engine, run_id="writers", limit=None)
    assert len(signals) == 2 * 40 * 26
    assert signals["note"].nunique() == 2 * 40 * 26
    summary = db.bar_cache_summary(sqlite_engine)
    assert summary["bars"].tolist() == [40, 40]
