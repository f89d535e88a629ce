"""Parameter search (grid and Optuna) scored on a held-out later period; the backtest CLI."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from swing_core.backtest import BacktestConfig, grid_search, optuna_search, resolve_split
from swing_core.cli_backtest import add_backtest_commands
from swing_core.errors import BacktestError
from swing_core.market import demo_bars


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    return {s: demo_bars(s, "1d", 600, end="2025-06-30") for s in ("AAPL", "MSFT")}


def test_grid_search_table_is_a_heatmap_and_selects_on_train(bars) -> None:
    grid = {"max_hold_days": [1, 2, 3], "momentum_stop_atr": [1.0, 1.5]}
    res = grid_search(bars, grid, config=BacktestConfig(interval="1d"), split=0.6,
                      metric="SQN", executor="inline")
    table = res.table
    assert len(table) == 6 and table["rank"].tolist() == list(range(1, 7))
    assert {"train_score", "test_score", "train_trades", "test_trades"} <= set(table)
    assert (table["train_trades"] > 0).all() and (table["test_trades"] > 0).all()
    best = table.iloc[0]
    assert best["train_score"] == np.nanmax(table["train_score"])
    assert res.best_params == {"max_hold_days": best["max_hold_days"],
                               "momentum_stop_atr": best["momentum_stop_atr"]}
    assert res.heatmap("max_hold_days", "momentum_stop_atr").shape == (2, 3)


def test_train_scores_never_see_the_test_period(bars) -> None:
    config = BacktestConfig(interval="1d")
    split = resolve_split(bars, config, 0.6)
    wild = {s: b.copy() for s, b in bars.items()}
    for frame in wild.values():
        later = frame.index >= split
        frame.loc[later, ["open", "high", "low", "close"]] *= 1.5
    grid = {"max_hold_days": [1, 2]}
    clean = grid_search(bars, grid, config=config, split=split, executor="inline").table
    dirty = grid_search(wild, grid, config=config, split=split, executor="inline").table
    key = "max_hold_days"
    a, b = clean.set_index(key).sort_index(), dirty.set_index(key).sort_index()
    pd.testing.assert_series_equal(a["train_score"], b["train_score"])
    assert not a["test_score"].equals(b["test_score"])


def test_optuna_search_records_train_and_test(bars) -> None:
    pytest.importorskip("optuna")
    res = optuna_search(bars, {"max_hold_days": (1, 3), "momentum_target_atr": (1.5, 3.0)},
                        config=BacktestConfig(interval="1d"), n_trials=4, split=0.6)
    assert len(res.table) == 4 and res.table["test_score"].notna().any()
    assert res.best_params["max_hold_days"] in (1, 2, 3)
    assert isinstance(res.best_params["max_hold_days"], int)


def test_search_rejects_bad_input(bars) -> None:
    with pytest.raises(BacktestError, match="empty"):
        grid_search(bars, {}, executor="inline")
    with pytest.raises(BacktestError, match="wrong side"):
        grid_search(bars, {"momentum_stop_atr": [-1.0]}, config=BacktestConfig(interval="1d"),
                    executor="inline")
    with pytest.raises(BacktestError, match="inside"):
        resolve_split(bars, BacktestConfig(interval="1d", start="2025-01-01"), "2024-01-01")


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    add_backtest_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_backtest_prints_saves_and_serves_from_storage(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWING_DATABASE_URL", raising=False)
    argv = ["backtest", "AAPL", "MSFT", "--interval", "1d", "--start", "2024-06-01", "--end",
            "2025-06-01", "--offline", "--workers", "1"]
    assert _cli(argv) == 0
    out = capsys.readouterr().out
    assert "Return [%]" in out and "SQN" in out and "saved as run id 1" in out
    assert _cli(argv) == 0
    assert "served from storage" in capsys.readouterr().out
    assert _cli(["backtest-runs"]) == 0
    listing = capsys.readouterr().out
    assert "AAPL,MSFT" in listing
    assert _cli(["backtest-show", "1"]) == 0
    assert "Win Rate [%]" in capsys.readouterr().out
    with pytest.raises(BacktestError, match="name=value"):
        _cli(argv + ["--param", "oops"])


def test_cli_backtest_fill_convention(tmp_path, monkeypatch, capsys):
    import json

    from swing_core import db
    from swing_core.backtest import load_run

    monkeypatch.setenv("SWING_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SWING_DATABASE_URL", raising=False)
    argv = ["backtest", "AAPL", "--interval", "1d", "--start", "2024-06-01", "--end",
            "2025-06-01", "--offline", "--workers", "1", "--json"]
    runs = {}
    for fill in ("close", "next_open"):
        assert _cli(argv + ["--fill", fill]) == 0
        runs[fill] = json.loads(capsys.readouterr().out)
    assert runs["close"]["run_hash"] != runs["next_open"]["run_hash"], "saved runs differ"
    assert runs["close"]["stats"]["Avg. R"] != runs["next_open"]["stats"]["Avg. R"]
    stored = load_run(db.get_engine(), runs["next_open"]["run_hash"])
    assert stored.config.fill == "next_open"
    assert load_run(db.get_engine(), runs["close"]["run_hash"]).config.fill == "close"
    with pytest.raises(SystemExit):
        _cli(argv + ["--fill", "vwap"])
