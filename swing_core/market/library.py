"""The local bar library: the user's real bars (imported files and earlier Yahoo fetches) in the
``bars`` table, as one thing to import into, list, delete from and export.

- :func:`import_bars`: files, folders (recursively) and ``.zip`` archives of CSV/Parquet bars.
  Each file, and each symbol of a file with a Symbol/Ticker column, is validated by
  :func:`~swing_core.market.files.read_bars_file_by_symbol` and stored (``source="file"``) in
  its own transaction: a bad file is reported, never stops the others and never leaves rows.
- :func:`list_library`: one row per (symbol, interval) of stored bars.
- :func:`delete_from_library` and :func:`export_bars` (a CSV/Parquet file that
  :func:`~swing_core.market.files.read_bars_file` reads back to the same bars).

Demo bars are never stored (and are left out of the listing), so everything here is real prices.
Archives are read in memory, member by member: at most ``max_files`` entries and
``max_archive_bytes`` unpacked in total, so a zip bomb stops at a limit instead of filling memory.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd

from swing_core import db
from swing_core.config import INTERVALS, validate_interval
from swing_core.errors import DatabaseError, MarketDataError
from swing_core.market._common import normalize_symbol
from swing_core.market.fetch import clear_cache_state
from swing_core.market.files import (
    FILE_MAX_BYTES,
    FILE_MAX_ROWS,
    FileSource,
    read_bars_file_by_symbol,
)
from swing_core.timefmt import file_times

log = logging.getLogger(__name__)

#: File names imported from a folder or an archive; other files there are skipped.
BAR_FILE_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv", ".parquet", ".pq", ".parq")
#: At most this many entries in one archive, or bar files in one folder.
IMPORT_MAX_FILES = 5_000
#: At most this many bytes unpacked from one archive, all members together.
ARCHIVE_MAX_BYTES = 1024**3

#: Columns of :func:`list_library`.
LIBRARY_COLUMNS: tuple[str, ...] = ("symbol", "interval", "bars", "first_ts", "last_ts",
                                    "source", "stored_at")

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_DB_SINCE = "Not imported: the database failed on an earlier file ({})"

ImportProgress = Callable[["ImportedItem | FailedItem"], None]


@dataclass(frozen=True)
class ImportedItem:
    """One series stored: ``name`` the file (``archive.zip/member`` inside an archive), the
    ``symbol`` and ``interval`` it is stored under, ``bars`` written, ``first_ts`` / ``last_ts``
    the UTC open times of its first and last bar, and what the reader noticed (``notes``)."""

    name: str
    symbol: str
    interval: str
    bars: int
    first_ts: pd.Timestamp
    last_ts: pd.Timestamp
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class FailedItem:
    """A file, or one ``symbol`` of a multi-symbol file, not stored; ``error`` says why and what
    to do about it."""

    name: str
    error: str
    symbol: str | None = None


@dataclass(frozen=True)
class ImportReport:
    """What :func:`import_bars` did: the series stored, the failures, and the files ``skipped``
    in folders and archives because they are not CSV/Parquet."""

    imported: tuple[ImportedItem, ...] = ()
    failed: tuple[FailedItem, ...] = ()
    skipped: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """At least one series was stored."""
        return bool(self.imported)

    @property
    def bars(self) -> int:
        """Bars written, all series together."""
        return sum(item.bars for item in self.imported)

    def summary(self) -> str:
        """One line, e.g. ``Imported 31 series (75,432 bars) from 30 file(s); 1 failed.``"""
        files = len({item.name for item in self.imported})
        text = (f"Imported {len(self.imported):,} series ({self.bars:,} bars) from {files:,} "
                "file(s)")
        if self.failed:
            text += f"; {len(self.failed):,} failed"
        if self.skipped:
            text += f"; {len(self.skipped):,} skipped (not CSV/Parquet)"
        return text + "."

    def to_frame(self) -> pd.DataFrame:
        """One row per item: ``file symbol interval bars first_ts last_ts error`` (``error``
        empty for the stored ones), stored ones first."""
        rows: list[dict[str, Any]] = [
            {"file": i.name, "symbol": i.symbol, "interval": i.interval, "bars": i.bars,
             "first_ts": i.first_ts, "last_ts": i.last_ts, "error": ""} for i in self.imported]
        rows += [{"file": f.name, "symbol": f.symbol, "interval": None, "bars": 0,
                  "first_ts": pd.NaT, "last_ts": pd.NaT, "error": f.error} for f in self.failed]
        columns = ["file", "symbol", "interval", "bars", "first_ts", "last_ts", "error"]
        frame = pd.DataFrame(rows, columns=columns)
        for column in ("first_ts", "last_ts"):
            frame[column] = pd.to_datetime(frame[column], utc=True)
        return frame.astype({"bars": "int64"})


@dataclass(frozen=True)
class _Limits:
    max_bytes: int
    max_rows: int
    max_files: int
    max_archive_bytes: int


@dataclass
class _Builder:
    """The report as it grows (and the progress callback told of every item)."""

    progress: ImportProgress | None = None
    imported: list[ImportedItem] = field(default_factory=list)
    failed: list[FailedItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def add(self, item: ImportedItem) -> None:
        self.imported.append(item)
        if self.progress is not None:
            self.progress(item)

    def fail(self, name: str, error: str, symbol: str | None = None) -> None:
        item = FailedItem(name=name, error=error, symbol=symbol)
        self.failed.append(item)
        if self.progress is not None:
            self.progress(item)

    def freeze(self) -> ImportReport:
        return ImportReport(tuple(self.imported), tuple(self.failed), tuple(self.skipped))


@dataclass(frozen=True)
class _Entry:
    """One file to read: ``name`` for the report, ``filename`` for the reader (format and the
    default symbol), ``load`` gives its path or bytes (archive members are unpacked late)."""

    name: str
    filename: str
    load: Callable[[], FileSource]


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
    limits = _Limits(max_bytes, max_rows, max_files, max_archive_bytes)
    report = _Builder(progress)
    db_error: DatabaseError | None = None
    for entry in _entries(_as_sources(paths_or_files), limits, report):
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


def _import_entry(engine: Any, entry: _Entry, report: _Builder, *, symbol: str | None,
                  interval: str | None, limits: _Limits) -> None:
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


def _as_sources(paths_or_files: FileSource | Iterable[FileSource]) -> list[FileSource]:
    single = (str, os.PathLike, bytes, bytearray, memoryview)
    if isinstance(paths_or_files, single) or hasattr(paths_or_files, "read"):
        sources: list[FileSource] = [paths_or_files]  # type: ignore[list-item]
    else:
        sources = list(paths_or_files)
    if not sources:
        raise MarketDataError("Nothing to import: give CSV/Parquet files, folders of them or "
                              ".zip archives.")
    return sources


def _entries(sources: list[FileSource], limits: _Limits, report: _Builder) -> Iterator[_Entry]:
    """The files to read, in order; problems with an input as a whole are reported here."""
    for number, source in enumerate(sources, start=1):
        if isinstance(source, str | os.PathLike):
            yield from _path_entries(Path(source), limits, report)
            continue
        name = str(getattr(source, "name", "") or "") or (
            "upload" if len(sources) == 1 else f"upload {number}")
        try:
            data = _read_upload(source, limits)
        except MarketDataError as exc:
            report.fail(name, str(exc))
            continue
        if _looks_like_zip(name, data):
            yield from _archive_entries(io.BytesIO(data), name, limits, report)
        else:
            yield _Entry(name, PurePosixPath(name).name, lambda data=data: data)


def _read_upload(source: FileSource, limits: _Limits) -> bytes:
    if isinstance(source, bytes | bytearray | memoryview):
        return bytes(source)
    if not hasattr(source, "read"):
        raise MarketDataError(f"Cannot import a {type(source).__name__}: give a path, bytes or "
                              "an uploaded file.")
    # an archive may be larger than one file; read_bars_file_by_symbol refuses big files later
    data = source.read(max(limits.max_bytes, limits.max_archive_bytes) + 1)
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def _looks_like_zip(name: str, data: bytes) -> bool:
    suffix = PurePosixPath(name).suffix.lower()
    return suffix == ".zip" or (suffix not in BAR_FILE_SUFFIXES and data[:4] in _ZIP_MAGIC)


def _path_entries(path: Path, limits: _Limits, report: _Builder) -> Iterator[_Entry]:
    if path.is_dir():
        yield from _folder_entries(path, limits, report)
    elif path.suffix.lower() == ".zip" and path.is_file():
        yield from _archive_entries(path, str(path), limits, report)
    elif path.is_file():
        yield _Entry(str(path), path.name, lambda: path)
    else:
        report.fail(str(path), "No such file or folder: check the path (a CSV/Parquet file, a "
                               "folder or a .zip archive).")


def _folder_entries(folder: Path, limits: _Limits, report: _Builder) -> Iterator[_Entry]:
    """The folder's bar files and archives, recursively, sorted; hidden ones skipped silently,
    other files listed as skipped.  Symlinked folders are not followed (no loops)."""
    found: list[Path] = []
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for file_name in sorted(names):
            if file_name.startswith("."):
                continue
            path = Path(root, file_name)
            if path.suffix.lower() in (*BAR_FILE_SUFFIXES, ".zip"):
                found.append(path)
            else:
                report.skipped.append(str(path))
        if len(found) > limits.max_files:
            report.fail(str(folder), f"{folder} holds more than {limits.max_files:,} bar files, "
                                     "the limit: import it in parts (one subfolder at a time).")
            return
    if not found:
        report.fail(str(folder), f"No CSV or Parquet files in {folder}.")
    for path in found:
        if path.suffix.lower() == ".zip":
            yield from _archive_entries(path, str(path), limits, report)
        else:
            yield _Entry(str(path), path.name, lambda path=path: path)


def _archive_entries(archive: Path | io.BytesIO, name: str, limits: _Limits, report: _Builder
                     ) -> Iterator[_Entry]:
    """The bar files inside a zip archive, unpacked one at a time in memory.

    Guards: at most ``max_files`` entries; each member at most ``max_bytes`` (its declared size
    is checked first and the read is capped, as headers can lie); at most ``max_archive_bytes``
    unpacked in total; directories, nested archives, ``__MACOSX`` and hidden files skipped;
    names with ``..`` or an absolute path refused (nothing is ever written to disk, but such a
    name is a sign of a crafted archive)."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        report.fail(name, f"{name} is not a readable .zip archive ({exc}).")
        return
    with zf:
        members = zf.infolist()
        if len(members) > limits.max_files:
            report.fail(name, f"{name} holds {len(members):,} entries; the limit is "
                              f"{limits.max_files:,}. Split it into smaller archives.")
            return
        budget = [limits.max_archive_bytes]
        usable = [info for info in members if _member_wanted(info, name, report)]
        if not usable:
            report.fail(name, f"No CSV or Parquet files in {name}.")
        for info in usable:
            if budget[0] <= 0:
                report.fail(f"{name}/{info.filename}", _archive_too_big(name, limits))
                continue
            yield _Entry(f"{name}/{info.filename}", PurePosixPath(info.filename).name,
                         lambda info=info: _unpack(zf, info, name, limits, budget))


