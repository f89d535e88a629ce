"""The Performance page in a real browser: its live panel (``st.fragment(run_every=…)``) updates
by itself, without a reload, when another process (here: this test, as a CLI run would) writes
performance history into the app's database.

``streamlit run app.py`` on loopback (demo data, a temp data folder), headless Chromium driven by
Playwright; a screenshot is kept in ``artifacts/screenshots/performance_live.png``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import SHOTS, Page, browser_tab, served_app

from swing_core import db, perf

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perf_browser_data")


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("perf_browser_log") / "streamlit.log"
    with served_app(data_dir, log, unset=("SWING_PERF",), forbidden_in_log="Traceback") as url:
        yield url


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    with browser_tab(timeout_ms=90_000) as tab:
        yield tab


def _metric(page: Page, label: str) -> str:
    box = page.locator("[data-testid='stMetric']").filter(has_text=label).first
    return box.locator("[data-testid='stMetricValue']").inner_text().strip()


def _updated(page: Page) -> str:
    text = page.get_by_text(re.compile(r"^Updated \d\d:\d\d:\d\d New York")).first.inner_text()
    return text.split(" New York")[0]


def test_live_panel_refreshes_itself_with_another_process_history(
        page: Page, server: str, data_dir: Path) -> None:
    page.goto(f"{server}/performance")
    page.get_by_text("refreshes every 10 s").first.wait_for()
    assert page.locator("[data-testid='stException']").count() == 0
    first = _updated(page)
    calls_before = int(_metric(page, "Timed calls").replace(",", ""))

    # Another process's history, written to the app's database (as a CLI run does at exit).
    engine = db.make_engine(f"sqlite:///{data_dir / 'swingdesk.sqlite'}")
    try:
        registry = perf.PerfRegistry()
        recorder = perf.PerfRecorder(engine, process="cli:4242", registry=registry,
                                     sampler=perf.MemorySampler(), capture_slow_queries=False,
                                     memory_interval_s=None, at_exit=False)
        for ms in range(1, 26):
            registry.record("browser_probe", float(ms))
        assert recorder.flush().error is None
    finally:
        engine.dispose()

    # No reload, no click: the fragment's next tick (<= 10 s) shows it.
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        calls = int(_metric(page, "Timed calls").replace(",", ""))
        if calls >= calls_before + 25:
            break
        page.wait_for_timeout(500)
    else:
        pytest.fail(f"the live panel did not update: {calls_before} -> {calls} timed calls")
    page.get_by_text("browser_probe p95").first.wait_for()  # the chart legend
    assert _updated(page) != first
    assert page.locator("[data-testid='stException']").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "performance_live.png"), full_page=True)
