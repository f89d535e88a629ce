"""A CSV or Parquet file as a table: size and row limits, format sniffing, the header rows of
a CSV saved from yfinance, column names mapped to ours, numbers parsed (timestamps:
:mod:`~swing_core.market.file_times`).

:mod:`~swing_core.market.files` turns such a table into validated bars frames.  Column names
are matched in any case, with spaces, underscores, dashes, dots or slashes removed
("Adj Close", "adj_close", "Close/Last"); the aliases are in ``_ALIASES``.

Memory stays bounded by the limits: a file has at most :data:`FILE_MAX_COLUMNS` columns and only
the columns a bars file can use are read (Parquet ``columns=``, CSV ``usecols``), so a table
holds at most ``max_rows`` rows of a few columns.  Numbers may use a dot or a comma for decimals
(:func:`~swing_core.market.file_numbers.decimal_mark` tells which from the file).
"""

from __future__ import annotations

import ast
import codecs
import csv
import io
import os
import re
from pathlib import Path
from typing import IO, Any

import pandas as pd

from swing_core.errors import MarketDataError
from swing_core.market.file_numbers import numbers_from_text, parse_numbers
from swing_core.market.yfinance_frame import pick_ticker_columns

__all__ = [
    "FILE_MAX_COLUMNS",
    "FileSource",
    "flatten_columns",
    "map_columns",
    "parse_numbers",
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
#: Columns a bars file may have: it needs 5 to 8 (a yfinance download of 10 tickers has 60);
#: more are refused before any row is read, so a small, very wide file cannot fill memory.
FILE_MAX_COLUMNS = 64
_USABLE = {alias for aliases in _ALIASES.values() for alias in aliases} | {"price"}
_NUMBER_COLUMNS = {a for k in ("open", "high", "low", "close", "adjclose", "volume")
                   for a in _ALIASES[k]}
_BARS_HINT = "a CSV of bars with columns Date, Open, High, Low, Close[, Volume]"


def _not_text(name: str, where: str) -> MarketDataError:
    return MarketDataError(
        f"{name} is not UTF-8 text (binary data, or another encoding such as UTF-16 or Latin-1, "
        f"{where}): save the bars as CSV (UTF-8) or Parquet.")
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
        "fewer rows (a shorter period or a longer interval such as 1d) or save it as Parquet.")


def _too_many_rows(max_rows: int) -> MarketDataError:
    return MarketDataError(
        f"The file has more than {max_rows:,} rows, the limit. Keep a shorter period or use a "
        "longer interval (1h or 1d).")


def _too_many_columns(name: str, count: int) -> MarketDataError:
    return MarketDataError(
        f"{name} has {count:,} columns; the limit is {FILE_MAX_COLUMNS}. A bars file needs only "
        "Date, Open, High, Low, Close and Volume (and Symbol): remove the other columns, or "
        "split a download of many tickers into files of at most 10 tickers.")


