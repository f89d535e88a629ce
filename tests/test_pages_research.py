"""Backtest Review, Journal and Pattern Search pages on demo data (AppTest, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_support import assert_clean, demo_app, open_page, table_with
from streamlit.testing.v1 import AppTest

from swing_core import db, views

RUN = "bt_run"


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    return demo_app(monkeypatch, tmp_path, watchlist=["AAPL", "MSFT"], timeout=120)


def run_small_backtest(at: AppTest, symbols: str = "AAPL") -> AppTest:
    at.text_input(key="bt_symbols").set_value(symbols)
    at.selectbox(key="bt_interval").set_value("1d")
    at.button(key=RUN).click().run()
    return at


# --------------------------------------------------------------------------- backtest review


def test_backtest_form_runs_and_shows_every_view(app: AppTest) -> None:
    at = open_page(app, "pages/backtest_review.py")
    assert any("Run backtest" in i.value for i in at.info), "the empty state says what to do"
    run_small_backtest(at, "AAPL, MSFT")
    assert_clean(at)
    assert any("DEMO DATA" in w.value for w in at.warning)
    labels = [m.label for m in at.metric]
    assert {"Return", "Sharpe Ratio", "Max. Drawdown", "Win Rate (P&L after costs)",
            "# Trades"} <= set(labels)
    stats = table_with(at, "statistic", "value")
    assert "SQN" in set(stats["statistic"]) and "Brier Score" in set(stats["statistic"])
    trades = table_with(at, "entry_ts", "exit_reason", "realized_r")
    assert len(trades) > 0 and set(trades["symbol"]) <= {"AAPL", "MSFT"}
    assert len(at.get("plotly_chart")) >= 6, "equity, price+trades, R, breakdowns, calibration"
    runs = table_with(at, "run_hash", "n_trades")
    assert len(runs) == 1, "the run was saved"


def test_calibration_tab_shows_the_four_brier_scores_n_and_the_verdict(app: AppTest) -> None:
    at = run_small_backtest(open_page(app, "pages/backtest_review.py"))
    assert_clean(at)
    report = views.backtest_calibration(at.session_state["bt_result"])
    assert report.n > 0
    brier = table_with(at, "predictor", "brier", "n")
    assert brier["predictor"].tolist() == list(views.BRIER_LABELS.values())
    comparison = report.comparison
    assert brier["brier"].tolist() == pytest.approx(
        [comparison.brier_raw, comparison.brier_calibrated, comparison.brier_base_rate, 0.25],
        nan_ok=True)
    assert set(brier["n"]) == {report.n}
    boxes = [b.value for b in (*at.success, *at.warning, *at.info)]
    assert report.verdict in boxes, "the plain-language verdict is shown"
    # predicted (before costs) and realized (after costs) side by side, named, with n
    tiles = {m.label: m.value for m in at.metric}
    for kind in ("predicted_r", "predicted_net", "pnl", "r"):
        assert views.win_rate_label(kind, short=True) in tiles, kind
    assert tiles[views.win_rate_label("predicted_r", short=True)].endswith(f"(n = {report.n})")
    trades = int(at.session_state["bt_result"].stats["# Trades"])
    assert tiles[views.win_rate_label("pnl", short=True)].endswith(f"(n = {trades})")
    stats = table_with(at, "statistic", "value")
    assert {views.win_rate_label("pnl"), views.win_rate_label("r")} <= set(stats["statistic"])
    # a reloaded run shows the same report (the raw win rate and n are stored)
    at.button(key=RUN).click().run()
    assert any("Served from storage" in c.value for c in at.caption)
    again = table_with(at, "predictor", "brier", "n")
    assert again["n"].tolist() == brier["n"].tolist()
    assert again["brier"].tolist() == pytest.approx(brier["brier"].tolist(), nan_ok=True)


def test_fill_convention_is_a_form_choice_and_part_of_the_run(app: AppTest) -> None:
    at = open_page(app, "pages/backtest_review.py")
    fill = at.selectbox(key="bt_fill")
    assert fill.value == "close" and fill.options == ["Signal bar's close", "Next bar's open"]
    assert "next bar's open" in fill.help
    run_small_backtest(at)
    assert not any("next bar's open" in c.value for c in at.caption)
    at.selectbox(key="bt_fill").set_value("next_open")
    at.button(key=RUN).click().run()
    assert_clean(at)
    assert any("next bar's open" in c.value for c in at.caption)
    assert at.session_state["bt_result"].config.fill == "next_open"
    runs = table_with(at, "run_hash", "n_trades")
    assert len(runs) == 2, "a run with the other fill is another run"


def test_trade_filters_narrow_the_list(app: AppTest) -> None:
    at = run_small_backtest(open_page(app, "pages/backtest_review.py"))
    everything = table_with(at, "entry_ts", "exit_reason")
    at.multiselect(key="bt_f_out").set_value(["win"]).run()
    assert_clean(at)
    wins = table_with(at, "entry_ts", "exit_reason")
    assert 0 < len(wins) < len(everything) and (wins["realized_r"] > 0).all()


def test_same_inputs_are_served_from_storage_and_runs_compare(app: AppTest) -> None:
    at = run_small_backtest(open_page(app, "pages/backtest_review.py"))
    at.button(key=RUN).click().run()
    assert any("Served from storage" in c.value for c in at.caption)
    at.number_input(key="bt_risk").set_value(0.5)
    at.button(key=RUN).click().run()
    assert_clean(at)
    runs = table_with(at, "run_hash", "n_trades")
    assert len(runs) == 2
    at.session_state["bt_saved"] = {"selection": {"rows": [0, 1], "columns": [], "cells": []}}
    at.run()
    at.button(key="bt_compare").click().run()
    assert_clean(at)
    compared = [f.value for f in at.dataframe
                if "statistic" in f.value.columns and "value" not in f.value.columns]
    assert compared and compared[0].shape[1] == 3, "one column per run"
    assert len(at.get("plotly_chart")) >= 7, "the side-by-side equity chart is drawn"


def test_parameter_search_draws_heatmaps(app: AppTest) -> None:
    at = run_small_backtest(open_page(app, "pages/backtest_review.py"))
    at.text_input(key="bt_sxv").set_value("1.5, 2.5")
    at.text_input(key="bt_syv").set_value("1.0, 1.4")
    at.number_input(key="bt_smin").set_value(1)
    at.button(key="FormSubmitter:bt_search-Run search").click().run()
    assert_clean(at)
    search = table_with(at, "momentum_target_atr", "momentum_stop_atr", "test_score")
    assert len(search) == 4
    assert any("best by train" in c.value for c in at.caption)


def test_impossible_backtest_is_an_error_message_not_a_traceback(app: AppTest) -> None:
    at = open_page(app, "pages/backtest_review.py")
    at.text_input(key="bt_symbols").set_value("AAPL")
    at.selectbox(key="bt_interval").set_value("1d")
    at.number_input(key="bt_p_momentum_stop_atr").set_value(0.0)
    at.button(key=RUN).click().run()
    assert not at.exception
    message = " ".join(e.value for e in at.error).replace("\\", "")
    assert "momentum_stop_atr" in message and "Cannot run this backtest" in message
    at.text_input(key="bt_symbols").set_value("$$$, !!!")
    at.button(key=RUN).click().run()
    assert not at.exception
    assert any("valid ticker" in e.value for e in at.error)


# --------------------------------------------------------------------------- journal


def test_journal_empty_then_saved_signal_evaluated_and_exported(app: AppTest) -> None:
    at = open_page(app, "pages/journal.py")
    assert any("journal is empty" in i.value for i in at.info)
    at.switch_page("pages/explorer.py").run()
    at.button(key="save_journal").click().run()
    at.switch_page("pages/journal.py").run()
    assert not at.exception
    table = table_with(at, "asof", "symbol", "realized_r")
    assert list(table["symbol"]) == ["AAPL"]
    assert {m.label: m.value for m in at.metric}["Pending"] == "1"
    assert at.get("download_button")
    at.button(key="j_evaluate").click().run()
    assert not at.exception
    assert any("Checked 1 pending" in s.value for s in at.success)
    at.segmented_control(key="j_status").set_value("evaluated").run()
    assert any("No stored signal matches" in i.value for i in at.info) or \
        len(table_with(at, "asof", "symbol")) == 1
    assert len(db.list_signals(db.get_engine())) == 1


# --------------------------------------------------------------------------- pattern search


def test_pattern_search_offline_uses_the_labelled_demo_library(app: AppTest) -> None:
    at = open_page(app, "pages/pattern_search.py")
    assert_clean(at)
    assert any("DEMO library" in w.value for w in at.warning)
    neighbours = table_with(at, "similarity", "realized_r", "exit_reason")
    assert len(neighbours) > 0
    assert (neighbours["similarity"].diff().dropna() <= 1e-12).all(), "most similar first"
    assert len(at.get("plotly_chart")) == 3, "paths, outcome histogram, projection"
    count = next(m.value for m in at.metric if m.label == "Neighbours")
    at.slider(key="ps_k").set_value(10).run()
    assert_clean(at)
    fewer = next(m.value for m in at.metric if m.label == "Neighbours")
    assert int(fewer) <= 10 <= int(count)
