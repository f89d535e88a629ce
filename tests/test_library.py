"""The local bar library (swing_core/market/library.py): import files, folders and archives,
list, delete, export (round trip through read_bars_file), and the ``data`` CLI commands.

Files are generated here in the shapes users bring: yfinance-style daily CSVs (Date, Open, High,
Low, Close, Adj Close, Volume; business days, random-walk prices), an intraday Parquet with a
New York DatetimeIndex across the March DST change, long CSVs with a Symbol column.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from swing_core import cli, db
from swing_core.errors import ConfigError, DatabaseError, MarketDataError
from swing_core.market import (
    LIBRARY_COLUMNS,
    FailedItem,
    ImportedItem,
    delete_from_library,
    export_bars,
    import_bars,
    list_library,
    read_bars_file,
)

ROOT = Path(__file__).resolve().parent.parent
NY = "America/New_York"
PRICE_COLUMNS = ["open", "high", "low", "close", "volume"]


# --------------------------------------------------------------------------- generated files


def _ohlc(n: int, seed: int, start_price: float = 50.0) -> dict[str, np.ndarray]:
    """A random walk with consistent bars: high above and low below open and close."""
    rng = np.random.default_rng(seed)
    close = start_price * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    open_ = close * np.exp(rng.normal(0.0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0005, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0005, 0.01, n))
    return {"Open": open_.round(4), "High": high.round(4), "Low": low.round(4),
            "Close": close.round(4), "Volume": rng.integers(100_000, 5_000_000, n)}


def daily_frame(seed: int, *, years: float = 3, start: str = "2020-01-02") -> pd.DataFrame:
    """yfinance's daily CSV layout; Adj Close below Close before a (made-up) dividend."""
    dates = pd.bdate_range(start, periods=int(252 * years))
    prices = _ohlc(len(dates), seed)
    factor = np.where(np.arange(len(dates)) < len(dates) // 2, 0.98, 1.0)
    return pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": prices["Open"],
                         "High": prices["High"], "Low": prices["Low"], "Close": prices["Close"],
                         "Adj Close": (prices["Close"] * factor).round(6),
                         "Volume": prices["Volume"]})


