"""SwingDesk engine: market data, the signal frame, pattern priors, storage and backtests.

Never imports Streamlit: usable from a notebook, the CLI, a test or a worker process.
"""

from __future__ import annotations

from swing_core.config import ENGINE_VERSION, Settings, StrategyParams, get_settings
from swing_core.errors import (
    BacktestError,
    ConfigError,
    DatabaseError,
    LLMError,
    MarketDataError,
    SwingError,
)

__version__ = ENGINE_VERSION

__all__ = [
    "ENGINE_VERSION",
    "BacktestError",
    "ConfigError",
    "DatabaseError",
    "LLMError",
    "MarketDataError",
    "Settings",
    "StrategyParams",
    "SwingError",
    "get_settings",
]
