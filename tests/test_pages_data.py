"""Data page (uploads into the bar cache, cache summary, clearing) and views.py helpers."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from apptest_support import demo_app
from streamlit.testing.v1 import AppTest

from swing_core import db, views
from swing_core.errors import MarketDataError
from swing_core.market import demo_bars


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    at.run()
    at.switch_page("pages/data.py").run()
    assert not at.exception
    return at


def _csv(symbol: str = "ZZUP", n: int = 400) -> bytes:
    bars = demo_bars(symbol, "30m", n)
    local = bars.tz_convert("America/New_York").tz_localize(None).reset_index()
    return local.rename(columns={"ts": "Datetime", "open": "Open", "high": "High", "low": "Low",
                                 "close": "Close", "volume": "Volume"}).to_csv(index=False).encode()


def test_upload_store_then_explore_from_the_cache(app: AppTest) -> None:
    assert any("cache is empty" in i.value for i in app.info)
    app.file_uploader(key="upload_file").set_value(("ZZUP_30m.csv", _csv(), "text/csv")).run()
    assert not app.exception and not app.error
    assert any("400 30m bars of ZZUP" in s.value for s in app.success)
    assert app.get("plotly_chart"), "the upload is previewed"
    app.button(key="store_upload").click().run()
    assert any("Stored 400 bars" in s.value for s in app.success)
    summary = next(f.value for f in app.dataframe if "bars" in f.value.columns)
    assert summary.loc[0, "symbol"] == "ZZUP" and summary.loc[0, "source"] == "file"
    assert summary.loc[0, "bars"] == 400
    app.session_state["symbol"] = "ZZUP"
    app.switch_page("pages/explorer.py").run()
    app.selectbox(key="source").set_value("cache").run()
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Showing cached bars" in i.value for i in app.info)
    assert app.title[0].value == "Signal Explorer · ZZUP 30m"


def test_bad_upload_is_an_error_with_what_to_fix(app: AppTest) -> None:
    app.file_uploader(key="upload_file").set_value(
        ("prices.csv", b"when,price\nyesterday,1\n", "text/csv")).run()
    assert not app.exception
    message = " ".join(e.value for e in app.error)
    assert "lacks column" in message and "upload it again" in message
    assert not any("Stored" in s.value for s in app.success)


def test_clearing_the_cache_needs_confirmation(app: AppTest) -> None:
    engine = db.get_engine()
    db.upsert_bars(engine, "ZZUP", "1d", demo_bars("ZZUP", "1d", 50), source="file")
    app.run()
    assert app.button(key="cache_clear").disabled
    assert app.button(key="cache_refresh").disabled, "offline: nothing to refresh from"
    app.checkbox(key="cache_confirm").check().run()
    app.button(key="cache_clear").click().run()
    assert not app.exception
    assert db.bar_cache_summary(engine).empty
    assert any("cache is empty" in i.value for i in app.info)


# --------------------------------------------------------------------------- views.py


def test_parse_symbols_validates_dedupes_and_limits() -> None:
    symbols, errors = views.parse_symbols("aapl, msft\nbrk-b AAPL ^gspc <x>", limit=3)
    assert symbols == ["AAPL", "MSFT", "BRK-B"]
    assert any("not a valid ticker" in e for e in errors)
    assert any("first 3" in e for e in errors)


def test_watchlist_round_trip_and_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path))
    assert views.load_watchlist() == list(views.DEFAULT_WATCHLIST)
    assert views.save_watchlist(["spy", "qqq", "spy"]) == ["SPY", "QQQ"]
    assert views.load_watchlist() == ["SPY", "QQQ"]
    (tmp_path / "watchlist.json").write_text("{not json")
    assert views.load_watchlist() == list(views.DEFAULT_WATCHLIST)
    with pytest.raises(MarketDataError):
        views.save_watchlist(["!!!"])


def test_filter_table_is_literal_and_ignores_empty_filters() -> None:
    table = pd.DataFrame({"symbol": ["AAPL", "A.B", "MSFT"], "side": ["long", "short", "none"],
                          "confidence": [0.7, np.nan, 0.2]})
    assert len(views.filter_table(table, equals={"side": []})) == 3
    assert list(views.filter_table(table, text={"symbol": "."})["symbol"]) == ["A.B"]
    assert list(views.filter_table(table, minimum={"confidence": 0.5})["symbol"]) == ["AAPL"]
    assert list(views.filter_table(table, equals={"side": ["long", "none"]})["symbol"]) == \
        ["AAPL", "MSFT"]


def test_csv_export_neutralizes_spreadsheet_formulas() -> None:
    table = pd.DataFrame({"note": ["=HYPERLINK(\"x\")", "+1", "plain", None], "r": [-1.0, 2, 3, 4]})
    text = views.to_csv_bytes(table).decode()
    back = pd.read_csv(io.StringIO(text))
    assert back["note"].tolist()[:3] == ["'=HYPERLINK(\"x\")", "'+1", "plain"]
    assert back["r"].tolist() == [-1.0, 2.0, 3.0, 4.0]


def test_project_2d_places_extra_rows_on_the_same_axes() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(200, 16)).astype(np.float32)
    xy, extra = views.project_2d(matrix, extra=matrix[:3])
    assert xy.shape == (200, 2) and extra is not None
    np.testing.assert_allclose(extra, xy[:3], atol=1e-6)
    assert views.project_2d(np.zeros((0, 16)))[0].shape == (0, 2)


def test_library_rows_keep_only_exited_plans_with_their_outcome() -> None:
    base = {f"vec_{i:02d}": 0.25 for i in range(16)}
    ts = pd.Timestamp("2026-01-05 15:00", tz="UTC")
    trades = pd.DataFrame([
        {**base, "symbol": "AAPL", "signal_ts": ts, "setup": "momentum", "side": "long",
         "trend": "up", "vol_regime": "M", "realized_r": 1.5, "exit_reason": "TARGET",
         "exit_ts": ts + pd.Timedelta(hours=2), "hold_bars": 3, "fill_price": 10.0, "stop": 9.0},
        {**base, "symbol": "AAPL", "signal_ts": ts + pd.Timedelta(hours=1), "setup": "momentum",
         "side": "long", "trend": "up", "vol_regime": "M", "realized_r": np.nan,
         "exit_reason": "NOT_FILLED", "exit_ts": pd.NaT, "hold_bars": 0, "fill_price": np.nan,
         "stop": 9.0},
    ])
    rows = views.library_rows(trades, interval="30m")
    assert len(rows) == 1
    row = rows.iloc[0]
    assert (row["ts"], row["exit_reason"], row["realized_r"], row["entry"]) == \
        (ts, "TARGET", 1.5, 10.0)
    assert rows["vec_00"].dtype == np.float32


def test_journal_summary_counts_and_rates() -> None:
    table = pd.DataFrame({"evaluated": [True, True, True, False],
                          "realized_r": [1.0, -1.0, np.nan, np.nan]})
    summary = views.journal_summary(table)
    assert summary == {"signals": 4, "evaluated": 3, "pending": 1, "wins": 1, "win_rate": 0.5,
                       "avg_r": 0.0}


def test_stats_table_renders_times_durations_and_numbers() -> None:
    stats = pd.Series({"Start": pd.Timestamp("2025-01-02", tz="UTC"),
                       "Max. Drawdown Duration": pd.Timedelta(days=5), "SQN": 1.23456,
                       "Equity Final [$]": 12_345_678.9, "Empty": float("nan")})
    table = views.stats_table(stats)
    assert table["value"].tolist() == ["2025-01-02", "5 days", "1.235", "12,345,679", "–"]
    both = views.stats_table({"a": stats, "b": stats})
    assert list(both.columns) == ["statistic", "a", "b"]


def test_local_times_show_new_york_time_and_daily_trading_dates() -> None:
    stamps = pd.DatetimeIndex(["2026-03-02 14:30", "2026-03-02 00:00", "2026-07-01 13:30"],
                              tz="UTC")
    shown = views.local_times(stamps)
    assert [str(t) for t in shown] == ["2026-03-02 09:30:00", "2026-03-02 00:00:00",
                                       "2026-07-01 09:30:00"]
    assert views.exchange_time_text(stamps[0]) == "2026-03-02 09:30"
    assert views.exchange_time_text(stamps[1]) == "2026-03-02", "a daily bar keeps its date"
    assert str(views.local_times(stamps[:1], daily=True)[0]) == "2026-03-02 14:30:00"
