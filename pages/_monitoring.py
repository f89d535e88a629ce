"""Performance monitoring of the app process: started once per process and database.

``app.py`` calls :func:`start` on every run; ``st.cache_resource`` makes it do the work once per
server process (and database): prune history older than a week, start the batched recorder
(slow-query hooks on the app's engine, memory sampler, a flush every
:data:`FLUSH_INTERVAL_S` seconds and at exit) and connect the bar cache's counters.
"""

from __future__ import annotations

import logging

import streamlit as st

from pages import _shared as ui
from swing_core import perf

log = logging.getLogger("swingdesk.ui")

#: Seconds between two writes of the app's performance history (the page refreshes faster and
#: shows this process's unwritten figures live).
FLUSH_INTERVAL_S = 15.0


@st.cache_resource(show_spinner=False)
def _start(key: str) -> perf.MonitoringStatus | None:
    engine = ui.database_engine()
    if engine is None:  # the database banner says why; timings stay in memory
        return None
    return perf.start_monitoring(engine, role="app", interval_s=FLUSH_INTERVAL_S)


def start() -> perf.MonitoringStatus | None:
    """This process's monitoring status (starting it on the first call); None when the
    database is unavailable. Never raises: monitoring must not stop the app."""
    try:
        return _start(ui.db_key())
    except Exception:  # noqa: BLE001 - logged; the page says the recorder is not running
        log.exception("could not start performance monitoring")
        return None
