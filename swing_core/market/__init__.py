"""Market data: Yahoo (yfinance), the user's files and a deterministic demo generator, behind a
persistent bar cache; validation with errors a user can act on.

Bars frames: float64 ``open high low close volume``, a tz-aware UTC index ``ts`` of bar OPEN
times (a bar labelled ``t`` is known at ``t + INTERVAL_DELTA[interval]``; daily bars are
labelled by their trading date at 00:00 UTC), ``attrs`` ``source`` / ``symbol`` / ``interval``
/ ``last_bar_complete`` / ``notes``.

Modules: ``yahoo`` (the yfinance boundary ``_yf_download``), ``files``, ``demo``,
``validate``, ``fetch`` (cache, ``fetch_bars``, ``fetch_many``), ``_common``.
"""

from __future__ import annotations

from swing_core.market._common import (
    BAR_COLUMNS,
    CACHE_STATS,
    DEFAULT_LOOKBACK_DAYS,
    FRESHNESS,
    CacheCounter,
    empty_bars,
    last_bar_complete,
    normalize_symbol,
)
from swing_core.market.demo import DemoProvider, demo_anchor, demo_bars, session_dates
from swing_core.market.fetch import BarProvider, clear_cache_state, fetch_bars, fetch_many
from swing_core.market.files import (
    FILE_MAX_BYTES,
    FILE_MAX_ROWS,
    FileProvider,
    infer_interval,
    read_bars_file,
    resample_bars,
)
from swing_core.market.validate import validate_bars
from swing_core.market.yahoo import (
    YF_DOWNLOAD_DEFAULTS,
    RateLimitedError,
    UnknownSymbolError,
    YahooProvider,
    YahooUnreachableError,
    normalize_yfinance_frame,
)

__all__ = [
    "BAR_COLUMNS",
    "CACHE_STATS",
    "DEFAULT_LOOKBACK_DAYS",
    "FILE_MAX_BYTES",
    "FILE_MAX_ROWS",
    "FRESHNESS",
    "YF_DOWNLOAD_DEFAULTS",
    "BarProvider",
    "CacheCounter",
    "DemoProvider",
    "FileProvider",
    "RateLimitedError",
    "UnknownSymbolError",
    "YahooProvider",
    "YahooUnreachableError",
    "clear_cache_state",
    "demo_anchor",
    "demo_bars",
    "empty_bars",
    "fetch_bars",
    "fetch_many",
    "infer_interval",
    "last_bar_complete",
    "normalize_symbol",
    "normalize_yfinance_frame",
    "read_bars_file",
    "resample_bars",
    "session_dates",
    "validate_bars",
]
