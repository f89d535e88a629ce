"""Recording one signal in the journal, alone and after its analysis: prints ONE JSON document.

Offline (``SWING_OFFLINE=1``: deterministic demo bars) in a temporary ``SWING_DATA_DIR``, on a
fresh SQLite file and, when ``SWING_TEST_DATABASE_URL`` is set, in a fresh PostgreSQL schema
(dropped afterwards). The signal is a real one: ``analyze()`` of the first symbol whose last
bar has a trade plan (30m bars; the bar cache warmed by one analysis first). Measured in one
process, the variants interleaved (A, B, C, A, B, C, …), each write into an empty store (the
signal and vector tables are emptied, untimed, before every timed write):

- ``record_one``: ``journal.record_signal(engine, signal)``: the one-signal path (row built
  without a frame, statements compiled once, one transaction), with the setup vector stored
  and linked;
- ``batch_path_record_one``: ``journal.record_signals(engine, [signal])``: the same signal
  through the batch path (what ``record_signal`` did before: a one-row frame, per-column
  conversion, INSERT compiled per call);
- ``original_style_record_one``: SwingAgent v1.6.1's way: a one-row pandas DataFrame,
  per-column conversion, then an ORM session add and commit (the storage benchmark's
  one-commit-per-signal baseline, imported), on SwingDesk's engine (WAL, synchronous=NORMAL:
  faster than the original's own configuration). It stores no setup vector, so it does less
  work than ``record_one``: the ratios are conservative;
- ``original_config_record_one`` (SQLite only): the same, on the original's SQLite
  configuration (a plain engine: rollback journal, synchronous=FULL; the storage benchmark's
  ``_original_engine``), in its own file: what the original really pays per signal (reported);
- ``commit_floor``: one transaction inserting one integer into a scratch table: what any
  durable write costs on this database (on PostgreSQL mostly the WAL flush of the commit);
- ``analyze_plus_record`` vs ``analyze_plus_original_style_record``: ``analyze()`` (warm bar
  cache) followed by each write; ``analyze`` alone is reported too, and the bound it sets on
  the ratio (analyze + original-style write over analyze with a free write).

Targets (issue 17): record one signal <= 1 ms (SQLite; on PostgreSQL the time above the
commit floor, the raw figure beside it); analyze + record >= 3x analyze + original-style
record. Run: ``python benchmarks/bench_journal.py [--repeats 41]``.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ["SWING_OFFLINE"] = "1"
os.environ["SWING_DATA_DIR"] = tempfile.mkdtemp(prefix="bench_journal_")
atexit.register(shutil.rmtree, os.environ["SWING_DATA_DIR"], ignore_errors=True)
for _name in ("SWING_DATABASE_URL", "OPENAI_API_KEY"):
    os.environ.pop(_name, None)

import pandas as pd  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from _storage_extra import _one_commit_per_signal, _original_engine  # noqa: E402
from _util import emit, in_postgres_schema, target  # noqa: E402

from swing_core import db, journal, models  # noqa: E402
from swing_core.agent import Signal, analyze  # noqa: E402
from swing_core.db._convert import _records  # noqa: E402

SYMBOLS = ("AAPL", "MSFT", "NVDA", "AMZN", "META", "GOOGL", "TSLA", "AMD")
INTERVAL = "30m"


def original_style_record(engine: sa.Engine, signal: Signal) -> None:
    """SwingAgent v1.6.1's way of recording a signal: a one-row DataFrame, per-column
    conversion, one ORM session add and commit (no setup vector)."""
    frame = pd.DataFrame([signal.to_record()])
    _one_commit_per_signal(engine, _records(frame, models.SignalRecord))


def _empty(*engines: sa.Engine) -> None:
    for engine in engines:
        with engine.begin() as conn:
            conn.execute(sa.delete(models.SignalRecord.__table__))
            if sa.inspect(conn).has_table(models.SetupVector.__tablename__):
                conn.execute(sa.delete(models.SetupVector.__table__))


def _commit_floor(engine: sa.Engine) -> None:
    with db.write_transaction(engine) as conn:
        conn.exec_driver_sql("INSERT INTO bench_commit_floor (n) VALUES (1)")


def _signal_with_plan(engine: sa.Engine) -> tuple[str, Signal]:
    for symbol in SYMBOLS:
        signal = analyze(symbol, INTERVAL, engine=engine)
        if journal.has_trade_plan(signal):
            return symbol, signal
    raise SystemExit(f"none of {SYMBOLS} has a trade plan on its last {INTERVAL} bar")


def _interleaved(engines: list[sa.Engine], variants: dict[str, Callable[[], Any]],
                 repeats: int) -> dict[str, list[float]]:
    """Each variant ``repeats`` times, in turn, each into empty stores (emptied untimed)."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            _empty(*engines)
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    _empty(*engines)
    return samples


def _ms(samples: list[float]) -> dict[str, float]:
    return {"median_ms": round(statistics.median(samples) * 1e3, 3),
            "min_ms": round(min(samples) * 1e3, 3), "max_ms": round(max(samples) * 1e3, 3),
            "repeats": len(samples)}


