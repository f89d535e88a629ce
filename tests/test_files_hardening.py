"""Bad bars files (issue 16, items 1, 2, 4 and 8): each is refused with a message in the user's
terms, or read right; never read wrong in silence, never a traceback.

- a very wide file is refused before its rows are read; only the columns a bars file uses are
  read from the others (Parquet ``columns=``, CSV ``usecols``);
- a comma as the decimal mark ("100,34", "1.234,56") is told from a thousands separator, and a
  file that cannot tell is refused;
- timestamps outside the supported range name the column, the row and the range;
- empty, header-only, ragged and binary files get their own messages.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from apptest_support import demo_app

from swing_core.errors import MarketDataError
from swing_core.market import file_table, read_bars_file, read_bars_file_by_symbol

ROOT = Path(__file__).resolve().parent.parent
OHLCV = ["Open", "High", "Low", "Close", "Volume"]


def _daily(n: int = 60, seed: int = 3) -> pd.DataFrame:
    """``n`` business days of plausible bars with Date, Open, High, Low, Close, Volume."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    return pd.DataFrame({"Date": pd.bdate_range("2023-01-02", periods=n).strftime("%Y-%m-%d"),
                         "Open": close - 0.25, "High": close + 1.0, "Low": close - 1.0,
                         "Close": close, "Volume": rng.integers(1_000, 5_000_000, n)})


def _refused(data: bytes, filename: str, **kwargs: object) -> str:
    with pytest.raises(MarketDataError) as info:
        read_bars_file(data, filename=filename, **kwargs)
    return str(info.value)


# ------------------------------------------------------------------ 1. wide files, columns read

def test_a_wide_parquet_is_refused_before_its_rows_are_read(monkeypatch):
    frame = _daily(40)
    extra = pd.DataFrame(np.ones((40, 995)), columns=[f"indicator_{i}" for i in range(995)])
    buffer = io.BytesIO()
    pd.concat([frame, extra], axis=1).to_parquet(buffer)

    def no_read(*args, **kwargs):
        raise AssertionError("the rows of a too-wide file were read")

    monkeypatch.setattr(pq.ParquetFile, "read", no_read)
    message = _refused(buffer.getvalue(), "wide.parquet")
    assert message.startswith("wide.parquet has 1,001 columns; the limit is 64.")
    assert "remove the other columns" in message


def test_a_wide_csv_is_refused_with_the_same_limit():
    frame = _daily(20)
    extra = pd.DataFrame(np.ones((20, 100)), columns=[f"x{i}" for i in range(100)])
    text = pd.concat([frame, extra], axis=1).to_csv(index=False).encode()
    assert "has 106 columns; the limit is 64" in _refused(text, "wide.csv")


def _spy(monkeypatch, owner: object, name: str) -> list[dict]:
    calls: list[dict] = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def test_only_the_columns_of_bars_are_read_from_a_parquet(monkeypatch):
    frame = _daily(50)
    for i in range(20):
        frame[f"note_{i}"] = "x" * 200
    buffer = io.BytesIO()
    frame.to_parquet(buffer)
    calls = _spy(monkeypatch, pq.ParquetFile, "read")
    bars = read_bars_file(buffer.getvalue(), filename="AAA.parquet")
    assert len(calls) == 1 and sorted(calls[0]["columns"]) == sorted(["Date", *OHLCV])
    np.testing.assert_allclose(bars["close"].to_numpy(), frame["Close"].to_numpy())


def test_only_the_columns_of_bars_are_read_from_a_csv(monkeypatch):
    frame = _daily(50)
    for i in range(20):
        frame[f"note_{i}"] = "x" * 50
    calls = _spy(monkeypatch, file_table.pd, "read_csv")
    bars = read_bars_file(frame.to_csv(index=False).encode(), filename="AAA.csv")
    reads = [c for c in calls if c.get("nrows") != 0]  # the header alone is read first
    assert len(reads) == 1 and sorted(reads[0]["usecols"]) == sorted(["Date", *OHLCV])
    assert bars["volume"].tolist() == frame["Volume"].astype(float).tolist()


