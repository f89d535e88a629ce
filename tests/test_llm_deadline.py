"""One overall deadline per advisor request, vote and plan asked concurrently, each failure said,
and OPENAI_BASE_URL checked (issue 16, the advisor and item 8).

Against the real loopback Chat Completions server (tests/openai_stub_server): nothing of the
``openai`` client or of ``swing_core.llm`` is mocked. The time bounds are functional (a slow
server must not hold the advisor much past its deadline), generous on purpose.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from apptest_support import demo_app, open_page
from openai_stub_server import ChatStubServer, error, json_completion
from streamlit.testing.v1 import AppTest
from test_llm import GOOD_PLAN, GOOD_VOTE, SIGNAL, calls, make_settings

from swing_core.config import Settings
from swing_core.errors import ConfigError
from swing_core.llm import Advisor, CircuitBreaker, advisor_status, check_base_url

SLOW_S = 5.0  # the slow server's delay, well past the deadlines below
DEADLINE_S = 1.5
DEADLINE_NOTE = "the advisor did not answer within 1.5 s (SWING_LLM_DEADLINE_S)"


@pytest.fixture
def stub():
    with ChatStubServer() as server:
        yield server


def slow_stub(stub: ChatStubServer) -> ChatStubServer:
    """Every vote and plan request answered (correctly) only after SLOW_S seconds."""
    stub.enqueue(*[replace(json_completion(GOOD_VOTE), delay_s=SLOW_S)] * 3, schema="LLMVote")
    stub.enqueue(*[replace(json_completion(GOOD_PLAN), delay_s=SLOW_S)] * 3,
                 schema="LLMActionPlan")
    return stub


def advisor_for(stub: ChatStubServer | None, engine, **changes) -> Advisor:
    return Advisor(make_settings(stub, **changes), engine, breaker=CircuitBreaker(),
                   retry_base_s=0.5)


# --------------------------------------------------------------------------- the deadline


def test_slow_server_is_cut_at_the_deadline_with_both_failures_said(stub, sqlite_engine):
    """Before: 3 tries x 10 s for the vote, then the same for the plan (~64 s per click)."""
    slow_stub(stub)
    with advisor_for(stub, sqlite_engine, llm_timeout_s=10.0,
                     llm_deadline_s=DEADLINE_S) as advisor:
        started = time.monotonic()
        consultation = advisor.consult(SIGNAL, plan=True)
        elapsed = time.monotonic() - started

    assert elapsed < DEADLINE_S + 3.0, elapsed  # one deadline for both, not 2 x 3 x 10 s
    vote, plan = consultation.vote, consultation.plan
    assert vote.vote is None and vote.outcome == "timeout" and vote.note == DEADLINE_NOTE
    assert plan is not None and plan.plan is None and plan.outcome == "timeout"
    assert plan.note == DEADLINE_NOTE  # the plan's failure is said, not dropped
    assert consultation.notes == [f"Vote: {DEADLINE_NOTE}", f"Action plan: {DEADLINE_NOTE}"]
    # one try each: no retry can start once the deadline is (nearly) reached
    assert vote.attempts == 1 and plan.attempts == 1
    # concurrent: the second request arrived while the first was still waiting for its answer
    first, second = sorted(stub.chat_requests, key=lambda r: r.received_at)
    assert {first.schema, second.schema} == {"LLMVote", "LLMActionPlan"}
    assert second.received_at - first.received_at < DEADLINE_S
    assert sorted(r.outcome for r in calls(sqlite_engine)) == ["timeout", "timeout"]


def test_fast_server_gives_both_answers_asked_together(stub, sqlite_engine):
    """Each reply waits until both requests are in: sequential calls would get a 500."""
    stub.enqueue(replace(json_completion(GOOD_VOTE), together=2), schema="LLMVote")
    stub.enqueue(replace(json_completion(GOOD_PLAN), together=2), schema="LLMActionPlan")
    with advisor_for(stub, sqlite_engine, llm_timeout_s=8.0, llm_deadline_s=8.0) as advisor:
        consultation = advisor.consult(SIGNAL, plan=True, style="conservative")
    assert consultation.vote.ok and consultation.vote.vote.entry_bias == "long"
    assert consultation.plan is not None and consultation.plan.ok
    assert consultation.plan.plan.action_plan == GOOD_PLAN["action_plan"]
    assert consultation.notes == []
    assert len(stub.chat_requests) == 2


def test_consult_without_plan_asks_only_the_vote(stub, sqlite_engine):
    stub.enqueue(json_completion(GOOD_VOTE), schema="LLMVote")
    with advisor_for(stub, sqlite_engine) as advisor:
        consultation = advisor.consult(SIGNAL, plan=False)
    assert consultation.vote.ok and consultation.plan is None
    assert [r.schema for r in stub.chat_requests] == ["LLMVote"]


def test_no_retry_starts_when_its_back_off_would_pass_the_deadline(stub, sqlite_engine):
    """Before: the 500 was retried twice after waiting the server's Retry-After (2 s) each."""
    stub.enqueue(*[error(500, "busy", headers={"Retry-After": "2"})] * 3)
    with advisor_for(stub, sqlite_engine, llm_deadline_s=1.2) as advisor:
        result = advisor.vote(SIGNAL)
    assert result.outcome == "server_error" and result.attempts == 1
    assert result.note == ("the advisor did not answer within 1.2 s (SWING_LLM_DEADLINE_S): "
                           "server error (500)")
    assert len(stub.chat_requests) == 1


