"""End to end in a real browser: the app served by ``streamlit run`` on a free loopback port
(offline demo data, a fresh data folder), driven by Playwright for Python with Debian's
Chromium. Every page is visited and must show no exception; one scan and one small backtest run
through the UI; a screenshot of each page is kept under ``artifacts/screenshots/``.

Skipped only when /usr/bin/chromium or the playwright package is absent (``.ci/run`` installs
both); never runs ``playwright install``.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import ROOT, SHOTS, Page, browser_tab, served_app

#: (url path, screenshot name) of every page.
PAGES = [("", "home"), ("explorer", "explorer"), ("scanner", "scanner"),
         ("pattern_search", "pattern_search"), ("backtest_review", "backtest_review"),
         ("journal", "journal"), ("data", "data"), ("performance", "performance")]
BUSY = {"initial", "running", "rerunRequested", "stopRequested"}

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("e2e_log") / "streamlit.log"
    with served_app(tmp_path_factory.mktemp("e2e_data"), log,
                    forbidden_in_log="unexpected error in") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_tab(timeout_ms=120_000) as tab:
        yield tab


def settle(page: Page, *, timeout_s: float = 120.0) -> None:
    """Wait until the script has finished running (and stays idle for a second)."""
    page.wait_for_selector("[data-testid='stApp']")
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 4:
        state = page.get_attribute("[data-testid='stApp']", "data-test-script-state")
        busy = state in BUSY or page.locator("[data-testid='stSpinner']").count() > 0
        calm = 0 if busy else calm + 1
        if time.monotonic() > deadline:
            raise AssertionError(f"the page did not settle (script state {state!r})")
        page.wait_for_timeout(250)


def assert_no_exception(page: Page, where: str) -> None:
    assert page.locator("[data-testid='stException']").count() == 0, \
        f"{where}: " + page.locator("[data-testid='stException']").first.inner_text()
    errors = page.locator("[data-testid='stAlertContentError']").all_inner_texts()
    assert not [e for e in errors if "unexpected error" in e], (where, errors)


def screenshot(page: Page, name: str) -> Path:
    """The whole page: the viewport is stretched to the main area's height first."""
    height = page.evaluate(
        "() => Math.max(...[...document.querySelectorAll('[data-testid=stMain], "
        "[data-testid=stMainBlockContainer]')].map(e => e.scrollHeight), 900)")
    page.set_viewport_size({"width": 1440, "height": min(int(height) + 80, 7000)})
    page.wait_for_timeout(400)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1440, "height": 1000})
    return path


def visit(page: Page, server: str, path: str) -> None:
    page.goto(f"{server}/{path}")
    settle(page)
    assert_no_exception(page, path or "home")


def test_every_page_renders_in_the_browser(page: Page, server: str) -> None:
    for path, name in PAGES:
        if not (ROOT / "pages" / f"{name}.py").exists():
            continue
        visit(page, server, path)
        main = page.locator("[data-testid='stMain']").inner_text()
        assert main.strip(), f"{name}: the page is empty"
        if name != "performance":
            assert "DEMO" in main or "demo" in main.lower(), f"{name}: demo data must be said"
        assert screenshot(page, name).stat().st_size > 10_000


def test_a_scan_through_the_ui_and_click_through(page: Page, server: str) -> None:
    visit(page, server, "scanner")
    page.get_by_role("button", name=re.compile(r"Scan \d+ symbols")).click()
    settle(page)
    assert_no_exception(page, "scan")
    page.get_by_text(re.compile(r"\d+ symbols on 30m bars in")).wait_for()
    assert page.locator("[data-testid='stDataFrame']").count() >= 1
    screenshot(page, "scanner")
    # click-through: a click on a row of the table (its row-marker cell) opens the Explorer;
    # the first row is the best-ranked signal, which has a plan (a signal without one cannot
    # be journaled: its Save button is disabled)
    grid = page.locator("[data-testid='stDataFrame']").last.bounding_box()
    assert grid is not None
    page.mouse.click(grid["x"] + 18, grid["y"] + 35 + 17)  # below the header: the 1st row
    settle(page)
    assert_no_exception(page, "click-through")
    page.locator("[data-testid='stMain']").get_by_role(
        "heading", name=re.compile(r"Signal Explorer · [A-Z]+ 30m")).wait_for()
    # the symbol is in the URL (bound widgets drop a value equal to the default, AAPL)
    assert re.search(r"/explorer(\?symbol=[A-Z]+|$|\?)", page.url), page.url
    # and the signal goes to the journal
    page.get_by_role("button", name="Save to journal").click()
    settle(page)
    page.get_by_text(re.compile(r"Saved signal #\d+")).wait_for()
    visit(page, server, "journal")
    page.get_by_role("button", name=re.compile(r"Evaluate 1 pending")).wait_for()
    screenshot(page, "journal")


def test_a_small_backtest_through_the_ui(page: Page, server: str) -> None:
    visit(page, server, "backtest_review")
    symbols = page.get_by_role("textbox", name="Symbols")
    symbols.fill("AAPL")
    page.get_by_role("button", name="Run backtest").click()
    settle(page)
    assert_no_exception(page, "backtest")
    page.get_by_text("# Trades").first.wait_for()
    assert page.get_by_text("DEMO DATA: this backtest ran on synthetic prices").count() == 1
    page.get_by_role("tab", name="Trades").click()
    settle(page)
    assert page.locator("[data-testid='stPlotlyChart']").count() >= 1
    screenshot(page, "backtest_review")


def test_screenshots_exist_for_every_page() -> None:
    names = {p.stem for p in SHOTS.glob("*.png")}
    expected = {name for _, name in PAGES if (ROOT / "pages" / f"{name}.py").exists()}
    assert expected <= names, expected - names
    if os.environ.get("SWING_COPY_SCREENSHOTS"):
        docs = ROOT / "docs" / "screenshots"
        docs.mkdir(parents=True, exist_ok=True)
        for name in sorted(expected):
            shutil.copy2(SHOTS / f"{name}.png", docs / f"{name}.png")