def test_a_multi_ticker_parquet_keeps_its_tickers_when_other_columns_are_dropped(tmp_path):
    parts = []
    for ticker, seed in (("AAA", 1), ("BBB", 2)):
        frame = _daily(30, seed)
        wide = frame.set_index(pd.DatetimeIndex(frame.pop("Date"), name="Date"))
        wide["Comment"] = "n/a"
        wide.columns = pd.MultiIndex.from_product([wide.columns, [ticker]],
                                                  names=["Price", "Ticker"])
        parts.append(wide)
    pd.concat(parts, axis=1).to_parquet(tmp_path / "download.parquet")
    both = read_bars_file_by_symbol(tmp_path / "download.parquet")
    assert sorted(both) == ["AAA", "BBB"] and len(both["BBB"]) == 30


# ------------------------------------------------------------------ 2. decimal commas

def _european(frame: pd.DataFrame) -> bytes:
    """``frame`` as a spreadsheet in Germany or France saves it: ";" between fields, a comma
    for decimals, a dot between thousands."""
    def number(value: float, decimals: int) -> str:
        return f"{value:,.{decimals}f}".replace(",", " ").replace(".", ",").replace(" ", ".")
    lines = ["Date;Open;High;Low;Close;Volume"]
    for row in frame.itertuples(index=False):
        prices = ";".join(number(getattr(row, c) * 12, 2) for c in ("Open", "High", "Low",
                                                                      "Close"))
        lines.append(f"{row.Date};{prices};{number(row.Volume, 0)}")
    return ("\n".join(lines) + "\n").encode()


def test_a_european_csv_reads_the_right_prices():
    frame = _daily(40)
    text = _european(frame)
    assert re.search(rb";\d\.\d{3},\d\d;", text) and re.search(rb";\d\.\d{3}\.\d{3}\n", text)
    bars = read_bars_file(text, filename="SAP.csv")
    np.testing.assert_allclose(bars["close"].to_numpy(), (frame["Close"] * 12).round(2))
    np.testing.assert_allclose(bars["volume"].to_numpy(), frame["Volume"].astype(float))
    assert any("comma for decimals" in note for note in bars.attrs["notes"])


def test_a_semicolon_csv_whose_numbers_could_be_read_two_ways_is_refused():
    text = (b"Date;Open;High;Low;Close;Volume\n"
            b"2024-01-02;1,250;1,300;1,200;1,275;100\n"
            b"2024-01-03;1,275;1,310;1,260;1,300;100\n")
    message = _refused(text, "odd.csv")
    assert "'1,250' could mean 1.250 or 1250" in message
    assert "Use a dot for decimals" in message


def test_a_file_mixing_both_number_styles_is_refused():
    text = (b"Date;Open;High;Low;Close;Volume\n"
            b"2024-01-02;100,50;101,00;99,50;100,75;100\n"
            b"2024-01-03;100.75;101.20;100.10;101.00;100\n")
    assert "mixes two number styles" in _refused(text, "mixed.csv")


def test_a_us_csv_with_thousands_separators_still_reads():
    text = (b'Date,Open,High,Low,Close,Volume\n'
            b'2024-01-02,"1,234.50","1,240.00","1,230.25","1,238.75","1,200,000"\n'
            b'2024-01-03,"1,238.75","1,250.00","1,236.00","1,249.50","950,000"\n')
    bars = read_bars_file(text, filename="BRK.csv")
    assert bars["close"].tolist() == [1238.75, 1249.5]
    assert bars["volume"].tolist() == [1_200_000, 950_000]
    assert not any("comma" in note for note in bars.attrs["notes"])


# ------------------------------------------------------------------ 4. timestamps out of range

