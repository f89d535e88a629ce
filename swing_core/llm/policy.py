"""When the advisor is worth asking (:func:`should_consult`) and how its vote moves a
signal's confidence (:func:`apply_vote`): pure functions of a signal and the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from swing_core.config import Settings, StrategyParams, get_settings
from swing_core.llm.schemas import ConsultDecision, LLMVote
from swing_core.numbers import finite_or_none

__all__ = ["apply_vote", "should_consult"]


def _has_plan(signal: Mapping[str, Any]) -> bool:
    return signal.get("side") in ("long", "short") and finite_or_none(signal.get("entry")) is not None


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
    confidence = finite_or_none(signal.get("confidence"))
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
