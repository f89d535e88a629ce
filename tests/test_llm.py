"""The LLM advisor against a real Chat Completions server on loopback (tests/openai_stub_server).

The official ``openai`` client talks HTTP to the stub: nothing of the client or of
``swing_core.llm`` is mocked, no key or network is needed.
"""

from __future__ import annotations

import json
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from openai_stub_server import ChatStubServer, completion, error, json_completion

from swing_core import clock as clock_mod
from swing_core import llm
from swing_core.clock import FixedClock
from swing_core.config import Settings, StrategyParams
from swing_core.errors import LLMError
from swing_core.llm import (
    LLM_CACHE_STATS,
    LLM_CALL_STATS,
    Advisor,
    CircuitBreaker,
    LLMActionPlan,
    LLMVote,
    advisor_status,
    apply_vote,
    call_cost_usd,
    model_price,
    should_consult,
    spend_this_month,
)
from swing_core.models import LLMCall

SIGNAL = {
    "symbol": "AAPL", "interval": "30m", "asof": datetime(2026, 11, 27, 20, 30, tzinfo=UTC),
    "trend_label": "up", "rsi14": 63.2, "ema_slope": 0.0134, "price": 190.12,
    "setup": "momentum", "side": "long", "entry": 190.55, "stop": 188.10, "target": 195.40,
    "r_multiple": 1.98, "confidence": 0.62, "expected_r": 0.21, "expected_winrate": 0.55,
    "vol_regime": "M", "mtf_alignment": 1, "rs_sector": 1.03, "time_bucket": "close",
    "vec_00": 0.1,  # not a signal field: never sent
}

GOOD_VOTE = {"trend_label": "up", "entry_bias": "long", "entry_window_low": 190.2,
             "entry_window_high": 190.8, "confidence": 0.7,
             "rationale": "Momentum above EMA20 with RSI 63; R near 2."}
GOOD_PLAN = {"action_plan": "Buy stop 190.55; stop 188.10; target 195.40.",
             "risk_notes": "Close below 188.10 invalidates.",
             "scenarios": ["Breakout holds: trail to 1R.", "Fails at 190.55: no fill."],
             "tone": "balanced"}

NOW = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)


@pytest.fixture
def stub():
    with ChatStubServer() as server:
        yield server


def make_settings(stub: ChatStubServer | None = None, **changes) -> Settings:
    base = Settings(openai_api_key="test-key",
                    openai_base_url=stub.base_url if stub else None, llm_timeout_s=2.0)
    return replace(base, **changes)


def _advisors(engine):
    made: list[Advisor] = []

    def factory(stub=None, *, clock=lambda: NOW, breaker=None, **changes) -> Advisor:
        advisor = Advisor(make_settings(stub, **changes), engine, clock=clock,
                          breaker=breaker or CircuitBreaker(), retry_base_s=0.01)
        made.append(advisor)
        return advisor

    yield factory
    for advisor in made:
        advisor.close()


@pytest.fixture
def make_advisor(sqlite_engine):
    """Advisors on a fresh SQLite database, each with its own circuit breaker."""
    yield from _advisors(sqlite_engine)


@pytest.fixture
def make_advisor_any_db(db_engine):
    """The same on SQLite and, when SWING_TEST_DATABASE_URL is set, on PostgreSQL."""
    yield from _advisors(db_engine)


def calls(engine) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(LLMCall).order_by(LLMCall.id)))


