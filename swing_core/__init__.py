"""SwingDesk engine: market data, the signal frame, pattern priors, storage and backtests.

Never imports Streamlit: usable from a notebook, the CLI, a test or a worker process.
The public names below are imported lazily, so ``import swing_core`` stays cheap.
"""

from __future__ import annotations

from swing_core.config import ENGINE_VERSION, Settings, StrategyParams, get_settings
from swing_core.errors import (
    BacktestError,
    ConfigError,
    DatabaseError,
    DataError,
    LLMError,
    MarketDataError,
    SwingError,
)
from swing_core.lazy import lazy_exports

__version__ = ENGINE_VERSION

#: public name -> module that defines it (imported on first use)
_LAZY: dict[str, str] = {
    "analyze": "swing_core.agent.analyzer",
    "analysis": "swing_core.agent.analyzer",
    "Analysis": "swing_core.agent.analyzer",
    "scan": "swing_core.agent.scanning",
    "Signal": "swing_core.agent.signals",
    "ScanResult": "swing_core.agent.scanning",
    "build_signal_frame": "swing_core.frame",
    "FrameContext": "swing_core.frame",
    "fetch_bars": "swing_core.market",
    "fetch_many": "swing_core.market",
    "demo_bars": "swing_core.market",
    "SOURCES": "swing_core.market",
    "simulate_exits": "swing_core.exits",
    "cost_r": "swing_core.costs",
    "judge": "swing_core.verdict",
    "Verdict": "swing_core.verdict",
    "PatternIndex": "swing_core.patterns",
    "PriorStats": "swing_core.patterns",
    "open_runtime": "swing_core.services",
    "Runtime": "swing_core.services",
    "get_engine": "swing_core.db",
    "init_db": "swing_core.db",
    "record_signal": "swing_core.journal",
    "evaluate_pending": "swing_core.journal",
    "Advisor": "swing_core.llm",
    "AdvisorResult": "swing_core.llm",
    "LLMVote": "swing_core.llm",
    "LLMActionPlan": "swing_core.llm",
    "should_consult": "swing_core.llm",
    "apply_vote": "swing_core.llm",
    "advisor_status": "swing_core.llm",
    "timed": "swing_core.perf",
}

__all__ = [
    "ENGINE_VERSION",
    "BacktestError",
    "ConfigError",
    "DatabaseError",
    "DataError",
    "LLMError",
    "MarketDataError",
    "Settings",
    "StrategyParams",
    "SwingError",
    "get_settings",
    *sorted(_LAZY),
]


__getattr__, __dir__ = lazy_exports("swing_core", _LAZY, globals())
