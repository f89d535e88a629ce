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
    assert any("library is empty" in i.value for i in app.info)
    app.file_uploader(key="upload_file").set_value([("ZZUP_30m.csv", _csv(), "text/csv")]).run()
    assert not app.exception and not app.error
    assert any("400 30m bars of ZZUP" in s.value for s in app.success)
    assert app.get("plotly_chart"), "the upload is previewed"
    app.button(key="store_upload").click().run()
    assert any("Imported 400 bars: 1 series" in s.value for s in app.success)
    summary = next(f.value for f in app.dataframe if "bars" in f.value.columns)
    assert summary.loc[0, "symbol"] == "ZZUP" and summary.loc[0, "source"] == "file"
    assert summary.loc[0, "bars"] == 400
    app.session_state["symbol"] = "ZZUP"
    app.switch_page("pages/explorer.py").run()
    # offline, "automatic" serves the stored real bars, never demo ones
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Showing your local bar library" in i.value for i in app.info)
    assert not any("DEMO" in w.value for w in app.warning)
    assert app.title[0].value == "Signal Explorer · ZZUP 30m"
    app.selectbox(key="source").set_value("local").run()  # the same, chosen explicitly
    assert not app.exception and not app.error, [e.value for e in app.error]
    assert any("Showing your local bar library" in i.value for i in app.info)


def test_bad_upload_is_an_error_with_what_to_fix(app: AppTest) -> None:
    app.file_uploader(key="upload_file").set_value(
        [("prices.csv", b"when,price\nyesterday,1\n", "text/csv")]).run()
    assert not app.exception
    message = " ".join(e.value for e in app.error)
    assert "lacks column" in message and "upload it again" in message
    assert not any("Imported" in s.value for s in app.success)


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
    assert any("library is empty" in i.value for i in app.info)


def test_many_files_and_a_bad_one_import_together(app: AppTest) -> None:
    import io
    import zipfile

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("AAA_30m.csv", _csv("AAA", 300))
        zf.writestr("BBB_30m.csv", _csv("BBB", 300))
    app.file_uploader(key="upload_file").set_value([
        ("bars.zip", archive.getvalue(), "application/zip"),
        ("CCC_30m.csv", _csv("CCC", 200), "text/csv"),
        ("broken.csv", b"when,price\nyesterday,1\n", "text/csv")]).run()
    assert not app.exception
    assert app.button(key="store_upload").label == "Import 3 files"
    app.button(key="store_upload").click().run()
    assert any("Imported 800 bars: 3 series" in s.value for s in app.success)
    assert any("broken.csv" in e.value for e in app.error), "the bad file is named"
    held = db.bar_cache_summary(db.get_engine())
    assert sorted(held["symbol"]) == ["AAA", "BBB", "CCC"]


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


def test_the_library_map_draws_thinned_points_with_hover_made_once(monkeypatch) -> None:
    """The map's hover text exists only for the points drawn (not one string per library row,
    the cost of every rerun before), and the projection, points and text are made once per
    library object: a rerun only projects the setup and finds the neighbours."""
    from swing_core.views import library as library_module

    rng = np.random.default_rng(2)
    n = 1_000
    rows = pd.DataFrame({
        "symbol": rng.choice(["AAA", "BBB"], n), "interval": "30m",
        "ts": pd.Timestamp("2024-01-02 14:30", tz="UTC") + pd.to_timedelta(np.arange(n) * 30,
                                                                          unit="min"),
        "side": rng.choice(["long", "short"], n), "setup": "momentum",
        "realized_r": rng.normal(size=n)})
    matrix = rng.normal(size=(n, 16)).astype(np.float32)
    lib = views.Library(index=None, rows=rows, matrix=matrix, source="stored", note="")
    monkeypatch.setattr(library_module, "MAP_POINTS", 100)
    calls = []
    real_axes = library_module._pca_axes
    monkeypatch.setattr(library_module, "_pca_axes",
                        lambda data: calls.append(len(data)) or real_axes(data))
    neighbors = rows.iloc[[3, 500]]
    first = views.projection_view(lib, matrix[3], neighbors)
    again = views.projection_view(lib, matrix[7], neighbors)
    assert calls == [n]  # projected once
    assert len(first.xy) == len(first.hover) == len(first.outcome_r) == 100 and first.total == n
    keep = np.arange(0, n, 10)
    assert first.hover[1] == (f"{rows.symbol[10]} {views.bar_time_text(rows.ts[10], '30m')} "
                              f"{rows.side[10]} momentum · {rows.realized_r[10]:+.2f}R")
    np.testing.assert_allclose(first.xy, views.project_2d(matrix)[0][keep], atol=1e-9)
    np.testing.assert_allclose(first.current, first.neighbors[0], atol=1e-9)  # row 3 is ringed
    assert again.hover is first.hover


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
                       "win_rate_net": None, "n_outcomes": 2, "n_outcomes_net": 0,
                       "avg_r": 0.0}
    # with prices: +0.05 R on a 1.00 stop at 100 is an R win but a loss after costs (0.10 R)
    priced = pd.DataFrame({"evaluated": [True, True, True], "realized_r": [0.05, 1.0, -1.0],
                           "entry": 100.0, "stop": 99.0, "exit_price": [100.05, 101.0, 99.0]})
    summary = views.journal_summary(priced)
    assert summary["win_rate"] == pytest.approx(2 / 3)
    assert summary["win_rate_net"] == pytest.approx(1 / 3) and summary["n_outcomes"] == 3


