"""The verdict on a signal: "take", "skip" or "no edge", from its pattern prior's expected R
net of costs and how far that prior can be trusted.

A signal's confidence grows with trend, R multiple and alignment; it says nothing about what
setups like it went on to earn. A long momentum plan at 57 % confidence next to a prior of
−0.12 expected R is not a trade. The verdict is the one rule that says so, in order:

1. no plan on the signal bar → **no edge** (nothing to trade);
2. no pattern prior (no neighbour with a known outcome, or no expected R) → **no edge**;
3. fewer than ``params.verdict_min_neighbors`` (20) neighbours → **no edge**: an expected R
   from a handful of outcomes is noise;
4. the journal's calibration report (:class:`swing_core.calibration.BrierComparison`, carried
   in ``prior["calibration"]``) says the priors carry no information (``no_information``) or
   mislead (``worse_than_base_rate``) → **no edge**, whatever the expected R; unless that
   report has too few evaluated signals to judge (``too_few``) or none was made: then the
   priors are taken at their word (rules 3, 5, 6);
5. expected R net of costs > ``params.verdict_min_net_r`` (0) → **take**;
6. otherwise → **skip** (the neighbours lost money after costs, on average).

Expected R net of costs = ``expected_r`` (the neighbours' win rate · average win R + (1 − win
rate) · average loss R, before costs) − :func:`swing_core.costs.cost_r` of the plan (slippage
on both fills at the entry price and two fees, relative to the plan's risk per share
``|entry − stop|``; the fee spread over a position risking ``risk_per_trade`` of 100 000).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from swing_core.config import StrategyParams
from swing_core.costs import cost_r
from swing_core.numbers import finite_or_none

__all__ = ["NO_EDGE", "SKIP", "TAKE", "VERDICTS", "Verdict", "judge", "signal_verdict"]

TAKE, SKIP, NO_EDGE = "take", "skip", "no edge"
#: The verdicts, best first (the Scanner's order among equal expected R).
VERDICTS: tuple[str, ...] = (TAKE, SKIP, NO_EDGE)
#: Calibration outcomes that void a prior (rule 4).
_UNTRUSTED = {"no_information": "carry no information (no better than the base rate)",
              "worse_than_base_rate": "mislead (worse than the base rate)"}


@dataclass(frozen=True)
class Verdict:
    """``verdict`` (:data:`VERDICTS`), ``reason`` (one plain sentence), ``cost_r`` (round-trip
    costs in R; None without a plan) and ``expected_r_net`` (expected R − costs; None without
    a prior)."""

    verdict: str
    reason: str
    cost_r: float | None = None
    expected_r_net: float | None = None

    def fields(self) -> dict[str, Any]:
        """As :class:`~swing_core.agent.Signal` fields."""
        return {"verdict": self.verdict, "verdict_reason": self.reason, "cost_r": self.cost_r,
                "expected_r_net": self.expected_r_net}


def judge(*, entry: float | None, stop: float | None, expected_r: float | None,
          n: int | None, params: StrategyParams, calibration: str | None = None) -> Verdict:
    """The verdict of a plan (``entry``, ``stop``; None: no plan) with a prior of ``n``
    neighbours and ``expected_r`` (before costs), by the rule of the module docstring.
    ``calibration``: the outcome of the journal's calibration report, if one was made."""
    if entry is None or stop is None:
        return Verdict(NO_EDGE, "No setup on the signal bar.")
    cost = finite_or_none(cost_r(entry, stop, params=params))
    expected = finite_or_none(expected_r)
    count = int(n or 0)
    if count == 0 or expected is None:
        return Verdict(NO_EDGE, "No pattern prior: no setup like this has a known outcome yet.",
                       cost_r=cost)
    net = None if cost is None else expected - cost
    if count < params.verdict_min_neighbors:
        return Verdict(NO_EDGE, f"Only {count} neighbours (at least "
                       f"{params.verdict_min_neighbors} needed): too few to trust their "
                       "expected R.", cost_r=cost, expected_r_net=net)
    if calibration in _UNTRUSTED:
        said = "" if net is None else f" ({net:+.2f} R net of costs)"
        return Verdict(NO_EDGE, f"The journal's calibration says the priors "
                       f"{_UNTRUSTED[calibration]}: their expected R{said} is not an edge.",
                       cost_r=cost, expected_r_net=net)
    if net is None:
        return Verdict(NO_EDGE, "The plan has no risk (entry at the stop): costs in R are "
                       "undefined.", cost_r=cost)
    sums = (f"expected R {expected:+.2f} − costs {cost:.2f} R = {net:+.2f} R net over "
            f"{count} neighbours")
    if net > params.verdict_min_net_r:
        return Verdict(TAKE, f"Positive edge after costs: {sums}.", cost_r=cost,
                       expected_r_net=net)
    return Verdict(SKIP, f"No edge after costs: {sums}.", cost_r=cost, expected_r_net=net)


def signal_verdict(signal: Any, *, params: StrategyParams) -> Verdict:
    """:func:`judge` of a :class:`~swing_core.agent.Signal`: its plan, its prior's ``n`` and
    expected R, and the calibration outcome its prior carries (``prior["calibration"]``)."""
    entry = signal.entry
    prior = dict(signal.prior or {})
    calibration = prior.get("calibration")
    outcome = calibration.get("outcome") if isinstance(calibration, dict) else calibration
    return judge(entry=entry.entry if entry else None, stop=entry.stop if entry else None,
                 expected_r=signal.expected_r, n=prior.get("n"), params=params,
                 calibration=outcome)
