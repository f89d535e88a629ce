"""Storage benchmark: batch writes vs one commit per row, vector upserts and matrix loads.

Run: ``python benchmarks/bench_storage.py [--quick]``. Prints one JSON document.

On SQLite (a fresh temporary file) and on PostgreSQL when reachable (``SWING_TEST_DATABASE_URL``
or postgresql+psycopg://postgres@127.0.0.1:5432/test, in a fresh schema dropped afterwards):

- 10,000 signals with ``db.record_signals`` (one transaction, SwingDesk's engine: WAL,
  synchronous=NORMAL) vs the original's way, one ORM session and commit per signal, in
  ``--repeats`` interleaved rounds (``_storage_extra.bench_commits``). The baseline the target
  refers to runs on SQLite as SwingAgent v1.6.1 opened it (a plain engine: rollback journal,
  synchronous=FULL, so each commit waits for the disk; ``--original-n`` signals per round, on
  the machine's disk). For the record, the same loop on SwingDesk's own engine too (WAL +
  NORMAL: no disk wait per commit, so it is ~5x faster and moves with the CPU load;
  ``--baseline-n`` signals). Per-round ratios, their median and range. On PostgreSQL both
  loops use the server's defaults (a WAL flush per commit);
- 100,000 setup vectors upserted (into an empty table, then again over existing keys: the same
  rows, and, measured after the loads, rows with new vectors, which PostgreSQL must really
  rewrite); on PostgreSQL also once through the plain executemany upsert (what the binary COPY
  path replaced; measured last, into the emptied but not vacuumed table);
- 100,000 vectors of one interval loaded into a float32 matrix with all their metadata
  (``db.load_vector_matrix(engine, interval="30m")``, as the backtest's pattern library loads
  them), against the original's way: vectors as JSON text, decoded row by row; and against the
  plain per-row read of the same rows (the packed read's fallback, like the previous version);
- ``PatternIndex.from_db(engine, interval="30m")`` over 100,000 stored vectors (the library of
  ``bench_patterns.py``: 50 symbols, 1 % without an outcome), interleaved over
  ``--from-db-rounds`` rounds with the naive row-by-row load (SQLAlchemy rows, one vector decoded
  at a time, one dict per row) and the previous version (two queries for the refresh marks, the
  matrix load with one string per row and label); all three checked identical first (index
  fingerprint, highest id, pending ids). Wall and process-CPU seconds (on PostgreSQL the
  server's work is not in the process CPU).

Medians of 3 repeats (1 for the executemany baseline). Targets (SQLite and PostgreSQL alike):
10,000 signals ≤ 1 s and, median over the rounds, ≥ 20× the original's one commit per signal;
100,000 vectors upserted ≤ 3 s (each of the three cases); loaded ≤ 0.3 s; ``from_db`` at
100,000 vectors ≤ 0.2 s (median).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _storage_extra import bench_commits, bench_from_db  # noqa: E402
from _util import in_postgres_schema  # noqa: E402

from swing_core import db, models  # noqa: E402
from swing_core.db import vector_load, vectors  # noqa: E402

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
N_SIGNALS = 10_000
N_VECTORS = 100_000


def _timed(func: Callable[[], Any]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 4)


def _signals(n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    asof = pd.date_range("2024-01-02 14:30", periods=n, freq="30min", tz="UTC")
    symbols = np.array(["AAPL", "MSFT", "NVDA", "AMZN", "META"])[rng.integers(0, 5, n)]
    close = 100 + rng.normal(size=n).cumsum()
    return [
        {"symbol": str(symbols[i]), "interval": "30m", "asof": asof[i].to_pydatetime(),
         "data_source": "demo", "trend_label": "up", "ema_slope": 0.012, "rsi14": 61.0,
         "price": float(close[i]), "setup": "momentum", "side": "long",
         "entry": float(close[i]) + 0.2, "stop": float(close[i]) - 2.0,
         "target": float(close[i]) + 4.0, "r_multiple": 1.9, "golden_pocket_low": 97.0,
         "golden_pocket_high": 97.6, "fib_json": '{"golden_pocket_low": 97.0}',
         "confidence": 0.61, "expected_r": 0.3, "expected_winrate": 0.52, "prior_n": 60,
         "mtf_15m": "up", "mtf_1h": "sideways", "mtf_alignment": 1, "rs_sector": 1.02,
         "rs_spy": 1.01, "time_bucket": "mid", "atr_pct": 0.011, "vol_regime": "M"}
        for i in range(n)
    ]


def _vectors(n: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(n, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ts = pd.date_range("2015-01-02 14:30", periods=n, freq="30min", tz="UTC")
    frame = pd.DataFrame({
        "symbol": np.array(["AAPL", "MSFT", "NVDA", "AMZN", "META"])[np.arange(n) % 5],
        "interval": "30m", "ts": ts, "version": "v1", "setup": "momentum", "side": "long",
        "trend": "up", "vol_regime": np.array(["L", "M", "H"])[np.arange(n) % 3],
        "vector": list(matrix), "realized_r": rng.normal(0.1, 1.2, n), "exit_reason": "TIME",
        "exit_ts": ts + pd.Timedelta(hours=26), "hold_bars": 26,
    })
    return frame, matrix


def _clear(engine: sa.Engine, *tables: sa.Table) -> None:
    with db.write_transaction(engine) as conn:
        for table in tables:
            conn.execute(sa.delete(table))


def _json_vector_baseline(engine: sa.Engine, matrix: np.ndarray) -> float:
    """The original's way of keeping vectors: JSON text, decoded row by row on load."""
    table = sa.Table(f"bench_json_vectors_{uuid.uuid4().hex[:6]}", sa.MetaData(),
                     sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("vec_json", sa.Text))
    table.create(engine)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(table), [{"vec_json": json.dumps(v.tolist())}
                                            for v in matrix])

        def load() -> np.ndarray:
            with engine.connect() as conn:
                rows = conn.execute(sa.select(table.c.vec_json).order_by(table.c.id)).all()
            return np.array([json.loads(r[0]) for r in rows], dtype=np.float32)

        seconds = _timed(load)
        assert load().shape == matrix.shape
        return seconds
    finally:
        table.drop(engine)


