"""What every page shares, in one import (``from pages import _shared as ui``): a façade over
the modules that each hold one concept.

- :mod:`pages._nav`: the page list, the router guard, page switches;
- :mod:`pages._text`: text safety (user input shown as plain text);
- :mod:`pages._state`: the shared symbol / interval / "Bars from" bound to the URL;
- :mod:`pages._resources`: the cached runtime (engine, pattern priors) and setup library;
- :mod:`pages._banners`: data-source and database banners, the sidebar badge;
- :mod:`pages._edge`: the error edge (user errors as ``st.error``, bugs logged);
- :mod:`pages._calls`: cached engine calls (signal views, scans, chart bars);
- :mod:`pages._auth`: sign-in and admin rights (destructive actions need an admin).

Streamlit lives in ``pages/`` and app.py only; the engine (``swing_core``) never imports it.
"""

from __future__ import annotations

from pages._auth import admin_allowed, admin_lock
from pages._banners import database_banner, source_banner, source_note, status_badge
from pages._calls import TTL_S, chart_bars, scan, signal_view, signal_views
from pages._edge import error_edge
from pages._nav import PAGE_FILES, PAGES, page_exists, request_switch, require_router
from pages._resources import (
    clear_caches,
    database_engine,
    db_key,
    is_offline,
    journal_calibration,
    library,
    reload_library,
    runtime,
)
from pages._state import (
    DEFAULT_INTERVAL,
    DEFAULT_SYMBOL,
    SYMBOL_PATTERN,
    current_interval,
    current_source,
    current_symbol,
    selected_rows,
)
from pages._text import plain

__all__ = [
    "DEFAULT_INTERVAL",
    "DEFAULT_SYMBOL",
    "PAGES",
    "PAGE_FILES",
    "SYMBOL_PATTERN",
    "TTL_S",
    "admin_allowed",
    "admin_lock",
    "chart_bars",
    "clear_caches",
    "current_interval",
    "current_source",
    "current_symbol",
    "database_banner",
    "database_engine",
    "db_key",
    "error_edge",
    "is_offline",
    "journal_calibration",
    "library",
    "page_exists",
    "plain",
    "reload_library",
    "request_switch",
    "require_router",
    "runtime",
    "scan",
    "selected_rows",
    "signal_view",
    "signal_views",
    "source_banner",
    "source_note",
    "status_badge",
]
