"""Data shaping for the dashboard: what a page shows, as plain frames and small dataclasses.

No Streamlit here and no trading logic: these functions only call the engine (``agent``,
``market``, ``db``) and reshape its results into tables, chips and cards. Pages call one of them,
cache the result and render it (``from swing_core import views; views.scan_view(...)``).

One module per concept: ``formatting`` (numbers and times), ``labels`` (the names of win rates
and calibration figures), ``watchlist``, ``signals`` (signal view, chips, watchlist and scan
tables), ``journal``, ``backtest`` (Backtest Review tables and calibration),
``library`` (setup library, neighbours, projection), ``export`` (CSV download, upload limits),
``perf`` (the Performance page's history and live figures; not re-exported here, use
``from swing_core.views import perf``).
"""

from __future__ import annotations

from swing_core.views.backtest import (
    SEARCH_PARAMS,
    TRADE_COLUMNS,
    backtest_calibration,
    breakdown_table,
    library_date_range,
    open_trades,
    outcome_label,
    parse_grid_values,
    reliability_curve,
    stats_table,
    trade_count_text,
    trade_list,
    trade_window,
)
from swing_core.views.export import (
    MAX_UPLOAD_BYTES,
    MAX_UPLOAD_ROWS,
    to_csv_bytes,
)
from swing_core.views.formatting import (
    CLOSE_TIME_COLUMNS,
    bar_time_text,
    bar_times,
    exchange_time_text,
    for_display,
    format_number,
    row_time_texts,
    table_times,
)
from swing_core.views.journal import (
    JOURNAL_COLUMNS,
    evaluate_journal,
    evaluation_text,
    journal_summary,
    journal_table,
)
from swing_core.views.labels import (
    BRIER_LABELS,
    WIN_RATE_KINDS,
    brier_table,
    predicted_kind,
    rate_text,
    stat_label,
    win_rate_label,
)
from swing_core.views.library import (
    Library,
    demo_library,
    library_positions,
    library_rows,
    neighbor_paths,
    neighbor_table,
    neighbors_of,
    project_2d,
    stored_library,
)
from swing_core.views.signals import (
    SCAN_COLUMNS,
    Chip,
    SignalView,
    describe_source,
    filter_table,
    prior_card,
    scan_view,
    signal_chips,
    source_summary,
    sparkline_values,
    watchlist_table,
)
from swing_core.views.watchlist import (
    DEFAULT_WATCHLIST,
    MAX_WATCHLIST,
    load_watchlist,
    parse_symbols,
    save_watchlist,
)

__all__ = [
    "BRIER_LABELS",
    "CLOSE_TIME_COLUMNS",
    "Chip",
    "DEFAULT_WATCHLIST",
    "JOURNAL_COLUMNS",
    "Library",
    "MAX_UPLOAD_BYTES",
    "MAX_UPLOAD_ROWS",
    "MAX_WATCHLIST",
    "SCAN_COLUMNS",
    "SEARCH_PARAMS",
    "SignalView",
    "TRADE_COLUMNS",
    "WIN_RATE_KINDS",
    "backtest_calibration",
    "bar_time_text",
    "bar_times",
    "breakdown_table",
    "brier_table",
    "library_date_range",
    "demo_library",
    "describe_source",
    "evaluate_journal",
    "evaluation_text",
    "exchange_time_text",
    "filter_table",
    "for_display",
    "format_number",
    "journal_summary",
    "journal_table",
    "library_positions",
    "library_rows",
    "load_watchlist",
    "neighbor_paths",
    "neighbor_table",
    "neighbors_of",
    "open_trades",
    "outcome_label",
    "parse_grid_values",
    "parse_symbols",
    "predicted_kind",
    "prior_card",
    "project_2d",
    "rate_text",
    "reliability_curve",
    "row_time_texts",
    "save_watchlist",
    "scan_view",
    "signal_chips",
    "source_summary",
    "sparkline_values",
    "stat_label",
    "stats_table",
    "stored_library",
    "table_times",
    "to_csv_bytes",
    "trade_count_text",
    "trade_list",
    "trade_window",
    "watchlist_table",
    "win_rate_label",
]
