"""The pattern library's load (``db.vector_load.load_vector_library``, ``PatternIndex.from_db``):
the same index as adding the rows one could read row by row, with the refresh marks from the
same read; labels with many combinations, NULLs and odd text stay exact (SQLite and PostgreSQL).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, models
from swing_core.db import vector_load
from swing_core.patterns import PatternIndex
from tests.test_db import packed_is_used

_NAMES = ["id", "symbol", "interval", "ts", "setup", "side", "vol_regime", "realized_r",
          "exit_reason", "exit_ts", "hold_bars", "vector"]


def _library(n: int, *, seed: int = 0, interval: str = "30m") -> pd.DataFrame:
    """Rows with many label combinations (every hold value, 40 symbols), some without outcome,
    NULL exit reasons and hold bars, and ties in ts across symbols."""
    rng = np.random.default_rng(seed)
    ts = pd.Timestamp("2024-01-02 14:30", tz="UTC") + pd.to_timedelta(
        np.sort(rng.integers(0, n // 3 + 1, n)) * 30, unit="min")
    vectors = rng.normal(size=(n, 16)).astype(np.float32)
    frame = pd.DataFrame({
        "symbol": [f"S{i:02d}" for i in rng.integers(0, 40, n)], "interval": interval,
        "ts": ts, "version": "v1", "setup": rng.choice(["gp_pullback", "momentum", "it's"], n),
        "side": rng.choice(["long", "short"], n), "trend": "up",
        "vol_regime": rng.choice(["L", "M", "H"], n), "vector": list(vectors),
        "realized_r": rng.normal(0.1, 1.2, n), "exit_reason": rng.choice(["STOP", "TIME"], n),
        "exit_ts": ts + pd.to_timedelta(rng.integers(1, 27, n) * 30, unit="min"),
        "hold_bars": pd.array(rng.integers(1, 27, n), dtype="Int64"),
    }).drop_duplicates(["symbol", "ts"], ignore_index=True)
    m = len(frame)
    frame.loc[rng.random(m) < 0.1, ["realized_r", "exit_ts", "hold_bars", "exit_reason"]] = None
    frame.loc[rng.random(m) < 0.05, "exit_reason"] = None
    frame.loc[rng.random(m) < 0.05, "hold_bars"] = pd.NA
    return frame


def _row_by_row_index(engine: sa.Engine, interval: str | None) -> tuple[PatternIndex, int,
                                                                       set[int]]:
    """The index, highest id and pending ids as plain SQLAlchemy rows give them."""
    t = models.SetupVector.__table__
    where = [t.c.version == "v1"] + ([] if interval is None else [t.c.interval == interval])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[t.c[c] for c in _NAMES]).where(*where)
                            .order_by(t.c.ts, t.c.id)).all()
    known = [r for r in rows if r.realized_r is not None]
    index = PatternIndex(interval=interval)
    if known:
        index.add(pd.DataFrame([{c: getattr(r, c) for c in _NAMES[:-1]} for r in known]),
                  np.stack([np.frombuffer(r.vector, dtype="<f4") for r in known]))
    return (index, max((r.id for r in rows), default=0),
            {r.id for r in rows if r.realized_r is None})


def _assert_same_index(got: PatternIndex, want: PatternIndex) -> None:
    assert len(got) == len(want)
    assert got.fingerprint() == want.fingerprint()
    np.testing.assert_array_equal(got._store.backend.matrix, want._store.backend.matrix)
    for name, values in want._store.table.cols.items():  # the vocabulary codes too
        np.testing.assert_array_equal(got._store.table.cols[name], values, err_msg=name)


@pytest.mark.parametrize("interval", ["30m", None])
def test_from_db_is_the_row_by_row_index(db_engine: sa.Engine, interval: str | None) -> None:
    db.upsert_vectors(db_engine, _library(3000, seed=1))
    db.upsert_vectors(db_engine, _library(400, seed=2, interval="1d"))
    index = PatternIndex.from_db(db_engine, interval=interval)
    want, max_id, pending = _row_by_row_index(db_engine, interval)
    _assert_same_index(index, want)
    assert (index._db_max_id, index._db_pending) == (max_id, pending) and pending
    query = vector_load._Query(db_engine.dialect.name, interval, "v1", False, None, None,
                               vector_load._LIBRARY_LABELS)
    assert packed_is_used(db_engine, query=query)  # many label combinations stay on the fast path


def test_library_rows_match_the_matrix_load(db_engine: sa.Engine) -> None:
    db.upsert_vectors(db_engine, _library(1500, seed=3))
    library = vector_load.load_vector_library(db_engine, interval="30m")
    matrix = db.load_vector_matrix(db_engine, interval="30m")
    meta = library.rows.meta
    assert isinstance(meta["symbol"].dtype, pd.CategoricalDtype)
    assert meta["exit_reason"].isna().any() and meta["hold_bars"].isna().any()
    plain = meta.astype({c: object for c in meta.columns
                         if isinstance(meta[c].dtype, pd.CategoricalDtype)})
    plain["exit_reason"] = plain["exit_reason"].where(plain["exit_reason"].notna(), None)
    pd.testing.assert_frame_equal(plain, matrix.meta.drop(columns=["version", "trend"]))
    np.testing.assert_array_equal(library.rows.matrix, matrix.matrix)
    everything = db.load_vector_matrix(db_engine, interval="30m", known_only=False)
    assert library.max_id == everything.meta["id"].max()
    np.testing.assert_array_equal(
        np.sort(library.pending), everything.meta.loc[everything.meta["realized_r"].isna(),
                                                       "id"].sort_values().to_numpy())


def test_labels_the_json_and_marker_encodings_cannot_mistake(db_engine: sa.Engine) -> None:
    """Quotes, backslashes, the JSON separator, non-ASCII text and control characters stay
    exact; a stored exit reason equal to the NULL marker is not read as NULL (the load falls
    back to the per-row read)."""
    frame = _library(60, seed=4)
    odd = ['a","b', "back\\slash", 'quo"te', "é ü", "tab\there", "\x1f", "\x1e"]
    frame["setup"] = [odd[i % len(odd)] for i in range(len(frame))]
    frame.loc[frame["realized_r"].notna(), "exit_reason"] = "\x1f"
    db.upsert_vectors(db_engine, frame)
    index = PatternIndex.from_db(db_engine, interval="30m")
    want, max_id, pending = _row_by_row_index(db_engine, "30m")
    _assert_same_index(index, want)
    assert (index._db_max_id, index._db_pending) == (max_id, pending)
    rows = vector_load.load_vector_library(db_engine, interval="30m").rows.meta
    assert set(rows["exit_reason"].dropna()) == {"\x1f"}
    assert set(rows["setup"]) <= set(odd)


def test_empty_and_refresh_after_a_full_load(db_engine: sa.Engine) -> None:
    index = PatternIndex.from_db(db_engine, interval="30m")
    assert len(index) == 0 and index._db_max_id == 0 and index._db_pending == set()
    frame = _library(500, seed=5)
    db.upsert_vectors(db_engine, frame)
    index = PatternIndex.from_db(db_engine, interval="30m")
    waiting = frame.loc[frame["realized_r"].isna()].head(3)
    db.set_vector_outcomes(db_engine, waiting.assign(
        realized_r=1.0, exit_reason="TARGET", hold_bars=4,
        exit_ts=waiting["ts"] + pd.Timedelta(hours=2))[
        ["symbol", "interval", "ts", "realized_r", "exit_reason", "exit_ts", "hold_bars"]])
    assert index.refresh(db_engine) == 3  # the remembered pending ids were re-read
    want, _, pending = _row_by_row_index(db_engine, "30m")
    assert len(index) == len(want) and index._db_pending == pending
    # the same rows (an incremental insert may order ties in exit time differently)
    assert sorted(map(bytes, index._store.backend.matrix)) == sorted(
        map(bytes, want._store.backend.matrix))


def test_a_large_postgres_upsert_refreshes_planner_statistics(db_engine: sa.Engine) -> None:
    if db_engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL planner statistics")
    frame = _library(16_000, seed=6)
    assert len(frame) >= 10_000
    db.upsert_vectors(db_engine, frame)
    with db_engine.connect() as conn:
        tuples = conn.exec_driver_sql(
            "SELECT reltuples FROM pg_class WHERE oid = 'setup_vectors'::regclass").scalar()
    assert tuples == pytest.approx(len(frame), rel=0.2)  # not the empty table's -1 / 0