def _detail(exc: BaseException) -> str:
    """The first line of a library's error, short: appended to our message, never the message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= 120 else text[:117] + "..."


def _usable(names: list[Any]) -> list[Any]:
    """The columns a bars file can use (any level of a ``(Price, Ticker)`` name that is one of
    ours, "Price" of a yfinance CSV, a nameless first column that may hold the times)."""
    keep = []
    for position, name in enumerate(names):
        parts: tuple[Any, ...] = (name,)
        if isinstance(name, str) and name.startswith("("):  # a Parquet MultiIndex column
            try:
                parts = tuple(ast.literal_eval(name))
            except (ValueError, SyntaxError, TypeError):
                pass
        nameless = position == 0 and (not str(name).strip() or str(name).startswith("Unnamed"))
        if nameless or any(_canonical(p) in _USABLE for p in parts):
            keep.append(name)
    return keep


def _read_parquet(data: bytes, name: str, max_rows: int) -> pd.DataFrame:
    """The usable columns of a Parquet file: its schema is read first (rows, columns), then only
    those columns (plus the pandas index), so unused columns are never materialised."""
    import pyarrow.parquet as pq  # only for Parquet files: not at every start

    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
        schema = parquet.schema_arrow
    except Exception as exc:
        if data[:4] == b"PAR1" and data[-4:] == b"PAR1":
            raise MarketDataError(f"{name} is a damaged Parquet file (detail: {_detail(exc)}). "
                                  "Export it again, or save it as CSV.") from exc
        text = "" if b"\x00" in data[:4096] else " If it is CSV text, name it .csv."
        raise MarketDataError(
            f"{name} is not a Parquet file (it lacks the Parquet marker at its start and end): "
            f"it may be damaged, cut short or have the wrong extension. Export it again, or save "
            f"it as CSV.{text}") from exc
    if parquet.metadata.num_rows > max_rows:
        raise _too_many_rows(max_rows)
    index_columns = {c for c in (schema.pandas_metadata or {}).get("index_columns", [])
                     if isinstance(c, str)}
    names = [n for n in schema.names if n not in index_columns]
    if len(names) > FILE_MAX_COLUMNS:
        raise _too_many_columns(name, len(names))
    try:
        table = parquet.read(columns=_usable(names), use_pandas_metadata=True).to_pandas()
    except Exception as exc:
        raise MarketDataError(f"Could not read {name} as Parquet (detail: {_detail(exc)}). "
                              "Export it again, or save it as CSV.") from exc
    table.attrs["file_columns"] = names
    return table


def _csv_header(data: bytes, sep: str, name: str) -> list[str]:
    """The header row, after checking every row: more fields than the header is refused (with
    ``usecols`` pandas would drop the surplus silently, shifting the prices), as is a header of
    more than :data:`FILE_MAX_COLUMNS` columns.  Extra fields that are empty (a separator at the
    end of each line) are allowed."""
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=sep, skipinitialspace=True)
    header: list[str] | None = None
    try:
        for row in reader:
            if header is None:
                if not any(field.strip() for field in row):
                    continue
                header = row
                if len(header) > FILE_MAX_COLUMNS:
                    raise _too_many_columns(name, len(header))
            elif len(row) > len(header) and any(f.strip() for f in row[len(header):]):
                raise MarketDataError(
                    f"Line {reader.line_num} of {name} has {len(row)} fields, the header has "
                    f"{len(header)}: is this {_BARS_HINT}? A number holding the separator "
                    f"('{sep}') must be quoted (\"1,234.56\").")
    except csv.Error as exc:
        raise MarketDataError(f"Could not read {name} as CSV (line {reader.line_num}: "
                              f"{_detail(exc)}). Save it as {_BARS_HINT}.") from exc
    except UnicodeDecodeError as exc:  # past the part checked by _read_csv
        raise _not_text(name, f"after line {reader.line_num:,}") from exc
    return header or []


def _read_csv(data: bytes, name: str, ext: str, max_rows: int) -> pd.DataFrame:
    """The usable columns of a CSV/TSV/semicolon file; price and volume columns as text, their
    decimal mark settled by :func:`_settle_numbers`."""
    head = data[:65536]
    try:
        if b"\x00" in head:
            raise UnicodeDecodeError("utf-8", head, head.index(b"\x00"), len(head), "NUL byte")
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as exc:
        raise _not_text(name, f"at byte {exc.start:,}") from exc
    text_head = head[:4096].decode("utf-8-sig", errors="replace")
    first_line = text_head.splitlines()[0] if text_head else ""
    sep = "\t" if ext == ".tsv" or first_line.count("\t") > first_line.count(",") else ","
    if sep == "," and first_line.count(";") > first_line.count(","):
        sep = ";"
    header = _csv_header(data, sep, name)
    options = {"sep": sep, "encoding": "utf-8-sig", "skipinitialspace": True, "index_col": False}
    try:
        names = list(pd.read_csv(io.BytesIO(data), nrows=0, **options).columns)
        usable = _usable(names) or names[:1]  # none usable: keep the rows, say what lacks
        table = pd.read_csv(io.BytesIO(data), nrows=max_rows + 3, usecols=usable,
                            dtype={c: "string[pyarrow]" for c in usable
                                   if _canonical(c) in _NUMBER_COLUMNS}, **options)
    except Exception as exc:
        raise _csv_error(exc, name, len(header)) from exc
    table.attrs["file_columns"] = names
    table = _drop_yfinance_header_rows(table, max_rows)
    return _settle_numbers(table, sep, name)


def _csv_error(exc: Exception, name: str, header_fields: int) -> MarketDataError:
    """pandas' parser error in the user's terms, its text as a short detail."""
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if found:
        return MarketDataError(f"Line {found[2]} of {name} has {found[3]} fields, the header has "
                               f"{header_fields or found[1]}: is this {_BARS_HINT}?")
    found = re.search(r"EOF inside string starting at row (\d+)", str(exc))
    if found:
        return MarketDataError(f"A quote (\") opened on line {int(found[1]) + 1} of {name} is "
                               "never closed: remove it or close it.")
    return MarketDataError(f"Could not read {name} as CSV (detail: {_detail(exc)}). Save it as "
                           f"{_BARS_HINT}, separated by commas.")


def _read_table(data: bytes, filename: str | None, max_rows: int) -> pd.DataFrame:
    ext = Path(filename).suffix.lower() if filename else ""
    name = filename or "the file"
    if ext in _PARQUET_EXT or (ext not in _CSV_EXT and data[:4] == b"PAR1"):
        return _settle_numbers(_read_parquet(data, name, max_rows), None, name)
    return _read_csv(data, name, ext, max_rows)


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


def _settle_numbers(table: pd.DataFrame, sep: str | None, name: str) -> pd.DataFrame:
    """Price and volume columns held as text become float64 (see :func:`numbers_from_text`)."""
    columns = [c for c in table.columns if not isinstance(c, tuple)
               and _canonical(c) in _NUMBER_COLUMNS and not pd.api.types.is_numeric_dtype(table[c])]
    return numbers_from_text(table, columns, sep=sep, name=name) if columns else table


def read_nonempty(data: bytes, filename: str | None, max_rows: int) -> pd.DataFrame:
    """The file's bytes as a table (Parquet, or CSV/TSV/semicolon text), refusing an empty file,
    a file with a header but no rows, more than ``max_rows`` rows or
    :data:`FILE_MAX_COLUMNS` columns."""
    name = filename or "The file"
    if not data:
        raise MarketDataError(f"{name} is empty (0 bytes): export the bars again, a header row "
                              "(Date, Open, High, Low, Close, Volume) and one row per bar.")
    if not data.strip():
        raise MarketDataError(f"{name} holds only blank lines: export the bars again.")
    table = _read_table(data, filename, max_rows)
    if len(table) == 0:
        columns = ", ".join(list(map(str, table.attrs.get("file_columns", table.columns)))[:10])
        raise MarketDataError(f"{name} has a header ({columns}) but no rows of bars: add one row "
                              "per bar below it, or export the bars again.")
    return table


def require_columns(table: pd.DataFrame, cols: dict[str, Any], filename: str | None) -> None:
    """Raise naming the missing price/timestamp columns (Adj Close stands in for a missing
    Close: ``cols`` is updated)."""
    if "close" not in cols and "adjclose" in cols:
        cols["close"] = cols.pop("adjclose")
    missing = [c for c in ("ts", "open", "high", "low", "close") if c not in cols]
    if missing:
        names = {"ts": "a timestamp (Date/Datetime)", "open": "Open", "high": "High",
                 "low": "Low", "close": "Close"}
        found = [str(c) for c in table.attrs.get("file_columns", table.columns)]
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        raise MarketDataError(
            f"{filename or 'The file'} lacks column(s): {', '.join(names[m] for m in missing)} "
            f"(found: {', '.join(found[:10]) or 'none'}{more}). Name them Date/Datetime, Open, "
            "High, Low, Close, Volume.")