def delta(counters: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {name: counters[name] - before.get(name, 0) for name in counters}


# --------------------------------------------------------------------------- good answers


def test_good_vote_is_parsed_costed_and_recorded(stub, make_advisor_any_db, db_engine):
    stub.enqueue(json_completion(GOOD_VOTE, prompt_tokens=300, completion_tokens=50))
    result = make_advisor_any_db(stub).vote(SIGNAL)

    assert result.ok and result.outcome == "ok" and result.note == ""
    assert result.vote == LLMVote(**GOOD_VOTE)
    assert not result.from_cache and result.attempts == 1
    expected_cost = (300 * 0.15 + 50 * 0.60) / 1e6  # gpt-4o-mini's price per million tokens
    assert result.cost_usd == pytest.approx(expected_cost)
    assert (result.tokens_in, result.tokens_out) == (300, 50)
    assert result.latency_ms > 0

    [request] = stub.chat_requests
    assert request.headers["Authorization"] == "Bearer test-key"
    body = request.body
    assert body["model"] == "gpt-4o-mini"
    fmt = body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["name"] == "LLMVote"
    assert set(fmt["json_schema"]["schema"]["required"]) == set(LLMVote.model_fields)
    system, user = body["messages"]
    assert "never invent prices" in system["content"].lower()
    assert '"symbol":"AAPL"' in user["content"] and "vec_00" not in user["content"]
    assert len(system["content"]) + len(user["content"]) < 1200  # short prompts

    [row] = calls(db_engine)
    assert (row.model, row.purpose, row.symbol, row.outcome) == ("gpt-4o-mini", "vote", "AAPL",
                                                                 "ok")
    assert (row.tokens_in, row.tokens_out) == (300, 50)
    assert row.cost_usd == pytest.approx(expected_cost) and row.latency_ms > 0
    assert spend_this_month(db_engine, now=NOW) == pytest.approx(expected_cost)


def test_good_action_plan(stub, make_advisor):
    stub.enqueue(json_completion(GOOD_PLAN))
    result = make_advisor(stub).action_plan(SIGNAL, style="conservative")
    assert result.plan == LLMActionPlan(**GOOD_PLAN) and result.vote is None
    body = stub.chat_requests[0].body
    assert body["response_format"]["json_schema"]["name"] == "LLMActionPlan"
    assert "Style: conservative" in body["messages"][1]["content"]


def test_model_and_base_url_come_from_the_environment(stub, sqlite_engine, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("SWING_LLM_MODEL", "local-llama")
    stub.enqueue(json_completion(GOOD_VOTE, model="local-llama"))
    with Advisor(engine=sqlite_engine, breaker=CircuitBreaker()) as advisor:
        result = advisor.vote(SIGNAL)
    assert result.ok and result.model == "local-llama"
    assert result.cost_usd == 0.0  # an unlisted model on a non-OpenAI server is free
    request = stub.chat_requests[0]
    assert request.body["model"] == "local-llama"
    assert request.headers["Authorization"] == "Bearer env-key"


# --------------------------------------------------------------------------- bad answers


def test_malformed_json_gives_a_note_and_is_still_costed(stub, make_advisor, sqlite_engine):
    stub.enqueue(completion('{"trend_label": "up", "entry_bias": '))
    result = make_advisor(stub).vote(SIGNAL)
    assert not result.ok and result.outcome == "malformed"
    assert "not valid JSON" in result.note and result.note.startswith("advisor unavailable")
    assert result.signal_note == result.note
    assert result.cost_usd > 0  # the tokens were billed all the same
    assert len(stub.chat_requests) == 1  # a bad answer is not retried
    [row] = calls(sqlite_engine)
    assert row.outcome == "malformed" and row.cost_usd == pytest.approx(result.cost_usd)
    with pytest.raises(LLMError, match="not valid JSON"):
        result.raise_if_failed()


@pytest.mark.parametrize("answer, field", [
    ({**GOOD_VOTE, "confidence": 1.7}, "confidence"),
    ({**GOOD_VOTE, "entry_bias": "buy"}, "entry_bias"),
    ({k: v for k, v in GOOD_VOTE.items() if k != "rationale"}, "rationale"),
    ({**GOOD_VOTE, "entry_window_low": 191.0, "entry_window_high": 190.0}, "answer"),
])
def test_schema_violation_is_refused(stub, make_advisor, answer, field):
    stub.enqueue(json_completion(answer))
    result = make_advisor(stub).vote(SIGNAL)
    assert result.vote is None and result.outcome == "schema"
    assert "schema" in result.note and field in result.note


def test_plan_needs_two_to_four_scenarios(stub, make_advisor):
    stub.enqueue(json_completion({**GOOD_PLAN, "scenarios": ["only one"]}))
    result = make_advisor(stub).action_plan(SIGNAL)
    assert result.plan is None and result.outcome == "schema" and "scenarios" in result.note


def test_truncated_answer(stub, make_advisor):
    stub.enqueue(completion('{"trend_label": "up"', finish_reason="length"))
    result = make_advisor(stub).vote(SIGNAL)
    assert result.outcome == "truncated" and "cut off" in result.note


def test_invented_entry_window_is_dropped(stub, make_advisor):
    stub.enqueue(json_completion({**GOOD_VOTE, "entry_window_low": 150.0,
                                  "entry_window_high": 151.0}))
    result = make_advisor(stub).vote(SIGNAL)
    assert result.vote is not None and result.vote.confidence == 0.7
    assert result.vote.entry_window_low is None and result.vote.entry_window_high is None
    assert "entry window ignored" in result.note


# --------------------------------------------------------------------------- transport trouble


def test_429_then_success_is_retried(stub, make_advisor):
    before = LLM_CALL_STATS.snapshot()
    stub.enqueue(error(429, "Rate limit reached", code="rate_limit_exceeded",
                       err_type="requests", headers={"Retry-After": "0"}),
                 json_completion(GOOD_VOTE))
    result = make_advisor(stub).vote(SIGNAL)
    assert result.ok and result.attempts == 2 and len(stub.chat_requests) == 2
    counted = delta(LLM_CALL_STATS, before)
    assert counted["calls"] == 2 and counted["retries"] == 1 and counted["failures"] == 0


def test_500_is_retried_at_most_twice(stub, make_advisor, sqlite_engine):
    stub.enqueue(*[error(500, "boom")] * 3, json_completion(GOOD_VOTE))
    result = make_advisor(stub).vote(SIGNAL)
    assert result.vote is None and result.outcome == "server_error"
    assert len(stub.chat_requests) == 3 and result.attempts == 3
    assert result.note == "advisor unavailable: server error (500) after 3 tries"
    assert result.cost_usd == 0.0
    assert [r.outcome for r in calls(sqlite_engine)] == ["server_error"]


def test_exhausted_quota_and_bad_key_are_not_retried(stub, make_advisor):
    stub.enqueue(error(429, "You exceeded your current quota", code="insufficient_quota"),
                 error(401, "Incorrect API key provided", code="invalid_api_key"))
    advisor = make_advisor(stub)
    quota = advisor.vote(SIGNAL)
    assert quota.outcome == "rate_limited" and "quota" in quota.note and quota.attempts == 1
    refused = advisor.vote({**SIGNAL, "symbol": "MSFT"})
    assert refused.outcome == "http_error" and "key was refused (401)" in refused.note
    assert len(stub.chat_requests) == 2


def test_timeout_is_retried_then_gives_a_note(stub, make_advisor):
    stub.enqueue(*[replace(json_completion(GOOD_VOTE), delay_s=3.0) for _ in range(3)])
    result = make_advisor(stub, llm_timeout_s=0.3).vote(SIGNAL)
    # "timeout" comes from the client giving up, which it cannot report after a full answer
    assert result.vote is None and result.outcome == "timeout"
    assert result.note == "advisor unavailable: no answer within 0.3 s after 3 tries"
    assert len(stub.chat_requests) == 3


def test_unreachable_server_never_raises(make_advisor):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    advisor = make_advisor(None, openai_base_url=f"http://127.0.0.1:{port}/v1")
    result = advisor.vote(SIGNAL)
    assert result.outcome == "connection_error" and result.attempts == 3
    assert result.note == (f"advisor unavailable: could not reach http://127.0.0.1:{port}/v1: "
                           "connection refused after 3 tries")


def test_circuit_breaker_pauses_and_recovers(stub, make_advisor):
    ticks = [0.0]
    breaker = CircuitBreaker(failure_threshold=2, cooldown_s=30.0, clock=lambda: ticks[0])
    advisor = make_advisor(stub, breaker=breaker)
    advisor.max_retries = 0
    stub.enqueue(error(503, "down"), error(503, "down"))
    for symbol in ("A", "B"):
        assert advisor.vote({**SIGNAL, "symbol": symbol}).outcome == "server_error"
    assert breaker.state == "open"

    paused = advisor.vote({**SIGNAL, "symbol": "C"})
    assert paused.outcome == "circuit_open" and "paused after 2 failed calls" in paused.note
    assert len(stub.chat_requests) == 2  # no request while open

    ticks[0] = 31.0  # cooldown over: one trial call goes out and closes the breaker
    assert breaker.state == "half_open"
    stub.enqueue(json_completion(GOOD_VOTE))
    assert advisor.vote({**SIGNAL, "symbol": "C"}).ok
    assert breaker.state == "closed" and len(stub.chat_requests) == 3


def test_half_open_breaker_lets_one_trial_through():
    ticks = [0.0]
    breaker = CircuitBreaker(failure_threshold=1, cooldown_s=10.0, clock=lambda: ticks[0])
    breaker.record_failure()
    assert not breaker.allow()
    ticks[0] = 10.0
    assert breaker.allow() and not breaker.allow()  # the second caller waits for the trial
    breaker.record_failure()  # the trial failed: open again for a full cooldown
    assert breaker.state == "open" and breaker.seconds_until_retry() == pytest.approx(10.0)


# --------------------------------------------------------------------------- budget and cache


def test_budget_cap_stops_calls_and_says_so(stub, make_advisor_any_db, db_engine):
    stub.enqueue(json_completion(GOOD_VOTE, prompt_tokens=10_000, completion_tokens=1_000))
    advisor = make_advisor_any_db(stub, llm_monthly_budget_usd=0.002)
    first = advisor.vote(SIGNAL)
    assert first.ok and first.cost_usd == pytest.approx(0.0021)  # over the budget now

    before = LLM_CALL_STATS.snapshot()
    stopped = advisor.vote({**SIGNAL, "symbol": "MSFT"})
    assert stopped.vote is None and stopped.outcome == "budget"
    assert "monthly LLM budget reached ($0.0021 of $0.0020 spent)" in stopped.note
    assert "01 Dec 2026" in stopped.note and "SWING_LLM_MONTHLY_BUDGET_USD" in stopped.note
    assert len(stub.chat_requests) == 1 and delta(LLM_CALL_STATS, before)["budget_stops"] == 1
    assert [r.outcome for r in calls(db_engine)] == ["ok", "budget"]
    assert "monthly LLM budget reached" in advisor_status(advisor.settings, engine=db_engine,
                                                          clock=lambda: NOW)

    # a new calendar month (UTC) starts from zero
    december = make_advisor_any_db(stub, llm_monthly_budget_usd=0.002,
                                   clock=lambda: datetime(2026, 12, 1, 0, 5, tzinfo=UTC))
    stub.enqueue(json_completion(GOOD_VOTE))
    assert december.vote({**SIGNAL, "symbol": "MSFT"}).ok
    assert spend_this_month(db_engine, now=datetime(2026, 12, 1, 1, tzinfo=UTC)) < 0.002


@pytest.mark.parametrize("calls_at", [
    datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC),  # the last second of a month
    datetime(2026, 12, 31, 23, 0, tzinfo=UTC),       # the year's last month
    datetime(2028, 2, 29, 12, 0, tzinfo=UTC),        # a leap day
])
def test_budget_month_boundaries_follow_the_one_clock(stub, make_advisor_any_db, db_engine,
                                                      calls_at):
    """Spend counts in the calendar month (UTC) of the clock, for the advisor's stop and the
    status line alike; the first of the next month and a year later start from zero."""
    clock = FixedClock(calls_at)
    stub.enqueue(json_completion(GOOD_VOTE, prompt_tokens=10_000, completion_tokens=1_000))
    advisor = make_advisor_any_db(stub, llm_monthly_budget_usd=0.002, clock=clock)
    assert advisor.vote(SIGNAL).ok
    assert advisor.vote({**SIGNAL, "symbol": "MSFT"}).outcome == "budget"
    status = advisor_status(advisor.settings, engine=db_engine, clock=clock)
    assert "$0.0021 spent this month" in status and "budget reached" in status
    first_of_next = clock_mod.next_month_start(calls_at)
    assert f"until {first_of_next:%d %b %Y}" in status

    a_year_later = calls_at.replace(year=calls_at.year + 1, day=28)
    for later in (first_of_next, a_year_later):
        clock.set(later)
        assert spend_this_month(db_engine, now=later) == 0.0
        assert "$0.00 spent this month" in advisor_status(advisor.settings, engine=db_engine,
                                                          clock=clock)
    clock.set(first_of_next)
    stub.enqueue(json_completion(GOOD_VOTE))
    assert advisor.vote({**SIGNAL, "symbol": "NVDA"}).ok  # a new month: asked again
    assert 0 < spend_this_month(db_engine, now=first_of_next) < 0.002
    assert spend_this_month(db_engine, now=calls_at) == pytest.approx(0.0021)  # unchanged
    assert len(stub.chat_requests) == 2


def test_cache_hit_costs_nothing_and_is_counted(stub, make_advisor_any_db, db_engine):
    stub.enqueue(json_completion(GOOD_VOTE))
    advisor = make_advisor_any_db(stub)
    first = advisor.vote(SIGNAL)
    before = LLM_CACHE_STATS.snapshot()
    second = advisor.vote(dict(SIGNAL, vec_00=0.9))  # same advisor inputs
    assert first.ok and not first.from_cache
    assert second.from_cache and second.vote == first.vote and second.outcome == "cache_hit"
    assert second.cost_usd == 0.0 and second.attempts == 0
    assert len(stub.chat_requests) == 1
    assert delta(LLM_CACHE_STATS, before) == {"hits": 1, "misses": 0}
    rows = calls(db_engine)
    assert [r.outcome for r in rows] == ["ok", "cache_hit"] and rows[1].cost_usd == 0.0
    assert rows[0].input_hash == rows[1].input_hash


def test_cache_key_covers_inputs_model_and_ttl(stub, make_advisor):
    stub.enqueue(*[json_completion(GOOD_VOTE) for _ in range(4)])
    now = [NOW]
    advisor = make_advisor(stub, clock=lambda: now[0], llm_cache_ttl_s=3600)
    advisor.vote(SIGNAL)
    assert advisor.vote(dict(SIGNAL, rsi14=63.3)).from_cache is False  # other input
    other_model = make_advisor(stub, clock=lambda: now[0], llm_model="gpt-4o")
    assert other_model.vote(SIGNAL).from_cache is False  # other model
    now[0] = NOW + timedelta(seconds=3599)
    assert advisor.vote(SIGNAL).from_cache is True
    now[0] = NOW + timedelta(seconds=3601)  # expired: asked again
    assert advisor.vote(SIGNAL).from_cache is False
    assert len(stub.chat_requests) == 4


def test_concurrent_votes_from_a_thread_pool(stub, make_advisor, sqlite_engine):
    from concurrent.futures import ThreadPoolExecutor

    symbols = [f"S{i}" for i in range(8)]
    stub.enqueue(*[json_completion(GOOD_VOTE) for _ in symbols])
    advisor = make_advisor(stub)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda s: advisor.vote({**SIGNAL, "symbol": s}), symbols))
    assert all(r.ok for r in results) and len(stub.chat_requests) == 8
    assert sorted(r.symbol for r in calls(sqlite_engine)) == symbols


