"""What an import into the local bar library did: the series stored (:class:`ImportedItem`),
the failures (:class:`FailedItem`) and the files skipped, as one :class:`ImportReport`, built
item by item while :func:`~swing_core.market.library.import_bars` runs (:class:`ReportBuilder`,
which also tells a progress callback of each item).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = [
    "FailedItem",
    "ImportProgress",
    "ImportReport",
    "ImportedItem",
    "ReportBuilder",
]

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


@dataclass
class ReportBuilder:
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
