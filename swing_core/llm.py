"""The LLM advisor: an OpenAI vote on a signal and an action plan for it.

Both answers are structured outputs (JSON validated by the pydantic models :class:`LLMVote` and
:class:`LLMActionPlan`) from the official ``openai`` package's Chat Completions API, so any
OpenAI-compatible server works (``OPENAI_BASE_URL``). The advisor is consulted only when it can
change a decision (:func:`should_consult`: a plan exists and the confidence is at most
``Settings.llm_confidence_ceiling``), never in backtests unless asked.

Every answer is cached in the database by a hash of the exact request (model, prompt version,
messages, schema) for ``Settings.llm_cache_ttl_s``; a cache hit costs nothing and is counted in
:data:`LLM_CACHE_STATS`. Every call, hit or refusal to call is a row of ``llm_calls`` (model,
tokens in/out, cost in USD from ``Settings.llm_prices_per_mtok``, latency in ms, outcome), and
the monthly budget (``SWING_LLM_MONTHLY_BUDGET_USD``, calendar month in UTC) stops calls once
reached. Calls time out after ``Settings.llm_timeout_s``; 429, 5xx, timeouts and connection
errors are retried at most twice with exponential back-off (our own tenacity loop: the client's
retries are off so every try is counted); a circuit breaker pauses the advisor after repeated
failures. A failure never blocks a signal: the result carries a short ``note`` instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import openai
import pydantic
import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from swing_core import clock as _clock_mod
from swing_core import db
from swing_core.config import Settings, StrategyParams, get_settings
from swing_core.errors import DatabaseError, LLMError
from swing_core.models import LLMCacheEntry, LLMCall
from swing_core.perf.timers import timed

log = logging.getLogger(__name__)

#: Bumped whenever a prompt or schema changes, so old cache entries stop matching.
PROMPT_VERSION = "v1"

#: The flat fields of an analysis result that the advisor sees (anything else is ignored).
SIGNAL_FIELDS: tuple[str, ...] = (
    "symbol", "interval", "asof", "trend_label", "rsi14", "ema_slope", "price", "setup", "side",
    "entry", "stop", "target", "r_multiple", "confidence", "expected_r", "expected_winrate",
    "vol_regime", "mtf_alignment", "rs_sector", "time_bucket",
    "golden_pocket_low", "golden_pocket_high",
)

_PRICE_FIELDS = ("price", "entry", "stop", "target", "golden_pocket_low", "golden_pocket_high")
_MAX_RETRY_AFTER_S = 5.0
_MAX_TEXT_CHARS = 800
_OPENAI_HOST = "api.openai.com"

_VOTE_SYSTEM = (
    "You are a disciplined 1-2 day swing-trading co-pilot. Judge only the facts given. "
    "Never invent prices: an entry window must lie between the given price levels, otherwise "
    "use null. Answer in the JSON schema."
)
_VOTE_USER = (
    "Signal: {facts}\nGive the immediate trend, your entry bias, a tight entry window only if "
    "reward/risk is favourable, your confidence (0-1) and a rationale of at most 60 words."
)
_PLAN_SYSTEM = (
    "You are an execution coach for 1-2 day swing trades. Write a short checklist plan from the "
    "given entry, stop, target, R, priors and context, with invalidations. Use only the prices "
    "given; never invent prices. Answer in the JSON schema."
)
_PLAN_USER = (
    "Style: {style}\nSignal: {facts}\nGive the plan, risk notes, 2-4 scenarios (each one "
    "sentence) and the tone."
)


# --------------------------------------------------------------------------- counters


class _Counters(dict[str, int]):
    """A dict of named counters that threads can increment safely."""

    def __init__(self, *names: str) -> None:
        super().__init__(dict.fromkeys(names, 0))
        self._lock = threading.Lock()

    def increment(self, name: str, by: int = 1) -> None:
        with self._lock:
            self[name] = self.get(name, 0) + by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self)

    def reset(self) -> None:
        with self._lock:
            for name in self:
                self[name] = 0


#: LLM answer cache: ``hits`` (answered from the database, no cost) and ``misses``.
LLM_CACHE_STATS = _Counters("hits", "misses")
#: API traffic: ``calls`` (requests made, retries included), ``retries``, ``failures`` (calls
#: that gave no usable answer), ``budget_stops`` and ``circuit_stops`` (calls not made).
LLM_CALL_STATS = _Counters("calls", "retries", "failures", "budget_stops", "circuit_stops")


# --------------------------------------------------------------------------- answer schemas

TrendLabel = Literal["strong_up", "up", "sideways", "down", "strong_down"]


def _trim(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_TEXT_CHARS else text[: _MAX_TEXT_CHARS - 1] + "…"


class LLMVote(BaseModel):
    """The advisor's vote: its own trend label, entry bias, entry window (prices), confidence."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trend_label: TrendLabel
    entry_bias: Literal["long", "short", "none"]
    entry_window_low: float | None = Field(gt=0)
    entry_window_high: float | None = Field(gt=0)
    confidence: float = Field(ge=0, le=1)
    rationale: str

    @field_validator("rationale")
    @classmethod
    def _trim_rationale(cls, value: str) -> str:
        return _trim(value)

    @model_validator(mode="after")
    def _window_in_order(self) -> LLMVote:
        low, high = self.entry_window_low, self.entry_window_high
        if low is not None and high is not None and low > high:
            raise ValueError("entry_window_low must not exceed entry_window_high")
        return self


