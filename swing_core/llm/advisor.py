"""The :class:`Advisor`: asks for a vote or an action plan on one signal, through the answer
cache, the monthly budget and the circuit breaker, with bounded retries; records every call,
hit or refusal to call in ``llm_calls``; never raises for API trouble."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

import openai
import sqlalchemy as sa
from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from swing_core import clock as _clock_mod
from swing_core import db
from swing_core.config import Settings, get_settings
from swing_core.errors import DatabaseError
from swing_core.llm.breaker import CircuitBreaker, circuit_breaker_for
from swing_core.llm.budget import _budget_note, _host, call_cost_usd, spend_this_month
from swing_core.llm.cache import _cache_get, _cache_put
from swing_core.llm.client import (
    _CallOutcome,
    _failure_from_exception,
    _failure_from_parse,
    _is_transient,
    _retry_after_s,
    _usage,
)
from swing_core.llm.counters import LLM_CACHE_STATS, LLM_CALL_STATS
from swing_core.llm.policy import should_consult
from swing_core.llm.prompts import (
    _window_within_levels,
    plan_messages,
    request_hash,
    vote_messages,
)
from swing_core.llm.schemas import AdvisorResult, LLMActionPlan, LLMVote, _Answer
from swing_core.models import LLMCall
from swing_core.perf.timers import timed

__all__ = ["Advisor"]

log = logging.getLogger(__name__)


class Advisor:
    """Asks the LLM for a vote or an action plan on one signal; never raises for API trouble.

    ``settings`` default to :func:`get_settings`; ``engine`` to ``db.get_engine`` on the
    settings' database (migrated on first use). ``breaker`` defaults to the process-wide
    breaker of the endpoint. ``max_retries`` (at most 2 by policy) and ``retry_base_s`` set the
    back-off (``retry_base_s * 2**n`` seconds, or the server's Retry-After, at most 5 s).
    ``clock`` returns the current UTC time (for the cache TTL and the monthly budget).
    """

    def __init__(self, settings: Settings | None = None, engine: sa.Engine | None = None, *,
                 breaker: CircuitBreaker | None = None, max_retries: int = 2,
                 retry_base_s: float = 0.5, use_cache: bool = True,
                 clock: _clock_mod.Clock | None = None) -> None:
        self.settings = settings or get_settings()
        self._engine = engine
        self.breaker = breaker or circuit_breaker_for(self.settings.openai_base_url)
        self.max_retries = max(0, min(2, max_retries))
        self.retry_base_s = retry_base_s
        self.use_cache = use_cache and self.settings.llm_cache_ttl_s > 0
        self._clock = clock or _clock_mod.system_clock
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()

    # -- public -------------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return bool(self.settings.openai_api_key)

    def vote(self, signal: Mapping[str, Any], *, force: bool = False, backtest: bool = False,
             allow_in_backtest: bool = False) -> AdvisorResult:
        """The advisor's :class:`LLMVote` on ``signal`` (flat fields of an analysis result).

        Asked only when :func:`should_consult` says so, unless ``force``. An entry window
        outside the signal's own price levels is dropped (the prompt forbids inventing prices)
        and the note says so.
        """
        decision = should_consult(signal, self.settings, purpose="vote", backtest=backtest,
                                  allow_in_backtest=allow_in_backtest)
        if not decision and (not force or not self.enabled):
            return AdvisorResult(note=f"advisor not asked: {decision.reason}",
                                 model=self.settings.llm_model)
        result = self._ask("vote", LLMVote, vote_messages(signal), signal, max_tokens=400)
        if result.vote is not None and not _window_within_levels(result.vote, signal):
            vote = result.vote.model_copy(update={"entry_window_low": None,
                                                  "entry_window_high": None})
            note = "advisor's entry window ignored: it lay outside the signal's price levels"
            return replace(result, vote=vote, note=note)
        return result

    def action_plan(self, signal: Mapping[str, Any], *, style: str = "balanced",
                    force: bool = False, backtest: bool = False,
                    allow_in_backtest: bool = False) -> AdvisorResult:
        """The advisor's :class:`LLMActionPlan` for ``signal`` (asked only when it has a plan)."""
        decision = should_consult(signal, self.settings, purpose="plan", backtest=backtest,
                                  allow_in_backtest=allow_in_backtest)
        if not decision and (not force or not self.enabled):
            return AdvisorResult(note=f"advisor not asked: {decision.reason}",
                                 model=self.settings.llm_model)
        messages = plan_messages(signal, style=style)
        return self._ask("plan", LLMActionPlan, messages, signal, max_tokens=700)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def __enter__(self) -> Advisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                engine = db.get_engine(self.settings.effective_database_url)
                db.init_db(engine)
                self._engine = engine
            return self._engine

    def _get_client(self) -> openai.OpenAI:
        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(
                    api_key=self.settings.openai_api_key,
                    base_url=self.settings.openai_base_url or None,
                    timeout=self.settings.llm_timeout_s,
                    max_retries=0,  # retries are ours (tenacity), so each one is counted
                )
            return self._client

    def _ask(self, purpose: str, schema: type[_Answer], messages: list[dict[str, str]],
             signal: Mapping[str, Any], *, max_tokens: int) -> AdvisorResult:
        model = self.settings.llm_model
        key = request_hash(model, purpose, schema, messages)
        symbol = str(signal.get("symbol") or "") or None
        started = time.perf_counter()
        try:
            return self._ask_with_db(purpose, schema, messages, key, symbol, started,
                                     max_tokens=max_tokens)
        except (DatabaseError, sa.exc.SQLAlchemyError) as exc:
            log.warning("LLM advisor skipped, database unavailable: %s", exc)
            return AdvisorResult(note="advisor skipped: the database is unavailable",
                                 outcome="db_error", model=model,
                                 latency_ms=_ms_since(started))
        except Exception as exc:  # noqa: BLE001 - a failure must never block a signal
            log.exception("LLM advisor failed unexpectedly")
            return AdvisorResult(note=f"advisor failed unexpectedly ({type(exc).__name__})",
                                 outcome="error", model=model, latency_ms=_ms_since(started))

    def _ask_with_db(self, purpose: str, schema: type[_Answer], messages: list[dict[str, str]],
                     key: str, symbol: str | None, started: float, *,
                     max_tokens: int) -> AdvisorResult:
        model, now = self.settings.llm_model, self._clock()
        engine = self.engine
        row = {"model": model, "purpose": purpose, "input_hash": key, "symbol": symbol}
        if self.use_cache:
            cached = _cache_get(engine, key, schema, now=now)
            if cached is not None:
                LLM_CACHE_STATS.increment("hits")
                latency = _ms_since(started)
                self._record(engine, now, **row, latency_ms=latency, outcome="cache_hit")
                return _result(purpose, cached, from_cache=True, outcome="cache_hit",
                               model=model, latency_ms=latency)
            LLM_CACHE_STATS.increment("misses")

        budget = self.settings.llm_monthly_budget_usd
        spent = spend_this_month(engine, now=now)
        if spent >= budget:
            LLM_CALL_STATS.increment("budget_stops")
            self._record(engine, now, **row, latency_ms=_ms_since(started), outcome="budget")
            return AdvisorResult(note="advisor skipped: " + _budget_note(spent, budget, now),
                                 outcome="budget", model=model, latency_ms=_ms_since(started))
        if not self.breaker.allow():
            LLM_CALL_STATS.increment("circuit_stops")
            note = (f"advisor paused after {self.breaker.consecutive_failures} failed calls in "
                    f"a row; next try in {self.breaker.seconds_until_retry():.0f} s")
            self._record(engine, now, **row, latency_ms=_ms_since(started),
                         outcome="circuit_open")
            return AdvisorResult(note=note, outcome="circuit_open", model=model,
                                 latency_ms=_ms_since(started))

        call = self._call(schema, messages, max_tokens=max_tokens)
        latency = _ms_since(started)
        cost = call_cost_usd(model, call.tokens_in, call.tokens_out, self.settings)
        self._record(engine, now, **row, tokens_in=call.tokens_in, tokens_out=call.tokens_out,
                     cost_usd=cost, latency_ms=latency, outcome=call.outcome)
        common = {"model": model, "cost_usd": cost, "latency_ms": latency,
                  "tokens_in": call.tokens_in, "tokens_out": call.tokens_out,
                  "attempts": call.attempts}
        if call.answer is None:
            self.breaker.record_failure()
            LLM_CALL_STATS.increment("failures")
            tries = f" after {call.attempts} tries" if call.attempts > 1 else ""
            log.warning("LLM %s failed (%s): %s", purpose, call.outcome, call.note)
            return AdvisorResult(note=f"advisor unavailable: {call.note}{tries}",
                                 outcome=call.outcome, **common)
        self.breaker.record_success()
        if self.use_cache:
            _cache_put(engine, key, model, call.answer, now=now,
                       ttl_s=self.settings.llm_cache_ttl_s)
        return _result(purpose, call.answer, from_cache=False, outcome="ok", **common)

    def _wait(self, state: RetryCallState) -> float:
        backoff = self.retry_base_s * 2 ** (state.attempt_number - 1)
        exc = state.outcome.exception() if state.outcome is not None else None
        retry_after = _retry_after_s(exc)
        return max(backoff, retry_after) if retry_after is not None else backoff

    def _call(self, schema: type[_Answer], messages: list[dict[str, str]], *,
              max_tokens: int) -> _CallOutcome:
        """One request with up to ``max_retries`` retries; the answer parsed and validated."""
        client = self._get_client()
        attempts = 0

        def send() -> Any:
            nonlocal attempts
            attempts += 1
            LLM_CALL_STATS.increment("calls")
            if attempts > 1:
                LLM_CALL_STATS.increment("retries")
            return client.chat.completions.with_raw_response.parse(
                model=self.settings.llm_model, messages=messages, response_format=schema,
                max_completion_tokens=max_tokens)

        retrying = Retrying(stop=stop_after_attempt(self.max_retries + 1), wait=self._wait,
                            retry=retry_if_exception(_is_transient), reraise=True)
        try:
            with timed("llm_call"):
                raw = retrying(send)
        except Exception as exc:  # noqa: BLE001 - a failure must never block a signal
            outcome, note = _failure_from_exception(
                exc, timeout_s=self.settings.llm_timeout_s,
                host=_host(self.settings.openai_base_url))
            return _CallOutcome(None, outcome, note, attempts=attempts)

        tokens_in, tokens_out = _usage(raw)
        counts = {"tokens_in": tokens_in, "tokens_out": tokens_out, "attempts": attempts}
        try:
            completion = raw.parse()
        except Exception as exc:  # noqa: BLE001
            outcome, note = _failure_from_parse(exc)
            return _CallOutcome(None, outcome, note, **counts)
        message = completion.choices[0].message if completion.choices else None
        if message is not None and message.refusal:
            return _CallOutcome(None, "refused", "the model declined to answer", **counts)
        if message is None or message.parsed is None:
            return _CallOutcome(None, "malformed", "the answer was empty", **counts)
        return _CallOutcome(message.parsed, "ok", "", **counts)

    def _record(self, engine: sa.Engine, now: datetime, **values: Any) -> None:
        """Append one ``llm_calls`` row (a failure to record is logged, never raised)."""
        try:
            with db.write_transaction(engine) as conn:
                conn.execute(sa.insert(LLMCall).values(ts=now, **values))
        except sa.exc.SQLAlchemyError as exc:
            log.warning("could not record an LLM call: %s", exc)


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _result(purpose: str, answer: BaseModel, **fields: Any) -> AdvisorResult:
    if purpose == "vote":
        return AdvisorResult(vote=answer, **fields)  # type: ignore[arg-type]
    return AdvisorResult(plan=answer, **fields)  # type: ignore[arg-type]
