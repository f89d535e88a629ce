"""The verdict on a signal (swing_core.verdict): take / skip / no edge from the prior's expected
R net of costs and its reliability, set on every analysed signal, stored with it, and the
Scanner's ranking by it (issue 15)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from swing_core import agent, db
from swing_core.agent import ScanResult, analyze, scan_table
from swing_core.config import StrategyParams
from swing_core.verdict import NO_EDGE, SKIP, TAKE, judge

PARAMS = StrategyParams()  # 20 neighbours at least; net expected R above 0
# entry 100, stop 99: costs 0.10 R of slippage + 0.002 R of fees = 0.102 R
PLAN = {"entry": 100.0, "stop": 99.0}


@pytest.mark.parametrize(
    ("expected_r", "n", "calibration", "verdict", "net"),
    [
        (0.50, 40, None, TAKE, 0.398),               # positive after costs, enough neighbours
        (-0.12, 40, None, SKIP, -0.222),             # the neighbours lost money
        (0.08, 40, None, SKIP, -0.022),              # positive before costs, not after them
        (0.50, 5, None, NO_EDGE, 0.398),             # a handful of neighbours: noise
        (0.50, 19, None, NO_EDGE, 0.398),            # one short of the minimum
        (0.50, 20, None, TAKE, 0.398),               # the minimum itself is enough
        (0.50, 40, "no_information", NO_EDGE, 0.398),        # the journal says priors are noise
        (-0.50, 40, "worse_than_base_rate", NO_EDGE, -0.602),  # ... or mislead
        (0.50, 40, "too_few", TAKE, 0.398),          # too early to judge: taken at their word
        (0.50, 40, "beats_base_rate", TAKE, 0.398),
    ],
)
def test_the_verdict_rule_by_hand(expected_r: float, n: int, calibration: str | None,
                                  verdict: str, net: float) -> None:
    got = judge(**PLAN, expected_r=expected_r, n=n, params=PARAMS, calibration=calibration)
    assert got.verdict == verdict, got.reason
    assert got.cost_r == pytest.approx(0.102)
    assert got.expected_r_net == pytest.approx(net)
    assert got.reason


def test_no_plan_or_no_prior_is_no_edge_and_reasons_say_why() -> None:
    assert judge(entry=None, stop=None, expected_r=0.5, n=60, params=PARAMS).verdict == NO_EDGE
    none = judge(**PLAN, expected_r=None, n=0, params=PARAMS)
    assert none.verdict == NO_EDGE and "No pattern prior" in none.reason
    assert none.expected_r_net is None and none.cost_r == pytest.approx(0.102)
    few = judge(**PLAN, expected_r=0.5, n=5, params=PARAMS)
    assert "Only 5 neighbours" in few.reason and "20" in few.reason
    take = judge(**PLAN, expected_r=0.5, n=40, params=PARAMS)
    assert "+0.50" in take.reason and "0.10 R" in take.reason and "+0.40 R" in take.reason
    gated = judge(**PLAN, expected_r=0.5, n=40, params=PARAMS, calibration="no_information")
    assert "carry no information" in gated.reason
    # the thresholds are strategy parameters
    strict = StrategyParams(verdict_min_neighbors=50, verdict_min_net_r=0.5)
    assert judge(**PLAN, expected_r=0.5, n=40, params=strict).verdict == NO_EDGE
    assert judge(**PLAN, expected_r=0.55, n=60, params=strict).verdict == SKIP
    assert judge(**PLAN, expected_r=0.65, n=60, params=strict).verdict == TAKE


def _demo_signal_with_plan(engine) -> agent.Signal:
    for symbol in ("AAPL", "MSFT", "NVDA", "AMZN", "META", "TSLA", "AMD", "GOOG"):
        signal = analyze(symbol, "1d", engine=engine, offline=True)
        if signal.entry is not None:
            return signal
    raise AssertionError("some demo symbol must carry a plan")


def test_every_analysed_signal_gets_the_verdict_of_its_prior(sqlite_engine) -> None:
    """The issue's case: a confident long whose neighbours lost money is a skip."""
    plain = _demo_signal_with_plan(sqlite_engine)
    assert plain.verdict == NO_EDGE and "No pattern prior" in plain.verdict_reason

    def losing_prior(signal, params):
        return {"expected_r": -0.12, "expected_winrate": 0.39, "expected_winrate_raw": 0.39,
                "prior": {"n": 60, "win_rate": 0.39,
                          "calibration": {"outcome": "too_few", "n": 3, "n_calibrated": 0}},
                "confidence": 0.57}

    signal = analyze(plain.symbol, "1d", engine=sqlite_engine, offline=True,
                     prior_provider=losing_prior)
    assert signal.confidence == pytest.approx(0.57)
    assert signal.verdict == SKIP and signal.expected_r_net < -0.12
    want = judge(entry=signal.entry.entry, stop=signal.entry.stop, expected_r=-0.12, n=60,
                 params=PARAMS)
    assert (signal.verdict_reason, signal.cost_r) == (want.reason, want.cost_r)
    # ... stored with the signal, in its own columns
    ids = db.record_signals(sqlite_engine, [signal.to_record()])
    stored = db.list_signals(sqlite_engine, limit=None).set_index("id").loc[ids[0]]
    assert (stored["verdict"], stored["verdict_reason"]) == (SKIP, want.reason)
    assert json.loads(stored["prior_json"])["calibration"]["outcome"] == "too_few"
    # the journal's calibration saying "no information" voids the same prior
    def uninformative(signal, params):
        fields = losing_prior(signal, params)
        fields["expected_r"] = 0.8
        fields["prior"]["calibration"] = {"outcome": "no_information", "n": 300,
                                          "n_calibrated": 250}
        return fields

    gated = analyze(plain.symbol, "1d", engine=sqlite_engine, offline=True,
                    prior_provider=uninformative)
    assert gated.verdict == NO_EDGE and "no information" in gated.verdict_reason