class LLMActionPlan(BaseModel):
    """The advisor's execution plan: checklist, risk notes, 2-4 scenarios and its tone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_plan: str
    risk_notes: str
    # minItems/maxItems are part of OpenAI's strict-schema subset; string lengths are not,
    # so long texts are trimmed here rather than constrained in the schema.
    scenarios: list[str] = Field(min_length=2, max_length=4)
    tone: Literal["conservative", "balanced", "aggressive"]

    @field_validator("action_plan", "risk_notes")
    @classmethod
    def _trim_texts(cls, value: str) -> str:
        return _trim(value)

    @field_validator("scenarios")
    @classmethod
    def _trim_scenarios(cls, values: list[str]) -> list[str]:
        return [_trim(v) for v in values]


_Answer = TypeVar("_Answer", LLMVote, LLMActionPlan)


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class AdvisorResult:
    """What one request to the advisor gave.

    ``vote`` / ``plan``: the validated answer, or None when skipped or failed (then ``note``
    says why in one short sentence meant for the signal). ``cost_usd``: what this request cost
    (0 for a cache hit or a call that was not made). ``latency_ms``: wall time including retries
    and back-off. ``outcome``: "ok", "cache_hit", "skipped", "budget", "circuit_open",
    "timeout", "rate_limited", "server_error", "connection_error", "http_error", "malformed",
    "schema", "truncated", "refused", "db_error" or "error". ``attempts``: HTTP requests made.
    """

    vote: LLMVote | None = None
    plan: LLMActionPlan | None = None
    from_cache: bool = False
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    note: str = ""
    outcome: str = "skipped"
    model: str = ""
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.vote is not None or self.plan is not None

    @property
    def signal_note(self) -> str:
        """The note worth attaching to the signal ("" for a routine "not asked")."""
        return "" if self.outcome == "skipped" else self.note

    def raise_if_failed(self) -> AdvisorResult:
        """Return self if there is an answer, else raise :class:`LLMError` with the note."""
        if not self.ok:
            raise LLMError(self.note or "The advisor gave no answer.")
        return self


@dataclass(frozen=True)
class ConsultDecision:
    """Whether to ask the advisor, and why (truthy when it should be asked)."""

    consult: bool
    reason: str

    def __bool__(self) -> bool:
        return self.consult


# --------------------------------------------------------------------------- pure helpers


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _has_plan(signal: Mapping[str, Any]) -> bool:
    return signal.get("side") in ("long", "short") and _finite(signal.get("entry")) is not None


def should_consult(signal: Mapping[str, Any], settings: Settings | None = None, *,
                   purpose: Literal["vote", "plan"] = "vote", backtest: bool = False,
                   allow_in_backtest: bool = False) -> ConsultDecision:
    """Decide whether asking the advisor can change anything for this signal.

    The rule of the original's performance guide: only when a plan exists (side long/short and
    a finite entry) and, for a vote, the confidence (before the vote) is at most
    ``settings.llm_confidence_ceiling``; a confident signal cannot be turned by a vote. An
    action plan only needs a plan. Never in a backtest unless ``allow_in_backtest``.
    """
    settings = settings or get_settings()
    if not settings.openai_api_key:
        return ConsultDecision(False, "no OPENAI_API_KEY set: the advisor is off")
    if backtest and not allow_in_backtest:
        return ConsultDecision(False, "backtest: the advisor is consulted only when asked")
    if not _has_plan(signal):
        return ConsultDecision(False, "no entry plan: the advisor cannot change the decision")
    if purpose == "plan":
        return ConsultDecision(True, "a plan exists: worth an action plan")
    confidence = _finite(signal.get("confidence"))
    ceiling = settings.llm_confidence_ceiling
    if confidence is not None and confidence > ceiling:
        return ConsultDecision(
            False, f"confidence {confidence:.2f} is above {ceiling:.2f}: a vote cannot change it")
    shown = "unknown" if confidence is None else f"{confidence:.2f}"
    return ConsultDecision(True, f"plan with confidence {shown} <= {ceiling:.2f}: worth a vote")


def apply_vote(confidence: float, vote: LLMVote | None, params: StrategyParams, *,
               side: str) -> float:
    """Adjust a confidence (0-1) by the advisor's vote, as STRATEGY.md "Confidence" says.

    The vote agrees when the signal has a plan (``side`` "long"/"short") and the vote's entry
    bias is that side (SwingAgent v1.6.1's rule): then ``params.llm_agree_weight`` times the
    vote's confidence is added; otherwise ``params.llm_disagree_weight`` times it is
    subtracted. The result is clipped to [0, 1]; no vote leaves the confidence as it was.
    """
    if vote is None:
        return float(min(1.0, max(0.0, confidence)))
    agrees = side in ("long", "short") and vote.entry_bias == side
    delta = (params.llm_agree_weight if agrees else -params.llm_disagree_weight) * vote.confidence
    return float(min(1.0, max(0.0, confidence + delta)))


def _is_openai_host(base_url: str | None) -> bool:
    return not base_url or (urlsplit(base_url).hostname or "").endswith(_OPENAI_HOST)


def _host(base_url: str | None) -> str:
    if not base_url:
        return _OPENAI_HOST
    parts = urlsplit(base_url)  # host and port only: a URL may carry credentials
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def model_price(model: str, settings: Settings) -> tuple[float, float]:
    """USD per million (input, output) tokens of ``model`` from ``settings.llm_prices_per_mtok``.

    A dated snapshot ("gpt-4o-mini-2024-07-18") takes the price of its longest listed prefix.
    An unlisted model costs nothing on a non-OpenAI server (``OPENAI_BASE_URL``, e.g. a local
    one) and the highest listed price on OpenAI, so the budget stays on the safe side.
    """
    table = settings.llm_prices_per_mtok
    if model in table:
        return table[model]
    prefixes = [name for name in table if model.startswith(name)]
    if prefixes:
        return table[max(prefixes, key=len)]
    if not _is_openai_host(settings.openai_base_url) or not table:
        return (0.0, 0.0)
    return max(table.values(), key=lambda p: p[0] + p[1])


def call_cost_usd(model: str, tokens_in: int, tokens_out: int, settings: Settings) -> float:
    """Cost in USD of one call from its token counts and the price table."""
    price_in, price_out = model_price(model, settings)
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def spend_this_month(engine: sa.Engine, *, now: datetime | None = None) -> float:
    """USD spent on LLM calls in ``now``'s calendar month (UTC; default: the system clock's)."""
    now = _clock_mod.utc_now() if now is None else now
    stmt = sa.select(sa.func.coalesce(sa.func.sum(LLMCall.cost_usd), 0.0)).where(
        LLMCall.ts >= _clock_mod.month_start(now),
        LLMCall.ts < _clock_mod.next_month_start(now))
    try:
        with engine.connect() as conn:
            return float(conn.execute(stmt).scalar_one())
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(
            f"Could not read this month's LLM spend ({type(exc).__name__}); check that the "
            "database is reachable and migrated (init_db).") from exc


def _usd(amount: float) -> str:
    return f"${amount:.2f}" if amount >= 0.01 or amount == 0 else f"${amount:.4f}"


def _budget_note(spent: float, budget: float, now: datetime) -> str:
    return (f"monthly LLM budget reached ({_usd(spent)} of {_usd(budget)} spent); no calls "
            f"until {_clock_mod.next_month_start(now):%d %b %Y} unless "
            "SWING_LLM_MONTHLY_BUDGET_USD is raised")


# --------------------------------------------------------------------------- circuit breaker


class CircuitBreaker:
    """Stops calling an endpoint after ``failure_threshold`` failed calls in a row.

    Open for ``cooldown_s`` seconds, then half-open: one trial call is let through; its success
    closes the breaker, its failure opens it again. Thread-safe.
    """

    def __init__(self, *, failure_threshold: int = 3, cooldown_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.cooldown_s:
                return "half_open"
            return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def seconds_until_retry(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """True if a call may go out now (claims the single trial when half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at >= self.cooldown_s and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._failures >= self.failure_threshold:
                self._opened_at = self._clock()


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker_for(base_url: str | None) -> CircuitBreaker:
    """The process-wide breaker of one endpoint (shared by every :class:`Advisor` using it)."""
    key = base_url or _OPENAI_HOST
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(key, CircuitBreaker())


def advisor_status(settings: Settings | None = None, *, engine: sa.Engine | None = None,
                   clock: _clock_mod.Clock | None = None) -> str:
    """One line for the UI/CLI: off and why, or on with model, endpoint, budget and state.

    "This month" is the calendar month (UTC) of ``clock`` (default: the system clock), the
    same clock the :class:`Advisor` uses for its budget stop.
    """
    settings = settings or get_settings()
    if not settings.openai_api_key:
        return "no OPENAI_API_KEY set: the advisor is off"
    budget = settings.llm_monthly_budget_usd
    text = (f"advisor on: {settings.llm_model} at {_host(settings.openai_base_url)}, "
            f"budget {_usd(budget)}/month")
    if engine is not None:
        now = _clock_mod.utc_now(clock)
        try:
            spent = spend_this_month(engine, now=now)
        except DatabaseError:
            text += "; spend unknown (database unavailable)"
        else:
            text += f", {_usd(spent)} spent this month"
            if spent >= budget:
                text += "; " + _budget_note(spent, budget, now)
    breaker = circuit_breaker_for(settings.openai_base_url)
    if breaker.state == "open":
        text += (f"; paused after {breaker.consecutive_failures} failed calls, next try in "
                 f"{breaker.seconds_until_retry():.0f} s")
    return text


# --------------------------------------------------------------------------- prompts


def _fact(value: Any) -> Any:
    """A JSON-able, compact form of one signal value (None for missing/NaN)."""
    if value is None or isinstance(value, bool | str):
        return value
    try:
        if value != value:  # NaN, NaT
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "isoformat"):  # datetime, pandas Timestamp
        if getattr(value, "tzinfo", None) is not None:
            value = value.astimezone(_clock_mod.UTC)
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalar
        value = value.item()
        if isinstance(value, bool):
            return value
    if isinstance(value, int):
        return value
    number = _finite(value)
    if number is None:
        return None if isinstance(value, float) else str(value)
    return float(f"{number:.6g}")  # six significant digits: short prompts, stable cache keys