def write_daily_csv(path: Path, seed: int, **kwargs) -> pd.DataFrame:
    frame = daily_frame(seed, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return frame


def intraday_frame(seed: int, *, sessions: int = 20, start: str = "2024-03-01") -> pd.DataFrame:
    """30-minute bars 09:30-15:30 New York (13 a session), across the 2024-03-10 DST change."""
    days = pd.bdate_range(start, periods=sessions)
    stamps = [pd.Timestamp(f"{day.date()} 09:30", tz=NY) + pd.Timedelta(minutes=30 * k)
              for day in days for k in range(13)]
    frame = pd.DataFrame(_ohlc(len(stamps), seed, start_price=400.0),
                         index=pd.DatetimeIndex(stamps, name="Datetime"))
    return frame


def expected_daily(frame: pd.DataFrame) -> pd.DataFrame:
    """What the library should store for a yfinance daily frame: prices scaled by Adj Close."""
    factor = frame["Adj Close"] / frame["Close"]
    out = pd.DataFrame({"open": frame["Open"] * factor, "high": frame["High"] * factor,
                        "low": frame["Low"] * factor, "close": frame["Adj Close"],
                        "volume": frame["Volume"].astype("float64")})
    out.index = pd.DatetimeIndex(pd.to_datetime(frame["Date"]).to_numpy(), name="ts"
                                 ).tz_localize("UTC")
    return out


def long_multi_symbol(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Several symbols in one table with a Symbol column, rows interleaved by date."""
    parts = [f.drop(columns="Adj Close").assign(Symbol=s) for s, f in frames.items()]
    table = pd.concat(parts, ignore_index=True).sort_values("Date", kind="stable")
    return table[["Symbol", "Date", "Open", "High", "Low", "Close", "Volume"]]


def stored(engine, symbol: str, interval: str) -> pd.DataFrame:
    return db.load_bars(engine, symbol, interval)[PRICE_COLUMNS]


def assert_same_bars(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(actual[PRICE_COLUMNS], expected[PRICE_COLUMNS],
                                  check_freq=False, check_exact=False, rtol=1e-9)


# --------------------------------------------------------------------------- import


def test_import_a_daily_yfinance_csv(db_engine, tmp_path):
    source = write_daily_csv(tmp_path / "AAPL.csv", seed=1)
    seen = []
    report = import_bars(tmp_path / "AAPL.csv", engine=db_engine, progress=seen.append)
    assert report.failed == () and report.ok
    (item,) = report.imported
    assert seen == [item]
    assert (item.symbol, item.interval, item.bars) == ("AAPL", "1d", len(source))
    assert item.first_ts == pd.Timestamp("2020-01-02", tz="UTC")
    assert item.last_ts == pd.Timestamp(source["Date"].iloc[-1], tz="UTC")
    assert any("Adj Close" in note for note in item.notes)
    assert_same_bars(stored(db_engine, "AAPL", "1d"), expected_daily(source))
    assert report.summary() == f"Imported 1 series ({len(source):,} bars) from 1 file(s)."
    assert report.to_frame()[["symbol", "interval", "bars", "error"]].values.tolist() == [
        ["AAPL", "1d", len(source), ""]]


def test_import_an_intraday_parquet_across_the_dst_change(db_engine, tmp_path):
    frame = intraday_frame(seed=2)
    frame.to_parquet(tmp_path / "SPY_30m.parquet")
    report = import_bars([str(tmp_path / "SPY_30m.parquet")], engine=db_engine)
    (item,) = report.imported
    assert (item.symbol, item.interval, item.bars) == ("SPY", "30m", 20 * 13)
    bars = db.load_bars(db_engine, "SPY", "30m")
    assert bars.index[0] == pd.Timestamp("2024-03-01 14:30", tz="UTC")  # 09:30 EST
    # the first session after the change opens at 09:30 EDT = 13:30 UTC
    assert pd.Timestamp("2024-03-11 13:30", tz="UTC") in bars.index
    assert pd.Timestamp("2024-03-11 14:30", tz="UTC") in bars.index  # 10:30 EDT
    assert bars["close"].to_numpy() == pytest.approx(frame["Close"].to_numpy())


def test_symbol_and_interval_options_label_and_aggregate(db_engine, tmp_path):
    intraday_frame(seed=3, sessions=5).to_parquet(tmp_path / "whatever.pq")
    report = import_bars(tmp_path / "whatever.pq", engine=db_engine, symbol="qqq",
                         interval="1h")
    (item,) = report.imported
    # 09:30, 10:30 … 15:30: seven hourly buckets a session, anchored at the open
    assert (item.symbol, item.interval, item.bars) == ("QQQ", "1h", 5 * 7)
    assert list_library(db_engine)[["symbol", "interval"]].values.tolist() == [["QQQ", "1h"]]


def test_a_multi_symbol_csv_gives_one_entry_per_symbol(db_engine, tmp_path):
    frames = {"AAA": daily_frame(10, years=2), "BBB": daily_frame(11, years=2),
              "CCC": daily_frame(12, years=1, start="2021-01-04")}
    long_multi_symbol(frames).to_csv(tmp_path / "prices.csv", index=False)
    report = import_bars(tmp_path / "prices.csv", engine=db_engine)
    assert report.failed == ()
    assert {(i.symbol, i.bars) for i in report.imported} == {
        (s, len(f)) for s, f in frames.items()}
    assert {i.name for i in report.imported} == {str(tmp_path / "prices.csv")}
    for symbol, frame in frames.items():
        expected = expected_daily(frame.assign(**{"Adj Close": frame["Close"]}))
        assert_same_bars(stored(db_engine, symbol, "1d"), expected)
    library = list_library(db_engine)
    assert library["symbol"].tolist() == ["AAA", "BBB", "CCC"]
    assert library["bars"].tolist() == [len(frames[s]) for s in ("AAA", "BBB", "CCC")]


def test_a_multi_ticker_yfinance_parquet_gives_one_entry_per_ticker(db_engine, tmp_path):
    """``yf.download(["AAA", "BBB"]).to_parquet(...)``: (Price, Ticker) columns, Date index."""
    frames = {"AAA": daily_frame(15, years=1), "BBB": daily_frame(16, years=1)}
    parts = []
    for ticker, frame in frames.items():
        wide = frame.set_index(pd.DatetimeIndex(frame["Date"], name="Date")).drop(columns="Date")
        wide.columns = pd.MultiIndex.from_product([wide.columns, [ticker]],
                                                  names=["Price", "Ticker"])
        parts.append(wide)
    pd.concat(parts, axis=1).to_parquet(tmp_path / "download.parquet")
    report = import_bars(tmp_path / "download.parquet", engine=db_engine)
    assert sorted((i.symbol, i.bars) for i in report.imported) == [("AAA", 252), ("BBB", 252)]
    assert_same_bars(stored(db_engine, "BBB", "1d"), expected_daily(frames["BBB"]))


def test_symbol_option_picks_one_symbol_of_a_multi_symbol_file(db_engine, tmp_path):
    frames = {"AAA": daily_frame(10, years=1), "BBB": daily_frame(11, years=1)}
    long_multi_symbol(frames).to_csv(tmp_path / "prices.csv", index=False)
    report = import_bars(tmp_path / "prices.csv", engine=db_engine, symbol="BBB")
    assert [(i.symbol, i.bars) for i in report.imported] == [("BBB", len(frames["BBB"]))]
    assert list_library(db_engine)["symbol"].tolist() == ["BBB"]
    missing = import_bars(tmp_path / "prices.csv", engine=db_engine, symbol="ZZZ")
    assert not missing.ok and "several symbols" in missing.failed[0].error


def test_a_bad_symbol_in_a_multi_symbol_file_leaves_no_rows(db_engine, tmp_path):
    frames = {"AAA": daily_frame(20, years=1), "BAD": daily_frame(21, years=1),
              "CCC": daily_frame(22, years=1)}
    table = long_multi_symbol(frames)
    bad_rows = table.index[table["Symbol"] == "BAD"]
    table.loc[bad_rows[100], "High"] = table.loc[bad_rows[100], "Low"] - 1  # high below low
    table = pd.concat([table, table.iloc[:2].assign(Symbol="")])  # two rows without a symbol
    table.to_csv(tmp_path / "mixed.csv", index=False)
    report = import_bars(tmp_path / "mixed.csv", engine=db_engine)
    assert sorted(i.symbol for i in report.imported) == ["AAA", "CCC"]
    failures = {f.symbol: f.error for f in report.failed}
    assert set(failures) == {"BAD", "(no symbol)"}
    assert "high" in failures["BAD"].lower()
    assert "no symbol" in failures["(no symbol)"]
    assert len(db.load_bars(db_engine, "BAD", "1d")) == 0
    assert list_library(db_engine)["symbol"].tolist() == ["AAA", "CCC"]


def test_a_zip_archive_path_and_upload(db_engine, tmp_path):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("AAA.csv", daily_frame(30).to_csv(index=False))
        zf.writestr("data/", "")  # a directory entry
        zf.writestr("data/BBB.csv", daily_frame(31, years=1).to_csv(index=False))
        parquet = io.BytesIO()
        intraday_frame(32, sessions=4).to_parquet(parquet)
        zf.writestr("data/CCC_30m.parquet", parquet.getvalue())
        zf.writestr("README.md", "prices from my broker")
        zf.writestr("__MACOSX/._AAA.csv", b"\x00\x05\x16\x07")
        zf.writestr("../EVIL.csv", daily_frame(33, years=1).to_csv(index=False))
    archive = tmp_path / "bars.zip"
    archive.write_bytes(buffer.getvalue())

    report = import_bars(archive, engine=db_engine)
    assert {(i.name, i.symbol, i.interval) for i in report.imported} == {
        (f"{archive}/AAA.csv", "AAA", "1d"), (f"{archive}/data/BBB.csv", "BBB", "1d"),
        (f"{archive}/data/CCC_30m.parquet", "CCC", "30m")}
    (refused,) = report.failed
    assert refused.name.endswith("../EVIL.csv") and "outside" in refused.error
    assert report.skipped == (f"{archive}/README.md",)
    assert "EVIL" not in set(list_library(db_engine)["symbol"])

    db.delete_bars(db_engine)
    upload = io.BytesIO(buffer.getvalue())
    upload.name = "my bars.zip"  # what a browser upload looks like
    again = import_bars([upload], engine=db_engine)
    assert sorted(i.symbol for i in again.imported) == ["AAA", "BBB", "CCC"]
    assert again.imported[0].name.startswith("my bars.zip/")
    nameless = import_bars(buffer.getvalue(), engine=db_engine)  # sniffed from the bytes
    assert len(nameless.imported) == 3


def test_a_folder_of_thirty_files(db_engine, tmp_path):
    folder = tmp_path / "library"
    sources = {}
    for k in range(30):
        sub = folder / ("" if k < 10 else "etf" if k < 20 else "nested/deeper")
        sources[f"S{k:02d}"] = write_daily_csv(sub / f"S{k:02d}.csv", seed=100 + k, years=1)
    (folder / "notes.md").write_text("where the files came from")
    (folder / ".DS_Store").write_bytes(b"\x00\x00")
    report = import_bars(folder, engine=db_engine)
    assert report.failed == ()
    assert sorted(i.symbol for i in report.imported) == sorted(sources)
    assert report.skipped == (str(folder / "notes.md"),)
    library = list_library(db_engine)
    assert library["symbol"].tolist() == sorted(sources)
    assert set(library["source"]) == {"file"} and set(library["interval"]) == {"1d"}
    assert library["bars"].tolist() == [len(sources[s]) for s in sorted(sources)]
    assert_same_bars(stored(db_engine, "S17", "1d"), expected_daily(sources["S17"]))


def test_bad_files_are_reported_and_never_stop_the_others(db_engine, tmp_path):
    folder = tmp_path / "drop"
    write_daily_csv(folder / "GOOD1.csv", seed=40)
    write_daily_csv(folder / "GOOD2.csv", seed=41)
    bad_time = daily_frame(42)
    bad_time.loc[500, "Date"] = "31/31/2021"
    bad_time.to_csv(folder / "BADTIME.csv", index=False)
    bad_bar = daily_frame(43)
    bad_bar.loc[600, "Low"] = -5.0  # a negative price deep in the file
    bad_bar.to_csv(folder / "BADBAR.csv", index=False)
    daily_frame(44).drop(columns=["Close", "Adj Close"]).to_csv(folder / "NOCLOSE.csv",
                                                                 index=False)
    (folder / "EMPTY.csv").write_text("")
    (folder / "GARBAGE.parquet").write_bytes(np.random.default_rng(0).bytes(4096))
    seen = []
    report = import_bars(folder, engine=db_engine, progress=seen.append)
    assert sorted(i.symbol for i in report.imported) == ["GOOD1", "GOOD2"]
    failed = {Path(f.name).name: f.error for f in report.failed}
    assert set(failed) == {"BADTIME.csv", "BADBAR.csv", "NOCLOSE.csv", "EMPTY.csv",
                           "GARBAGE.parquet"}
    assert "31/31/2021" in failed["BADTIME.csv"]
    assert "Close" in failed["NOCLOSE.csv"] and "empty" in failed["EMPTY.csv"]
    assert "Parquet" in failed["GARBAGE.parquet"]
    assert len(seen) == 7 and sum(isinstance(i, FailedItem) for i in seen) == 5
    # nothing of the bad files was written, not even the good rows before the bad one
    assert list_library(db_engine)["symbol"].tolist() == ["GOOD1", "GOOD2"]
    assert "1 failed" not in report.summary() and "5 failed" in report.summary()


def test_a_database_failure_stops_the_import_and_says_so(sqlite_engine, tmp_path, monkeypatch):
    for k in range(3):
        write_daily_csv(tmp_path / "in" / f"F{k}.csv", seed=50 + k, years=1)
    real_upsert = db.upsert_bars
    calls = []

    def failing_second_time(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 2:
            raise DatabaseError("Cannot use the database: disk full.")
        return real_upsert(*args, **kwargs)

    monkeypatch.setattr(db, "upsert_bars", failing_second_time)
    report = import_bars(tmp_path / "in", engine=sqlite_engine)
    assert [i.symbol for i in report.imported] == ["F0"]
    assert [Path(f.name).name for f in report.failed] == ["F1.csv", "F2.csv"]
    assert "disk full" in report.failed[0].error
    assert report.failed[1].error.startswith("Not imported: the database failed")
    assert calls == ["F0", "F1"]  # F2 was not even tried


def test_zip_bomb_guards(sqlite_engine, tmp_path):
    small = daily_frame(60, years=0.5).to_csv(index=False)
    big = "Date,Open,High,Low,Close,Volume\n" + "2020-01-02,1,1,1,1,1\n" * 150_000  # ~3 MB
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BIG.csv", big)
        zf.writestr("SMALL.csv", small)
    assert bomb.stat().st_size < 100_000  # highly compressible
    report = import_bars(bomb, engine=sqlite_engine, max_bytes=1_000_000)
    assert [i.symbol for i in report.imported] == ["SMALL"]
    assert report.failed[0].name.endswith("BIG.csv") and "unpacks to more" in \
        report.failed[0].error

    several = tmp_path / "several.zip"
    with zipfile.ZipFile(several, "w", zipfile.ZIP_DEFLATED) as zf:
        for k in range(4):
            zf.writestr(f"P{k}.csv", small)
    report = import_bars(several, engine=sqlite_engine, max_archive_bytes=int(len(small) * 2.5))
    assert [i.symbol for i in report.imported] == ["P0", "P1"]
    assert len(report.failed) == 2 and all("in total" in f.error for f in report.failed)

    crowded = tmp_path / "crowded.zip"
    with zipfile.ZipFile(crowded, "w") as zf:
        for k in range(12):
            zf.writestr(f"C{k}.csv", small)
    report = import_bars(crowded, engine=sqlite_engine, max_files=10)
    assert not report.imported and "12 entries" in report.failed[0].error

    fake = tmp_path / "fake.zip"
    fake.write_text("not an archive")
    report = import_bars(fake, engine=sqlite_engine)
    assert "not a readable .zip" in report.failed[0].error


def test_bad_arguments_raise(sqlite_engine, tmp_path):
    write_daily_csv(tmp_path / "A.csv", seed=70, years=1)
    with pytest.raises(MarketDataError, match="Nothing to import"):
        import_bars([], engine=sqlite_engine)
    with pytest.raises(ConfigError, match="interval"):
        import_bars(tmp_path / "A.csv", engine=sqlite_engine, interval="2h")
    with pytest.raises(MarketDataError, match="not a valid ticker"):
        import_bars(tmp_path / "A.csv", engine=sqlite_engine, symbol="bad sym!")
    with pytest.raises(DatabaseError):
        import_bars(tmp_path / "A.csv", engine=None)
    report = import_bars([tmp_path / "A.csv", tmp_path / "missing.csv"], engine=sqlite_engine)
    assert [i.symbol for i in report.imported] == ["A"]
    assert report.failed[0].name.endswith("missing.csv") and "No such file" in \
        report.failed[0].error


# --------------------------------------------------------------------------- list, delete


def test_list_library_one_row_per_series_without_demo(db_engine):
    old, new = daily_frame(80, years=1, start="2019-01-02"), daily_frame(81, years=1)
    assert list_library(db_engine).columns.tolist() == list(LIBRARY_COLUMNS)
    assert list_library(db_engine).empty
    db.upsert_bars(db_engine, "AAA", "1d", expected_daily(old), source="yahoo")
    db.upsert_bars(db_engine, "AAA", "1d", expected_daily(new), source="file")
    intraday = intraday_frame(82, sessions=3).rename(columns=str.lower)
    intraday.index = intraday.index.tz_convert("UTC").rename("ts")
    db.upsert_bars(db_engine, "AAA", "30m", intraday, source="file")
    db.upsert_bars(db_engine, "ZZZ", "1d", expected_daily(new), source="demo")  # never real
    library = list_library(db_engine)
    assert library.columns.tolist() == list(LIBRARY_COLUMNS)
    assert library[["symbol", "interval", "bars", "source"]].values.tolist() == [
        ["AAA", "30m", 39, "file"], ["AAA", "1d", len(old) + len(new), "file, yahoo"]]
    daily = library.iloc[1]
    assert daily["first_ts"] == pd.Timestamp("2019-01-02", tz="UTC")
    assert daily["last_ts"] == pd.Timestamp(new["Date"].iloc[-1], tz="UTC")
    assert str(library["stored_at"].dt.tz) == "UTC"


def test_delete_from_library(db_engine, tmp_path):
    write_daily_csv(tmp_path / "AAA.csv", seed=90, years=1)
    intraday_frame(91, sessions=3).to_parquet(tmp_path / "AAA_30m.parquet")
    write_daily_csv(tmp_path / "BBB.csv", seed=92, years=1)
    import_bars(tmp_path, engine=db_engine)
    assert delete_from_library(db_engine, "aaa", interval="30m") == 39
    assert list_library(db_engine)[["symbol", "interval"]].values.tolist() == [
        ["AAA", "1d"], ["BBB", "1d"]]
    assert delete_from_library(db_engine, "AAA") == 252
    with pytest.raises(MarketDataError, match="no bars of AAA"):
        delete_from_library(db_engine, "AAA")
    with pytest.raises(MarketDataError, match="no 1h bars of BBB"):
        delete_from_library(db_engine, "BBB", interval="1h")
    with pytest.raises(MarketDataError, match="not a valid ticker"):
        delete_from_library(db_engine, "no way!")
    assert list_library(db_engine)["symbol"].tolist() == ["BBB"]


# --------------------------------------------------------------------------- export


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("interval", ["1d", "30m"])
def test_export_reads_back_identically(db_engine, tmp_path, fmt, interval):
    (tmp_path / "in").mkdir()
    if interval == "1d":
        write_daily_csv(tmp_path / "in" / "MSFT.csv", seed=100)
    else:
        intraday_frame(101).to_parquet(tmp_path / "in" / "MSFT.parquet")
    import_bars(tmp_path / "in", engine=db_engine)
    original = db.load_bars(db_engine, "MSFT", interval)
    out = tmp_path / f"MSFT_{interval}.{'csv' if fmt == 'csv' else 'parquet'}"
    assert export_bars(db_engine, "msft", interval, out) == len(original)  # format from suffix

    back = read_bars_file(out)
    assert (back.attrs["symbol"], back.attrs["interval"]) == ("MSFT", interval)
    pd.testing.assert_index_equal(back.index, original.index)
    assert_same_bars(back, original)
    raw = pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)
    assert raw.columns.tolist() == ["Date" if interval == "1d" else "Datetime", "Open", "High",
                                    "Low", "Close", "Volume"]
    if fmt == "csv" and interval == "1d":
        assert raw["Date"].iloc[0] == original.index[0].strftime("%Y-%m-%d")
    if fmt == "csv" and interval == "30m":
        assert raw["Datetime"].iloc[0] == "2024-03-01T09:30:00-05:00"
        assert "2024-03-11T09:30:00-04:00" in set(raw["Datetime"])

    # and back into the library under another name: the same bars
    report = import_bars(out, engine=db_engine, symbol="COPY")
    assert report.imported[0].bars == len(original)
    assert_same_bars(db.load_bars(db_engine, "COPY", interval), original)


def test_export_to_a_buffer_and_errors(db_engine, tmp_path):
    write_daily_csv(tmp_path / "IBM.csv", seed=110, years=1)
    import_bars(tmp_path / "IBM.csv", engine=db_engine)
    buffer = io.BytesIO()
    assert export_bars(db_engine, "IBM", "1d", buffer, fmt="parquet") == 252
    back = read_bars_file(buffer.getvalue(), filename="download.parquet", symbol="IBM")
    assert_same_bars(back, db.load_bars(db_engine, "IBM", "1d"))
    with pytest.raises(MarketDataError, match="no 30m bars of IBM"):
        export_bars(db_engine, "IBM", "30m", tmp_path / "x.csv")
    with pytest.raises(MarketDataError, match="csv or parquet"):
        export_bars(db_engine, "IBM", "1d", tmp_path / "x.xlsx", fmt="xlsx")
    with pytest.raises(MarketDataError, match="Could not write"):
        export_bars(db_engine, "IBM", "1d", tmp_path / "no" / "such" / "dir.csv")


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def cli_db():
    """The CLI opens the settings' database (a fresh SQLite file per test, see conftest)."""
    yield
    db.dispose_engines()


def test_cli_data_commands(cli_db, tmp_path, capsys):
    folder = tmp_path / "drop"
    for k, symbol in enumerate(("AMD", "NVDA", "INTC")):
        write_daily_csv(folder / f"{symbol}.csv", seed=120 + k, years=1)
    (folder / "BROKEN.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,1,2,1,1\nx,1,2,1,1\n")

    assert cli.main(["data", "import", str(folder)]) == 0
    out, err = capsys.readouterr()
    assert out.count("  imported  ") == 3 and "AMD 1d, 252 bars, 2020-01-02 to" in out
    assert "Imported 3 series (756 bars) from 3 file(s); 1 failed." in out
    assert "BROKEN.csv" in err and "Traceback" not in err

    assert cli.main(["data", "list"]) == 0
    listing = capsys.readouterr().out
    assert [line.split()[0] for line in listing.splitlines()[1:4]] == ["AMD", "INTC", "NVDA"]
    assert "3 series, 756 bars" in listing

    out_file = tmp_path / "nvda.parquet"
    assert cli.main(["data", "export", "nvda", "--interval", "1d", "--out", str(out_file)]) == 0
    assert "Wrote 252 NVDA 1d bars" in capsys.readouterr().out
    back = read_bars_file(out_file, symbol="NVDA")
    assert len(back) == 252 and back.index[0] == pd.Timestamp("2020-01-02", tz="UTC")

    assert cli.main(["data", "delete", "AMD"]) == 0
    assert "Deleted 252 bars of AMD." in capsys.readouterr().out
    assert cli.main(["data", "delete", "AMD"]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_cli_data_import_of_nothing_usable_exits_2(cli_db, tmp_path, capsys):
    (tmp_path / "bad.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,1,2,1,1\n")
    assert cli.main(["data", "import", str(tmp_path / "bad.csv")]) == cli.EXIT_USER_ERROR
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert "bad.csv" in err
    assert cli.main(["data", "import", str(tmp_path / "bad.csv"),
                     str(tmp_path / "gone.csv")]) == cli.EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: nothing imported (2 failed)")
    assert cli.main(["data", "list"]) == 0
    assert "library is empty" in capsys.readouterr().out


def test_cli_data_import_through_python_m(tmp_path):
    """The wiring end to end: ``python -m swing_core data import`` on an archive, then list."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("KO.csv", daily_frame(130, years=1).to_csv(index=False))
        zf.writestr("PEP.csv", daily_frame(131, years=1).to_csv(index=False))
    (tmp_path / "bars.zip").write_bytes(buffer.getvalue())
    env = {**os.environ, "SWING_DATA_DIR": str(tmp_path / "data"), "SWING_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("SWING_DATABASE_URL", None)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "swing_core", "data", *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)

    done = run("import", "bars.zip", "--interval", "1d")
    assert done.returncode == 0, done.stderr
    assert "Imported 2 series (504 bars) from 2 file(s)." in done.stdout
    listing = run("list")
    assert listing.returncode == 0 and "KO" in listing.stdout and "PEP" in listing.stdout
    bad = run("import", "bars.zip", "--symbol", "not valid!")
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in \
        bad.stderr


def test_report_items_are_frozen():
    item = ImportedItem("a.csv", "A", "1d", 1, pd.Timestamp("2024-01-02", tz="UTC"),
                        pd.Timestamp("2024-01-02", tz="UTC"))
    with pytest.raises(AttributeError):
        item.bars = 2  # type: ignore[misc]