def bench_engine(engine: sa.Engine, repeats: int,
                 original: sa.Engine | None = None) -> dict[str, Any]:
    """All variants on ``engine``; ``original``: the original's SQLite configuration."""
    db.init_db(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_commit_floor (n INTEGER)")
    symbol, signal = _signal_with_plan(engine)
    assert signal.vector, "the signal carries its setup vector"
    written = journal.record_signal(engine, signal)  # warm: statements compiled
    assert written.added == 1, written.message
    stored = db.list_signals(engine)
    assert stored["vector_id"].notna().all()
    _empty(engine)
    original_style_record(engine, signal)
    engines = [engine] if original is None else [engine, original]
    variants = {
        "record_one": lambda: journal.record_signal(engine, signal),
        "original_style_record_one": lambda: original_style_record(engine, signal),
        "batch_path_record_one": lambda: journal.record_signals(engine, [signal]),
        "commit_floor": lambda: _commit_floor(engine),
    }
    if original is not None:
        variants["original_config_record_one"] = lambda: original_style_record(original, signal)
    records = _interleaved(engines, variants, repeats)
    analyses = _interleaved(engines, {
        "analyze_plus_record": lambda: journal.record_signal(
            engine, analyze(symbol, INTERVAL, engine=engine)),
        "analyze_plus_original_style_record": lambda: original_style_record(
            engine, analyze(symbol, INTERVAL, engine=engine)),
        "analyze": lambda: analyze(symbol, INTERVAL, engine=engine),
    }, max(5, repeats // 2))
    median = {name: statistics.median(values)
              for name, values in {**records, **analyses}.items()}
    extra = {} if original is None else {
        "original_config_record_one_ms": round(median["original_config_record_one"] * 1e3, 3),
        "record_speedup_vs_original_config": round(
            median["original_config_record_one"] / median["record_one"], 2)}
    return {
        "symbol": symbol, "interval": INTERVAL, "asof": signal.asof.isoformat(),
        "record_one_ms": round(median["record_one"] * 1e3, 3),
        "original_style_record_one_ms": round(median["original_style_record_one"] * 1e3, 3),
        **extra,
        "batch_path_record_one_ms": round(median["batch_path_record_one"] * 1e3, 3),
        "commit_floor_ms": round(median["commit_floor"] * 1e3, 3),
        "record_one_above_commit_floor_ms": round(
            (median["record_one"] - median["commit_floor"]) * 1e3, 3),
        "record_speedup_vs_original_style": round(
            median["original_style_record_one"] / median["record_one"], 2),
        "record_speedup_vs_batch_path": round(
            median["batch_path_record_one"] / median["record_one"], 2),
        "analyze_ms": round(median["analyze"] * 1e3, 3),
        "analyze_plus_record_ms": round(median["analyze_plus_record"] * 1e3, 3),
        "analyze_plus_original_style_record_ms": round(
            median["analyze_plus_original_style_record"] * 1e3, 3),
        "analyze_plus_record_speedup_vs_original_style": round(
            median["analyze_plus_original_style_record"] / median["analyze_plus_record"], 3),
        # the best any recording could do: analyze + a write that costs nothing
        "analyze_plus_record_speedup_bound": round(
            median["analyze_plus_original_style_record"] / median["analyze"], 3),
        "runs": {name: _ms(values) for name, values in {**records, **analyses}.items()},
    }


def _postgres(url: str, repeats: int) -> dict[str, Any]:
    return in_postgres_schema(url, lambda engine, _schema: bench_engine(engine, repeats))



def _targets(label: str, result: dict[str, Any]) -> dict[str, Any]:
    record = ("record_one_ms" if label == "sqlite" else "record_one_above_commit_floor_ms")
    return {
        f"{label}_{record}": target(result[record], 1.0),
        f"{label}_analyze_plus_record_vs_original_style": target(
            result["analyze_plus_record_speedup_vs_original_style"], 3.0, at_least=True),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=41)
    args = parser.parse_args()
    report: dict[str, Any] = {"benchmark": "journal",
                              "load_avg_1m_at_start": round(os.getloadavg()[0], 2)}
    folder = Path(os.environ["SWING_DATA_DIR"])
    engine = db.make_engine(f"sqlite:///{folder / 'bench.sqlite'}")
    original = _original_engine(folder / "original.sqlite")
    try:
        report["sqlite"] = bench_engine(engine, args.repeats, original)
    finally:
        engine.dispose()
        original.dispose()
    targets = _targets("sqlite", report["sqlite"])
    url = os.environ.get("SWING_TEST_DATABASE_URL", "").strip()
    if url:
        report["postgresql"] = _postgres(url, args.repeats)
        if "skipped" not in report["postgresql"]:
            targets.update(_targets("postgresql", report["postgresql"]))
    else:
        report["postgresql"] = {"skipped": "SWING_TEST_DATABASE_URL is not set"}
    report["targets"] = targets
    report["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    emit(report)


if __name__ == "__main__":
    main()
