"""A CSV or Parquet file as a table: size and row limits, format sniffing, the header rows of
a CSV saved from yfinance, column names mapped to ours, numbers and timestamps parsed.

:mod:`~swing_core.market.files` turns such a table into validated bars frames.  Column names
are matched in any case, with spaces, underscores, dashes, dots or slashes removed
("Adj Close", "adj_close", "Close/Last"); the aliases are in ``_ALIASES``.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from swing_core.errors import MarketDataError
from swing_core.market.yfinance_frame import pick_ticker_columns

__all__ = [
    "FileSource",
    "flatten_columns",
    "map_columns",
    "parse_numbers",
    "parse_times",
    "read_limited",
    "read_nonempty",
    "require_columns",
]

FileSource = str | os.PathLike | bytes | bytearray | memoryview | IO[bytes] | IO[str]

_ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("datetime", "timestamp", "date", "time", "ts", "dt", "datetimeutc", "timestamputc",
           "datetimeet", "dateandtime", "day"),
    "open": ("open", "o", "openprice", "opening"),
    "high": ("high", "h", "highprice", "max"),
    "low": ("low", "l", "lowprice", "min"),
    "close": ("close", "c", "closelast", "last", "closeprice", "closing"),
    "adjclose": ("adjclose", "adjustedclose", "adjclosing", "closeadj", "closeadjusted"),
    "volume": ("volume", "vol", "v", "qty", "quantity"),
    "symbol": ("symbol", "ticker"),
}
_PARQUET_EXT = (".parquet", ".pq", ".parq")
_CSV_EXT = (".csv", ".txt", ".tsv")


def _canonical(name: Any) -> str:
    return re.sub(r"[\s_\-./*()]+", "", str(name)).lower()


def read_limited(source: FileSource, filename: str | None, max_bytes: int
                 ) -> tuple[bytes, str | None]:
    """The file's bytes (refusing more than ``max_bytes``) and its name."""
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.is_file():
            raise MarketDataError(f"File not found: {path}. Check the path or upload the file.")
        size = path.stat().st_size
        if size > max_bytes:
            raise _too_big(size, max_bytes)
        return path.read_bytes(), filename or path.name
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(max_bytes + 1)
        if isinstance(data, str):
            data = data.encode("utf-8")
        filename = filename or getattr(source, "name", None)
    else:
        raise MarketDataError(f"Cannot read bars from a {type(source).__name__}: give a path, "
                              "bytes or an uploaded file.")
    if len(data) > max_bytes:
        raise _too_big(len(data), max_bytes)
    return data, (str(filename) if filename else None)


def _too_big(size: int, max_bytes: int) -> MarketDataError:
    return MarketDataError(
        f"The file is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.1f} MB. Keep "
        "fewer rows (a shorter period or a longer interval such as 1d) or save it as Parquet."
    )


def _too_many_rows(max_rows: int) -> MarketDataError:
    return MarketDataError(
        f"The file has more than {max_rows:,} rows, the limit. Keep a shorter period or use a "
        "longer interval (1h or 1d)."
    )


def _read_table(data: bytes, filename: str | None, max_rows: int) -> pd.DataFrame:
    ext = Path(filename).suffix.lower() if filename else ""
    is_parquet = ext in _PARQUET_EXT or (ext not in _CSV_EXT and data[:4] == b"PAR1")
    if is_parquet:
        try:
            parquet = pq.ParquetFile(io.BytesIO(data))
            if parquet.metadata.num_rows > max_rows:
                raise _too_many_rows(max_rows)
            return parquet.read().to_pandas()
        except MarketDataError:
            raise
        except Exception as exc:
            raise MarketDataError(f"Could not read {filename or 'the file'} as Parquet: {exc}. "
                                  "Export it again, or as CSV.") from exc
    text_head = data[:4096].decode("utf-8-sig", errors="replace")
    first_line = text_head.splitlines()[0] if text_head else ""
    sep = "\t" if ext == ".tsv" or first_line.count("\t") > first_line.count(",") else ","
    if sep == "," and first_line.count(";") > first_line.count(","):
        sep = ";"
    try:
        table = pd.read_csv(io.BytesIO(data), sep=sep, nrows=max_rows + 3, encoding="utf-8-sig",
                            skipinitialspace=True)
    except Exception as exc:
        raise MarketDataError(f"Could not read {filename or 'the file'} as CSV: {exc}. Save it "
                              "as comma-separated text with a header row.") from exc
    return _drop_yfinance_header_rows(table, max_rows)