def test_the_scanner_ranks_take_first_then_net_expected_r_then_confidence(sqlite_engine
                                                                          ) -> None:
    base = _demo_signal_with_plan(sqlite_engine)

    def with_(symbol: str, verdict: str, net: float | None, confidence: float) -> ScanResult:
        signal = base.model_copy(update={"symbol": symbol, "verdict": verdict,
                                         "expected_r_net": net, "confidence": confidence})
        return ScanResult(symbol=symbol, signal=signal)

    results = [
        with_("LOSER", SKIP, -0.22, 0.95),      # the most confident: neighbours lost money
        with_("FEW", NO_EDGE, 0.90, 0.50),      # a big net R from 5 neighbours is not a take
        with_("TAKE_LOW", TAKE, 0.10, 0.90),
        with_("TAKE_HIGH", TAKE, 0.40, 0.30),
        with_("TAKE_TIE", TAKE, 0.10, 0.95),    # same net R: the more confident first
        with_("NOPRIOR", NO_EDGE, None, 0.99),  # nothing known: after every net R
        ScanResult(symbol="BROKEN", signal=None, error="no bars"),
        with_("FLAT", SKIP, 0.0, 0.40),
    ]
    table = scan_table(results)
    assert table["symbol"].tolist() == ["TAKE_HIGH", "TAKE_TIE", "TAKE_LOW", "FEW", "FLAT",
                                        "LOSER", "NOPRIOR", "BROKEN"]
    assert {"verdict", "expected_r_net", "prior_n", "cost_r", "verdict_reason"} <= set(table)
    # the Scanner page's table keeps that order
    from swing_core import views

    shown = views.scan_view(results)
    assert shown["symbol"].tolist() == table["symbol"].tolist()
    assert list(shown.columns[:5]) == ["symbol", "verdict", "side", "setup", "expected_r_net"]
    assert pd.isna(shown.set_index("symbol").loc["NOPRIOR", "expected_r_net"])
