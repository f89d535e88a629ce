"""The agent: ``analyze(symbol)`` and ``scan(symbols)``, bars -> signal frame -> last row -> typed
signal, enriched with pattern priors and, when asked, the LLM advisor's vote.

One module per concept:

- :mod:`~swing_core.agent.signals`: :class:`Signal`, :class:`TrendState`, :class:`EntryPlan`
  and :func:`signal_from_frame` (one row of the signal frame as a signal);
- :mod:`~swing_core.agent.analyzer`: :func:`analysis` / :func:`analyze`, the one signal path of
  the engine, its context (:func:`load_context`) and :func:`analyze_frame`;
- :mod:`~swing_core.agent.scanning`: :func:`scan`, :class:`ScanResult`, :func:`scan_table`;
- :mod:`~swing_core.agent.advice`: :func:`advise`, the advisor's vote and plan on a signal.

A name used at call time is looked up in its defining module (e.g. :func:`scan` calls
``swing_core.agent.scanning.analyze``): patch it there.
"""

from __future__ import annotations

from swing_core.agent.advice import advise
from swing_core.agent.analyzer import (
    ANALYZE_LOOKBACK_DAYS,
    Analysis,
    analysis,
    analyze,
    analyze_frame,
    load_context,
)
from swing_core.agent.scanning import ScanResult, scan, scan_table
from swing_core.agent.signals import (
    EntryPlan,
    PriorProvider,
    Signal,
    TrendState,
    signal_from_frame,
)

__all__ = [
    "ANALYZE_LOOKBACK_DAYS",
    "Analysis",
    "EntryPlan",
    "PriorProvider",
    "ScanResult",
    "Signal",
    "TrendState",
    "advise",
    "analysis",
    "analyze",
    "analyze_frame",
    "load_context",
    "scan",
    "scan_table",
    "signal_from_frame",
]