def _with_epoch(value: float) -> bytes:
    frame = _daily(10)
    frame["Date"] = (pd.to_datetime(frame["Date"]).astype("int64") // 10**9).astype("float64")
    frame.loc[5, "Date"] = value
    return frame.to_csv(index=False).encode()


def test_an_epoch_timestamp_out_of_range_names_the_column_row_and_range():
    message = _refused(_with_epoch(1e30), "x.csv")
    assert "column 'Date'" in message and "row 7: 1e+30" in message
    assert "outside the supported range, 1800-01-01 to 2200-01-01" in message


def test_a_year_beyond_the_range_names_the_column_row_and_range():
    frame = _daily(10)
    frame.loc[3, "Date"] = "99999-01-01"
    message = _refused(frame.to_csv(index=False).encode(), "x.csv")
    assert "column 'Date' (row 5: '99999-01-01')" in message
    assert "from 1800-01-01 to 2200-01-01" in message
    frame.loc[3, "Date"] = "2250-01-01"  # a date pandas can hold, but outside the range
    message = _refused(frame.to_csv(index=False).encode(), "x.csv")
    assert "row 5: '2250-01-01'" in message and "outside the supported range" in message


def test_the_cli_reports_a_timestamp_out_of_range_without_a_traceback(tmp_path):
    (tmp_path / "BAD.csv").write_bytes(_with_epoch(1e30))
    env = {**os.environ, "SWING_DATA_DIR": str(tmp_path / "data"), "SWING_OFFLINE": "1",
           "PYTHONPATH": str(ROOT)}
    env.pop("SWING_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "swing_core", "data", "import", "BAD.csv"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=240)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "OverflowError" not in done.stderr
    assert "column 'Date' (row 7: 1e+30, read as epoch seconds)" in done.stderr


# ------------------------------------------------------------------ 8. messages

def test_a_header_only_csv_says_it_has_no_rows():
    text = b"Date,Open,High,Low,Close,Volume\n"
    for interval in (None, "1d"):
        message = _refused(text, "AAPL.csv", interval=interval)
        assert message.startswith("AAPL.csv has a header (Date, Open, High, Low, Close, Volume) "
                                  "but no rows of bars")
        assert "yahoo" not in message.lower()


def test_rows_without_any_price_say_so_not_the_yahoo_hint():
    text = b"Date,Open,High,Low,Close\n2024-01-02,n/a,,,\n2024-01-03,n/a,,,\n"
    for interval in (None, "1d"):
        message = _refused(text, "x.csv", interval=interval)
        assert message.startswith("x.csv: none of its 2 row(s) has a price")
        assert "yahoo" not in message.lower()


def test_random_text_says_which_line_does_not_fit_the_header():
    text = b"hello world,foo\nabc,def\nthis is, some, random, text\n"
    message = _refused(text, "notes.csv")
    assert message.startswith("Line 3 of notes.csv has 4 fields, the header has 2: is this a "
                              "CSV of bars with columns Date, Open, High, Low, Close[, Volume]?")
    assert "C error" not in message and "tokenizing" not in message


def test_an_unquoted_thousands_separator_is_refused_not_shifted():
    """With ``usecols`` pandas would drop the surplus field in silence: prices one column off."""
    text = (b"Date,Open,High,Low,Close\n2024-01-02,999,1001,998,1000\n"
            b"2024-01-03,1,000,1002,999,1001\n")
    assert _refused(text, "x.csv").startswith("Line 3 of x.csv has 6 fields, the header has 5")


def test_a_separator_at_the_end_of_each_line_is_fine():
    frame = _daily(10)
    text = frame.to_csv(index=False).replace("\n", ",\n").encode()
    bars = read_bars_file(text, filename="x.csv")
    np.testing.assert_allclose(bars["close"].to_numpy(), frame["Close"].to_numpy())


def test_an_empty_file_says_it_is_empty():
    message = _refused(b"", "AAPL.csv")
    assert message.startswith("AAPL.csv is empty (0 bytes)") and "header row" in message


def test_random_bytes_named_parquet_say_it_is_not_parquet():
    data = np.random.default_rng(7).bytes(4096)
    message = _refused(data, "bars.parquet")
    assert message.startswith("bars.parquet is not a Parquet file")
    assert "magic bytes" not in message and "Export it again" in message


def test_binary_bytes_named_csv_say_it_is_not_text():
    data = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + np.random.default_rng(8).bytes(2048)
    message = _refused(data, "bars.csv")
    assert message.startswith("bars.csv is not UTF-8 text") and "CSV (UTF-8) or Parquet" in message


# ------------------------------------------------------------------ the Data page

def test_the_data_page_shows_these_messages_not_an_unexpected_error(tmp_path, monkeypatch):
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    at.run()
    at.switch_page("pages/data.py").run()
    at.file_uploader(key="upload_file").set_value(
        [("BAD.csv", _with_epoch(1e30), "text/csv")]).run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "outside the supported range" in message and "unexpected" not in message
    at.file_uploader(key="upload_file").set_value(
        [("SAP.csv", _european(_daily(40)), "text/csv")]).run()
    assert not at.exception and not at.error
    assert any("40 1d bars of SAP" in s.value for s in at.success)
