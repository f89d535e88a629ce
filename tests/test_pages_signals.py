"""Signal Explorer and Scanner pages on demo data (AppTest, in-process)."""

from __future__ import annotations

from pathlib import Path

import pytest
from apptest_support import demo_app, open_page, table_with
from streamlit.testing.v1 import AppTest

from swing_core import db, views

WATCHLIST = ["AAPL", "MSFT", "QQQ"]


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=WATCHLIST)
    at.query_params["lookback"] = "20"  # keep the demo frames small
    return at


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


# --------------------------------------------------------------------------- explorer


def test_explorer_shows_plan_chart_cards_and_demo_label(app: AppTest) -> None:
    at = open_page(app, "pages/explorer.py")
    assert not at.error, [e.value for e in at.error]
    assert at.title[0].value == "Signal Explorer · AAPL 30m"
    labels = [m.label for m in at.metric]
    for label in ("Confidence", "R", "Entry", "Stop", "Target", "Price"):
        assert label in labels
    assert any(m.value.startswith("#### Trend") for m in at.markdown)
    charts = at.get("plotly_chart")
    assert charts, "the price chart is drawn"
    assert any("DEMO DATA" in w.value for w in at.warning)
    headers = [s.value for s in at.subheader]
    assert {"Trend and setup", "Pattern prior", "Advisor"} <= set(headers)
    chips = [m.value for m in at.markdown if "-badge[" in m.value]
    for label in ("MTF", "RS sector", "RS SPY", "Volatility", "Session"):
        assert any(f"[{label}:" in chip for chip in chips), (label, chips)


def test_explorer_shows_the_verdict_next_to_the_plan_and_n_beside_every_rate(app: AppTest
                                                                             ) -> None:
    at = open_page(app, "pages/explorer.py")  # AAPL 30m on demo bars: a plan and a prior
    badges = [m.value for m in at.markdown if "Verdict:" in m.value]
    assert len(badges) == 1
    verdict = badges[0].split("Verdict: ")[1].rstrip("]")
    assert verdict in {"take", "skip", "no edge"}
    reasons = {"take": "Positive edge after costs", "skip": "No edge after costs",
               "no edge": ""}
    assert any(c.value.startswith(reasons[verdict]) and "neighbours" in c.value
               for c in at.caption), "the reason is shown beside the verdict"
    tiles = {m.label: m.value for m in at.metric}
    n = int(tiles["Neighbours (n)"])
    assert n > 0
    rate = views.win_rate_label("predicted_r", short=True)  # no journal: not calibrated
    assert tiles[rate].endswith(f"% (n = {n})")
    assert not tiles[rate].startswith(("0%", "100%"))
    expected, costs = float(tiles["Exp. R (gross)"]), float(tiles["Costs (R)"])
    assert float(tiles["Exp. R (net)"]) == pytest.approx(expected - costs, abs=0.011)
    # the journal's calibration of the priors, with its n (an empty journal: too early)
    expander = next(e for e in at.expander if e.label.startswith("Calibration of the priors"))
    assert expander.label.endswith("(journal, n = 0)")
    assert any("Too early to judge the priors" in c.value for c in at.caption)


def test_explorer_symbol_and_lookback_changes_change_the_view(app: AppTest) -> None:
    at = open_page(app, "pages/explorer.py")
    price_aapl = metric(at, "Price")
    bars_caption = [c.value for c in at.caption if "bars analysed" in c.value]
    at.text_input(key="symbol").set_value("msft").run()
    assert not at.exception
    assert at.title[0].value == "Signal Explorer · MSFT 30m"
    assert metric(at, "Price") != price_aapl
    at.select_slider(key="lookback").set_value("59").run()
    assert not at.exception
    longer = [c.value for c in at.caption if "bars analysed" in c.value]
    assert longer and bars_caption and longer != bars_caption


def test_explorer_saves_the_signal_to_the_journal(app: AppTest, tmp_path: Path) -> None:
    at = open_page(app, "pages/explorer.py")
    at.button(key="save_journal").click().run()
    assert not at.exception
    assert any("Saved signal #1" in s.value for s in at.success)
    stored = db.list_signals(db.get_engine())
    assert list(stored["symbol"]) == ["AAPL"] and list(stored["data_source"]) == ["demo"]
    assert stored["vector_id"].notna().all(), "the setup vector joins the library"


def test_explorer_local_source_without_bars_says_what_to_do(app: AppTest) -> None:
    at = open_page(app, "pages/explorer.py")
    at.selectbox(key="source").set_value("local").run()
    assert not at.exception
    message = " ".join(e.value for e in at.error)
    assert "No local 30m bars for AAPL" in message and "Data page" in message


