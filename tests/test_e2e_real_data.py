"""A trader's own bars end to end, in a real browser (issue 13): import a real-shaped daily CSV
on the Data page, follow its link to the Signal Explorer, run a backtest over the file's whole
range in Backtest Review, then open Pattern Search and the Scanner on the same symbol. Nowhere in
that flow may "DEMO" appear, and the dates shown are the file's trading dates.

The app is served by ``streamlit run`` on loopback, offline (``SWING_OFFLINE=1``: Yahoo is never
asked; "automatic" then serves local bars), with a fresh data folder whose watchlist is the
imported symbol. Screenshots go to ``artifacts/screenshots/real_*.png``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import SHOTS, Page, browser_tab, served_app
from real_bars import write_daily_csv
from test_e2e_browser import assert_no_exception, screenshot, settle

pytestmark = pytest.mark.browser

SYMBOL = "GOOGX"


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    folder = tmp_path_factory.mktemp("trader_files")
    path = folder / f"{SYMBOL}.csv"
    bars = write_daily_csv(path, SYMBOL, start="2009-01-02", end="2012-12-31")
    return path, bars


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data_dir = tmp_path_factory.mktemp("e2e_real_data")
    (data_dir / "watchlist.json").write_text(json.dumps({"symbols": [SYMBOL]}))
    log = tmp_path_factory.mktemp("e2e_real_log") / "streamlit.log"
    with served_app(data_dir, log, forbidden_in_log="unexpected error in") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_tab(timeout_ms=120_000) as tab:
        yield tab


def whole_text(page: Page) -> str:
    """Everything a person can read: the main area and the sidebar."""
    return page.locator("[data-testid='stApp']").inner_text()


def assert_no_demo(page: Page, where: str) -> None:
    text = whole_text(page)
    assert "DEMO" not in text and "Demo data" not in text.replace("Demo data (synthetic", ""), \
        f"{where}: {text[:2000]}"


def open_in_sidebar(page: Page, title: str) -> None:
    page.locator("[data-testid='stSidebarNav']").get_by_role("link", name=title).click()
    settle(page)
    assert_no_exception(page, title)


def test_own_bars_through_every_page(page: Page, server: str, csv_file) -> None:
    path, bars = csv_file
    first, last = f"{bars.index[0]:%Y-%m-%d}", f"{bars.index[-1]:%Y-%m-%d}"

    # Data: import the file, see it in the library with its trading dates
    page.goto(f"{server}/data")
    settle(page)
    page.locator("[data-testid='stFileUploaderDropzoneInput']").set_input_files(str(path))
    settle(page)
    page.get_by_text(re.compile(rf"{len(bars):,} 1d bars of {SYMBOL}, {first} → {last}")).wait_for()
    page.get_by_role("button", name=f"Import {SYMBOL}.csv").click()
    settle(page)
    assert_no_exception(page, "import")
    page.get_by_text(re.compile(rf"Imported {len(bars):,} bars: 1 series")).wait_for()
    assert_no_demo(page, "data")
    screenshot(page, "real_data")

    # the link opens the Explorer on those bars
    page.get_by_role("link", name=re.compile(rf"Open {SYMBOL} 1d in the Signal Explorer")).first \
        .click()
    settle(page)
    assert_no_exception(page, "explorer")
    screenshot(page, "real_explorer")
    page.locator("[data-testid='stMain']").get_by_role(
        "heading", name=f"Signal Explorer · {SYMBOL} 1d").wait_for(timeout=20_000)
    main = page.locator("[data-testid='stMain']").inner_text()
    assert "local bar library" in main and last in main, main[:1500]
    assert re.search(r"\b\d{4}-\d{2}-\d{2} \d{2}:\d{2}\b", main) is None, "daily: no clock time"
    assert_no_demo(page, "explorer")
    screenshot(page, "real_explorer")

    # Backtest Review: the form defaults to the file's range; run it
    open_in_sidebar(page, "Backtest Review")
    assert page.get_by_role("textbox", name="Symbols").input_value() == SYMBOL
    main = page.locator("[data-testid='stMain']").inner_text()
    assert f"cover {first} – {last}" in main, main[:1500]
    page.get_by_role("button", name="Run backtest").click()
    settle(page)
    assert_no_exception(page, "backtest")
    page.get_by_text("# Trades").first.wait_for()
    heading = page.locator("[data-testid='stMain']").get_by_role(
        "heading", name=re.compile(r"^Run [0-9a-f]{12}")).inner_text()
    assert f"{SYMBOL} · 1d · {first} → {last}" in heading, heading
    assert_no_demo(page, "backtest")
    page.get_by_role("tab", name="Trades").click()
    settle(page)
    screenshot(page, "real_backtest_review")

    # Pattern Search and the Scanner on the same symbol
    open_in_sidebar(page, "Pattern Search")
    assert SYMBOL in page.locator("[data-testid='stMain']").inner_text()
    assert_no_demo(page, "pattern search")
    screenshot(page, "real_pattern_search")
    open_in_sidebar(page, "Scanner")
    page.get_by_role("button", name=re.compile(r"Scan 1 symbols?")).click()
    settle(page)
    assert_no_exception(page, "scan")
    page.get_by_text(re.compile(r"1 symbols? on 1d bars in")).wait_for()
    assert_no_demo(page, "scanner")
    screenshot(page, "real_scanner")
