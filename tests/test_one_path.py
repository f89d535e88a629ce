"""One signal path (issue 14): the dashboard shows, ranks and saves exactly what the engine's
``agent.analysis`` / ``agent.advise`` produce, on real-shaped bars with the benchmarks missing
(where a second pipeline used to fill relative strength from demo SPY/XLK bars)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from apptest_support import assert_clean, demo_app, open_page, table_with
from openai_stub_server import ChatStubServer, json_completion
from real_bars import daily_bars
from streamlit.testing.v1 import AppTest

from swing_core import agent, db, market
from swing_core.features import VECTOR_FIELDS

SYMBOL, SEED = "S02", 2  # these bars end on a bar with a long plan (found once, fixed here)
VOTE = {"trend_label": "up", "entry_bias": "long", "entry_window_low": None,
        "entry_window_high": None, "confidence": 0.8, "rationale": "Trend and R agree."}
PLAN = {"action_plan": "Enter at the plan's entry; stop and target as planned.",
        "risk_notes": "A close below the stop invalidates.",
        "scenarios": ["Follow-through: trail to 1R.", "No follow-through: exit on time."],
        "tone": "balanced"}


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=[SYMBOL])
    db.upsert_bars(db.get_engine(), SYMBOL, "1d", daily_bars(SYMBOL, seed=SEED), source="file")
    market.clear_cache_state()
    at.query_params.update(symbol=SYMBOL, interval="1d", source="local")
    return at


def _engine_signal() -> agent.Signal:
    return agent.analyze(SYMBOL, "1d", engine=db.get_engine(), source="local")


def test_the_scanner_ranks_exactly_the_engines_signal(app: AppTest) -> None:
    expected = _engine_signal().flat()
    assert expected["entry"] is not None
    assert expected["rs_spy"] is None or math.isnan(expected["rs_spy"])  # no SPY bars: left out
    at = open_page(app, "pages/scanner.py")
    at.button(key="run_scan").click().run()
    assert_clean(at)
    row = table_with(at, "symbol", "confidence", "data_source").set_index("symbol").loc[SYMBOL]
    assert row["data_source"] == "local"
    for field in ("confidence", "entry", "stop", "target", "r_multiple", "expected_r"):
        want = math.nan if expected[field] is None else expected[field]
        assert row[field] == pytest.approx(want, nan_ok=True), field
    assert np.isnan(row["rs_sector"])  # left out, never a synthetic value


def test_the_explorer_shows_the_engines_signal(app: AppTest) -> None:
    signal = _engine_signal()
    at = open_page(app, "pages/explorer.py")
    assert_clean(at)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Confidence"] == f"{signal.confidence:.0%}"
    chips = " ".join(str(m.value) for m in at.markdown)
    assert "RS SPY: –" in chips or "RS SPY: —" in chips


def test_a_saved_signal_keeps_the_advisors_vote(app: AppTest, monkeypatch) -> None:
    raw = _engine_signal()
    with ChatStubServer() as stub:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
        # vote and plan are asked concurrently: each reply goes to its own schema's request
        stub.enqueue(json_completion(VOTE), schema="LLMVote")
        stub.enqueue(json_completion(PLAN), schema="LLMActionPlan")
        at = open_page(app, "pages/explorer.py")
        at.button(key="ask_advisor").click().run()
        assert_clean(at)
        assert len(stub.chat_requests) == 2
    at.button(key="save_journal").click().run()
    assert_clean(at)
    stored = db.list_signals(db.get_engine(), symbol=SYMBOL)
    assert len(stored) == 1
    row = stored.iloc[0]
    assert json.loads(row["llm_vote_json"])["entry_bias"] == "long"
    advised_confidence = min(1.0, raw.confidence + 0.15 * VOTE["confidence"])  # STRATEGY.md
    assert row["confidence"] == pytest.approx(advised_confidence)
    assert row["confidence"] != pytest.approx(raw.confidence)
    vectors = db.load_vector_matrix(db.get_engine(), interval="1d", known_only=False)
    assert len(vectors) == 1
    raw_vector = vectors.matrix[0] / vectors.matrix[0][-1]  # the last slot is the constant 1
    slot = VECTOR_FIELDS.index("llm_confidence")
    assert raw_vector[slot] == pytest.approx(VOTE["confidence"], rel=1e-5)  # the vote's slot