def test_stats_table_renders_times_durations_and_numbers() -> None:
    stats = pd.Series({"Start": pd.Timestamp("2025-01-02", tz="UTC"),
                       "Max. Drawdown Duration": pd.Timedelta(days=5), "SQN": 1.23456,
                       "Equity Final [$]": 12_345_678.9, "Empty": float("nan")})
    table = views.stats_table(stats)
    assert table["value"].tolist() == ["2025-01-02", "5 days", "1.235", "12,345,679", "–"]
    both = views.stats_table({"a": stats, "b": stats})
    assert list(both.columns) == ["statistic", "a", "b"]


def test_tables_show_daily_bars_as_trading_dates_and_intraday_in_new_york() -> None:
    stamps = pd.DatetimeIndex(["2026-03-02 14:30", "2026-03-02 00:00", "2026-07-01 13:30"],
                              tz="UTC")
    assert views.bar_time_text(stamps[0], "30m") == "2026-03-02 09:30 EST"
    assert views.bar_time_text(stamps[2], "30m") == "2026-07-01 09:30 EDT"
    assert views.bar_time_text(stamps[1], "1d") == "2026-03-02", "a daily bar keeps its date"
    assert views.exchange_time_text(stamps[1]) == "2026-03-02"  # untold: 00:00 UTC is a date
    intraday = views.table_times(stamps[[0, 2]], "30m")
    assert [str(t) for t in intraday] == ["2026-03-02 09:30:00", "2026-07-01 09:30:00"]
    assert views.table_times(stamps[1:2], "1d").tolist() == ["2026-03-02"]


def test_daily_trade_list_shows_trading_dates_and_never_a_saturday_exit() -> None:
    friday = pd.Timestamp("2024-03-08", tz="UTC")  # the exit bar, labelled 00:00 UTC
    trades = pd.DataFrame({
        "symbol": ["AAPL"], "side": ["long"], "qty": [10], "exit_reason": ["TARGET"],
        "signal_ts": [friday - pd.Timedelta(days=3)], "fill_ts": [friday - pd.Timedelta(days=2)],
        # stored as the exit bar's close time (label + 1 day): Saturday 00:00 UTC
        "exit_ts": [friday + pd.Timedelta(days=1)],
    })
    listed = views.trade_list(trades)
    assert listed["exit_ts"].iloc[0] == friday + pd.Timedelta(days=1), "stored value unchanged"
    for shown in (views.for_display(listed), views.for_display(listed, interval="1d")):
        row = shown.iloc[0]
        assert (row["signal_ts"], row["entry_ts"], row["exit_ts"]) == (
            "2024-03-05", "2024-03-06", "2024-03-08")
        csv = views.to_csv_bytes(shown).decode()
        assert "2024-03-08" in csv and "2024-03-09" not in csv and "19:00" not in csv


def test_journal_shows_each_row_by_its_interval() -> None:
    signals = pd.DataFrame({
        "id": [1, 2], "interval": ["1d", "30m"],
        "asof": pd.DatetimeIndex(["2004-08-19", "2024-03-04 15:30"], tz="UTC"),
        "exit_ts": pd.DatetimeIndex(["2004-08-21", "2024-03-04 16:30"], tz="UTC"),
    })
    table = views.journal_table(signals)
    assert table["asof"].tolist() == ["2004-08-19", "2024-03-04 10:30 EST"]
    # the daily exit bar is Friday 2004-08-20 (closed Saturday 00:00 UTC); intraday: its close
    assert table["exit_ts"].tolist() == ["2004-08-20", "2024-03-04 11:30 EST"]
