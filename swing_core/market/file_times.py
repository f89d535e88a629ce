"""The timestamp column of a bars file as a DatetimeIndex: text with or without an offset,
separate Date and Time columns, or epoch numbers; values that cannot be read, or fall outside
:data:`TS_RANGE`, are refused naming the column, the rows and what is accepted.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from swing_core.errors import MarketDataError
from swing_core.market.file_table import _canonical

__all__ = ["TS_RANGE", "parse_times"]

#: Bar times must fall in this range (UTC; pandas' own limits, 1677-2262, are kept at a distance
#: so that time-zone conversion and aggregation cannot overflow).
TS_RANGE = (pd.Timestamp("1800-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC"))
_UNIT_NAMES = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def parse_times(table: pd.DataFrame, cols: dict[str, Any]) -> pd.DatetimeIndex:
    """The timestamp column ``cols["ts"]`` (joined with a separate Time column) as a
    DatetimeIndex: UTC when the text has an offset or zone or the values are epoch numbers
    (s/ms/us/ns guessed from their size), else naive.  Raises naming the column and the first
    unreadable rows, or the rows outside :data:`TS_RANGE`."""
    raw = table[cols["ts"]]
    # separate Date and Time columns
    time_col = next((c for c in table.columns if _canonical(c) == "time" and c != cols["ts"]),
                    None)
    if time_col is not None and _canonical(cols["ts"]) == "date":
        raw = (raw.astype(str) + " " + table[time_col].astype(str)).rename(
            f"{cols['ts']} + {time_col}")
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        magnitude = float(np.nanmedian(np.abs(values))) if np.isfinite(values).any() else 0.0
        unit = "ns" if magnitude > 1e17 else "us" if magnitude > 1e14 else \
            "ms" if magnitude > 1e11 else "s"
        per_unit = pd.Timedelta(1, unit=unit).value
        low, high = (bound.value / per_unit for bound in TS_RANGE)
        with np.errstate(invalid="ignore"):
            outside = ~np.isnan(values) & ((values < low) | (values > high))
        if outside.any():
            raise _bad_times(raw, outside, f", read as epoch {_UNIT_NAMES[unit]}")
        return pd.DatetimeIndex(pd.to_datetime(values, unit=unit, utc=True, errors="coerce"))
    text = raw.astype(str).str.strip()
    # any offset or zone suffix: parse everything as UTC (mixed -05:00/-04:00 across DST)
    aware = bool(text.str.contains(r"(?:[+-]\d\d:?\d\d|Z|UTC|GMT)$", regex=True).any())
    try:
        parsed = pd.to_datetime(text, errors="raise", utc=aware)
    except (ValueError, TypeError, OverflowError):
        parsed = pd.to_datetime(text, errors="coerce", utc=aware, format="mixed")
    index = pd.DatetimeIndex(parsed)
    if index.hasnans:
        raise _bad_times(raw, index.isna(), None)
    low, high = (b if aware else b.tz_localize(None) for b in TS_RANGE)
    outside = (index < low) | (index > high)
    if outside.any():
        raise _bad_times(raw, outside, "")
    return index


def _bad_times(raw: pd.Series, mask: np.ndarray, reading: str | None) -> MarketDataError:
    """Unreadable timestamps (``reading`` None) or ones outside :data:`TS_RANGE`: the column,
    how many, the first three rows (their CSV line: the header is line 1), what is accepted."""
    bad = np.flatnonzero(mask)
    lines = [raw.index[i] + 2 if isinstance(raw.index[i], int | np.integer) else i + 2
             for i in bad[:3]]
    values = [raw.iloc[i] for i in bad[:3]]
    shown = ", ".join(f"row {line}: {value!r}" if isinstance(value, str) else f"row {line}: {value}"
                      for line, value in zip(lines, values, strict=True))
    first, last = (f"{b:%Y-%m-%d}" for b in TS_RANGE)
    what = f"{len(bad)} timestamp(s) in column '{raw.name}' ({shown}"
    if reading is None:
        return MarketDataError(f"Could not read {what}); use dates from {first} to {last} in a "
                               "format like 2024-03-01 09:30 or 2024-03-01T09:30:00-05:00.")
    return MarketDataError(f"{what}{reading}) are outside the supported range, {first} to "
                           f"{last}: fix or remove those rows.")