def test_failures_are_not_cached(stub, make_advisor):
    stub.enqueue(completion("not json"), json_completion(GOOD_VOTE))
    advisor = make_advisor(stub)
    assert advisor.vote(SIGNAL).outcome == "malformed"
    assert advisor.vote(SIGNAL).outcome == "ok"


# --------------------------------------------------------------------------- when to ask


KEYED = Settings(openai_api_key="k")


@pytest.mark.parametrize("signal, kwargs, consult, reason", [
    (SIGNAL, {}, True, "worth a vote"),
    ({**SIGNAL, "confidence": 0.8}, {}, True, "worth a vote"),  # the ceiling itself is asked
    ({**SIGNAL, "confidence": 0.81}, {}, False, "above 0.80"),
    ({**SIGNAL, "side": "none", "entry": None}, {}, False, "no entry plan"),
    ({**SIGNAL, "entry": float("nan")}, {}, False, "no entry plan"),
    (SIGNAL, {"backtest": True}, False, "backtest"),
    (SIGNAL, {"backtest": True, "allow_in_backtest": True}, True, "worth a vote"),
    ({**SIGNAL, "confidence": 0.95}, {"purpose": "plan"}, True, "action plan"),
])
def test_should_consult(signal, kwargs, consult, reason):
    decision = should_consult(signal, KEYED, **kwargs)
    assert bool(decision) is consult and reason in decision.reason


