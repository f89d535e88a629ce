"""Chunked universe backtests: same result as run_backtest, cancel, resume, bad symbols."""

from __future__ import annotations

import threading
from functools import partial

import numpy as np
import pandas as pd
import pytest

from swing_core import db
from swing_core.backtest import BacktestConfig, load_run, run_backtest, run_universe
from swing_core.errors import MarketDataError
from swing_core.market import demo_bars

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF"]
_END = "2025-06-30"
_COMPARE = ["symbol", "setup", "side", "signal_ts", "entry_ts", "entry_price", "stop", "target",
            "exit_ts", "exit_price", "exit_reason", "realized_r", "hold_bars", "qty", "pnl",
            "fees", "predicted_winrate", "expected_r"]


def _bars(symbol: str, n_bars: int = 600) -> pd.DataFrame:
    """A picklable bar source: demo bars, and an unknown-symbol error for NOPE."""
    if symbol == "NOPE":
        raise MarketDataError("NOPE: unknown symbol; check the ticker.")
    return demo_bars(symbol, "1d", n_bars, end=_END)


LOADER = partial(_bars, n_bars=600)
#: The benchmarks the context reads (sector ETF, SPY): the universe run gets them from its
#: loader, a run_backtest of given bars from the same mapping.
BENCHMARKS = ["XLK", "SPY"]


def _config() -> BacktestConfig:
    return BacktestConfig(interval="1d", start=pd.Timestamp("2024-01-01"))


def _stored_trades(engine, digest: str) -> pd.DataFrame:
    stored = db.load_backtest_run(engine, digest)
    return stored.trades


def _same_trades(left: pd.DataFrame, right: pd.DataFrame) -> None:
    key = ["symbol", "signal_ts"]
    a = left[_COMPARE].sort_values(key).reset_index(drop=True)
    b = right[_COMPARE].sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b, check_dtype=False)


@pytest.fixture(scope="module")
def reference() -> tuple:
    bars = {s: _bars(s) for s in SYMBOLS + BENCHMARKS}
    return run_backtest(SYMBOLS, config=_config(), bars=bars, executor="inline", save=False)


def _stats_equal(a: pd.Series, b: pd.Series) -> None:
    for key in a.index:
        x, y = a[key], b.get(key)
        if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
            continue
        if isinstance(x, float | np.floating):
            assert y == pytest.approx(x, rel=1e-9, abs=1e-12), key
        else:
            assert x == y, key


def test_chunked_run_equals_run_backtest(reference, sqlite_engine, tmp_path) -> None:
    # prior_batch=50: the pattern engine prices the signals 50 at a time, same priors
    out = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                       executor="inline", bars_loader=LOADER, spill_dir=tmp_path / "spill",
                       prior_batch=50)
    assert out.status == "done" and out.chunks_done == out.chunks_total == 3
    summary = out.summary
    _stats_equal(reference.stats, summary.stats)
    pd.testing.assert_frame_equal(reference.equity, summary.equity)
    for by, table in reference.breakdowns.items():
        pd.testing.assert_frame_equal(table, summary.breakdowns[by])
    pd.testing.assert_frame_equal(reference.calibration, summary.calibration)
    # the trades are not kept in memory: the stored ones are the final trades, exactly
    assert summary.n_trades == reference.stats["# Trades"]  # closed trades, as everywhere
    stored = db.load_backtest_run(sqlite_engine, out.run_hash)
    assert stored.run["status"] == "done"
    assert len(stored.trades) == len(reference.trades)
    _same_trades(_stored_like(reference.trades), stored.trades)
    loaded = out.load(sqlite_engine)
    assert loaded is not None and loaded.run_id == out.run_id
    _same_trades(_stored_like(reference.trades), _stored_like(loaded.trades))
    # served from storage on a second call
    again = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                         executor="inline", bars_loader=LOADER, spill_dir=tmp_path / "spill")
    assert again.summary.from_storage and again.run_id == out.run_id
    assert again.summary.n_trades == summary.n_trades
    _stats_equal(summary.stats, again.summary.stats)
    assert not (tmp_path / "spill").exists()  # spill files removed once done


