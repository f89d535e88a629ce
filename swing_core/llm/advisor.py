"""The :class:`Advisor`: asks for a vote or an action plan on one signal (or both at once,
concurrently: :meth:`Advisor.consult`), through the answer cache, the monthly budget and the
circuit breaker, with bounded retries inside one overall deadline (``SWING_LLM_DEADLINE_S``);
records every call, hit or refusal to call in ``llm_calls``; never raises for API trouble."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace
from datetime import datetime
from typing import Any

import openai
import sqlalchemy as sa
from pydantic import BaseModel
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
)

from swing_core import clock as _clock_mod
from swing_core import db
from swing_core.config import Settings, get_settings
from swing_core.errors import ConfigError, DatabaseError
from swing_core.llm.breaker import CircuitBreaker, circuit_breaker_for
from swing_core.llm.budget import _budget_note, call_cost_usd, spend_this_month
from swing_core.llm.cache import _cache_get, _cache_put
from swing_core.llm.client import (
    _CallOutcome,
    _failure_from_exception,
    _failure_from_parse,
    _is_transient,
    _retry_after_s,
    _usage,
    check_base_url,
    deadline_note,
    display_url,
)
from swing_core.llm.counters import LLM_CACHE_STATS, LLM_CALL_STATS
from swing_core.llm.policy import should_consult
from swing_core.llm.prompts import (
    _window_within_levels,
    plan_messages,
    request_hash,
    vote_messages,
)
from swing_core.llm.schemas import AdvisorResult, Consultation, LLMActionPlan, LLMVote, _Answer
from swing_core.models import LLMCall
from swing_core.perf.timers import timed

__all__ = ["Advisor"]

log = logging.getLogger(__name__)

#: A try is not started with less time than this left before the deadline.
_MIN_TRY_S = 0.2
#: How long :meth:`Advisor.consult` waits past the deadline for a part that is finishing
#: (recording its call) before reporting it as not answered.
_GRACE_S = 1.0


class Advisor:
    """Asks the LLM for a vote or an action plan on one signal; never raises for API trouble.

    ``settings`` default to :func:`get_settings`; ``engine`` to ``db.get_engine`` on the
    settings' database (migrated on first use). ``breaker`` defaults to the process-wide
    breaker of the endpoint. ``max_retries`` (at most 2 by policy) and ``retry_base_s`` set the
    back-off (``retry_base_s * 2**n`` seconds, or the server's Retry-After, at most 5 s).
    ``clock`` returns the current UTC time (for the cache TTL and the monthly budget).

    Every request has one overall deadline, ``settings.llm_deadline_s`` from its start (or the
    ``deadline`` given, a :func:`time.monotonic` instant): each try waits at most
    ``min(llm_timeout_s, time left)`` and no retry starts when its back-off would pass it.
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
             allow_in_backtest: bool = False, deadline: float | None = None) -> AdvisorResult:
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
        result = self._ask("vote", LLMVote, vote_messages(signal), signal, max_tokens=400,
                           deadline=deadline)
        if result.vote is not None and not _window_within_levels(result.vote, signal):
            vote = result.vote.model_copy(update={"entry_window_low": None,
                                                  "entry_window_high": None})
            note = "advisor's entry window ignored: it lay outside the signal's price levels"
            return replace(result, vote=vote, note=note)
        return result

    def action_plan(self, signal: Mapping[str, Any], *, style: str = "balanced",
                    force: bool = False, backtest: bool = False,
                    allow_in_backtest: bool = False,
                    deadline: float | None = None) -> AdvisorResult:
        """The advisor's :class:`LLMActionPlan` for ``signal`` (asked only when it has a plan)."""
        decision = should_consult(signal, self.settings, purpose="plan", backtest=backtest,
                                  allow_in_backtest=allow_in_backtest)
        if not decision and (not force or not self.enabled):
            return AdvisorResult(note=f"advisor not asked: {decision.reason}",
                                 model=self.settings.llm_model)
        messages = plan_messages(signal, style=style)
        return self._ask("plan", LLMActionPlan, messages, signal, max_tokens=700,
                         deadline=deadline)

    def consult(self, signal: Mapping[str, Any], *, plan: bool = True, style: str = "balanced",
                force: bool = False, backtest: bool = False,
                allow_in_backtest: bool = False) -> Consultation:
        """The vote and (with ``plan``) the action plan, asked concurrently under one deadline.

        Both parts share ``settings.llm_deadline_s`` from now, so the whole consultation takes
        about that long at most however slow the server; a part still running a moment after
        the deadline is reported as not answered. Each part keeps its own result and note.
        """
        self._warm_client()
        deadline = time.monotonic() + self.settings.llm_deadline_s
        options = {"force": force, "backtest": backtest, "allow_in_backtest": allow_in_backtest,
                   "deadline": deadline}
        pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="llm-advisor")
        try:
            parts: list[Future[AdvisorResult]] = [pool.submit(self.vote, signal, **options)]
            if plan:
                parts.append(pool.submit(self.action_plan, signal, style=style, **options))
            wait(parts, timeout=max(0.0, deadline - time.monotonic()) + _GRACE_S)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)  # never wait for a stuck part
        vote, *rest = [self._settled(part) for part in parts]
        return Consultation(vote=vote, plan=rest[0] if rest else None)

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
        """The API client (created once); :class:`ConfigError` for an invalid OPENAI_BASE_URL."""
        with self._lock:
            if self._client is None:
                self._client = openai.OpenAI(
                    api_key=self.settings.openai_api_key,
                    base_url=check_base_url(self.settings.openai_base_url),
                    timeout=self.settings.llm_timeout_s,
                    max_retries=0,  # retries are ours (tenacity), so each one is counted
                )
                # the client imports its API resources on first use (over a second, cold):
                # done here, once, so the first request's deadline is spent on the server
                _ = self._client.chat.completions
            return self._client

    def _warm_client(self) -> None:
        """Create the client before a deadline starts (an invalid URL is said by ``_ask``)."""
        try:
            self._get_client()
        except ConfigError:
            pass

    def _settled(self, part: Future[AdvisorResult]) -> AdvisorResult:
        """A part's result, or the deadline's note when it is still running."""
        if part.done() and not part.cancelled():
            return part.result()  # vote/action_plan never raise for API trouble
        return AdvisorResult(note=deadline_note(self.settings.llm_deadline_s), outcome="timeout",
                             model=self.settings.llm_model,
                             latency_ms=(self.settings.llm_deadline_s + _GRACE_S) * 1000.0)

    def _ask(self, purpose: str, schema: type[_Answer], messages: list[dict[str, str]],
             signal: Mapping[str, Any], *, max_tokens: int,
             deadline: float | None = None) -> AdvisorResult:
        model = self.settings.llm_model
        key = request_hash(model, purpose, schema, messages)
        symbol = str(signal.get("symbol") or "") or None
        try:
            self._get_client()  # a bad OPENAI_BASE_URL is said before any call is counted
        except ConfigError as exc:
            return AdvisorResult(note=str(exc), outcome="config_error", model=model)
        started = time.perf_counter()
        if deadline is None:
            deadline = time.monotonic() + self.settings.llm_deadline_s
        try:
            return self._ask_with_db(purpose, schema, messages, key, symbol, started,
                                     max_tokens=max_tokens, deadline=deadline)
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
                     max_tokens: int, deadline: float) -> AdvisorResult:
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

        call = self._call(schema, messages, max_tokens=max_tokens, deadline=deadline)
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
            log.warning("LLM %s failed (%s): %s", purpose, call.outcome, call.note)
            return AdvisorResult(note=_failure_note(call), outcome=call.outcome, **common)
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
              max_tokens: int, deadline: float) -> _CallOutcome:
        """One request with up to ``max_retries`` retries, all before ``deadline`` (a
        :func:`time.monotonic` instant); the answer parsed and validated."""
        client = self._get_client()
        timeout_s, deadline_s = self.settings.llm_timeout_s, self.settings.llm_deadline_s
        attempts, capped = 0, False  # capped: the last try's timeout was the time left

        def send() -> Any:
            nonlocal attempts, capped
            attempts += 1
            LLM_CALL_STATS.increment("calls")
            if attempts > 1:
                LLM_CALL_STATS.increment("retries")
            left = max(_MIN_TRY_S, deadline - time.monotonic())
            capped = left < timeout_s
            return client.chat.completions.with_raw_response.parse(
                model=self.settings.llm_model, messages=messages, response_format=schema,
                max_completion_tokens=max_tokens, timeout=min(timeout_s, left))

        left = deadline - time.monotonic()
        if left < _MIN_TRY_S:  # the cache and budget checks used up the time
            return _CallOutcome(None, "timeout", deadline_note(deadline_s), deadline=True)
        # no retry starts (back-off included) with less than _MIN_TRY_S left before the deadline
        stop = stop_after_attempt(self.max_retries + 1) | stop_before_delay(left - _MIN_TRY_S)
        retrying = Retrying(stop=stop, wait=self._wait, retry=retry_if_exception(_is_transient),
                            reraise=True)
        try:
            with timed("llm_call"):
                raw = retrying(send)
        except Exception as exc:  # noqa: BLE001 - a failure must never block a signal
            outcome, note = _failure_from_exception(
                exc, timeout_s=timeout_s, url=display_url(self.settings.openai_base_url))
            tries = f" after {attempts} tries" if attempts > 1 else ""
            if outcome == "timeout" and capped:
                return _CallOutcome(None, outcome, deadline_note(deadline_s) + tries,
                                    attempts=attempts, deadline=True)
            if _is_transient(exc) and attempts < self.max_retries + 1:  # the deadline stopped it
                return _CallOutcome(None, outcome, f"{deadline_note(deadline_s)}: {note}{tries}",
                                    attempts=attempts, deadline=True)
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


def _failure_note(call: _CallOutcome) -> str:
    if call.deadline:  # a whole sentence, tries included
        return call.note
    tries = f" after {call.attempts} tries" if call.attempts > 1 else ""
    return f"advisor unavailable: {call.note}{tries}"


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


def _result(purpose: str, answer: BaseModel, **fields: Any) -> AdvisorResult:
    if purpose == "vote":
        return AdvisorResult(vote=answer, **fields)  # type: ignore[arg-type]
    return AdvisorResult(plan=answer, **fields)  # type: ignore[arg-type]