def _drop_yfinance_header_rows(table: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    """CSV written from a yfinance MultiIndex frame: ``Price,Close,…`` then ``Ticker,AAPL,…``
    then ``Datetime,,,…`` before the data."""
    if len(table.columns) and _canonical(table.columns[0]) == "price" and len(table):
        drop = 0
        if _canonical(table.iloc[0, 0]) == "ticker":
            drop = 1
            if len(table) > 1 and _canonical(table.iloc[1, 0]) in _ALIASES["ts"] \
                    and table.iloc[1, 1:].isna().all():
                drop = 2
        table = table.iloc[drop:].rename(columns={table.columns[0]: "ts"})
    if len(table) > max_rows:
        raise _too_many_rows(max_rows)
    return table.reset_index(drop=True)


def flatten_columns(table: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
    """Parquet specifics: MultiIndex columns and a timestamp index become plain columns."""
    if isinstance(table.columns, pd.MultiIndex):
        table = pick_ticker_columns(table, symbol or "")
    if isinstance(table.index, pd.DatetimeIndex) or _canonical(table.index.name) in _ALIASES["ts"]:
        table = table.reset_index(names="ts" if table.index.name is None else None)
    return table


def map_columns(table: pd.DataFrame) -> dict[str, Any]:
    """Our column name -> the file's column (first match by alias order)."""
    by_canon: dict[str, Any] = {}
    for col in table.columns:
        by_canon.setdefault(_canonical(col), col)
    found: dict[str, Any] = {}
    for ours, aliases in _ALIASES.items():
        for alias in aliases:
            if alias in by_canon and by_canon[alias] not in found.values():
                found[ours] = by_canon[alias]
                break
    if "ts" not in found and len(table.columns) and str(table.columns[0]).startswith("Unnamed"):
        found["ts"] = table.columns[0]
    return found


def parse_numbers(column: pd.Series) -> pd.Series:
    """A price or volume column as float64 ("$" signs, thousands separators and blanks allowed;
    anything else unreadable becomes NaN)."""
    if column.dtype == object:
        column = column.astype(str).str.replace(r"[$,\s]", "", regex=True).replace("", np.nan)
    return pd.to_numeric(column, errors="coerce").astype("float64")


def parse_times(table: pd.DataFrame, cols: dict[str, Any]) -> pd.DatetimeIndex:
    """The timestamp column ``cols["ts"]`` (joined with a separate Time column) as a
    DatetimeIndex: UTC when the text has an offset or zone or the values are epoch numbers
    (s/ms/us/ns guessed from their size), else naive.  Raises naming unreadable rows."""
    raw = table[cols["ts"]]
    # separate Date and Time columns
    time_col = next((c for c in table.columns if _canonical(c) == "time" and c != cols["ts"]),
                    None)
    if time_col is not None and _canonical(cols["ts"]) == "date":
        raw = raw.astype(str) + " " + table[time_col].astype(str)
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.astype("float64")
        magnitude = float(np.nanmedian(np.abs(values))) if len(values) else 0.0
        unit = "ns" if magnitude > 1e17 else "us" if magnitude > 1e14 else \
            "ms" if magnitude > 1e11 else "s"
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True, errors="coerce"))
    text = raw.astype(str).str.strip()
    # any offset or zone suffix: parse everything as UTC (mixed -05:00/-04:00 across DST)
    aware = bool(text.str.contains(r"(?:[+-]\d\d:?\d\d|Z|UTC|GMT)$", regex=True).any())
    try:
        parsed = pd.to_datetime(text, errors="raise", utc=aware)
    except (ValueError, TypeError):
        parsed = pd.to_datetime(text, errors="coerce", utc=aware, format="mixed")
    index = pd.DatetimeIndex(parsed)
    if index.hasnans:
        bad = np.flatnonzero(index.isna())
        shown = ", ".join(f"row {i + 2}: {raw.iloc[i]!r}" for i in bad[:3])
        raise MarketDataError(f"Could not read {len(bad)} timestamp(s) ({shown}); use a format "
                              "like 2024-03-01 09:30 or 2024-03-01T09:30:00-05:00.")
    return index


def read_nonempty(data: bytes, filename: str | None, max_rows: int) -> pd.DataFrame:
    """The file's bytes as a table (Parquet, or CSV/TSV/semicolon text), refusing an empty file
    and more than ``max_rows`` rows."""
    if not data.strip():
        raise MarketDataError(f"{filename or 'The file'} is empty.")
    return _read_table(data, filename, max_rows)


def require_columns(table: pd.DataFrame, cols: dict[str, Any], filename: str | None) -> None:
    """Raise naming the missing price/timestamp columns (Adj Close stands in for a missing
    Close: ``cols`` is updated)."""
    if "close" not in cols and "adjclose" in cols:
        cols["close"] = cols.pop("adjclose")
    missing = [c for c in ("ts", "open", "high", "low", "close") if c not in cols]
    if missing:
        names = {"ts": "a timestamp (Date/Datetime)", "open": "Open", "high": "High",
                 "low": "Low", "close": "Close"}
        raise MarketDataError(
            f"{filename or 'The file'} lacks column(s): {', '.join(names[m] for m in missing)} "
            f"(found: {', '.join(map(str, table.columns))}). Name them Date/Datetime, Open, High, "
            "Low, Close, Volume."
        )