def test_cancel_after_first_chunk_then_resume(reference, sqlite_engine, tmp_path) -> None:
    cancel = threading.Event()
    seen: list[int] = []

    def progress(done: int, total: int, message: str) -> None:
        seen.append(done)
        if done >= 2:  # the first chunk (2 symbols) finished: ask to stop
            cancel.set()

    spill = tmp_path / "spill"
    out = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                       executor="inline", bars_loader=LOADER, progress=progress,
                       cancel=cancel, spill_dir=spill)
    assert out.status == "cancelled" and out.summary is None
    assert out.load(sqlite_engine) is None
    assert out.chunks_done == 1 and out.chunks_total == 3
    stored = db.load_backtest_run(sqlite_engine, out.run_hash)
    assert stored.run["status"] == "cancelled"
    assert stored.run["metrics"]["universe"]["done"] == [0]
    trades = stored.trades
    # exactly the first chunk's stage-1 trades: its symbols, all of its taken signals
    assert set(trades["symbol"]) == {"AAA", "BBB"}
    expected = reference.trades[reference.trades["symbol"].isin(["AAA", "BBB"])]
    assert len(trades) == len(expected)
    assert trades["qty"].isna().all()  # not sized yet: the portfolio runs at the end
    assert sorted(p.name for p in spill.iterdir()) == ["chunk_00000.npz"]

    # resume: the finished chunk is not recomputed, the result equals an uninterrupted run
    calls: list[str] = []

    def counting(done: int, total: int, message: str) -> None:
        calls.append(message)

    resumed = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                           executor="inline", bars_loader=LOADER, progress=counting,
                           spill_dir=spill)
    assert resumed.status == "done" and resumed.resumed_chunks == 1
    assert resumed.run_id == out.run_id
    assert "AAA" not in calls and "BBB" not in calls and "CCC" in calls
    _stats_equal(reference.stats, resumed.summary.stats)
    loaded = load_run(sqlite_engine, out.run_hash)
    assert len(loaded.trades) == len(reference.trades)
    _same_trades(_stored_like(reference.trades), _stored_like(loaded.trades))


def _stored_like(trades: pd.DataFrame) -> pd.DataFrame:
    out = trades.rename(columns={"fill_ts": "entry_ts", "fill_price": "entry_price",
                                 "prior_win_rate": "predicted_winrate"}).copy()
    out["hold_bars"] = out["hold_bars"].where(out["hold_bars"] >= 0)
    out["qty"] = out["qty"].fillna(0.0)
    return out


def test_cancel_before_start_stores_nothing_but_the_run(sqlite_engine, tmp_path) -> None:
    out = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                       executor="inline", bars_loader=LOADER, cancel=lambda: True,
                       spill_dir=tmp_path / "spill")
    assert out.status == "cancelled" and out.chunks_done == 0
    stored = db.load_backtest_run(sqlite_engine, out.run_hash)
    assert stored.run["status"] == "cancelled" and stored.trades.empty


def test_unknown_symbol_is_reported_and_the_others_run(sqlite_engine, tmp_path) -> None:
    out = run_universe(["AAA", "NOPE", "BBB"], config=_config(), engine=sqlite_engine,
                       chunk_size=2, executor="inline", bars_loader=LOADER,
                       spill_dir=tmp_path / "spill")
    assert out.status == "done"
    assert set(out.errors) == {"NOPE"} and "unknown symbol" in out.errors["NOPE"]
    assert out.summary.symbols == ("AAA", "BBB")
    loaded = load_run(sqlite_engine, out.run_hash)
    assert "NOPE" in loaded.errors
    assert set(loaded.trades["symbol"]) <= {"AAA", "BBB"}
    assert len(loaded.closed_trades) == out.summary.n_trades


