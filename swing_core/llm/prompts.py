"""What the advisor is asked: the signal's facts (:func:`signal_facts`), the exact chat
messages of a vote or a plan request, the cache key of a request (:func:`request_hash`), and the
check that a vote's entry window lies among the signal's own prices."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from swing_core import clock as _clock_mod
from swing_core.llm.schemas import LLMVote
from swing_core.numbers import finite_or_none

__all__ = ["PROMPT_VERSION", "SIGNAL_FIELDS", "plan_messages", "request_hash", "signal_facts",
           "vote_messages"]

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
    number = finite_or_none(value)
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
    levels = [p for p in (finite_or_none(signal.get(name)) for name in _PRICE_FIELDS) if p is not None]
    if not window or not levels:
        return True
    return min(levels) * 0.995 <= min(window) and max(window) <= max(levels) * 1.005