def signal_facts(signal: Mapping[str, Any]) -> dict[str, Any]:
    """The known fields of ``signal`` (:data:`SIGNAL_FIELDS`), JSON-able, missing ones dropped."""
    facts = {name: _fact(signal.get(name)) for name in SIGNAL_FIELDS}
    return {name: value for name, value in facts.items() if value is not None}


def _messages(system: str, user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def vote_messages(signal: Mapping[str, Any]) -> list[dict[str, str]]:
    """The exact chat messages of a vote request (what the cache key hashes)."""
    facts = json.dumps(signal_facts(signal), separators=(",", ":"), sort_keys=True)
    return _messages(_VOTE_SYSTEM, _VOTE_USER.format(facts=facts))


def plan_messages(signal: Mapping[str, Any], *, style: str = "balanced") -> list[dict[str, str]]:
    """The exact chat messages of an action-plan request."""
    facts = json.dumps(signal_facts(signal), separators=(",", ":"), sort_keys=True)
    return _messages(_PLAN_SYSTEM, _PLAN_USER.format(style=style, facts=facts))


def request_hash(model: str, purpose: str, schema: type[BaseModel],
                 messages: list[dict[str, str]]) -> str:
    """SHA-256 (hex) of everything that determines an answer: the cache key."""
    blob = json.dumps({"version": PROMPT_VERSION, "model": model, "purpose": purpose,
                       "schema": schema.__name__, "messages": messages},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def _window_within_levels(vote: LLMVote, signal: Mapping[str, Any]) -> bool:
    """True when the vote's entry window lies among the signal's own prices (0.5 % slack)."""
    window = [p for p in (vote.entry_window_low, vote.entry_window_high) if p is not None]
    levels = [p for p in (_finite(signal.get(name)) for name in _PRICE_FIELDS) if p is not None]
    if not window or not levels:
        return True
    return min(levels) * 0.995 <= min(window) and max(window) <= max(levels) * 1.005


# --------------------------------------------------------------------------- API calls


def _is_transient(exc: BaseException) -> bool:
    """429 (except an exhausted quota), 408/409, 5xx, timeouts and connection errors."""
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code == 429:
            return exc.code != "insufficient_quota"
        return exc.status_code in (408, 409) or exc.status_code >= 500
    return False


def _retry_after_s(exc: BaseException | None) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = _finite(response.headers.get(header))
        if value is not None:
            return min(_MAX_RETRY_AFTER_S, max(0.0, value * scale))
    return None


@dataclass(frozen=True)
class _CallOutcome:
    answer: BaseModel | None
    outcome: str
    note: str
    tokens_in: int = 0
    tokens_out: int = 0
    attempts: int = 0


def _usage(raw: Any) -> tuple[int, int]:
    try:
        usage = raw.http_response.json().get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0, 0


def _failure_from_exception(exc: Exception, *, timeout_s: float, host: str) -> tuple[str, str]:
    """(outcome, short note) for an exception raised by the request itself."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", f"no answer within {timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", f"could not reach {host}"
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota":
            return "rate_limited", "the API account has no quota left (429 insufficient_quota)"
        return "rate_limited", "rate-limited (429)"
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500:
            return "server_error", f"server error ({exc.status_code})"
        if exc.status_code in (401, 403):
            return "http_error", f"the API key was refused ({exc.status_code})"
        return "http_error", f"request refused ({exc.status_code})"
    return "error", f"unexpected {type(exc).__name__}"


def _failure_from_parse(exc: Exception) -> tuple[str, str]:
    """(outcome, short note) for an answer that came back but is unusable."""
    if isinstance(exc, openai.LengthFinishReasonError):
        return "truncated", "the answer was cut off (token limit)"
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return "refused", "the answer was withheld by the content filter"
    if isinstance(exc, pydantic.ValidationError):
        if any(err["type"] == "json_invalid" for err in exc.errors()):
            return "malformed", "the answer was not valid JSON"
        fields = sorted({".".join(map(str, err["loc"])) or "answer" for err in exc.errors()})
        return "schema", f"the answer broke the schema ({', '.join(fields)[:80]})"
    return "malformed", f"the answer could not be read ({type(exc).__name__})"


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


def _cache_get(engine: sa.Engine, key: str, schema: type[_Answer], *,
               now: datetime) -> _Answer | None:
    """The cached answer under ``key`` if it has not expired and still fits ``schema``."""
    stmt = sa.select(LLMCacheEntry.response_json, LLMCacheEntry.expires_at).where(
        LLMCacheEntry.key == key)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    try:
        return schema.model_validate_json(row.response_json)
    except pydantic.ValidationError:
        return None  # written under an older schema: ask again


def _cache_put(engine: sa.Engine, key: str, model: str, answer: BaseModel, *,
               now: datetime, ttl_s: float) -> None:
    """Store (or replace) one answer; expired entries are purged in the same transaction."""
    entry = {"key": key, "model": model, "created_at": now,
             "expires_at": now + timedelta(seconds=ttl_s),
             "response_json": answer.model_dump_json()}
    try:
        with db.write_transaction(engine) as conn:
            conn.execute(sa.delete(LLMCacheEntry).where(
                sa.or_(LLMCacheEntry.key == key, LLMCacheEntry.expires_at <= now)))
            conn.execute(sa.insert(LLMCacheEntry).values(**entry))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not cache an LLM answer: %s", exc)
