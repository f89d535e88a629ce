"""Parts of ``bench_storage.py``: ``PatternIndex.from_db`` at 100,000 vectors, and the batch vs
one-commit-per-signal comparison measured the honest way (the original's SQLite configuration).

Both interleave their variants (A, B, C, A, B, C, …) so that a burst of load from other
processes hits them alike, and report medians with the range over the rounds.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sqlmodel import Session  # noqa: E402

from swing_core import db, models  # noqa: E402
from swing_core.patterns import PatternIndex  # noqa: E402

N_LIBRARY = 100_000
_NAMES = ["id", "symbol", "interval", "ts", "setup", "side", "vol_regime", "realized_r",
          "exit_reason", "exit_ts", "hold_bars", "vector"]


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 4), "min": round(min(values), 4),
            "max": round(max(values), 4)}


def _interleaved(variants: dict[str, Callable[[], Any]], rounds: int
                 ) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall and process-CPU seconds of each variant per round, the variants taking turns."""
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - t)
            cpu[name].append(time.process_time() - c)
    return wall, cpu


# --------------------------------------------------------------------------- from_db


def _naive_from_db(engine: sa.Engine, interval: str) -> PatternIndex:
    """The original style: every row fetched as an SQLAlchemy row (times parsed per value),
    each vector decoded on its own, the frame built from one dict per row; the refresh marks
    from the same rows."""
    t = models.SetupVector.__table__
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*[t.c[c] for c in _NAMES])
                            .where(t.c.version == "v1", t.c.interval == interval)).all()
    known = [r for r in rows if r.realized_r is not None]
    index = PatternIndex(interval=interval)
    meta = pd.DataFrame([{c: getattr(r, c) for c in _NAMES[:-1]} for r in known])
    matrix = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in known])
    index.add(meta, matrix)
    index._db_max_id = max((r.id for r in rows), default=0)
    index._db_pending = {r.id for r in rows if r.realized_r is None}
    return index


def _previous_from_db(engine: sa.Engine, interval: str) -> PatternIndex:
    """The previous from_db flow (on today's matrix load): the refresh marks in two more
    queries, then ``load_vector_matrix`` with one string per row and label, handed to ``add``
    as object columns. (The previous matrix load itself packed all labels of a row into one
    JSON value: with this library's ~50,000 distinct combinations it took ~1.4 s more.)"""
    t = models.SetupVector.__table__
    where = (t.c.version == "v1", t.c.interval == interval)
    with engine.connect() as conn:
        top = conn.execute(sa.select(sa.func.max(t.c.id)).where(*where)).scalar()
        waiting = conn.execute(sa.select(t.c.id).where(*where, t.c.realized_r.is_(None))).all()
    loaded = db.load_vector_matrix(engine, interval=interval, known_only=True)
    index = PatternIndex(interval=interval)
    index.add(loaded.meta.drop(columns=["version", "trend"]), loaded.matrix)
    index._db_max_id, index._db_pending = int(top or 0), {int(r[0]) for r in waiting}
    return index