# --------------------------------------------------------------------------- scanner


def test_scanner_empty_state_then_scan_filter_and_csv(app: AppTest) -> None:
    at = open_page(app, "pages/scanner.py")
    assert any("Press **Scan**" in i.value for i in at.info)
    at.button(key="run_scan").click().run()
    assert not at.exception and not at.error
    table = table_with(at, "symbol", "confidence", "verdict", "data_source")
    assert sorted(table["symbol"]) == sorted(WATCHLIST)
    assert set(table["data_source"]) == {"demo"}
    # the engine's ranking: "take" first, then expected R net of costs, then confidence;
    # every prior rate with its n beside it
    assert set(table["verdict"]) <= {"take", "skip", "no edge"}
    assert {"expected_r_net", "cost_r", "expected_winrate_raw", "prior_n",
            "verdict_reason"} <= set(table.columns)
    key = list(zip(table["verdict"] == "take", table["expected_r_net"].fillna(-1e9),
                   table["confidence"], strict=True))
    assert key == sorted(key, reverse=True)
    assert table.loc[table["expected_winrate_raw"].notna(), "prior_n"].gt(0).all()
    assert any("DEMO DATA" in w.value for w in at.warning)
    assert at.get("download_button")
    wanted = table["side"].iloc[0]
    at.multiselect(key="f_side").set_value([wanted]).run()
    filtered = table_with(at, "symbol", "confidence", "verdict")
    assert set(filtered["side"]) == {wanted} and len(filtered) <= len(table)
    at.slider(key="f_conf").set_value(1.0).run()
    assert any("No symbol matches" in i.value for i in at.info)
    at.slider(key="f_conf").set_value(0.0).run()
    at.multiselect(key="f_side").set_value([]).run()
    at.multiselect(key="f_verdict").set_value([table["verdict"].iloc[0]]).run()
    by_verdict = table_with(at, "symbol", "confidence", "verdict")
    assert set(by_verdict["verdict"]) == {table["verdict"].iloc[0]}


def test_scanner_opens_a_symbol_in_the_explorer(app: AppTest) -> None:
    at = open_page(app, "pages/scanner.py")
    at.button(key="run_scan").click().run()
    at.selectbox(key="scan_open_pick").set_value("QQQ").run()
    at.button(key="scan_open").click().run()
    assert not at.exception
    assert at.title[0].value == "Signal Explorer · QQQ 30m"


def test_scanner_watchlist_edits_are_validated_and_saved(app: AppTest) -> None:
    at = open_page(app, "pages/scanner.py")
    at.session_state["watchlist_editor"] = {
        "edited_rows": {}, "added_rows": [{"symbol": "tsla"}, {"symbol": "bad symbol!"}],
        "deleted_rows": [0],
    }
    at.run()
    at.button(key="save_watchlist").click().run()
    assert not at.exception
    assert any("not a valid ticker" in w.value for w in at.warning)
    assert views.load_watchlist() == ["MSFT", "QQQ", "TSLA"]


def test_explorer_advisor_panel_asks_the_llm_when_a_key_is_set(
        app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    from openai_stub_server import ChatStubServer, json_completion

    vote = {"trend_label": "up", "entry_bias": "long", "entry_window_low": None,
            "entry_window_high": None, "confidence": 0.7,
            "rationale": "Momentum above EMA20; reward about 1.7 R."}
    plan = {"action_plan": "Buy stop at the entry; stop and target as planned.",
            "risk_notes": "A close below the stop level invalidates.",
            "scenarios": ["Breakout holds.", "No fill by tomorrow's close."],
            "tone": "balanced"}
    with ChatStubServer() as stub:
        # vote and plan are asked concurrently: each reply goes to its own schema's request
        stub.enqueue(json_completion(vote), schema="LLMVote")
        stub.enqueue(json_completion(plan), schema="LLMActionPlan")
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        monkeypatch.setenv("SWING_LLM_TIMEOUT_S", "5")
        at = open_page(app, "pages/explorer.py")
        assert not any("Set OPENAI_API_KEY" in i.value for i in at.info)
        at.button(key="ask_advisor").click().run()
        assert not at.exception, [e.value for e in at.exception]
        texts = " ".join(m.value for m in at.markdown) + " ".join(t.value for t in at.text)
        assert "**Vote:** long" in texts and "becomes" in texts
        assert "Buy stop at the entry" in texts and "Breakout holds." in texts
        assert len(stub.chat_requests) == 2
