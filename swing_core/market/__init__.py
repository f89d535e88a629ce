"""Market data: Yahoo (yfinance), the user's files and a deterministic demo generator, behind a
persistent bar cache; validation with errors a user can act on.

Bars frames: float64 ``open high low close volume``, a tz-aware UTC index ``ts`` of bar OPEN
times (a bar labelled ``t`` is known at ``t + INTERVAL_DELTA[interval]``; daily bars are
labelled by their trading date at 00:00 UTC), ``attrs`` ``source`` / ``symbol`` / ``interval``
/ ``last_bar_complete`` / ``notes``.

Modules: ``yahoo`` (the provider and the yfinance boundary ``_yf_download``),
``yfinance_frame`` (what ``yf.download`` returns, as a bars frame), ``files`` (CSV/Parquet
files as bars) over ``file_table`` (a file as a table: limits, columns, numbers, times),
``demo``, ``validate``, ``sources`` (the source choice, providers, the demo fallback),
``cache`` (the bar cache with top-ups), ``fetch`` (``fetch_bars``, ``fetch_many``), ``library``
(the local bar library: import, list, delete, export) with ``import_inputs`` (files, folders and
archives to import, within limits) and ``import_report``, ``_common``.
"""

from __future__ import annotations

from swing_core.market._common import (
    BAR_COLUMNS,
    CACHE_STATS,
    DEFAULT_LOOKBACK_DAYS,
    FRESHNESS,
    MAX_LOOKBACK_DAYS,
    CacheCounter,
    check_lookback_days,
    echo_text,
    last_bar_complete,
    normalize_symbol,
    symbol_label,
)
from swing_core.market.cache import clear_cache_state
from swing_core.market.demo import DemoProvider, demo_anchor, demo_bars, session_dates
from swing_core.market.fetch import fetch_bars, fetch_many
from swing_core.market.files import (
    FILE_MAX_BYTES,
    FILE_MAX_ROWS,
    FileProvider,
    infer_interval,
    read_bars_file,
    read_bars_file_by_symbol,
    resample_bars,
)
from swing_core.market.import_inputs import ARCHIVE_MAX_BYTES, BAR_FILE_SUFFIXES, IMPORT_MAX_FILES
from swing_core.market.import_report import FailedItem, ImportedItem, ImportReport
from swing_core.market.library import (
    LIBRARY_COLUMNS,
    delete_from_library,
    export_bars,
    import_bars,
    list_library,
)
from swing_core.market.sources import SOURCE_LABELS, SOURCES, BarProvider, check_source
from swing_core.market.validate import validate_bars
from swing_core.market.yahoo import (
    YF_DOWNLOAD_DEFAULTS,
    RateLimitedError,
    UnknownSymbolError,
    YahooProvider,
    YahooStatus,
    YahooUnreachableError,
    yahoo_status,
)
from swing_core.market.yfinance_frame import normalize_yfinance_frame

__all__ = [
    "ARCHIVE_MAX_BYTES",
    "BAR_COLUMNS",
    "BAR_FILE_SUFFIXES",
    "CACHE_STATS",
    "DEFAULT_LOOKBACK_DAYS",
    "FILE_MAX_BYTES",
    "FILE_MAX_ROWS",
    "FRESHNESS",
    "MAX_LOOKBACK_DAYS",
    "IMPORT_MAX_FILES",
    "LIBRARY_COLUMNS",
    "SOURCES",
    "SOURCE_LABELS",
    "YF_DOWNLOAD_DEFAULTS",
    "BarProvider",
    "CacheCounter",
    "DemoProvider",
    "FailedItem",
    "FileProvider",
    "ImportReport",
    "ImportedItem",
    "RateLimitedError",
    "UnknownSymbolError",
    "YahooProvider",
    "YahooStatus",
    "YahooUnreachableError",
    "check_lookback_days",
    "check_source",
    "clear_cache_state",
    "delete_from_library",
    "demo_anchor",
    "demo_bars",
    "echo_text",
    "export_bars",
    "fetch_bars",
    "fetch_many",
    "import_bars",
    "infer_interval",
    "last_bar_complete",
    "list_library",
    "normalize_symbol",
    "normalize_yfinance_frame",
    "read_bars_file",
    "read_bars_file_by_symbol",
    "resample_bars",
    "session_dates",
    "symbol_label",
    "validate_bars",
    "yahoo_status",
]
