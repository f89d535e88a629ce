"""Shared helpers for the AppTest page tests (Streamlit's in-process app runner).

``demo_app`` prepares the real app on demo data: offline (SWING_OFFLINE=1), a fresh data folder
per test, no database URL or OpenAI key from the developer's environment, Streamlit's caches
cleared so tests never share results, and a saved watchlist. The other helpers read what a run
shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from swing_core import views

ROOT = Path(__file__).resolve().parent.parent
#: Variables of the developer's environment a demo app must not see.
UNSET = ("SWING_DATABASE_URL", "OPENAI_API_KEY")


def demo_app(monkeypatch: pytest.MonkeyPatch, data_dir: Path, *, watchlist: Sequence[str],
             timeout: float = 90, unset: Iterable[str] = ()) -> AppTest:
    """``app.py`` ready to run on demo data in ``data_dir`` with ``watchlist`` saved; ``unset``:
    more environment variables to remove; ``timeout``: seconds per script run."""
    monkeypatch.setenv("SWING_OFFLINE", "1")
    monkeypatch.setenv("SWING_DATA_DIR", str(data_dir))
    for name in (*UNSET, *unset):
        monkeypatch.delenv(name, raising=False)
    st.cache_data.clear()
    st.cache_resource.clear()
    views.save_watchlist(list(watchlist))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)


def open_page(at: AppTest, page: str) -> AppTest:
    """Run the app, switch to ``page`` (e.g. ``pages/explorer.py``) and check it raised nothing."""
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def assert_clean(at: AppTest) -> None:
    """No exception and no ``st.error`` in the last run."""
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def table_with(at: AppTest, *columns: str) -> pd.DataFrame:
    """The first table shown that has ``columns`` (read-only tables carry no key)."""
    for frame in at.dataframe:
        value = frame.value
        if all(c in value.columns for c in columns):
            return value
    raise AssertionError(f"no table with columns {columns}")