def test_should_consult_without_a_key():
    decision = should_consult(SIGNAL, Settings(openai_api_key=None))
    assert not decision and decision.reason == "no OPENAI_API_KEY set: the advisor is off"


def test_vote_is_not_asked_when_it_cannot_matter(stub, make_advisor):
    advisor = make_advisor(stub)
    confident = {**SIGNAL, "confidence": 0.9}
    skipped = advisor.vote(confident)
    assert skipped.outcome == "skipped" and skipped.note.startswith("advisor not asked:")
    assert skipped.signal_note == ""  # routine: nothing to tell the trader
    assert advisor.vote(SIGNAL, backtest=True).outcome == "skipped"
    assert stub.chat_requests == []
    stub.enqueue(json_completion(GOOD_VOTE))
    assert advisor.vote(confident, force=True).ok  # asked on purpose


def test_no_key_means_no_request(stub, make_advisor):
    advisor = make_advisor(stub, openai_api_key=None)
    result = advisor.vote(SIGNAL, force=True)
    assert result.vote is None and "no OPENAI_API_KEY" in result.note
    assert stub.chat_requests == []


# --------------------------------------------------------------------------- confidence


VOTE = LLMVote(**GOOD_VOTE)  # long, confidence 0.7


@pytest.mark.parametrize("confidence, vote, side, expected", [
    (0.50, VOTE, "long", 0.50 + 0.15 * 0.7),  # agrees: + agree weight x its confidence
    (0.50, VOTE, "short", 0.50 - 0.10 * 0.7),  # disagrees: - disagree weight x its confidence
    (0.50, VOTE.model_copy(update={"entry_bias": "none"}), "long", 0.50 - 0.07),
    (0.95, VOTE, "long", 1.0),  # clipped
    (0.03, VOTE, "short", 0.0),  # clipped
    (0.40, None, "long", 0.40),  # no vote: unchanged
])
def test_apply_vote(confidence, vote, side, expected):
    assert apply_vote(confidence, vote, StrategyParams(), side=side) == pytest.approx(expected)


