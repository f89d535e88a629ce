"""SwingDesk: the entry point and router (``streamlit run app.py``).

Builds ``st.navigation`` with grouped sections over the page files in ``pages/`` (they are not
auto-discovered), the shared sidebar controls (symbol and interval, bound to the URL), and the
data-mode badge. Each page file does one job; see ``pages/_shared.py`` for caching.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from pages import _monitoring, _shared

st.set_page_config(page_title="SwingDesk", page_icon=":material/candlestick_chart:",
                   layout="wide", initial_sidebar_state="expanded")

#: (section, page file, title, icon). A page listed here whose file does not exist yet is left out,
#: so adding a page is one line.
PAGES: list[tuple[str, str, str, str]] = [
    ("Overview", "pages/home.py", "Home", ":material/home:"),
    ("Signals", "pages/explorer.py", "Signal Explorer", ":material/candlestick_chart:"),
    ("Signals", "pages/scanner.py", "Scanner", ":material/radar:"),
    ("Signals", "pages/pattern_search.py", "Pattern Search", ":material/hub:"),
    ("Research", "pages/backtest_review.py", "Backtest Review", ":material/history:"),
    ("Research", "pages/journal.py", "Journal", ":material/menu_book:"),
    ("System", "pages/data.py", "Data", ":material/database:"),
    ("System", "pages/performance.py", "Performance", ":material/speed:"),
]

_ROOT = Path(__file__).resolve().parent


def build_navigation() -> st.Page:
    sections: dict[str, list[st.Page]] = {}
    for section, path, title, icon in PAGES:
        if (_ROOT / path).is_file():
            sections.setdefault(section, []).append(
                st.Page(path, title=title, icon=icon, default=path == "pages/home.py"))
    return st.navigation(sections)


page = build_navigation()
_shared.follow_switch()
st.sidebar.title("SwingDesk")
badge = st.sidebar.empty()  # filled after the page ran: it tells what this run saw of Yahoo
_shared.shared_controls()
st.sidebar.caption("1–2 day swing signals · not investment advice")
_monitoring.start()  # performance recorder, once per process (st.cache_resource)
try:
    page.run()
finally:
    _shared.status_badge(badge)
