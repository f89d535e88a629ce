"""The Chat Completions request itself: which errors are worth a retry, the server's
Retry-After, token usage, and a short note (with an outcome name) for every way a request or its
answer can fail."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai
import pydantic
from pydantic import BaseModel

from swing_core.numbers import finite_or_none

_MAX_RETRY_AFTER_S = 5.0


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
        value = finite_or_none(response.headers.get(header))
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
