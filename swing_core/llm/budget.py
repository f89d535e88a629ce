"""What the advisor costs: the price of a model per million tokens, the cost of one call, and
this month's spend against ``SWING_LLM_MONTHLY_BUDGET_USD`` (calendar month in UTC), read from
the ``llm_calls`` table."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa

from swing_core import clock as _clock_mod
from swing_core.config import Settings
from swing_core.errors import DatabaseError
from swing_core.models import LLMCall

__all__ = ["call_cost_usd", "model_price", "spend_this_month"]

_OPENAI_HOST = "api.openai.com"


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
