"""The LLM advisor's part of a signal: :func:`advise` applies its vote to the confidence and the
setup vector and attaches its action plan (the advisor itself: :mod:`swing_core.llm`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from swing_core.agent.signals import Signal
from swing_core.config import StrategyParams
from swing_core.features import VECTOR_COLUMNS, VECTOR_FIELDS
from swing_core.llm.policy import apply_vote

__all__ = ["advise"]


def _vector_with_llm_confidence(vector: list[float], llm_confidence: float) -> list[float]:
    """The setup vector with its LLM-confidence slot set (the raw vector's last slot is the
    constant 1, so the normalized vector divided by its last value recovers the raw one)."""
    normalized = np.asarray(vector, dtype=np.float64)
    if normalized.size != len(VECTOR_COLUMNS) or normalized[-1] <= 0:
        return vector
    raw = normalized / normalized[-1]
    raw[VECTOR_FIELDS.index("llm_confidence")] = llm_confidence
    return [float(v) for v in (raw / np.linalg.norm(raw)).astype(np.float32)]


def advise(
    signal: Signal,
    advisor: Any,
    *,
    params: StrategyParams | None = None,
    plan: bool = False,
    force: bool = False,
) -> Signal:
    """The signal with the LLM advisor's vote (and, with ``plan``, its action plan).

    The advisor is asked only when it can change a decision (a plan exists and confidence is at
    most the ceiling in settings) unless ``force``.  An agreeing vote adds
    ``llm_agree_weight``·its confidence, a disagreeing one subtracts ``llm_disagree_weight``·its
    confidence (STRATEGY.md).  The vote and the plan are asked concurrently under one deadline
    (``advisor.consult``).  A failure never blocks the signal: each failed part adds its own
    labelled note ("Vote: …", "Action plan: …").
    """
    params = params or StrategyParams()
    updates: dict[str, Any] = {}
    consultation = advisor.consult(signal.flat(), plan=plan, force=force)
    result = consultation.vote
    if result.vote is not None:
        vote = result.vote
        updates.update(
            llm_vote=vote.model_dump(mode="json"),
            llm_explanation=vote.rationale,
            confidence=apply_vote(signal.confidence, vote, params,
                                  side=signal.entry.side if signal.entry else "none"),
            vector=_vector_with_llm_confidence(signal.vector, vote.confidence),
        )
    plan_result = consultation.plan
    if plan_result is not None and plan_result.plan is not None:
        updates.update(action_plan=plan_result.plan.action_plan,
                       risk_notes=plan_result.plan.risk_notes,
                       scenarios=list(plan_result.plan.scenarios))
    updates["notes"] = [*signal.notes, *consultation.notes]
    return signal.model_copy(update=updates)
