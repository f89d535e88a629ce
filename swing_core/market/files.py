"""The user's own bars: CSV or Parquet files (a path, bytes or a file-like object) read into
validated bars frames, one symbol or each symbol of a file; the interval inferred or settled by
aggregating finer bars; :class:`FileProvider`.

Accepted layouts: one row per bar with a timestamp column (Date, Datetime, timestamp, time, ts,
or separate Date and Time columns, or the Parquet index) and Open, High, Low, Close, optional
Adj Close and Volume, in any case, with spaces, underscores or dashes ("adj_close", "ADJ
CLOSE", "Close/Last" from Nasdaq exports, "$" signs and thousands separators in numbers, a dot or a
comma for decimals: "1,234.56" or "1.234,56").  At most ``FILE_MAX_COLUMNS`` columns; only the
ones a bars file uses are read.
CSV files saved from a yfinance MultiIndex frame (the two extra header rows "Ticker" and
"Datetime") and Parquet files with ``(Price, Ticker)`` columns are understood too.

Time: timestamps with an offset or timezone are converted to UTC; naive ones are taken as New
York time for intraday bars and as dates for daily bars (labelled 00:00 UTC); epoch numbers
(s, ms, us or ns, guessed from their size) are UTC.  The interval is inferred from the median
spacing unless given; bars finer than the requested interval are aggregated to it (intraday
bars anchored at the 09:30 New York open).

A file holding several symbols (a Symbol/Ticker column, several tickers in a yfinance Parquet):
:func:`read_bars_file` picks one (``symbol=``); :func:`read_bars_file_by_symbol` reads them all.

Reading the file into a table (limits, format, column names, numbers) is
:mod:`~swing_core.market.file_table` (numbers: :mod:`~swing_core.market.file_numbers`),
timestamps :mod:`~swing_core.market.file_times`.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from swing_core.config import EXCHANGE_TZ, INTERVAL_DELTA, INTERVALS, validate_interval
from swing_core.errors import MarketDataError
from swing_core.market._common import label, last_bar_complete, normalize_symbol
from swing_core.market.file_table import (
    FILE_MAX_COLUMNS,
    FileSource,
    flatten_columns,
    map_columns,
    parse_numbers,
    read_limited,
    read_nonempty,
    require_columns,
)
from swing_core.market.file_times import parse_times
from swing_core.market.validate import validate_bars

__all__ = [
    "FILE_MAX_BYTES",
    "FILE_MAX_COLUMNS",
    "FILE_MAX_ROWS",
    "PARSED_CACHE_BYTES",
    "PARSED_CACHE_ENTRIES",
    "FileProvider",
    "clear_parsed_cache",
    "infer_interval",
    "read_bars_file",
    "read_bars_file_by_symbol",
    "resample_bars",
]

#: Defaults of the upload limits (the upload page passes its own).
FILE_MAX_BYTES = 50 * 1024 * 1024
FILE_MAX_ROWS = 1_000_000

#: Parsed files :func:`read_bars_file` keeps per process (least recently used first out), and
#: the bytes of bars they may hold in all (a larger frame is parsed every time, never kept).
PARSED_CACHE_ENTRIES = 4
PARSED_CACHE_BYTES = 64 * 1024 * 1024
_parsed: OrderedDict[tuple[Any, ...], pd.DataFrame] = OrderedDict()
_parsed_lock = threading.Lock()


def infer_interval(index: pd.DatetimeIndex) -> str:
    """The supported interval nearest the median spacing of ``index`` (raises if none fits)."""
    diffs = np.diff(np.unique(index.asi8))
    if len(diffs) == 0:
        raise MarketDataError("One bar is not enough to tell the interval: pass the interval.")
    median = pd.Timedelta(int(np.median(diffs)))
    for interval in INTERVALS:
        delta = INTERVAL_DELTA[interval]
        upper = pd.Timedelta(days=4) if interval == "1d" else delta * 1.25
        if delta * 0.8 <= median <= upper:
            return interval
    finer = median < INTERVAL_DELTA["15m"]
    raise MarketDataError(
        f"The bars are {median} apart; SwingDesk works with {', '.join(INTERVALS)}. "
        + ("Pass interval='15m' (or longer) to aggregate them." if finer
           else "Weekly or monthly bars are not supported: use daily bars.")
    )


def _to_utc(index: pd.DatetimeIndex, interval: str, notes: list[str]) -> pd.DatetimeIndex:
    if interval == "1d":
        local = index.tz_localize(None) if index.tz is not None else index
        return local.normalize().tz_localize("UTC")
    if index.tz is not None:
        return index.tz_convert("UTC")
    notes.append(f"Timestamps without a timezone were taken as {EXCHANGE_TZ} time.")
    return index.tz_localize(EXCHANGE_TZ, ambiguous="NaT", nonexistent="shift_forward"
                             ).tz_convert("UTC")


def resample_bars(bars: pd.DataFrame, interval: str) -> pd.DataFrame:
    """Aggregate a finer bars frame (UTC index) to ``interval``: open first, high max, low min,
    close last, volume sum.  Intraday buckets start at 09:30 New York; daily bars group by the
    New York date (labelled 00:00 UTC)."""
    local = bars.index.tz_convert(EXCHANGE_TZ)
    midnight = local.normalize()
    if interval == "1d":
        keys = midnight.tz_localize(None).tz_localize("UTC")
    else:
        step = INTERVAL_DELTA[interval]
        since_open = local - (midnight + pd.Timedelta(hours=9, minutes=30))
        keys = (midnight + pd.Timedelta(hours=9, minutes=30) + (since_open // step) * step
                ).tz_convert("UTC")
    grouped = bars.groupby(keys, sort=True)
    out = pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                        "low": grouped["low"].min(), "close": grouped["close"].last(),
                        "volume": grouped["volume"].sum()})
    out.index = pd.DatetimeIndex(out.index, name="ts")
    return out


def read_bars_file(source: FileSource, *, filename: str | None = None,
                   symbol: str | None = None, interval: str | None = None,
                   max_bytes: int = FILE_MAX_BYTES, max_rows: int = FILE_MAX_ROWS,
                   adjust: bool = True) -> pd.DataFrame:
    """Read a CSV or Parquet bars file into a validated bars frame (``source == "file"``).

    ``source``: a path, bytes, or a binary/text file-like object (e.g. Streamlit's
    ``UploadedFile``); ``filename`` tells the format when the source has no name (``.csv``,
    ``.txt``, ``.tsv``, ``.parquet``, ``.pq``; otherwise sniffed).  ``symbol``: the symbol to
    label the bars with (and to pick when the file has a Symbol/Ticker column); default from the
    file name.  ``interval``: default inferred from the median spacing; when the file is finer,
    bars are aggregated.  ``adjust``: scale open/high/low/close by ``Adj Close / Close`` when the
    file has an Adj Close column (as yfinance's ``auto_adjust=True`` does).  Files over
    ``max_bytes`` or ``max_rows`` are refused with a message saying so.
    """
    data, filename = read_limited(source, filename, max_bytes)
    # the same bytes read the same way give the same bars: parsed once per process. Keyed by
    # the content (a 128-bit BLAKE2b digest, ~0.1 ms per 100 KB against ~5-40 ms of parsing),
    # not by path and mtime: a file changed in place, even within the mtime's resolution, is
    # parsed again, and an upload re-sent on every page rerun is not.
    key = (hashlib.blake2b(data, digest_size=16).digest(), len(data), filename, symbol,
           interval, max_rows, adjust)
    with _parsed_lock:
        cached = _parsed.get(key)
        if cached is not None:
            _parsed.move_to_end(key)
            bars = cached.copy()  # a caller may change its frame (and attrs); never ours
    if cached is not None:  # the one attr that depends on the clock: as of now, as parsed
        bars.attrs["last_bar_complete"] = last_bar_complete(bars.index, bars.attrs["interval"])
        return bars
    table = read_nonempty(data, filename, max_rows)
    bars = _bars_from_table(table, filename=filename, symbol=symbol, interval=interval,
                            adjust=adjust)
    _keep_parsed(key, bars.copy())
    return bars


def _keep_parsed(key: tuple[Any, ...], bars: pd.DataFrame) -> None:
    size = int(bars.memory_usage(index=True, deep=False).sum())
    if size > PARSED_CACHE_BYTES:
        return
    with _parsed_lock:
        _parsed[key] = bars
        while len(_parsed) > PARSED_CACHE_ENTRIES or sum(
                int(f.memory_usage(index=True, deep=False).sum()) for f in _parsed.values()
        ) > PARSED_CACHE_BYTES:
            _parsed.popitem(last=False)


def clear_parsed_cache() -> None:
    """Forget every parsed file (tests; memory)."""
    with _parsed_lock:
        _parsed.clear()


def read_bars_file_by_symbol(source: FileSource, *, filename: str | None = None,
                             symbol: str | None = None, interval: str | None = None,
                             max_bytes: int = FILE_MAX_BYTES, max_rows: int = FILE_MAX_ROWS,
                             adjust: bool = True) -> dict[str, pd.DataFrame | MarketDataError]:
    """:func:`read_bars_file` for a file that may hold several symbols (a Symbol/Ticker column,
    or the ticker level of a yfinance ``(Price, Ticker)`` Parquet): the file is read once and
    each symbol's rows become one validated bars frame.

    Returns ``{symbol: bars}`` in file order; a symbol whose rows are unusable (an invalid
    ticker, blank symbol cells, bad prices) maps to the :class:`MarketDataError` saying why, so
    one bad symbol does not hide the others.  A file naming at most one symbol gives one entry
    (the symbol from ``symbol``, the file or its name), exactly as :func:`read_bars_file`;
    ``symbol`` given: only that symbol's rows.  Problems of the whole file (unreadable, too big,
    missing columns, ``symbol`` not in it) raise :class:`MarketDataError`.
    """
    data, filename = read_limited(source, filename, max_bytes)
    table = read_nonempty(data, filename, max_rows)
    groups = None if symbol else _symbol_groups(table, filename)
    if groups is None:
        bars = _bars_from_table(table, filename=filename, symbol=symbol, interval=interval,
                                adjust=adjust)
        return {bars.attrs["symbol"]: bars}
    out: dict[str, pd.DataFrame | MarketDataError] = {}
    for name, part in groups:
        try:
            if not name:
                raise MarketDataError(f"{len(part):,} row(s) have no symbol: fill in the "
                                      "Symbol/Ticker column.")
            bars = _bars_from_table(part, filename=filename, symbol=name, interval=interval,
                                    adjust=adjust)
        except MarketDataError as exc:
            out[name or "(no symbol)"] = exc
        else:
            out[bars.attrs["symbol"]] = bars
    return out


def _symbol_groups(table: pd.DataFrame, filename: str | None
                   ) -> list[tuple[str, pd.DataFrame]] | None:
    """The table's rows per symbol (upper-cased, blank for a missing cell) when it names more
    than one; None when it names at most one."""
    if isinstance(table.columns, pd.MultiIndex):
        tickers = _multiindex_tickers(table)
        # each ticker's columns are picked from the whole table by flatten_columns
        return [(t, table) for t in tickers] if len(tickers) > 1 else None
    flat = flatten_columns(table, None)
    cols = map_columns(flat)
    column = cols.get("symbol")
    if column is None:
        return None
    require_columns(flat, cols, filename)  # once for the file, not once per symbol
    values = flat[column].where(flat[column].notna(), "").astype(str).str.strip().str.upper()
    if values.nunique() <= 1:
        return None
    return [(str(name), part) for name, part in flat.groupby(values, sort=False)]


def _multiindex_tickers(table: pd.DataFrame) -> list[str]:
    """The tickers of yfinance-style ``(Price, Ticker)`` columns (the level without "Close")."""
    levels = range(table.columns.nlevels)
    names = [str(n).lower() for n in table.columns.names]
    if "ticker" in names:
        ticker_level = names.index("ticker")
    else:
        ticker_level = next((i for i in levels if "close" not in
                             {str(v).lower() for v in table.columns.get_level_values(i)}), None)
        if ticker_level is None:
            return []
    values = table.columns.get_level_values(ticker_level)
    return list(dict.fromkeys(str(v).strip().upper() for v in values))


def _bars_from_table(table: pd.DataFrame, *, filename: str | None, symbol: str | None,
                     interval: str | None, adjust: bool) -> pd.DataFrame:
    """The body of :func:`read_bars_file` once the file is a table."""
    table = flatten_columns(table, symbol)
    cols = map_columns(table)
    notes: list[str] = list(table.attrs.get("notes", ()))  # what reading the file noticed
    wanted = normalize_symbol(symbol) if symbol else None
    if "symbol" in cols:
        table, wanted = _pick_symbol(table, cols["symbol"], wanted)
    symbol = wanted or _symbol_from_name(filename)
    require_columns(table, cols, filename)
    frame = pd.DataFrame({c: parse_numbers(table[cols[c]])
                          for c in ("open", "high", "low", "close")})
    if "volume" in cols:
        frame["volume"] = parse_numbers(table[cols["volume"]])
    else:
        frame["volume"] = 0.0
        notes.append("The file has no Volume column; volume set to 0.")
    if adjust and "adjclose" in cols:
        factor = (parse_numbers(table[cols["adjclose"]]) / frame["close"]).to_numpy()
        for c in ("open", "high", "low", "close"):
            frame[c] = frame[c] * factor
        notes.append("Prices adjusted for splits/dividends with the Adj Close column.")
    times = parse_times(table, cols)
    frame.index = times
    empty = frame[["open", "high", "low", "close"]].isna().all(axis=1).to_numpy()
    if empty.all():
        raise MarketDataError(f"{filename or 'The file'}: none of its {len(frame):,} row(s) has "
                              "a price that reads as a number in Open, High, Low or Close: fill "
                              "them in, or export the bars again.")
    if empty.any():
        notes.append(f"Skipped {int(empty.sum())} row(s) without prices.")
        frame = frame[~empty]
    frame, interval = _shape(frame, interval, notes)
    frame = validate_bars(frame, symbol=symbol, interval=interval)
    frame = label(frame, symbol=symbol, interval=interval, source="file", notes=notes)
    frame.attrs["filename"] = filename
    return frame


def _shape(frame: pd.DataFrame, interval: str | None, notes: list[str]
           ) -> tuple[pd.DataFrame, str]:
    """Sort, drop duplicate timestamps, settle the interval (aggregating finer bars), to UTC."""
    if not frame.index.is_monotonic_increasing:
        frame = frame.sort_index(kind="stable")
        notes.append("Rows were not in time order; sorted them.")
    if frame.index.has_duplicates:
        dups = int(frame.index.duplicated(keep="last").sum())
        frame = frame[~frame.index.duplicated(keep="last")]
        notes.append(f"{dups} duplicate timestamp(s); kept the last row of each.")
    if interval is not None:
        validate_interval(interval)
    diffs = np.diff(frame.index.asi8)
    finer = len(diffs) > 0 and pd.Timedelta(int(np.median(diffs))) < INTERVAL_DELTA["15m"] * 0.8
    if finer and interval is not None:
        found = None  # finer than 15m: aggregate to the interval asked for
    elif len(diffs) == 0 and interval is not None:
        found = interval
    else:
        found = infer_interval(frame.index)
    interval = interval or found
    if found is not None and INTERVAL_DELTA[found] > INTERVAL_DELTA[interval]:
        raise MarketDataError(
            f"The file has {found} bars but {interval} was asked for; choose {found} or a "
            "longer interval."
        )
    utc_kind = found if found == "1d" else "15m"
    frame.index = _to_utc(pd.DatetimeIndex(frame.index), utc_kind, notes)
    frame.index.name = "ts"
    if found != interval:
        frame = resample_bars(frame, interval)
        notes.append(f"Aggregated {found or 'finer'} bars to {interval}.")
    dropped = frame.index.isna()
    if dropped.any():
        frame = frame[~dropped]
        notes.append(f"Dropped {int(dropped.sum())} bar(s) at a daylight-saving change.")
    return frame, interval


def _symbol_from_name(filename: str | None) -> str:
    stem = Path(filename).stem if filename else ""
    token = re.split(r"[_\s]+", stem)[0] if stem else ""
    try:
        return normalize_symbol(token)
    except MarketDataError:
        return "FILE"


def _pick_symbol(table: pd.DataFrame, column: Any, symbol: str | None
                 ) -> tuple[pd.DataFrame, str | None]:
    """Keep the rows of ``symbol`` when the file has a Symbol/Ticker column."""
    values = table[column].astype(str).str.strip().str.upper()
    present = list(dict.fromkeys(values))
    if len(present) == 1:
        return table, symbol or normalize_symbol(present[0])
    if symbol in present:
        return table[values == symbol], symbol
    raise MarketDataError(
        f"The file holds several symbols ({', '.join(present[:10])}); pick one of them as the "
        "symbol."
    )


class FileProvider:
    """Provider over one file (see :func:`read_bars_file`); never cached in the DB, parsed once
    per process for the same bytes and arguments (:func:`read_bars_file`'s cache).

    ``fetch(symbol, interval, lookback_days=None)`` returns the whole file, or its last
    ``lookback_days`` calendar days counted back from its last bar.
    """

    name = "file"
    cacheable = False

    def __init__(self, source: FileSource, *, filename: str | None = None,
                 max_bytes: int = FILE_MAX_BYTES, max_rows: int = FILE_MAX_ROWS,
                 adjust: bool = True) -> None:
        data, self.filename = read_limited(source, filename, max_bytes)
        self._data = data
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.adjust = adjust

    def fetch(self, symbol: str, interval: str | None, *, lookback_days: int | None = None,
              now: pd.Timestamp | None = None) -> pd.DataFrame:
        frame = read_bars_file(self._data, filename=self.filename, symbol=symbol,
                               interval=interval, max_bytes=self.max_bytes,
                               max_rows=self.max_rows, adjust=self.adjust)
        if lookback_days:
            attrs = dict(frame.attrs)
            frame = frame.loc[frame.index >= frame.index[-1] - pd.Timedelta(days=lookback_days)]
            frame.attrs.update(attrs)
        return frame