def _plain_rows_load(engine: sa.Engine) -> db.VectorRows:
    """The same load through the plain per-row read (driver tuples, one object per value)."""
    query = vector_load._Query(engine.dialect.name, "30m", "v1", True, None, None)
    with engine.connect() as conn:
        return vector_load._vector_rows(vector_load._read_rows(conn, query), query)


def _executemany_upsert(engine: sa.Engine, frame: pd.DataFrame) -> None:
    """The plain executemany upsert (still used for SQLite and for small signal batches)."""
    columns = vectors._vector_columns(frame, engine.dialect.name)
    with db.write_transaction(engine) as conn:
        vectors._upsert_vector_columns(conn, columns, set(frame.columns))


def bench_engine(engine: sa.Engine, folder: Path, *, baseline_n: int, original_n: int,
                 repeats: int, from_db_rounds: int) -> dict[str, Any]:
    db.init_db(engine)
    signals = _signals(N_SIGNALS)
    t_signals = models.SignalRecord.__table__
    t_vectors = models.SetupVector.__table__

    commits = bench_commits(engine, signals, folder, rounds=repeats, baseline_n=baseline_n,
                            original_n=original_n)

    frame, matrix = _vectors(N_VECTORS)
    inserted, updated, changed, loads, plain_loads = [], [], [], [], []
    for _ in range(repeats):
        _clear(engine, t_signals, t_vectors)
        inserted.append(_timed(lambda: db.upsert_vectors(engine, frame)))
    for _ in range(repeats):
        updated.append(_timed(lambda: db.upsert_vectors(engine, frame)))
    for _ in range(repeats):  # per interval, as the pattern library loads it
        loads.append(_timed(lambda: db.load_vector_matrix(engine, interval="30m")))
        plain_loads.append(_timed(lambda: _plain_rows_load(engine)))
    loaded = db.load_vector_matrix(engine, interval="30m")
    assert loaded.matrix.shape == (N_VECTORS, 16) and loaded.matrix.dtype == np.float32
    assert np.array_equal(loaded.matrix, matrix)
    pd.testing.assert_frame_equal(loaded.meta, _plain_rows_load(engine).meta)
    assert np.array_equal(loaded.meta["realized_r"].to_numpy(), frame["realized_r"].to_numpy())
    json_load_s = _json_vector_baseline(engine, matrix)
    # After the loads, so that these read the table that the inserts and updates above leave,
    # as in the earlier versions of this benchmark; then the load again, on the churned table
    # (reported, no target: autovacuum has had no time to run).
    shifted = frame.assign(vector=list(np.roll(matrix, 1, axis=0)))  # same keys, new vectors
    for i in range(repeats):  # alternate, so that every run rewrites all vectors
        changed.append(_timed(lambda i=i: db.upsert_vectors(engine, (shifted, frame)[i % 2])))
    churned_loads = [_timed(lambda: db.load_vector_matrix(engine, interval="30m"))
                     for _ in range(repeats)]
    executemany_s = None
    if engine.dialect.name == "postgresql":  # the previous way, once (it is slow)
        _clear(engine, t_vectors)
        executemany_s = _timed(lambda: _executemany_upsert(engine, frame))
    _clear(engine, t_vectors)
    from_db = bench_from_db(engine, rounds=from_db_rounds)
    _clear(engine, t_vectors)

    return {
        "signals_batch_10k_s": commits["batch_s"]["median"],
        "batch_speedup_vs_original_commits": commits["speedup_vs_original_config"]["median"],
        "commits": commits,
        "vectors_upsert_100k_insert_s": _median(inserted),
        "vectors_upsert_100k_update_s": _median(updated),
        "vectors_upsert_100k_changed_s": _median(changed),
        "vectors_upsert_runs_s": {"insert": [round(v, 4) for v in inserted],
                                  "update": [round(v, 4) for v in updated],
                                  "changed": [round(v, 4) for v in changed]},
        "baseline_executemany_upsert_100k_insert_s": (None if executemany_s is None
                                                      else round(executemany_s, 4)),
        "vectors_load_100k_s": _median(loads),
        "vectors_load_runs_s": [round(v, 4) for v in loads],
        "vectors_load_100k_after_rewrites_s": _median(churned_loads),
        "baseline_json_vectors_load_100k_s": round(json_load_s, 4),
        "load_speedup_vs_json": round(json_load_s / statistics.median(loads), 1),
        "baseline_plain_rows_load_100k_s": _median(plain_loads),
        "load_speedup_vs_plain_rows": round(statistics.median(plain_loads)
                                            / statistics.median(loads), 1),
        "pattern_index_from_db": from_db,
    }