def test_each_try_waits_at_most_the_time_left(stub, sqlite_engine):
    """A single vote too: the try's timeout is min(SWING_LLM_TIMEOUT_S, time left)."""
    slow_stub(stub)
    with advisor_for(stub, sqlite_engine, llm_timeout_s=30.0,
                     llm_deadline_s=DEADLINE_S) as advisor:
        started = time.monotonic()
        result = advisor.vote(SIGNAL)
        elapsed = time.monotonic() - started
    assert elapsed < DEADLINE_S + 3.0, elapsed
    assert result.outcome == "timeout" and result.note == DEADLINE_NOTE


def test_the_per_try_timeout_still_applies_under_a_long_deadline(stub, sqlite_engine):
    stub.enqueue(*[replace(json_completion(GOOD_VOTE), delay_s=SLOW_S)] * 3)
    with advisor_for(stub, sqlite_engine, llm_timeout_s=0.3, llm_deadline_s=60.0) as advisor:
        advisor.retry_base_s = 0.01
        result = advisor.vote(SIGNAL)
    assert result.note == "advisor unavailable: no answer within 0.3 s after 3 tries"


# --------------------------------------------------------------------------- OPENAI_BASE_URL


@pytest.mark.parametrize("url", ["not a url", "ftp://x", "http://", "https:///v1",
                                 "http://host:port/v1", "localhost:8000/v1"])
def test_invalid_base_url_is_refused_with_what_to_set(url):
    with pytest.raises(ConfigError) as caught:
        check_base_url(url)
    assert str(caught.value) == ("OPENAI_BASE_URL must be an http(s) URL such as "
                                 f"https://api.openai.com/v1, got {url!r}.")


def test_valid_base_urls_pass():
    assert check_base_url(None) is None and check_base_url("  ") is None
    assert check_base_url(" http://127.0.0.1:8080/v1 ") == "http://127.0.0.1:8080/v1"
    assert check_base_url("HTTPS://[::1]:8443/v1") == "HTTPS://[::1]:8443/v1"


def test_invalid_base_url_never_echoes_a_password():
    with pytest.raises(ConfigError) as caught:
        check_base_url("htp://user:s3cret@10.0.0.5/v1")
    assert "s3cret" not in str(caught.value) and "10.0.0.5/v1" in str(caught.value)


def test_advisor_with_an_invalid_base_url_says_so_and_sends_nothing(sqlite_engine):
    """Before: "advisor unavailable: could not reach None after 3 tries"."""
    with advisor_for(None, sqlite_engine, openai_base_url="not a url") as advisor:
        consultation = advisor.consult(SIGNAL, plan=True)
    message = ("OPENAI_BASE_URL must be an http(s) URL such as https://api.openai.com/v1, "
               "got 'not a url'.")
    assert consultation.vote.outcome == "config_error" and consultation.vote.note == message
    assert consultation.plan is not None and consultation.plan.note == message
    assert calls(sqlite_engine) == []  # no call was made, so none is counted
    status = advisor_status(Settings(openai_api_key="k", openai_base_url="ftp://x"))
    assert status == ("the advisor is off: OPENAI_BASE_URL must be an http(s) URL such as "
                      "https://api.openai.com/v1, got 'ftp://x'.")


# --------------------------------------------------------------------------- the Explorer


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    at = demo_app(monkeypatch, tmp_path, watchlist=["AAPL", "MSFT"])
    at.query_params["lookback"] = "20"  # keep the demo frames small
    return at


def test_explorer_with_a_slow_advisor_shows_the_page_and_both_failures(
        app: AppTest, stub: ChatStubServer, monkeypatch: pytest.MonkeyPatch) -> None:
    slow_stub(stub)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("SWING_LLM_DEADLINE_S", str(DEADLINE_S))
    at = open_page(app, "pages/explorer.py")
    at.button(key="ask_advisor").click().run()
    assert not at.exception, [e.value for e in at.exception]

    warnings = [w.value.replace("\\", "") for w in at.warning]  # Markdown escapes dropped
    assert f"Vote: {DEADLINE_NOTE}" in warnings and f"Action plan: {DEADLINE_NOTE}" in warnings
    # the rest of the page is there: metrics, chart, cards, and the journal button
    labels = [m.label for m in at.metric]
    assert {"Confidence", "Entry", "Stop", "Target"} <= set(labels)
    assert at.get("plotly_chart")
    assert {"Trend and setup", "Pattern prior", "Advisor"} <= {s.value for s in at.subheader}
    assert at.button(key="save_journal") is not None
    assert len(stub.chat_requests) == 2


def test_explorer_with_an_invalid_base_url_says_what_to_set(
        app: AppTest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("OPENAI_BASE_URL", "not a url")
    at = open_page(app, "pages/explorer.py")
    errors = [e.value.replace("\\", "") for e in at.error]
    assert any("OPENAI_BASE_URL must be an http(s) URL such as" in e and "not a url" in e
               for e in errors), errors
    assert at.get("plotly_chart") and at.button(key="save_journal") is not None