def test_apply_vote_uses_the_strategy_weights():
    params = StrategyParams(llm_agree_weight=0.5, llm_disagree_weight=0.25)
    assert apply_vote(0.5, VOTE, params, side="long") == pytest.approx(0.85)
    assert apply_vote(0.5, VOTE, params, side="short") == pytest.approx(0.325)


# --------------------------------------------------------------------------- prices and status


def test_model_prices():
    settings = Settings()
    assert model_price("gpt-4o-mini", settings) == (0.15, 0.60)
    assert model_price("gpt-4o-mini-2024-07-18", settings) == (0.15, 0.60)  # longest prefix
    assert model_price("gpt-4o-2024-08-06", settings) == (2.50, 10.00)
    assert model_price("o9-unknown", settings) == (2.50, 10.00)  # OpenAI: the dearest listed
    local = Settings(openai_base_url="http://127.0.0.1:8080/v1")
    assert model_price("o9-unknown", local) == (0.0, 0.0)
    assert call_cost_usd("gpt-4o", 1_000_000, 100_000, settings) == pytest.approx(3.5)


def test_advisor_status(sqlite_engine):
    assert advisor_status(Settings()) == "no OPENAI_API_KEY set: the advisor is off"
    status = advisor_status(Settings(openai_api_key="k",
                                     openai_base_url="http://user:pw@10.0.0.5:8000/v1"),
                            engine=sqlite_engine)
    assert status == ("advisor on: gpt-4o-mini at 10.0.0.5:8000, budget $20.00/month, "
                      "$0.00 spent this month")
    assert "pw" not in status


def test_signal_facts_are_json_and_skip_missing_values():
    import numpy as np
    import pandas as pd

    facts = llm.signal_facts({**SIGNAL, "asof": pd.Timestamp("2026-11-27 15:30",
                                                              tz="America/New_York"),
                              "rsi14": np.float64(63.123456789), "mtf_alignment": np.int64(2),
                              "rs_sector": float("nan"), "expected_r": None,
                              "stop": pd.NaT})
    assert facts["asof"] == "2026-11-27T20:30:00+00:00"
    assert facts["rsi14"] == 63.1235 and facts["mtf_alignment"] == 2
    assert not {"rs_sector", "expected_r", "stop", "vec_00"} & set(facts)
    json.dumps(facts)
