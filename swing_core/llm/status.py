"""The advisor's state in one line for the UI and the CLI: off and why, or on with its model,
endpoint, budget, spend and breaker state. Cheap: no API client is created."""

from __future__ import annotations

import sqlalchemy as sa

from swing_core import clock as _clock_mod
from swing_core.config import Settings, get_settings
from swing_core.errors import ConfigError, DatabaseError
from swing_core.llm.breaker import circuit_breaker_for
from swing_core.llm.budget import _budget_note, _host, _usd, spend_this_month
from swing_core.llm.client import check_base_url

__all__ = ["advisor_status"]


def advisor_status(settings: Settings | None = None, *, engine: sa.Engine | None = None,
                   clock: _clock_mod.Clock | None = None) -> str:
    """One line for the UI/CLI: off and why, or on with model, endpoint, budget and state.

    "This month" is the calendar month (UTC) of ``clock`` (default: the system clock), the
    same clock the :class:`Advisor` uses for its budget stop.
    """
    settings = settings or get_settings()
    if not settings.openai_api_key:
        return "no OPENAI_API_KEY set: the advisor is off"
    try:
        check_base_url(settings.openai_base_url)
    except ConfigError as exc:
        return f"the advisor is off: {exc}"
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