def test_process_pool_matches_inline(reference, sqlite_engine, tmp_path) -> None:
    out = run_universe(SYMBOLS[:4], config=_config(), engine=sqlite_engine, chunk_size=3,
                       max_workers=2, bars_loader=LOADER, spill_dir=tmp_path / "spill")
    ref = run_backtest(SYMBOLS[:4], config=_config(),
                       bars={s: _bars(s) for s in SYMBOLS[:4] + BENCHMARKS},
                       executor="inline", save=False)
    assert out.status == "done" and out.worker_peak_rss_mb > 0
    _stats_equal(ref.stats, out.summary.stats)


# --------------------------------------------------------------------------- issue 17: flat parent


def test_stored_trades_carry_every_prior_column(reference, sqlite_engine, tmp_path) -> None:
    # other chunk and prior batch sizes: the same trades, with prior_n and the raw win rate
    out = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=4,
                       executor="inline", bars_loader=LOADER, spill_dir=tmp_path / "spill",
                       prior_batch=7)
    _stats_equal(reference.stats, out.summary.stats)
    expected = _stored_like(reference.trades).rename(
        columns={"prior_win_rate_raw": "predicted_winrate_raw"})
    stored = _stored_trades(sqlite_engine, out.run_hash)
    columns = [*_COMPARE, "prior_n", "predicted_winrate_raw"]
    key = ["symbol", "signal_ts"]
    pd.testing.assert_frame_equal(
        expected[columns].sort_values(key).reset_index(drop=True),
        stored[columns].sort_values(key).reset_index(drop=True), check_dtype=False)
    assert (stored["prior_n"] > 0).any()
    assert not (tmp_path / "spill").exists()  # spill files and the stored priors removed


def test_chunk_file_of_another_layout_is_run_again(reference, sqlite_engine, tmp_path) -> None:
    spill = tmp_path / "spill"
    out = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                       executor="inline", bars_loader=LOADER, spill_dir=spill,
                       cancel=_after_chunks(1))
    assert out.status == "cancelled" and out.chunks_done == 1
    marker = db.load_backtest_run(sqlite_engine, out.run_hash, trades=False).run["metrics"]
    # per-symbol metadata stays in the spill files, not in the progress marker
    assert set(marker["universe"]) == {"chunk_size", "chunks_total", "done", "errors"}
    np.savez(spill / "chunk_00000.npz", **{"0/meta": np.array(["AAA"])})  # an older layout
    seen: list[str] = []
    resumed = run_universe(SYMBOLS, config=_config(), engine=sqlite_engine, chunk_size=2,
                           executor="inline", bars_loader=LOADER, spill_dir=spill,
                           progress=lambda done, total, label: seen.append(label))
    assert resumed.status == "done" and resumed.resumed_chunks == 0
    assert "AAA" in seen  # its chunk ran again
    _stats_equal(reference.stats, resumed.summary.stats)


def _after_chunks(n: int):
    calls = {"n": 0}

    def cancel() -> bool:  # checked before each chunk: True once n chunks are done
        calls["n"] += 1
        return calls["n"] > n

    return cancel


