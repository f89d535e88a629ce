"""Where bars come from (issue 13): one ``source`` ("auto", "yahoo", "local", "demo") chosen once
and respected by fetches, the signal's context, analysis, backtests and the CLI.

The local library here holds real-shaped daily bars of years ago (tests/real_bars.py), stored
the way an imported file is (``source="file"``); Yahoo is replaced at the yfinance boundary."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from real_bars import daily_bars, write_daily_csv

from swing_core import agent, db, market
from swing_core.backtest import BacktestConfig, run_backtest
from swing_core.errors import MarketDataError
from swing_core.market import yahoo as yahoo_module

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def library(sqlite_engine):
    """GOOGX daily bars 2009–2012 stored as an imported file."""
    db.upsert_bars(sqlite_engine, "GOOGX", "1d", daily_bars("GOOGX"), source="file")
    market.clear_cache_state()
    return sqlite_engine


def _unreachable(**kwargs):
    raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")


def _unknown(**kwargs):
    yahoo_module.logging.getLogger("yfinance").error(
        "1 Failed download:\n['%s']: YFTzMissingError('possibly delisted; no timezone found')",
        kwargs.get("tickers"))
    return pd.DataFrame()


# --------------------------------------------------------------------------- the choice


@pytest.mark.parametrize("text, expected", [
    (None, "auto"), ("auto", "auto"), ("Yahoo", "yahoo"), ("local", "local"), ("demo", "demo"),
    ("cache", "local"), ("file", "local"),  # older bookmarks: ?source=cache
])
def test_check_source_accepts_the_choices_and_old_spellings(text, expected):
    assert market.check_source(text) == expected


def test_an_unknown_source_names_the_choices():
    with pytest.raises(MarketDataError, match="auto, yahoo, local, demo"):
        market.check_source("bloomberg")


# --------------------------------------------------------------------------- fetch_bars


def test_local_serves_the_whole_old_file_counting_back_from_its_last_bar(library):
    bars = market.fetch_bars("GOOGX", "1d", source="local", engine=library,
                             lookback_days=365 * 10)
    stored = daily_bars("GOOGX")
    assert bars.attrs["source"] == "local" and len(bars) == len(stored)
    assert bars.index[0] == stored.index[0] and bars.index[-1] == stored.index[-1]
    assert any("years old" in n and "file" in n for n in bars.attrs["notes"])
    recent = market.fetch_bars("GOOGX", "1d", source="local", engine=library, lookback_days=90)
    assert recent.index[-1] == stored.index[-1] and len(recent) < 70  # 90 days before its end


def test_local_without_bars_says_how_to_get_them(sqlite_engine):
    with pytest.raises(MarketDataError, match="No local 1d bars for ZZZ.*data import"):
        market.fetch_bars("ZZZ", "1d", source="local", engine=sqlite_engine)


def test_auto_offline_prefers_real_local_bars_then_labelled_demo(library):
    real = market.fetch_bars("GOOGX", "1d", engine=library, offline=True)
    assert real.attrs["source"] == "local"
    assert any("offline mode" in n for n in real.attrs["notes"])
    other = market.fetch_bars("MSFT", "1d", engine=library, offline=True)
    assert other.attrs["source"] == "demo" and "DEMO DATA" in other.attrs["notes"][0]
    assert "no local 1d bars of MSFT" in other.attrs["notes"][0]


def test_auto_online_with_yahoo_unreachable_uses_local_bars_and_the_badge_knows(
        library, monkeypatch):
    monkeypatch.setattr(yahoo_module, "_yf_download", _unreachable)
    bars = market.fetch_bars("GOOGX", "1d", engine=library, offline=False)
    assert bars.attrs["source"] == "local"
    assert any("Yahoo Finance is unreachable" in n for n in bars.attrs["notes"])
    status = market.yahoo_status()
    assert status.state == "unreachable" and "resolve host" in status.detail


def test_auto_online_for_a_symbol_yahoo_does_not_know_uses_local_bars(library, monkeypatch):
    monkeypatch.setattr(yahoo_module, "_yf_download", _unknown)
    bars = market.fetch_bars("GOOGX", "1d", engine=library, offline=False)
    assert bars.attrs["source"] == "local"
    assert market.yahoo_status().state == "reachable"  # Yahoo answered: it just has no bars
    with pytest.raises(market.UnknownSymbolError, match="local library has no 1d bars of NOPE"):
        market.fetch_bars("NOPE", "1d", engine=library, offline=False)


def test_yahoo_chosen_while_offline_is_refused_plainly(library):
    with pytest.raises(market.YahooUnreachableError, match="switched off.*SWING_OFFLINE"):
        market.fetch_bars("GOOGX", "1d", source="yahoo", engine=library, offline=True)


def test_demo_chosen_is_demo_even_with_local_bars(library):
    bars = market.fetch_bars("GOOGX", "1d", source="demo", engine=library)
    assert bars.attrs["source"] == "demo"


def test_fetch_many_passes_the_source_to_every_symbol(library):
    got = market.fetch_many(["GOOGX", "MSFT"], "1d", engine=library, source="local")
    assert got["GOOGX"].attrs["source"] == "local"
    assert isinstance(got["MSFT"], MarketDataError)


# --------------------------------------------------------------------------- analysis


def test_analysis_on_local_bars_takes_context_from_the_same_source(library):
    first = agent.analysis("GOOGX", "1d", engine=library, source="local")
    assert first.source == "local" and first.signal.data_source == "local"
    assert first.frame.index[-1] == daily_bars("GOOGX").index[-1]
    assert np.isnan(first.frame["rs_spy"].iloc[-1])  # no SPY bars of its own source: left out
    assert any("SPY 1d unavailable" in n for n in first.notes)
    assert not any("DEMO" in n for n in first.notes)

    for bench in ("SPY", "XLK"):
        db.upsert_bars(library, bench, "1d", daily_bars(bench, seed=3), source="file")
    second = agent.analysis("GOOGX", "1d", engine=library, source="local")
    closes = daily_bars("GOOGX")["close"]
    spy = daily_bars("SPY", seed=3)["close"]
    expected = (closes.iloc[-1] / closes.iloc[-21]) / (spy.iloc[-1] / spy.iloc[-21])
    assert second.frame["rs_spy"].iloc[-1] == pytest.approx(expected, rel=1e-9)
    assert second.signal == agent.analyze("GOOGX", "1d", engine=library, source="local")


def test_demo_context_never_reaches_a_signal_on_real_bars(library):
    result = agent.analysis("GOOGX", "1d", engine=library, offline=True)  # auto, offline
    assert result.source == "local"
    assert np.isnan(result.frame["rs_spy"].iloc[-1])
    assert any("only demo bars available" in n or "unavailable" in n for n in result.notes)


# --------------------------------------------------------------------------- backtests


def test_backtest_on_local_bars_covers_the_files_range(library):
    stored = daily_bars("GOOGX")
    config = BacktestConfig(interval="1d", start=stored.index[0], end=stored.index[-1])
    result = run_backtest(["GOOGX"], config=config, engine=library, source="local",
                          executor="inline", save=False)
    assert result.data_sources == {"GOOGX": "local"}
    assert result.stats["Start"] == stored.index[0] and result.stats["End"] == stored.index[-1]
    demo = run_backtest(["GOOGX"], config=config, engine=library, source="demo",
                        executor="inline", save=False)
    assert demo.data_sources == {"GOOGX": "demo"}


# --------------------------------------------------------------------------- the CLI


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "swing_core", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_cli_import_list_then_backtest_the_file_with_source_local(tmp_path):
    bars = write_daily_csv(tmp_path / "GOOGX.csv", "GOOGX")
    imported = _cli("data", "import", str(tmp_path / "GOOGX.csv"))
    assert imported.returncode == 0, imported.stderr
    listed = _cli("data", "list")
    assert listed.returncode == 0 and "GOOGX" in listed.stdout and "1d" in listed.stdout
    first, last = bars.index[0], bars.index[-1]
    run = _cli("backtest", "GOOGX", "--interval", "1d", "--source", "local", "--json",
               "--start", f"{first:%Y-%m-%d}", "--end", f"{last:%Y-%m-%d}", "--workers", "1")
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)["stats"]
    assert pd.Timestamp(stats["Start"]) == first and pd.Timestamp(stats["End"]) == last
    assert "DEMO" not in run.stdout + run.stderr


def test_cli_start_outside_the_data_is_a_clear_error(tmp_path):
    write_daily_csv(tmp_path / "GOOGX.csv", "GOOGX")
    assert _cli("data", "import", str(tmp_path / "GOOGX.csv")).returncode == 0
    run = _cli("backtest", "GOOGX", "--interval", "1d", "--source", "local",
               "--start", "2020-01-01", "--workers", "1")
    assert run.returncode == 2
    assert "the data covers 2009-01-02 – 2012-12-31" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_universe_run_over_an_imported_folder_uses_only_local_bars(sqlite_engine, tmp_path):
    from swing_core.backtest import run_universe

    folder = tmp_path / "csv"
    folder.mkdir()
    names = [f"U{i:02d}" for i in range(6)]
    for i, name in enumerate(names):
        write_daily_csv(folder / f"{name}.csv", name, seed=i, start="2010-01-04")
    report = market.import_bars([folder], engine=sqlite_engine)
    assert sorted(i.symbol for i in report.imported) == names and not report.failed
    config = BacktestConfig(interval="1d", start=pd.Timestamp("2010-06-01", tz="UTC"))
    result = run_universe(names, config=config, engine=sqlite_engine, chunk_size=4,
                          executor="inline", source="local", spill_dir=tmp_path / "spill")
    assert result.status == "done" and not result.errors
    assert set(result.summary.data_sources.values()) == {"local"}
