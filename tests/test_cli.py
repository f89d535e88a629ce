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
    # the verdict, in the JSON and as one line for a person
    assert payload["verdict"] in {"take", "skip", "no edge"} and payload["verdict_reason"]
    assert f"verdict: {payload['verdict']} (" in done.stderr


def test_scan_prints_a_table_and_keeps_going(tmp_path):
    done = run_cli("scan", "AAPL", "MSFT", "bad$ymbol", "--interval", "1d", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "AAPL" in done.stdout and "MSFT" in done.stdout and "BAD$YMBOL" in done.stdout
    assert "DEMO DATA" in done.stdout
    assert "verdict" in done.stdout and "expected_r_net" in done.stdout and "prior_n" in done.stdout


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


def _daily_csv(path: Path, n: int = 120, *, mutate=None) -> Path:
    import numpy as np
    import pandas as pd

    dates = pd.bdate_range("2024-01-02", periods=n)
    close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, n))
    frame = pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Open": close, "High": close + 1,
                          "Low": close - 1, "Close": close, "Volume": 1000})
    if mutate is not None:
        frame = mutate(frame)
    frame.to_csv(path, index=False)
    return path


def test_analyze_a_file_uses_it_and_no_demo_context(tmp_path):
    path = _daily_csv(tmp_path / "bars.csv")
    done = run_cli("analyze", "MINE", "--interval", "1d", "--file", str(path),
                   tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["data_source"] == "file"
    assert payload["rs_sector"] is None  # offline: demo benchmarks are never mixed in
    assert any("demo" in note for note in payload["notes"])


def _set(column, row, value):
    def mutate(frame):
        frame.loc[row, column] = value
        return frame
    return mutate


@pytest.mark.parametrize(
    ("mutate", "n", "expected"),
    [
        (lambda f: f.drop(columns=["Close"]), 120, "close"),
        (_set("Close", 50, float("nan")), 120, "nan"),
        (_set("Low", 60, -5.0), 120, "positive"),
        (_set("High", 70, 1.0), 120, "high"),
        (_set("High", 80, float("inf")), 120, "infinite"),
        (None, 10, "bars"),
        (lambda f: f.iloc[0:0], 120, "no"),
    ],
    ids=["missing-column", "nan", "non-positive", "high-below-low", "infinite", "too-few",
         "empty"],
)
def test_malformed_files_give_one_clean_message(tmp_path, mutate, n, expected):
    path = _daily_csv(tmp_path / "bars.csv", n, mutate=mutate)
    done = run_cli("analyze", "MINE", "--interval", "1d", "--file", str(path),
                   tmp_path=tmp_path)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr and done.stderr.startswith("error: ")
    assert expected in done.stderr.lower()


@pytest.mark.parametrize(("param", "expected"), [
    ("rsi_period=NaN", "rsi_period must be a finite number"),
    ("rsi_period=2.5", "rsi_period must be a whole number"),
    ("ema_span=1000000", "ema_span must be between 1 and 500"),
    ("fee_per_fill=Infinity", "fee_per_fill must be a finite number"),
])
def test_backtest_refuses_absurd_parameters_by_name(tmp_path, param, expected):
    done = run_cli("backtest", "AAPL", "--interval", "1d", "--param", param, tmp_path=tmp_path)
    assert done.returncode == 2, done.stdout
    assert "Traceback" not in done.stderr and expected in done.stderr


def test_swingagent_format_uses_the_original_names_and_swingdesk_its_own(tmp_path):
    path = _daily_csv(tmp_path / "bars.csv")
    ours = json.loads(run_cli("analyze", "MINE", "--interval", "1d", "--file", str(path),
                              tmp_path=tmp_path).stdout)
    done = run_cli("analyze", "MINE", "--interval", "1d", "--file", str(path), "--format",
                   "swingagent", tmp_path=tmp_path)
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    assert theirs["trend"]["rsi_14"] == ours["trend"]["rsi14"]
    assert {"rs_sector_20", "rs_spy_20", "tod_bucket", "mtf_15m_trend"} <= set(theirs)
    assert not {"rs_sector_20", "tod_bucket"} & set(ours)
    if ours["entry"] is not None:
        assert theirs["entry"]["take_profit"] == ours["entry"]["target"]
        assert theirs["entry"]["entry_price"] == ours["entry"]["entry"]


# --------------------------------------------------------------------------- the error edge


def _failing(monkeypatch, error: Exception) -> None:
    from swing_core import cli

    def fail(args):
        raise error

    monkeypatch.setattr(cli, "cmd_data_list", fail)


def test_a_bug_is_one_line_asking_for_a_report_and_exit_1(monkeypatch, capsys):
    from swing_core import cli

    _failing(monkeypatch, ValueError("cannot reindex on an axis with duplicates"))
    assert cli.main(["data", "list"]) == cli.EXIT_BUG == 1
    err = capsys.readouterr().err
    assert err.startswith("unexpected error (ValueError) in `data`")
    assert "please report" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert cli.main(["--traceback", "data", "list"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_bad_configuration_is_a_user_error_exit_2(monkeypatch, capsys):
    from swing_core import cli
    from swing_core.errors import ConfigError

    _failing(monkeypatch, ConfigError("Invalid strategy parameters: max_hold_days must be at "
                                      "least 1 (got 0)."))
    assert cli.main(["data", "list"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.startswith("error: Invalid strategy parameters")


def test_a_malformed_setting_in_the_environment_is_a_user_error(monkeypatch, capsys):
    from swing_core import cli

    monkeypatch.setenv("SWING_DB_POOL_SIZE", "many")
    assert cli.main(["data", "list"]) == cli.EXIT_USER_ERROR
    assert capsys.readouterr().err.strip() == \
        "error: SWING_DB_POOL_SIZE must be a number, got 'many'."