def test_slim_batch_prices_like_the_full_batch() -> None:
    from swing_core.backtest.final_stage import PRICED_FIELDS, slim_batch
    from swing_core.backtest.priors import priced_columns
    from swing_core.config import StrategyParams
    from swing_core.frame import VECTOR_COLUMNS
    from swing_core.patterns import PatternIndex

    rng = np.random.default_rng(17)
    n, m = 400, 150
    ts = pd.date_range("2023-01-02", periods=n, freq="D", tz="UTC")
    rows = pd.DataFrame({"symbol": rng.choice(["AAA", "BBB"], n), "interval": "1d", "ts": ts,
                         "exit_ts": ts + pd.Timedelta(days=3),
                         "realized_r": rng.normal(0.2, 1.2, n),
                         "hold_bars": rng.integers(1, 6, n),
                         "exit_reason": rng.choice(["STOP", "TARGET", "TIME"], n),
                         "setup": "golden_pocket", "side": "long",
                         "vol_regime": rng.choice(["L", "M", "H"], n)})
    rows[list(VECTOR_COLUMNS)] = rng.normal(size=(n, len(VECTOR_COLUMNS))).astype(np.float32)
    asof = ts[-m:] + pd.Timedelta(days=1)
    batch = PatternIndex(interval="1d", backend="numpy").query_many(
        rng.normal(size=(m, len(VECTOR_COLUMNS))).astype(np.float32), asof,
        rng.choice(["AAA", "BBB", "CCC"], m), rng.choice(["L", "M", "H"], m), extra=rows)
    fill = rng.uniform(90, 110, m)
    kwargs = dict(base_confidence=rng.uniform(0, 1, m), exited=rng.uniform(size=m) < 0.8,
                  realized_r=rng.normal(0.1, 1, m), fill_price=fill, stop=fill - 2,
                  exit_price=fill + rng.normal(0, 2, m),
                  exit_ts=pd.DatetimeIndex(asof + pd.Timedelta(days=2)), asof=asof,
                  params=StrategyParams())
    full = priced_columns(batch, **kwargs)
    slim = priced_columns(slim_batch({f: getattr(batch, f) for f in PRICED_FIELDS}), **kwargs)
    assert set(full) == set(slim)
    assert np.isfinite(full["confidence"]).all() and (batch.n > 0).any()
    for col in full:
        np.testing.assert_array_equal(full[col], slim[col], err_msg=col)


def test_trade_rows_round_trip_with_nulls(db_engine) -> None:
    # PostgreSQL writes them through COPY, SQLite through executemany: the same rows back
    times = pd.DatetimeIndex(["2024-01-02", "2024-01-03", "2024-01-04"], tz="UTC")
    trades = pd.DataFrame({
        "symbol": ["AAA", "BBB", "AAA"], "setup": ["golden_pocket", None, "momentum"],
        "side": ["long", "short", None], "trend": ["up", "down", "sideways"],
        "vol_regime": ["L", "M", "H"], "signal_ts": times,
        "entry_ts": pd.DatetimeIndex([times[0], pd.NaT, times[2]]),
        "entry_price": [100.5, np.nan, 99.25], "stop": [98.0, 101.0, 97.5],
        "target": [104.0, 95.0, np.nan],
        "exit_ts": pd.DatetimeIndex([times[1], pd.NaT, pd.NaT]),
        "exit_price": [103.75, np.nan, np.nan], "exit_reason": ["TARGET", "NOT_FILLED", None],
        "realized_r": [1.3, np.nan, np.nan], "hold_bars": [1.0, np.nan, 3.0],
        "qty": [12.0, 0.0, np.nan], "pnl": [38.9, np.nan, np.nan], "fees": [2.0, 0.0, 1.0],
        "predicted_winrate": [0.55, np.nan, 0.5], "predicted_winrate_raw": [0.6, np.nan, 0.4],
        "prior_n": [50, 0, 7], "expected_r": [0.3, np.nan, -0.1],
        "both_touched": [True, None, False]})
    run_id = db.save_backtest_run(db_engine, {"run_hash": "roundtrip", "status": "done"},
                                  [trades.iloc[:2], trades.iloc[2:]])
    stored = db.load_backtest_run(db_engine, "roundtrip").trades
    assert (stored["run_id"] == run_id).all()
    stored = stored.sort_values("id").reset_index(drop=True)
    for col in trades.columns:
        got, want = stored[col].tolist(), trades[col].tolist()
        for g, w in zip(got, want, strict=True):
            missing = w is None or (isinstance(w, float) and np.isnan(w)) or w is pd.NaT
            if missing:
                assert g is None or g is pd.NaT or (isinstance(g, float) and np.isnan(g)), col
            else:
                assert g == w, (col, g, w)
