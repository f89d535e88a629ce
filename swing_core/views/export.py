"""Files exchanged with the user: CSV downloads safe to open in a spreadsheet, upload limits."""

from __future__ import annotations

import pandas as pd

#: Upload limits (the Data page): bytes and rows of one CSV/Parquet file.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_UPLOAD_ROWS = 500_000

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def to_csv_bytes(table: pd.DataFrame) -> bytes:
    """``table`` as UTF-8 CSV for download; text cells that a spreadsheet would run as a
    formula (starting with = + - @) get a leading apostrophe (CSV injection)."""
    safe = table.copy()
    for column in safe.columns:
        if safe[column].dtype == object:
            safe[column] = safe[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v)
    return safe.to_csv(index=False).encode("utf-8")
