"""Cached engine resources of the app: the :class:`~swing_core.services.Runtime` (database
engine, pattern index and prior provider), opened by the engine's one
:func:`~swing_core.services.open_runtime` and kept with ``st.cache_resource``, and the setup
library the pattern pages draw from.

Resources are keyed by :func:`db_key` (the database URL and the offline flag), so a different
``SWING_DATABASE_URL`` / ``SWING_DATA_DIR`` never reuses another database's engine, and by
interval (one pattern index per interval; ``None``: the engine alone, no priors).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages._state import current_interval
from swing_core import views
from swing_core.calibration import report_from_signals
from swing_core.config import get_settings
from swing_core.errors import SwingError
from swing_core.priors import PriorProvider
from swing_core.services import Runtime, open_runtime


def db_key() -> str:
    """Identifies the database and data mode for cache keys (never shown: may hold a password)."""
    settings = get_settings()
    return f"{settings.effective_database_url}|offline={settings.offline}"


def is_offline() -> bool:
    return get_settings().offline


@st.cache_resource(show_spinner=False)
def cached_runtime(key: str, interval: str | None) -> Runtime:
    """The runtime of the database ``key`` (:func:`db_key`) with the pattern priors of
    ``interval`` (None: the engine alone), opened once per server process."""
    runtime = open_runtime(priors=interval is not None, interval=interval)
    if interval is not None and runtime.settings.offline and (
            runtime.pattern_index is None or len(runtime.pattern_index) == 0):
        _use_demo_priors(runtime, interval)
    return runtime


def _use_demo_priors(runtime: Runtime, interval: str) -> None:
    """Offline with an empty stored library: price demo signals with the in-memory DEMO library
    (built from demo bars, never stored), and say so."""
    try:
        library = _demo_library(interval)
    except (ImportError, SwingError) as exc:  # ImportError: scikit-learn is not installed
        runtime.notes.append(f"No demo pattern library ({exc}).")
        return
    # the journal's calibration report stays (the demo library changes the neighbours, not it)
    runtime.prior_provider = PriorProvider(
        library.index, calibration=getattr(runtime.prior_provider, "calibration", None))
    runtime.notes.append(library.note)


@st.cache_resource(show_spinner=False)
def _demo_library(interval: str) -> views.Library:
    return views.demo_library(views.DEFAULT_WATCHLIST, interval)


@st.cache_resource(show_spinner=False)
def _library(key: str, interval: str) -> views.Library | None:
    runtime = cached_runtime(key, interval)
    if runtime.engine is not None:
        stored = views.stored_library(runtime.engine, interval, index=runtime.pattern_index)
        if len(stored) or not runtime.settings.offline:
            return stored
    if runtime.settings.offline:
        return _demo_library(interval)
    return None


def runtime(interval: str | None = None) -> Runtime:
    """The cached runtime with the pattern priors of ``interval`` (the shared interval by
    default)."""
    return cached_runtime(db_key(), interval or current_interval())


def database() -> Runtime:
    """The cached runtime without priors: ``engine`` (None when unusable), ``database`` (its
    name for messages) and ``database_error`` (why it is unusable)."""
    return cached_runtime(db_key(), None)


def database_engine() -> Any:
    """The cached database engine, or None (the reason is shown by ``database_banner``)."""
    return database().engine


def library(interval: str) -> views.Library | None:
    """The setup library for ``interval``: the stored one, or offline with nothing stored the
    in-memory DEMO library; None when there is no database (online)."""
    return _library(db_key(), interval)


@st.cache_data(ttl=300, show_spinner=False)
def _journal_calibration(key: str) -> Any:
    engine = cached_runtime(key, None).engine
    return None if engine is None else report_from_signals(engine)


def journal_calibration(interval: str | None = None) -> Any:
    """The journal's calibration report (:func:`swing_core.calibration.report_from_signals`):
    the one the prior provider of ``interval`` judged its signals' verdicts with (made when
    the runtime opened; a journal evaluation reopens it), else one made from the database
    and kept five minutes; None without a database."""
    provider = runtime(interval).prior_provider
    report = getattr(provider, "calibration", None)
    return report if report is not None else _journal_calibration(db_key())


def reload_library() -> None:
    """Reload the stored library and the pattern index (after new outcomes were stored)."""
    _library.clear()
    cached_runtime.clear()
    st.cache_data.clear()


def clear_caches(*, services: bool = False) -> None:
    """Forget every cached frame (after uploads, cache clears, evaluations); with ``services``
    also the pattern index (rebuilt from the stored vectors on next use)."""
    st.cache_data.clear()
    if services:
        cached_runtime.clear()
