"""The local bar library: the user's real bars (imported files and earlier Yahoo fetches) in the
``bars`` table, as one thing to import into, list, delete from and export.

- :func:`import_bars`: files, folders (recursively) and ``.zip`` archives of CSV/Parquet bars
  (read safely by :mod:`~swing_core.market.import_inputs`).  Each file, and each symbol of a
  file with a Symbol/Ticker column, is validated by
  :func:`~swing_core.market.files.read_bars_file_by_symbol` and stored (``source="file"``) in
  its own transaction: a bad file is reported (:mod:`~swing_core.market.import_report`), never
  stops the others and never leaves rows.
- :func:`list_library`: one row per (symbol, interval) of stored bars.
- :func:`delete_from_library` and :func:`export_bars` (a CSV/Parquet file that
  :func:`~swing_core.market.files.read_bars_file` reads back to the same bars).

Demo bars are never stored (and are left out of the listing), so everything here is real prices.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from swing_core import db
from swing_core.config import INTERVALS, validate_interval
from swing_core.errors import DatabaseError, MarketDataError
from swing_core.market._common import normalize_symbol
from swing_core.market.cache import clear_cache_state
from swing_core.market.file_table import FileSource
from swing_core.market.files import FILE_MAX_BYTES, FILE_MAX_ROWS, read_bars_file_by_symbol
from swing_core.market.import_inputs import (
    ARCHIVE_MAX_BYTES,
    IMPORT_MAX_FILES,
    ImportEntry,
    ImportLimits,
    as_sources,
    iter_entries,
)
from swing_core.market.import_report import (
    ImportedItem,
    ImportProgress,
    ImportReport,
    ReportBuilder,
)
from swing_core.timefmt import file_times

__all__ = [
    "LIBRARY_COLUMNS",
    "delete_from_library",
    "export_bars",
    "import_bars",
    "list_library",
]

log = logging.getLogger(__name__)

#: Columns of :func:`list_library`.
LIBRARY_COLUMNS: tuple[str, ...] = ("symbol", "interval", "bars", "first_ts", "last_ts",
                                    "source", "stored_at")

_DB_SINCE = "Not imported: the database failed on an earlier file ({})"


# --------------------------------------------------------------------------- import


def import_bars(paths_or_files: FileSource | Iterable[FileSource], *, engine: Any,
                symbol: str | None = None, interval: str | None = None,
                max_bytes: int = FILE_MAX_BYTES, max_rows: int = FILE_MAX_ROWS,
                max_files: int = IMPORT_MAX_FILES, max_archive_bytes: int = ARCHIVE_MAX_BYTES,
                progress: ImportProgress | None = None) -> ImportReport:
    """Store bars files in the local bar library (the ``bars`` table, ``source="file"``).

    ``paths_or_files``: one or many of: a CSV/Parquet file path; a folder (its ``*.csv``,
    ``*.txt``, ``*.tsv``, ``*.parquet``, ``*.pq`` files and ``.zip`` archives, recursively;
    hidden files skipped); a ``.zip`` archive of such files; bytes or a file-like object such as
    an upload (an archive when its name ends in ``.zip`` or its bytes start like one).

    Each file is read once (:func:`read_bars_file_by_symbol`): the symbol comes from its
    Symbol/Ticker column, one library entry per symbol, else from the file name; ``symbol``
    labels every single-symbol file with that symbol and picks that symbol from multi-symbol
    files.  ``interval``: inferred per file unless given (finer bars are aggregated to it).
    Existing bars at the same open times are replaced.

    Each series is validated first and written in one transaction, so a bad file is listed in
    ``failed`` with the reason and the others still import; a database failure stops the
    import (the rest are listed as not imported).  Limits: ``max_bytes`` and ``max_rows`` per
    file, ``max_files`` entries per folder or archive, ``max_archive_bytes`` unpacked per
    archive.  ``progress`` is called with each stored or failed item as it happens.  This
    process's fetch times are forgotten afterwards, so the next fetch reads the new bars.

    Raises :class:`MarketDataError` for bad arguments (no input, an invalid ``symbol``),
    :class:`ConfigError` for an unknown ``interval`` and :class:`DatabaseError` when there is
    no database.
    """
    if engine is None:
        raise DatabaseError("The local bar library needs the database, which is unavailable: "
                            "check SWING_DATABASE_URL / SWING_DATA_DIR.")
    wanted = normalize_symbol(symbol) if symbol else None
    if interval is not None:
        validate_interval(interval)
    limits = ImportLimits(max_bytes, max_rows, max_files, max_archive_bytes)
    report = ReportBuilder(progress)
    db_error: DatabaseError | None = None
    for entry in iter_entries(as_sources(paths_or_files), limits, report):
        if db_error is not None:
            report.fail(entry.name, _DB_SINCE.format(db_error))
            continue
        try:
            _import_entry(engine, entry, report, symbol=wanted, interval=interval, limits=limits)
        except DatabaseError as exc:
            db_error = exc
            report.fail(entry.name, str(exc))
    clear_cache_state()
    return report.freeze()


def _import_entry(engine: Any, entry: ImportEntry, report: ReportBuilder, *, symbol: str | None,
                  interval: str | None, limits: ImportLimits) -> None:
    """Read one file and store each of its symbols (one transaction each)."""
    try:
        per_symbol = read_bars_file_by_symbol(entry.load(), filename=entry.filename,
                                              symbol=symbol, interval=interval,
                                              max_bytes=limits.max_bytes,
                                              max_rows=limits.max_rows)
    except MarketDataError as exc:
        report.fail(entry.name, str(exc))
        return
    except Exception as exc:  # pandas/pyarrow raise many types on odd files: report it
        log.warning("Could not read %s", entry.name, exc_info=True)
        report.fail(entry.name, f"Could not read the file ({type(exc).__name__}: {exc}). Save it "
                                "as CSV with Date, Open, High, Low, Close, Volume columns.")
        return
    for name, bars in per_symbol.items():
        if isinstance(bars, MarketDataError):
            report.fail(entry.name, str(bars), symbol=name)
            continue
        bar_interval = bars.attrs["interval"]
        written = db.upsert_bars(engine, name, bar_interval, bars, source="file")
        report.add(ImportedItem(name=entry.name, symbol=name, interval=bar_interval,
                                bars=written, first_ts=bars.index[0], last_ts=bars.index[-1],
                                notes=tuple(bars.attrs.get("notes", ()))))


# --------------------------------------------------------------------------- list, delete


def list_library(engine: Any) -> pd.DataFrame:
    """What the local bar library holds: one row per (symbol, interval) of real bars, by symbol
    then interval (15m … 1d).

    Columns (:data:`LIBRARY_COLUMNS`): ``bars`` (count), ``first_ts`` / ``last_ts`` (UTC open
    times of the first and last bar), ``source`` (where they came from: ``file``, ``yahoo``, or
    several, comma-separated) and ``stored_at`` (UTC time of the latest write).  Demo bars are
    never stored; any found are left out."""
    summary = db.bar_cache_summary(engine)
    real = summary[summary["source"] != "demo"]
    if real.empty:
        empty = pd.DataFrame({c: pd.Series(dtype="object") for c in LIBRARY_COLUMNS})
        for column in ("first_ts", "last_ts", "stored_at"):
            empty[column] = pd.Series(dtype="datetime64[ns, UTC]")
        return empty.astype({"bars": "int64"})
    # one row per source in the summary; a bar has one source, so the counts add up
    table = real.groupby(["symbol", "interval"], sort=False).agg(
        bars=("bars", "sum"), first_ts=("first_ts", "min"), last_ts=("last_ts", "max"),
        source=("source", lambda s: ", ".join(sorted(set(s)))),
        stored_at=("fetched_at", "max"),
    ).reset_index()
    order = {interval: rank for rank, interval in enumerate(INTERVALS)}
    table = table.sort_values(["symbol", "interval"],
                              key=lambda col: col.map(order) if col.name == "interval" else col)
    return table[list(LIBRARY_COLUMNS)].reset_index(drop=True)


def delete_from_library(engine: Any, symbol: str | None, *, interval: str | None = None) -> int:
    """Delete the stored bars of ``symbol`` (None: every symbol; all intervals, or one
    ``interval``), whatever their source, and forget this process's fetch times for them (so
    the next Yahoo fetch starts afresh).  Returns the bars deleted; raises
    :class:`MarketDataError` when there were none."""
    symbol = normalize_symbol(symbol) if symbol is not None else None
    if interval is not None:
        validate_interval(interval)
    deleted = db.delete_bars(engine, symbol=symbol, interval=interval)
    clear_cache_state()
    if deleted == 0 and symbol is None:
        raise MarketDataError("The local bar library is already empty: nothing deleted.")
    if deleted == 0:
        what = f"{interval} bars" if interval else "bars"
        raise MarketDataError(f"The local bar library has no {what} of {symbol}: nothing deleted "
                              "(the Data page or `python -m swing_core data list` shows what it "
                              "holds).")
    return deleted


# --------------------------------------------------------------------------- export


def export_bars(engine: Any, symbol: str, interval: str, path_or_buffer: str | os.PathLike | Any,
                *, fmt: str | None = None) -> int:
    """Write the stored bars of ``symbol``/``interval`` to a CSV or Parquet file (or a binary
    buffer) that :func:`read_bars_file` reads back to the same bars.

    Columns ``Date`` (daily bars: the trading date, ``YYYY-MM-DD``) or ``Datetime`` (intraday:
    the bar OPEN time in New York with its UTC offset, ``2024-03-01T09:30:00-05:00``; a
    tz-aware column in Parquet), then ``Open High Low Close Volume``, oldest first.  Prices are
    as stored (already split/dividend-adjusted when the source was), so there is no Adj Close.
    ``fmt``: "csv" or "parquet"; default from the path's suffix (``.parquet``/``.pq`` →
    Parquet), else CSV.  Returns the bars written; raises :class:`MarketDataError` when the
    library has none or the file cannot be written."""
    symbol = normalize_symbol(symbol)
    validate_interval(interval)
    fmt = _export_format(fmt, path_or_buffer)
    bars = db.load_bars(engine, symbol, interval)
    if len(bars) == 0:
        raise MarketDataError(f"The local bar library has no {interval} bars of {symbol} to "
                              "export: import a file or fetch them first.")
    table = _export_table(bars, interval, text_times=fmt == "csv")
    try:
        if fmt == "csv":
            table.to_csv(path_or_buffer, index=False)
        else:
            table.to_parquet(path_or_buffer, index=False)
    except OSError as exc:
        raise MarketDataError(f"Could not write {path_or_buffer}: {exc.strerror or exc}. Check "
                              "the folder exists and is writable.") from exc
    return len(table)


def _export_format(fmt: str | None, path_or_buffer: Any) -> str:
    if fmt is None:
        suffix = Path(str(path_or_buffer)).suffix.lower() \
            if isinstance(path_or_buffer, str | os.PathLike) else ""
        return "parquet" if suffix in (".parquet", ".pq", ".parq") else "csv"
    if fmt.lower() not in ("csv", "parquet"):
        raise MarketDataError(f"Unknown export format {fmt!r}: choose csv or parquet.")
    return fmt.lower()


def _export_table(bars: pd.DataFrame, interval: str, *, text_times: bool) -> pd.DataFrame:
    """Daily bars are labelled 00:00 UTC on their trading date; intraday ones are UTC open
    times, written as New York time with the offset so the file reads naturally."""
    label = "Date" if interval == "1d" else "Datetime"
    when = file_times(bars.index, interval, text=text_times)
    table = pd.DataFrame({label: when, "Open": bars["open"].to_numpy(),
                          "High": bars["high"].to_numpy(), "Low": bars["low"].to_numpy(),
                          "Close": bars["close"].to_numpy(), "Volume": bars["volume"].to_numpy()})
    return table
