"""The dashboard respects one data source (issue 13): the sidebar's "Bars from" (``?source=``),
the status badge, and Backtest Review's date range on a trader's own (local) bars."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_support import assert_clean, demo_app, open_page
from real_bars import daily_bars
from streamlit.testing.v1 import AppTest

from swing_core import db, market
from swing_core.market import yahoo as yahoo_module


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL"])
    db.upsert_bars(db.get_engine(), "GOOGX", "1d", daily_bars("GOOGX"), source="file")
    market.clear_cache_state()
    return at


def _sidebar_text(at: AppTest) -> str:
    return " ".join(str(m.value) for m in at.sidebar.markdown)


def test_old_source_links_open_the_local_library(app: AppTest) -> None:
    app.query_params["symbol"] = "GOOGX"
    app.query_params["interval"] = "1d"
    app.query_params["source"] = "cache"  # what the Data page's link used to send
    at = open_page(app, "pages/explorer.py")
    assert_clean(at)
    assert at.session_state["source"] == "local"
    assert at.title[0].value == "Signal Explorer · GOOGX 1d"
    assert any("Showing your local bar library" in i.value for i in at.info)
    assert not any("DEMO" in w.value for w in at.warning)


def test_badge_says_offline_then_what_it_saw_of_yahoo(app: AppTest, monkeypatch) -> None:
    at = open_page(app, "pages/explorer.py")
    assert "Offline" in _sidebar_text(at)

    def unreachable(**kwargs):
        raise ConnectionError("Could not resolve host: query2.finance.yahoo.com")

    monkeypatch.setenv("SWING_OFFLINE", "0")
    monkeypatch.setattr(yahoo_module, "_yf_download", unreachable)
    at.run()
    assert "Yahoo unreachable" in _sidebar_text(at), _sidebar_text(at)
    assert any("DEMO DATA" in w.value for w in at.warning)  # AAPL: no local bars, labelled


def test_backtest_review_defaults_to_the_files_range_and_runs_it(app: AppTest) -> None:
    stored = daily_bars("GOOGX")
    app.query_params["symbol"] = "GOOGX"
    app.query_params["source"] = "local"  # as the Data page's link opens it
    at = open_page(app, "pages/backtest_review.py")
    at.selectbox(key="bt_interval").set_value("1d").run()
    assert at.date_input(key="bt_start").value == stored.index[0].date()
    assert at.date_input(key="bt_end").value == stored.index[-1].date()
    assert not at.button(key="bt_run").disabled

    at.date_input(key="bt_end").set_value(stored.index[0].date().replace(year=2008)).run()
    assert at.button(key="bt_run").disabled
    assert any("before the start date" in e.value for e in at.error)

    at.date_input(key="bt_end").set_value(stored.index[-1].date()).run()
    at.button(key="bt_run").click().run()
    assert_clean(at)
    result = at.session_state["bt_result"]
    assert result.data_sources == {"GOOGX": "local"}
    assert result.stats["Start"] == stored.index[0] and result.stats["End"] == stored.index[-1]
    assert not any("DEMO" in w.value for w in at.warning)


def test_a_date_decades_back_is_accepted(app: AppTest) -> None:
    at = open_page(app, "pages/backtest_review.py")
    at.date_input(key="bt_start").set_value(daily_bars("GOOGX").index[0].date()
                                            .replace(year=1995)).run()
    assert_clean(at)
    assert at.date_input(key="bt_start").value.year == 1995
