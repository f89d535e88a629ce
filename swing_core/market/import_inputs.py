"""What an import reads: files, folders (recursively) and ``.zip`` archives of CSV/Parquet
bars, paths or uploads, turned into one :class:`ImportEntry` per bar file, within limits.

Archives are read in memory, member by member: at most ``max_files`` entries and
``max_archive_bytes`` unpacked in total, so a zip bomb stops at a limit instead of filling memory.
Problems with an input as a whole (a missing path, an unreadable archive, a limit reached) are
reported on the :class:`~swing_core.market.import_report.ReportBuilder`, never raised, so the
other inputs still import.
"""

from __future__ import annotations

import io
import os
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from swing_core.errors import MarketDataError
from swing_core.market.file_table import FileSource
from swing_core.market.import_report import ReportBuilder

__all__ = [
    "ARCHIVE_MAX_BYTES",
    "BAR_FILE_SUFFIXES",
    "IMPORT_MAX_FILES",
    "ImportEntry",
    "ImportLimits",
    "as_sources",
    "iter_entries",
]

#: File names imported from a folder or an archive; other files there are skipped.
BAR_FILE_SUFFIXES: tuple[str, ...] = (".csv", ".txt", ".tsv", ".parquet", ".pq", ".parq")
#: At most this many entries in one archive, or bar files in one folder.
IMPORT_MAX_FILES = 5_000
#: At most this many bytes unpacked from one archive, all members together.
ARCHIVE_MAX_BYTES = 1024**3

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")


@dataclass(frozen=True)
class ImportLimits:
    """Per file: ``max_bytes`` and ``max_rows``; per folder or archive: ``max_files`` entries;
    per archive: ``max_archive_bytes`` unpacked."""

    max_bytes: int
    max_rows: int
    max_files: int
    max_archive_bytes: int


@dataclass(frozen=True)
class ImportEntry:
    """One file to read: ``name`` for the report, ``filename`` for the reader (format and the
    default symbol), ``load`` gives its path or bytes (archive members are unpacked late)."""

    name: str
    filename: str
    load: Callable[[], FileSource]


def as_sources(paths_or_files: FileSource | Iterable[FileSource]) -> list[FileSource]:
    """One input (a path, bytes or a file-like object) or many, as a non-empty list."""
    single = (str, os.PathLike, bytes, bytearray, memoryview)
    if isinstance(paths_or_files, single) or hasattr(paths_or_files, "read"):
        sources: list[FileSource] = [paths_or_files]  # type: ignore[list-item]
    else:
        sources = list(paths_or_files)
    if not sources:
        raise MarketDataError("Nothing to import: give CSV/Parquet files, folders of them or "
                              ".zip archives.")
    return sources


def iter_entries(sources: list[FileSource], limits: ImportLimits, report: ReportBuilder
                 ) -> Iterator[ImportEntry]:
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
            yield ImportEntry(name, PurePosixPath(name).name, lambda data=data: data)


def _read_upload(source: FileSource, limits: ImportLimits) -> bytes:
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


def _path_entries(path: Path, limits: ImportLimits, report: ReportBuilder) -> Iterator[ImportEntry]:
    if path.is_dir():
        yield from _folder_entries(path, limits, report)
    elif path.suffix.lower() == ".zip" and path.is_file():
        yield from _archive_entries(path, str(path), limits, report)
    elif path.is_file():
        yield ImportEntry(str(path), path.name, lambda: path)
    else:
        report.fail(str(path), "No such file or folder: check the path (a CSV/Parquet file, a "
                               "folder or a .zip archive).")


def _folder_entries(folder: Path, limits: ImportLimits, report: ReportBuilder
                    ) -> Iterator[ImportEntry]:
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
            yield ImportEntry(str(path), path.name, lambda path=path: path)


def _archive_entries(archive: Path | io.BytesIO, name: str, limits: ImportLimits,
                     report: ReportBuilder) -> Iterator[ImportEntry]:
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
            yield ImportEntry(f"{name}/{info.filename}", PurePosixPath(info.filename).name,
                         lambda info=info: _unpack(zf, info, name, limits, budget))


def _member_wanted(info: zipfile.ZipInfo, archive: str, report: ReportBuilder) -> bool:
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


def _unpack(zf: zipfile.ZipFile, info: zipfile.ZipInfo, archive: str, limits: ImportLimits,
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


def _archive_too_big(archive: str, limits: ImportLimits) -> str:
    return (f"Not imported: {archive} unpacks to more than {limits.max_archive_bytes / 2**20:,.0f} "
            "MB in total, the limit. Split it into smaller archives.")
