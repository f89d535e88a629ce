"""What the advisor answers and what a request to it gives: the pydantic answer schemas
(:class:`LLMVote`, :class:`LLMActionPlan`, sent to the API as structured-output schemas) and the
frozen results (:class:`AdvisorResult`, :class:`Consultation`, :class:`ConsultDecision`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from swing_core.errors import LLMError

__all__ = ["AdvisorResult", "ConsultDecision", "Consultation", "LLMActionPlan", "LLMVote",
           "TrendLabel"]

_MAX_TEXT_CHARS = 800

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
    "timeout" (also when the overall deadline ``SWING_LLM_DEADLINE_S`` stopped it), "rate_limited",
    "server_error", "connection_error", "http_error", "malformed", "schema", "truncated",
    "refused", "config_error" (OPENAI_BASE_URL is not a URL), "db_error" or "error".
    ``attempts``: HTTP requests made.
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
class Consultation:
    """A vote and an action plan asked together under one deadline (``Advisor.consult``).

    Each part keeps its own result, so a failed plan is reported next to a good vote (or a
    failed one) instead of being lost; ``plan`` is None when no plan was asked for.
    """

    vote: AdvisorResult
    plan: AdvisorResult | None = None

    @property
    def notes(self) -> list[str]:
        """One line per part with something to say, labelled: "Vote: …", "Action plan: …"."""
        parts = (("Vote", self.vote), ("Action plan", self.plan))
        return [f"{label}: {result.signal_note}" for label, result in parts
                if result is not None and result.signal_note]


@dataclass(frozen=True)
class ConsultDecision:
    """Whether to ask the advisor, and why (truthy when it should be asked)."""

    consult: bool
    reason: str

    def __bool__(self) -> bool:
        return self.consult