def _targets(label: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    checks = [
        ("signals_batch_10k_s", result["signals_batch_10k_s"], "<=", 1.0),
        ("batch_speedup_vs_original_commits (median of rounds)",
         result["batch_speedup_vs_original_commits"], ">=", 20.0),
        ("vectors_upsert_100k_insert_s", result["vectors_upsert_100k_insert_s"], "<=", 3.0),
        ("vectors_upsert_100k_update_s", result["vectors_upsert_100k_update_s"], "<=", 3.0),
        ("vectors_upsert_100k_changed_s", result["vectors_upsert_100k_changed_s"], "<=", 3.0),
        ("vectors_load_100k_s", result["vectors_load_100k_s"], "<=", 0.3),
        ("pattern_index_from_db_100k_s (median)",
         result["pattern_index_from_db"]["from_db_s"]["median"], "<=", 0.2),
    ]
    return [{"database": label, "metric": name, "value": value, "target": f"{op} {limit}",
             "pass": bool(value <= limit if op == "<=" else value >= limit)}
            for name, value, op, limit in checks]


def _postgres(url: str, folder: Path, **options: Any) -> dict[str, Any]:
    return in_postgres_schema(url, lambda engine, schema: {
        "schema": schema, **bench_engine(engine, folder, **options)})



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-n", type=int, default=2000,
                        help="signals committed one by one for the baseline")
    parser.add_argument("--original-n", type=int, default=300,
                        help="signals committed one by one on the original's configuration "
                             "(each commit waits for the disk)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--from-db-rounds", type=int, default=7)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()

    report: dict[str, Any] = {
        "benchmark": "storage",
        "python": platform.python_version(), "sqlalchemy": sa.__version__,
        "cpus": os.cpu_count(), "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "repeats": args.repeats,
    }
    options = {"baseline_n": args.baseline_n, "original_n": args.original_n,
               "repeats": args.repeats, "from_db_rounds": args.from_db_rounds}
    # On the machine's disk (not a RAM disk): the original configuration's commits wait for it
    with tempfile.TemporaryDirectory(dir=Path(__file__).resolve().parent) as tmp:
        engine = db.make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite'}")
        try:
            report["sqlite"] = bench_engine(engine, Path(tmp), **options)
        finally:
            engine.dispose()
        targets = _targets("sqlite", report["sqlite"])
        if args.no_postgres:
            report["postgresql"] = {"skipped": "--no-postgres"}
        else:
            url = os.environ.get("SWING_TEST_DATABASE_URL", "").strip() or DEFAULT_PG_URL
            report["postgresql"] = _postgres(url, Path(tmp), **options)
            if "skipped" not in report["postgresql"]:
                targets += _targets("postgresql", report["postgresql"])
    report["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    report["targets"] = targets
    report["all_sqlite_targets_pass"] = all(t["pass"] for t in targets
                                            if t["database"] == "sqlite")
    report["all_targets_pass"] = all(t["pass"] for t in targets)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