def bench_from_db(engine: sa.Engine, *, rounds: int) -> dict[str, Any]:
    """``PatternIndex.from_db(engine, interval="30m")`` over 100,000 stored vectors with
    outcomes (bench_patterns.library, 50 symbols; 1 % left without an outcome), against the
    naive row-by-row load and the previous version, interleaved; results checked identical."""
    from bench_patterns import library

    frame = library(N_LIBRARY + 2_000, 11).drop_duplicates(["symbol", "ts"])  # unique keys
    frame = frame.iloc[:N_LIBRARY].assign(version="v1", trend="up")
    frame.loc[frame.index[::100], ["realized_r", "exit_ts", "hold_bars", "exit_reason"]] = None
    db.upsert_vectors(engine, frame)
    variants = {
        "from_db": lambda: PatternIndex.from_db(engine, interval="30m"),
        "naive_row_by_row": lambda: _naive_from_db(engine, "30m"),
        "previous_flow": lambda: _previous_from_db(engine, "30m"),
    }
    first = {name: fn() for name, fn in variants.items()}  # warm-up and the identity check
    marks = {(i._db_max_id, frozenset(i._db_pending)) for i in first.values()}
    prints = {i.fingerprint() for i in first.values()}
    assert len(first["from_db"]) == N_LIBRARY - N_LIBRARY // 100
    assert len(marks) == 1 and len(prints) == 1, "from_db differs from the row-by-row load"
    wall, cpu = _interleaved(variants, rounds)
    med = {name: statistics.median(v) for name, v in wall.items()}
    return {
        "n_vectors": N_LIBRARY, "n_searchable": len(first["from_db"]), "rounds": rounds,
        "identical_to_row_by_row": True,
        "from_db_s": _stats(wall["from_db"]),
        "from_db_cpu_s": _stats(cpu["from_db"]),
        "baseline_naive_row_by_row_s": _stats(wall["naive_row_by_row"]),
        "previous_flow_s": _stats(wall["previous_flow"]),
        "previous_flow_cpu_s": _stats(cpu["previous_flow"]),
        "speedup_vs_naive": round(med["naive_row_by_row"] / med["from_db"], 1),
        "speedup_vs_previous": round(med["previous_flow"] / med["from_db"], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


# --------------------------------------------------------------------------- commits


def _one_commit_per_signal(engine: sa.Engine, rows: list[dict[str, Any]]) -> None:
    """The original's way: a session, an add and a commit for every signal."""
    for row in rows:
        with Session(engine) as session:
            session.add(models.SignalRecord(**row))
            session.commit()


def _original_engine(path: Path) -> sa.Engine:
    """SQLite as SwingAgent v1.6.1 opened it: a plain engine, SQLite's defaults (rollback
    journal, synchronous=FULL: every commit waits for the disk)."""
    engine = sa.create_engine(f"sqlite:///{path}")
    models.SQLModel.metadata.create_all(engine, tables=[models.SignalRecord.__table__])
    with engine.connect() as conn:
        mode = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
        sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
    assert (mode, sync) == ("delete", 2), (mode, sync)
    return engine


def bench_commits(engine: sa.Engine, signals: list[dict[str, Any]], folder: Path, *,
                  rounds: int, baseline_n: int, original_n: int) -> dict[str, Any]:
    """Per round: the 10,000 signals in one ``record_signals`` batch (SwingDesk's engine: WAL,
    synchronous=NORMAL), then one commit per signal on the original's configuration
    (``original_n`` signals, scaled to 10,000) and, for the record, on SwingDesk's engine
    (``baseline_n`` signals: WAL + NORMAL does not wait for the disk at commit, so that
    baseline is fast and moves with the load). Ratio per round; median and range reported."""
    table = models.SignalRecord.__table__
    sqlite = engine.dialect.name == "sqlite"
    # PostgreSQL's default (synchronous_commit=on) already waits for the WAL flush per commit
    original = _original_engine(folder / "original.sqlite") if sqlite else engine

    def clear(target: sa.Engine) -> None:
        with target.begin() as conn:
            conn.execute(sa.delete(table))

    batch, per_original, per_wal = [], [], []
    try:
        for _ in range(rounds):
            clear(engine)
            t = time.perf_counter()
            db.record_signals(engine, signals)
            batch.append(time.perf_counter() - t)
            clear(original)
            t = time.perf_counter()
            _one_commit_per_signal(original, signals[:original_n])
            per_original.append((time.perf_counter() - t) / original_n)
            clear(engine)
            t = time.perf_counter()
            _one_commit_per_signal(engine, signals[:baseline_n])
            per_wal.append((time.perf_counter() - t) / baseline_n)
        clear(engine)
    finally:
        if sqlite:
            original.dispose()
    n = len(signals)
    vs_original = [p * n / b for p, b in zip(per_original, batch, strict=True)]
    vs_wal = [p * n / b for p, b in zip(per_wal, batch, strict=True)]
    return {
        "rounds": rounds, "n_signals": n,
        "batch_s": _stats(batch),
        "one_commit_original_config": {
            "what": ("SQLModel session + commit per signal, plain engine: journal_mode=DELETE, "
                     "synchronous=FULL (SwingAgent v1.6.1's SQLite defaults)" if sqlite else
                     "SQLModel session + commit per signal, server defaults "
                     "(synchronous_commit=on: a WAL flush per commit)"),
            "n_signals_per_round": original_n,
            "ms_per_signal": _stats([p * 1e3 for p in per_original]),
            "scaled_to_10k_s": round(statistics.median(per_original) * n, 2)},
        "one_commit_swingdesk_engine": {
            "what": ("the same loop on SwingDesk's engine: WAL, synchronous=NORMAL (no fsync "
                     "per commit)" if sqlite else "the same loop on SwingDesk's engine"),
            "n_signals_per_round": baseline_n,
            "ms_per_signal": _stats([p * 1e3 for p in per_wal]),
            "scaled_to_10k_s": round(statistics.median(per_wal) * n, 2)},
        "speedup_vs_original_config": {**_stats(vs_original),
                                       "per_round": [round(v, 1) for v in vs_original]},
        "speedup_vs_one_commit_same_engine": {**_stats(vs_wal),
                                              "per_round": [round(v, 1) for v in vs_wal]},
    }
