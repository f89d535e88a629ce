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
reached. Each try times out after ``Settings.llm_timeout_s``; 429, 5xx, timeouts and connection
errors are retried at most twice with exponential back-off (our own tenacity loop: the client's
retries are off so every try is counted), all within one overall deadline per request
(``Settings.llm_deadline_s``, SWING_LLM_DEADLINE_S); :meth:`Advisor.consult` asks the vote and
the action plan concurrently under that one deadline. A circuit breaker pauses the advisor after
repeated failures. A failure never blocks a signal: the result carries a short ``note`` instead.

One module per concept; the names below are imported on first use (PEP 562), so reading the
advisor's status or this month's spend never imports the ``openai`` client:

- :mod:`~swing_core.llm.schemas`: answer schemas and results;
- :mod:`~swing_core.llm.policy`: :func:`should_consult`, :func:`apply_vote`;
- :mod:`~swing_core.llm.prompts`: the facts sent, the messages, the request hash;
- :mod:`~swing_core.llm.budget`: model prices, call cost, this month's spend;
- :mod:`~swing_core.llm.breaker`: the circuit breaker;
- :mod:`~swing_core.llm.cache`: the database answer cache;
- :mod:`~swing_core.llm.client`: :func:`check_base_url`, retries and failure notes of one
  request;
- :mod:`~swing_core.llm.counters`: :data:`LLM_CACHE_STATS`, :data:`LLM_CALL_STATS`;
- :mod:`~swing_core.llm.advisor`: :class:`Advisor`; :mod:`~swing_core.llm.status`:
  :func:`advisor_status`.
"""

from __future__ import annotations

from swing_core.lazy import lazy_exports

#: public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "Advisor": "swing_core.llm.advisor",
    "AdvisorResult": "swing_core.llm.schemas",
    "Consultation": "swing_core.llm.schemas",
    "ConsultDecision": "swing_core.llm.schemas",
    "LLMActionPlan": "swing_core.llm.schemas",
    "LLMVote": "swing_core.llm.schemas",
    "TrendLabel": "swing_core.llm.schemas",
    "apply_vote": "swing_core.llm.policy",
    "should_consult": "swing_core.llm.policy",
    "PROMPT_VERSION": "swing_core.llm.prompts",
    "SIGNAL_FIELDS": "swing_core.llm.prompts",
    "plan_messages": "swing_core.llm.prompts",
    "request_hash": "swing_core.llm.prompts",
    "signal_facts": "swing_core.llm.prompts",
    "vote_messages": "swing_core.llm.prompts",
    "call_cost_usd": "swing_core.llm.budget",
    "model_price": "swing_core.llm.budget",
    "spend_this_month": "swing_core.llm.budget",
    "CircuitBreaker": "swing_core.llm.breaker",
    "circuit_breaker_for": "swing_core.llm.breaker",
    "LLM_CACHE_STATS": "swing_core.llm.counters",
    "LLM_CALL_STATS": "swing_core.llm.counters",
    "advisor_status": "swing_core.llm.status",
    "check_base_url": "swing_core.llm.client",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports("swing_core.llm", _LAZY, globals())
