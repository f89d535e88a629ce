"""The command line: JSON and tables on success; one clean line and exit 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "SWING_DATA_DIR": str(tmp_path), "SWING_OFFLINE": "1",
                   "PYTHONPATH": str(ROOT)}
    environment.pop("SWING_DATABASE_URL", None)
    environment.update(env)
    return subprocess.run([sys.executable, "-m", "swing_core", *args], capture_output=True,
                          text=True, env=environment, cwd=tmp_path, timeout=240)


def test_analyze_prints_the_signal_as_json_and_says_demo(tmp_path):
    done = run_cli("analyze", "AAPL", "--interval", "30m", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["symbol"] == "AAPL" and payload["data_source"] == "demo"
    assert payload["notes"][0].startswith("DEMO DATA")
    assert payload["trend"]["label"] in {"strong_up", "up", "sideways", "down", "strong_down"}
    assert (tmp_path / "swingdesk.sqlite").exists()


def test_scan_prints_a_table_and_keeps_going(tmp_path):
    done = run_cli("scan", "AAPL", "MSFT", "bad$ymbol", "--interval", "1d", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "AAPL" in done.stdout and "MSFT" in done.stdout and "BAD$YMBOL" in done.stdout
    assert "DEMO DATA" in done.stdout


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("analyze", "not a symbol!"), {}, "symbol"),
        (("analyze", "AAPL", "--interval", "1d", "--lookback-days", "10"), {}, "bars"),
        (("analyze", "AAPL"),
         {"SWING_DATABASE_URL": "postgresql+psycopg://trader:s3cret@127.0.0.1:1/swing"},
         "127.0.0.1"),
        (("analyze", "AAPL"), {"SWING_DATABASE_URL": "nosuchdb://x"}, "SWING_DATABASE_URL"),
    ],
    ids=["bad-symbol", "too-few-bars", "unreachable-db", "misconfigured-db"],
)
def test_bad_input_gives_one_clean_message(tmp_path, args, env, expected):
    done = run_cli(*args, tmp_path=tmp_path, **env)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("error: ")
    assert expected.lower() in done.stderr.lower()
    assert "s3cret" not in done.stderr
