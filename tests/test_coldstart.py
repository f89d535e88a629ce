"""Cold start and repeated reads (issue 17): the schema head known without Alembic, the "auto"
pattern backend without FAISS for small libraries, heavy modules kept out of ``analyze --file``,
parsed files kept per content, and a scan reading each benchmark once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from swing_core import db, market
from swing_core.agent import analyze, scan
from swing_core.db.schema_version import SCHEMA_HEAD, at_schema_head
from swing_core.errors import DatabaseError, MarketDataError
from swing_core.market import files
from swing_core.market.demo import demo_bars
from swing_core.patterns.factory import AutoVectorIndex, make_vector_index

ROOT = Path(__file__).resolve().parent.parent

#: Modules that ``analyze --file`` must not import: each is heavy and used only by other work.
HEAVY = ("openai", "sklearn", "faiss", "optuna", "dask", "distributed", "plotly", "streamlit",
         "alembic")


# --------------------------------------------------------------------------- schema head


def test_schema_head_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert SCHEMA_HEAD == head, ("a new migration: set SCHEMA_HEAD in "
                                 "swing_core/db/schema_version.py to its revision")


def test_schema_head_check_reads_the_version_table(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    assert not at_schema_head(engine)  # no version table yet: Alembic's path upgrades it
    assert db.init_db(engine) == SCHEMA_HEAD and at_schema_head(engine)
    with engine.begin() as conn:  # a database that says it is behind
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0005'"))
    assert not at_schema_head(engine)
    with pytest.raises(DatabaseError, match=r"revision 0005, this version needs " + SCHEMA_HEAD):
        db.init_db(engine, upgrade=False)
    engine.dispose()


# --------------------------------------------------------------------------- "auto" backend


def _unit_rows(n: int, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_auto_backend_is_the_kernel_until_the_library_is_large() -> None:
    pytest.importorskip("faiss")
    auto = AutoVectorIndex(faiss_min_rows=500)
    rows, queries = _unit_rows(900), _unit_rows(5, seed=1)
    auto.build(rows[:400])
    assert auto.name == "numpy" and len(auto) == 400
    kernel = make_vector_index("numpy")
    kernel.build(rows[:400])
    np.testing.assert_array_equal(auto.search(queries, 20)[1], kernel.search(queries, 20)[1])
    auto.add(rows[400:])  # grows past the threshold: FAISS' exact flat index from here
    kernel.add(rows[400:])
    assert auto.name == "faiss-flat" and len(auto) == 900
    np.testing.assert_array_equal(auto.matrix, rows)
    limits = np.array([900, 450, 700, 900, 30])
    for got, want in zip(auto.search(queries, 20, limits=limits),
                         kernel.search(queries, 20, limits=limits), strict=True):
        np.testing.assert_allclose(got, want)
    fresh = AutoVectorIndex(faiss_min_rows=500)
    fresh.build(rows)  # built big at once
    assert fresh.name == "faiss-flat"


def test_auto_backend_without_faiss_stays_on_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss -> ImportError
    auto = AutoVectorIndex(faiss_min_rows=10)
    auto.build(_unit_rows(20))
    auto.add(_unit_rows(5, seed=2))
    assert auto.name == "numpy" and len(auto) == 25


# --------------------------------------------------------------------------- CLI cold start


def _cli_modules(tmp_path: Path, csv: Path) -> dict[str, object]:
    """Run ``python -m swing_core analyze`` in a fresh process and report what it imported."""
    code = (
        "import contextlib, io, json, sys\n"
        "from swing_core.cli import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        f"    rc = main(['analyze', 'AAPL', '--interval', '1d', '--file', {str(csv)!r}])\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print(json.dumps({'rc': rc, 'heavy': heavy, 'signal': json.loads(out.getvalue())}))\n")
    env = {**os.environ, "SWING_DATA_DIR": str(tmp_path / "data"), "SWING_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("SWING_PATTERN_BACKEND", None)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_analyze_file_imports_no_heavy_module(tmp_path: Path) -> None:
    csv = tmp_path / "AAPL.csv"
    demo_bars("AAPL", "1d", 1500).to_csv(csv)
    first = _cli_modules(tmp_path, csv)  # a new database: migrated, with Alembic
    assert first["rc"] == 0 and "alembic" in first["heavy"]
    again = _cli_modules(tmp_path, csv)  # at the head: nothing heavy at all
    assert again["rc"] == 0 and again["heavy"] == []
    assert again["signal"]["symbol"] == "AAPL" and again["signal"]["data_source"] == "file"
    assert again["signal"] == first["signal"]


# --------------------------------------------------------------------------- parsed files


def _count_parses(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    parsed: list[str | None] = []
    real = files.read_nonempty

    def counting(data: bytes, filename: str | None, max_rows: int) -> pd.DataFrame:
        parsed.append(filename)
        return real(data, filename, max_rows)

    monkeypatch.setattr(files, "read_nonempty", counting)
    files.clear_parsed_cache()
    return parsed


def test_a_file_is_parsed_once_per_content(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = _count_parses(monkeypatch)
    path = tmp_path / "AAPL.csv"
    demo_bars("AAPL", "1d", 300).to_csv(path, float_format="%.4f")
    first = files.read_bars_file(path, symbol="AAPL")
    first.loc[first.index[-1], "close"] = -1.0  # a caller's change never reaches the cache
    first.attrs["notes"].append("changed by the caller")
    again = files.FileProvider(path).fetch("AAPL", None)
    assert parsed == ["AAPL.csv"]
    fresh = files.read_bars_file(path.read_bytes(), filename="AAPL.csv", symbol="AAPL")
    assert parsed == ["AAPL.csv"]  # the same bytes from memory: still the kept parse
    pd.testing.assert_frame_equal(again, fresh)
    assert again["close"].iloc[-1] > 0 and "changed by the caller" not in again.attrs["notes"]
    assert again.attrs == fresh.attrs and again.attrs["source"] == "file"
    # changed in place: same size, same modification time, other prices -> parsed again
    stat = path.stat()
    text = path.read_text()
    head, last = text.rstrip("\n").rsplit("\n", 1)
    *fields, volume = last.split(",")  # the last bar's volume: another number, same length
    volume = ("2" if volume[0] == "1" else "1") + volume[1:]
    changed = head + "\n" + ",".join([*fields, volume]) + "\n"
    assert len(changed) == len(text) and changed != text
    path.write_text(changed)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    after = files.read_bars_file(path, symbol="AAPL")
    assert parsed == ["AAPL.csv", "AAPL.csv"]
    assert not after.equals(fresh)
    files.read_bars_file(path, symbol="AAPL", interval="1d")  # other arguments: another parse
    assert len(parsed) == 3


def test_parsed_files_kept_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = _count_parses(monkeypatch)
    paths = []
    for i in range(files.PARSED_CACHE_ENTRIES + 1):
        paths.append(tmp_path / f"S{i}.csv")
        demo_bars(f"S{i}", "1d", 100).to_csv(paths[-1])
        files.read_bars_file(paths[-1])
    files.read_bars_file(paths[-1])
    assert len(parsed) == len(paths)  # the newest is kept
    files.read_bars_file(paths[0])
    assert len(parsed) == len(paths) + 1  # the oldest was let go
    monkeypatch.setattr(files, "PARSED_CACHE_BYTES", 1000)  # too big to keep: parsed each time
    files.clear_parsed_cache()
    files.read_bars_file(paths[1])
    files.read_bars_file(paths[1])
    assert len(parsed) == len(paths) + 3


def test_a_kept_parse_says_whether_the_last_bar_is_complete_now(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _count_parses(monkeypatch)
    path = tmp_path / "AAPL.csv"
    demo_bars("AAPL", "1d", 100).to_csv(path)
    assert files.read_bars_file(path).attrs["last_bar_complete"] is True
    monkeypatch.setattr(files, "last_bar_complete", lambda index, interval: False)
    assert files.read_bars_file(path).attrs["last_bar_complete"] is False


# --------------------------------------------------------------------------- scan context


def _counting_fetch(monkeypatch: pytest.MonkeyPatch, *, failing: str | None = None
                    ) -> list[tuple[str, str]]:
    calls: list[tuple[str, str]] = []
    real = market.fetch_bars

    def fetch_bars(symbol: str, interval: str, **kwargs: object) -> pd.DataFrame:
        calls.append((symbol, interval))
        if symbol == failing:
            raise MarketDataError(f"no {symbol} today")
        return real(symbol, interval, **kwargs)

    monkeypatch.setattr(market, "fetch_bars", fetch_bars)
    return calls


@pytest.mark.parametrize("interval", ["1d", "30m"])
def test_scan_reads_each_benchmark_once_with_the_signals_of_single_analyses(
        monkeypatch: pytest.MonkeyPatch, sqlite_engine: sa.Engine, interval: str) -> None:
    calls = _counting_fetch(monkeypatch)
    names = ["AAA", "BBB", "CCC", "DDD"]
    single = [analyze(n, interval, engine=sqlite_engine, source="demo") for n in names]
    assert calls.count(("SPY", interval)) == len(names)  # each analysis reads its own context
    calls.clear()
    results = scan(names, interval, engine=sqlite_engine, source="demo")
    assert calls.count(("SPY", interval)) == 1 and calls.count(("XLK", interval)) == 1
    assert all(r.ok for r in results)
    for result, alone in zip(results, single, strict=True):
        assert result.signal.model_dump_json() == alone.model_dump_json()


def test_scan_remembers_a_missing_benchmark_once(monkeypatch: pytest.MonkeyPatch,
                                                 sqlite_engine: sa.Engine) -> None:
    calls = _counting_fetch(monkeypatch, failing="SPY")
    names = ["AAA", "BBB", "CCC"]
    single = [analyze(n, "1d", engine=sqlite_engine, source="demo") for n in names]
    calls.clear()
    results = scan(names, "1d", engine=sqlite_engine, source="demo")
    assert calls.count(("SPY", "1d")) == 1
    for result, alone in zip(results, single, strict=True):
        assert any("SPY 1d unavailable (no SPY today)" in n for n in result.signal.notes)
        assert result.signal.notes == alone.notes
