"""The page list, once, and moving between pages: app.py's ``st.navigation``, Home's links and
:func:`request_switch` all read :data:`PAGES`. Adding a page is one line here (a page whose file
does not exist yet is left out everywhere)."""

from __future__ import annotations

import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Page:
    """One page of the app: ``key`` for links and switches, ``file`` relative to the app root,
    ``section`` of the navigation, ``blurb`` for Home's list."""

    key: str
    file: str
    title: str
    icon: str
    section: str
    blurb: str = ""


PAGES: tuple[Page, ...] = (
    Page("home", "pages/home.py", "Home", ":material/home:", "Overview"),
    Page("explorer", "pages/explorer.py", "Signal Explorer", ":material/candlestick_chart:",
         "Signals", "one symbol: chart, plan, context, pattern prior"),
    Page("scanner", "pages/scanner.py", "Scanner", ":material/radar:", "Signals",
         "rank the watchlist's setups"),
    Page("patterns", "pages/pattern_search.py", "Pattern Search", ":material/hub:", "Signals",
         "nearest historical setups and outcomes"),
    Page("backtest", "pages/backtest_review.py", "Backtest Review", ":material/history:",
         "Research", "walk-forward runs, metrics, trades"),
    Page("journal", "pages/journal.py", "Journal", ":material/menu_book:", "Research",
         "stored signals and their real outcomes"),
    Page("data", "pages/data.py", "Data", ":material/database:", "System",
         "uploads and the bar cache"),
    Page("performance", "pages/performance.py", "Performance", ":material/speed:", "System",
         "latency, memory, slow queries, caches"),
)

HOME = "home"

#: Page files by key, for ``st.page_link`` and ``st.switch_page``.
PAGE_FILES: dict[str, str] = {page.key: page.file for page in PAGES}


def page_exists(key: str) -> bool:
    """Whether the page file of ``key`` exists (only existing pages are registered)."""
    return key in PAGE_FILES and (_ROOT / PAGE_FILES[key]).is_file()


def installed_pages() -> list[Page]:
    """The pages whose file exists, in navigation order."""
    return [page for page in PAGES if page_exists(page.key)]


def navigation(*, hidden: bool = False) -> Any:
    """``st.navigation`` over the installed pages, grouped by section (Home is the default);
    ``hidden``: registered but no menu (the sign-in screen shows nothing else)."""
    sections: dict[str, list[Any]] = {}
    for page in installed_pages():
        sections.setdefault(page.section, []).append(
            st.Page(page.file, title=page.title, icon=page.icon, default=page.key == HOME))
    return st.navigation(sections, position="hidden" if hidden else "sidebar")


def require_router() -> None:
    """Call first in every page file: make sure the page runs inside app.py (sidebar, shared
    state, navigation).

    Streamlit treats a folder named ``pages`` next to the entry point as a v1 multipage app until
    ``st.navigation`` has run in the process: a session whose first request is a sub-page URL
    (and every AppTest run after the first) would run the page file alone. Then run app.py here,
    in this same script run (widget values and clicks are kept), and stop the bare run.
    """
    if not PagesManager.uses_pages_directory:
        return
    PagesManager.uses_pages_directory = False
    runpy.run_path(str(_ROOT / "app.py"), run_name="__main__")
    st.stop()


def request_switch(page: str, **state: Any) -> None:
    """For widget callbacks: set shared state (e.g. symbol) and ask the app to open ``page``
    (a key of :data:`PAGES`) on this rerun."""
    for key, value in state.items():
        st.session_state[key] = value
    st.session_state["_switch_to"] = page


def follow_switch() -> None:
    """Open the page requested by :func:`request_switch`, if any (called by app.py)."""
    page = st.session_state.pop("_switch_to", None)
    if page_exists(page):
        st.switch_page(PAGE_FILES[page])
