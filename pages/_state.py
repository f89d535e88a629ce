"""The shared sidebar state — symbol, interval and where bars come from ("Bars from") — bound to
the URL (``?symbol=…&interval=…&source=…``) so a view can be bookmarked and shared, plus small
readers of widget state. The values persist across pages; every page reads them here."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pages._text import plain
from swing_core import market, views
from swing_core.config import INTERVALS, validate_interval
from swing_core.errors import SwingError

DEFAULT_SYMBOL = "AAPL"
DEFAULT_INTERVAL = "30m"
SYMBOL_PATTERN = r"^\s*[A-Za-z0-9.\-^=]{1,15}\s*$"


def _valid_symbol(text: Any) -> str | None:
    try:
        return views.parse_symbols([str(text)], limit=1)[0][0]
    except (IndexError, SwingError):
        return None


def _valid_interval(text: Any) -> str | None:
    try:
        return validate_interval(str(text))
    except SwingError:
        return None


def current_symbol() -> str:
    """The shared symbol (sidebar, bound to ``?symbol=``), validated; the default when invalid."""
    return _valid_symbol(st.session_state.get("symbol") or DEFAULT_SYMBOL) or DEFAULT_SYMBOL


def current_interval() -> str:
    """The shared interval (sidebar, bound to ``?interval=``); the default when invalid."""
    return _valid_interval(st.session_state.get("interval") or DEFAULT_INTERVAL) or \
        DEFAULT_INTERVAL


def current_source() -> str:
    """Where bars come from (sidebar "Bars from", bound to ``?source=``): "auto", "yahoo",
    "local" or "demo". Every page passes it to the engine."""
    value = st.session_state.get("source") or "auto"
    return value if value in market.SOURCES else "auto"


def _source_control() -> None:
    """The sidebar's "Bars from", kept in ``?source=`` by hand rather than with ``bind``: a bound
    selectbox keeps its display label in the URL and drops plain values such as
    ``source=local``. A link or bookmark (a URL value this session did not write) wins over the
    widget; older spellings (``cache``) are accepted; an unknown value falls back to automatic
    with a visible note."""
    raw = st.query_params.get("source")
    if raw is not None and raw != st.session_state.get("_source_in_url"):
        try:
            st.session_state["source"] = market.check_source(raw)
        except SwingError:
            st.sidebar.warning(f"Unknown source {plain(str(raw)[:20])} in the link; using "
                               "automatic.")
            st.session_state["source"] = "auto"
    if st.session_state.get("source") not in market.SOURCES:
        st.session_state["source"] = "auto"
    st.selectbox("Bars from", market.SOURCES, key="source",
                 format_func=market.SOURCE_LABELS.get,
                 help="Where every page gets its bars: Yahoo Finance, your local bar library "
                      "(files imported on the Data page and earlier fetches), or demo data. "
                      "Automatic tries them in that order.")
    value = st.session_state["source"]
    if raw != value:
        st.query_params["source"] = value
    st.session_state["_source_in_url"] = value


def _follow_links() -> None:
    """A link opened in this session (``st.page_link`` with ``query_params``, e.g. the Data page's
    "Open GOOG 1d in the Signal Explorer") changes the URL, but bound widgets keep their session
    values: adopt a URL value of the symbol or interval that this session has not seen yet."""
    seen = st.session_state.setdefault("_url_seen", {})
    for key, accept in (("symbol", _valid_symbol), ("interval", _valid_interval)):
        raw = st.query_params.get(key)
        if raw is not None and raw != seen.get(key):
            value = accept(raw)
            if value is not None and st.session_state.get(key) != value:
                st.session_state[key] = value
        seen[key] = raw


def shared_controls() -> None:
    """The sidebar's symbol, interval and "Bars from", bound to the URL; called by app.py."""
    st.session_state.setdefault("symbol", DEFAULT_SYMBOL)
    _follow_links()
    with st.sidebar:
        st.text_input(
            "Symbol", key="symbol", max_chars=15, bind="query-params",
            validate=(SYMBOL_PATTERN, "Use a ticker: letters, digits and . - ^ = (e.g. AAPL)."),
            help="Any Yahoo Finance ticker, e.g. AAPL, BRK-B, ^GSPC, EURUSD=X, BTC-USD.",
        )
        st.selectbox("Interval", INTERVALS, index=INTERVALS.index(DEFAULT_INTERVAL),
                     key="interval", bind="query-params",
                     help="Bar length. Yahoo keeps about 60 days of 15m/30m bars and 730 days "
                          "of 1h bars.")
        raw = st.session_state.get("symbol")
        if raw and _valid_symbol(raw) is None:
            st.error(f"{plain(market.echo_text(raw))} is not a valid ticker; showing "
                     f"{current_symbol()}.")
        _source_control()


def selected_rows(key: str) -> list[int]:
    """Row positions selected in the ``st.dataframe`` with ``key`` (empty when none)."""
    state = st.session_state.get(key)
    if state is None:
        return []
    selection = state.get("selection") if isinstance(state, dict) else getattr(state, "selection",
                                                                              None)
    if selection is None:
        return []
    rows = selection.get("rows") if isinstance(selection, dict) else getattr(selection, "rows", [])
    return [int(r) for r in rows or []]
