"""The Performance page in a real browser: its live panel (``st.fragment(run_every=…)``) updates
by itself, without a reload, when another process (here: this test, as a CLI run would) writes
performance history into the app's database.

``streamlit run app.py`` on loopback (demo data, a temp data folder), headless Chromium driven by
Playwright; a screenshot is kept in ``artifacts/screenshots/performance_live.png``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from swing_core import db, perf

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"

pytestmark = pytest.mark.browser

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - CI installs it from requirements-dev.txt
    pytest.skip("the playwright package is not installed", allow_module_level=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perf_browser_data")


@pytest.fixture(scope="module")
def server(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("SWING_DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "SWING_PERF")}
    env.update(SWING_OFFLINE="1", SWING_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    log = tmp_path_factory.mktemp("perf_browser_log") / "streamlit.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + log.read_text(errors="replace")[-3000:])
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        text = log.read_text(errors="replace")
        assert "Traceback" not in text, text[-3000:]


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu",
                                            "--disable-background-networking", "--no-first-run"])
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(90_000)
        yield tab
        context.close()
        browser.close()


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
