"""The entry point: navigation, shared sidebar state bound to the URL, Home, error edges.

Streamlit's AppTest runs the real app in-process on demo data (SWING_OFFLINE=1) with a fresh
data folder per test; Streamlit's caches are cleared so tests never share results.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_support import ROOT, assert_clean, demo_app, table_with
from streamlit.testing.v1 import AppTest

WATCHLIST = ["AAPL", "MSFT", "QQQ"]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    return demo_app(monkeypatch, tmp_path, watchlist=WATCHLIST)


def errors_of(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_home_renders_on_demo_data_and_says_so(app: AppTest) -> None:
    app.run()
    assert_clean(app)
    assert app.title[0].value == "SwingDesk"
    assert any("DEMO" in w.value for w in app.warning), "demo data must be labelled"
    table = table_with(app, "closes")
    assert list(table["symbol"]) == WATCHLIST
    assert set(table["source"]) == {"demo"}
    assert table["error"].isna().all()
    assert all(len(c) > 10 for c in table["closes"]), "every row has a sparkline"
    assert any("SQLite file" in s.value for s in app.success), "database status is shown"
    links = app.get("page_link")
    assert len(links) >= 4


def test_interval_change_reruns_the_watchlist(app: AppTest) -> None:
    app.run()
    app.selectbox(key="interval").set_value("1h").run()
    assert_clean(app)
    assert any(s.value == "Watchlist · 1h" for s in app.subheader)
    table = table_with(app, "closes")
    assert table["asof"].notna().all()


def test_url_query_parameters_choose_symbol_and_interval(app: AppTest) -> None:
    app.query_params["symbol"] = "msft"
    app.query_params["interval"] = "1d"
    app.run()
    app.switch_page("pages/explorer.py").run()
    assert_clean(app)
    assert app.title[0].value == "Signal Explorer · MSFT 1d"


def test_invalid_symbol_is_refused_escaped_and_the_default_used(app: AppTest) -> None:
    app.query_params["symbol"] = "<b>x</b>"
    app.run()
    assert not app.exception
    message = " ".join(errors_of(app))
    assert "not a valid ticker" in message
    assert "<b>" not in message and r"\<b\>" in message, "user text is escaped, never HTML"
    assert "showing AAPL" in message
    assert not app.get("html")


def test_unusable_database_is_an_st_error_naming_the_file(app: AppTest,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWING_DATABASE_URL", "sqlite:////proc/swingdesk-forbidden/db.sqlite")
    app.run()
    assert not app.exception
    message = " ".join(errors_of(app))
    assert "Database unavailable" in message and "swingdesk-forbidden" in message
    # the market data part of the page still works without a database
    assert len(table_with(app, "closes")) == len(WATCHLIST)
    app.switch_page("pages/journal.py").run()
    assert not app.exception
    assert "Database unavailable" in " ".join(errors_of(app))


@pytest.mark.parametrize(("name", "raw"), [("SWING_SLOW_QUERY_MS", "fast"),
                                           ("SWING_LLM_MONTHLY_BUDGET_USD", "nan")])
def test_a_bad_setting_is_one_clear_message_not_a_traceback(
        app: AppTest, monkeypatch: pytest.MonkeyPatch, name: str, raw: str) -> None:
    monkeypatch.setenv(name, raw)
    app.run()
    assert not app.exception
    message = " ".join(errors_of(app))
    assert name in message and repr(raw) in message and "cannot start" in message


def test_every_registered_page_renders_without_exception(app: AppTest) -> None:
    app.run()
    for page in sorted((ROOT / "pages").glob("[!_]*.py")):
        app.switch_page(f"pages/{page.name}").run()
        assert not app.exception, (page.name, [e.value for e in app.exception])
        assert not any("unexpected error" in m for m in errors_of(app)), (page.name,
                                                                          errors_of(app))
