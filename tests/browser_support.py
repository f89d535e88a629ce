"""Shared helpers for the real-browser tests: the app served by ``streamlit run`` on a free
loopback port (offline demo data), and a headless Chromium tab driven by Playwright for Python.

Importing this module skips the importing test module when /usr/bin/chromium or the playwright
package is absent (``.ci/run`` installs both); it never runs ``playwright install``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
SHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Variables of the developer's environment the served app must not see.
UNSET = ("SWING_DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL")

if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)", allow_module_level=True)
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - CI installs it from requirements-dev.txt
    pytest.skip("the playwright package is not installed", allow_module_level=True)

__all__ = ["CHROMIUM", "CHROMIUM_ARGS", "ROOT", "SHOTS", "Page", "browser_tab", "free_port",
           "served_app"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def served_app(data_dir: Path, log: Path, *, unset: Iterable[str] = (),
               forbidden_in_log: str = "Traceback") -> Iterator[str]:
    """``streamlit run app.py`` on a free loopback port, offline, with ``data_dir`` as
    SWING_DATA_DIR; yields its URL once ``/_stcore/health`` answers (fails after 90 s). On exit
    the server is stopped and its log (``log``) must not contain ``forbidden_in_log``."""
    port = free_port()
    drop = {*UNSET, *unset}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(SWING_OFFLINE="1", SWING_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--server.headless", "true",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
             "--server.runOnSave", "false"],
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
        assert forbidden_in_log not in text, text[-3000:]


@contextmanager
def browser_tab(*, timeout_ms: float) -> Iterator[Page]:
    """A tab of headless Chromium (1440 × 1000), ``timeout_ms`` the default wait per action."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        tab = context.new_page()
        tab.set_default_timeout(timeout_ms)
        yield tab
        context.close()
        browser.close()
