"""One name per field (issue 14): the signal frame, ``agent.Signal`` and the ``signals`` table
use the same names; SwingAgent's spellings exist only in the export adapter."""

from __future__ import annotations

import re
from pathlib import Path

from swing_core import agent, models
from swing_core.swingagent import ENTRY_NAMES, SIGNAL_NAMES, TREND_NAMES

ROOT = Path(__file__).resolve().parent.parent
SWINGAGENT_ONLY = {*ENTRY_NAMES.values(), *SIGNAL_NAMES.values(), *TREND_NAMES.values()}


def test_signal_flat_fields_are_storage_columns():
    columns = set(models.SignalRecord.__table__.columns.keys())
    signal_fields = {"rsi14", "entry", "stop", "target", "golden_pocket_low",
                     "golden_pocket_high", "rs_sector", "rs_spy", "time_bucket", "mtf_15m",
                     "mtf_1h", "mtf_alignment", "vol_regime", "atr_pct"}
    assert signal_fields <= columns
    model_fields = (set(agent.Signal.model_fields) | set(agent.EntryPlan.model_fields)
                    | set(agent.TrendState.model_fields))
    assert not SWINGAGENT_ONLY & model_fields


def test_swingagent_spellings_live_only_in_the_adapter():
    # a trade's fill prices ("entry_price", the exit kernel's "stop_price" fill) are different
    # fields from a plan's entry and stop
    allowed = {"swing_core/swingagent.py"}
    names = SWINGAGENT_ONLY - {"entry_price", "stop_price"}
    pattern = re.compile(r"\b(" + "|".join(sorted(names)) + r")\b")
    offenders = []
    for path in [*ROOT.glob("swing_core/**/*.py"), *ROOT.glob("pages/*.py"), ROOT / "app.py"]:
        rel = path.relative_to(ROOT).as_posix()
        if rel in allowed or "/migrations/" in rel:
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if pattern.search(line) and "SwingAgent" not in line:
                offenders.append(f"{rel}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_one_class_named_signal():
    assert not hasattr(models, "Signal")
    assert agent.Signal.__module__ == "swing_core.agent.signals"