def _member_wanted(info: zipfile.ZipInfo, archive: str, report: _Builder) -> bool:
    member = info.filename.replace("\\", "/")
    parts = PurePosixPath(member).parts
    if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX"
                                         for p in parts if p != ".."):
        return False
    if ".." in parts or member.startswith("/") or ":" in parts[0]:
        report.fail(f"{archive}/{info.filename}", "Refused: the name points outside the archive "
                                                  "(.. or an absolute path).")
        return False
    if PurePosixPath(member).suffix.lower() not in BAR_FILE_SUFFIXES:
        report.skipped.append(f"{archive}/{info.filename}")
        return False
    return True


def _unpack(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, limits: _Limits,
            budget: list[int]) -> bytes:
    """One member's bytes, within the per-file limit and the archive's remaining budget."""
    too_big = MarketDataError(
        f"{info.filename} unpacks to more than {limits.max_bytes / 2**20:.1f} MB, the limit per "
        "file. Keep fewer rows or save it as Parquet.")
    if info.file_size > limits.max_bytes:
        raise too_big
    if info.file_size > budget[0]:
        budget[0] = 0
        raise MarketDataError(_archive_too_big(archive, limits))
    try:
        with zf.open(info) as member:
            data = member.read(min(limits.max_bytes, budget[0]) + 1)
    except (zipfile.BadZipFile, RuntimeError, NotImplementedError, EOFError, OSError,
            zlib.error) as exc:  # corrupt, encrypted, or an unsupported compression method
        raise MarketDataError(f"Could not unpack {info.filename} from {archive}: {exc}.") from exc
    if len(data) > limits.max_bytes:
        raise too_big
    budget[0] -= len(data)
    if budget[0] < 0:
        raise MarketDataError(_archive_too_big(archive, limits))
    return data


def _archive_too_big(archive: str, limits: _Limits) -> str:
    return (f"Not imported: {archive} unpacks to more than {limits.max_archive_bytes / 2**20:,.0f} "
            "MB in total, the limit. Split it into smaller archives.")


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
