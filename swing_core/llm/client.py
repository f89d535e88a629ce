"""The Chat Completions request itself: the endpoint's URL checked (:func:`check_base_url`),
which errors are worth a retry, the server's Retry-After, token usage, and a short note (with an
outcome name) for every way a request or its answer can fail, the overall deadline included."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
import pydantic
from pydantic import BaseModel

from swing_core.errors import ConfigError
from swing_core.numbers import finite_or_none

_MAX_RETRY_AFTER_S = 5.0
#: The endpoint when OPENAI_BASE_URL is not set (the openai client's own default).
OPENAI_DEFAULT_URL = "https://api.openai.com/v1"


def check_base_url(base_url: str | None) -> str | None:
    """``OPENAI_BASE_URL`` stripped (None: OpenAI's own endpoint), or :class:`ConfigError` when
    it is not an http(s) URL with a host (the client would only say "Connection error")."""
    if base_url is None or not base_url.strip():
        return None
    text = base_url.strip()
    try:
        parts = urlsplit(text)
        valid = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        valid = False
    if not valid:
        shown = re.sub(r"//[^/@]*@", "//…@", text)  # never echo a password
        shown = shown if len(shown) <= 80 else shown[:77] + "…"
        raise ConfigError(f"OPENAI_BASE_URL must be an http(s) URL such as "
                          f"{OPENAI_DEFAULT_URL}, got {shown!r}.")
    return text


def display_url(base_url: str | None) -> str:
    """The endpoint's URL for messages: scheme, host, port and path, never credentials or a
    query string (either may carry a secret)."""
    if not base_url:
        return OPENAI_DEFAULT_URL
    parts = urlsplit(base_url.strip())
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def deadline_note(deadline_s: float) -> str:
    """The note of a request stopped by the overall deadline (``Settings.llm_deadline_s``)."""
    return f"the advisor did not answer within {deadline_s:g} s (SWING_LLM_DEADLINE_S)"


def _reason(exc: BaseException) -> str:
    """The innermost cause of a connection failure in words ("Connection refused")."""
    seen: set[int] = set()
    while (exc.__cause__ or exc.__context__) is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = re.sub(r"^\[Errno -?\d+\]\s*", "", str(exc)).strip()[:120]
    if text[:2].istitle():  # "Connection refused" → "connection refused", "SSL…" stays
        text = text[0].lower() + text[1:]
    return text or type(exc).__name__


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
    #: the note is a whole sentence (the deadline's), not a reason after "advisor unavailable:"
    deadline: bool = False


def _usage(raw: Any) -> tuple[int, int]:
    try:
        usage = raw.http_response.json().get("usage") or {}
        return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
    except (ValueError, AttributeError, TypeError):
        return 0, 0


def _failure_from_exception(exc: Exception, *, timeout_s: float, url: str) -> tuple[str, str]:
    """(outcome, short note) for an exception raised by the request itself; ``url`` is the
    endpoint as :func:`display_url` shows it."""
    if isinstance(exc, openai.APITimeoutError):
        return "timeout", f"no answer within {timeout_s:g} s"
    if isinstance(exc, openai.APIConnectionError):
        return "connection_error", f"could not reach {url}: {_reason(exc)}"
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
