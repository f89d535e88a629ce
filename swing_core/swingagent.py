"""SwingAgent v1.6.1 compatibility: a signal in the original library's JSON field names.

SwingDesk uses one name per field everywhere (the signal frame, :class:`swing_core.agent.Signal`
and the ``signals`` table); the original's spellings live here only, for scripts and tools that
read SwingAgent's output (``python -m swing_core analyze SYMBOL --format swingagent``).
"""

from __future__ import annotations

from typing import Any

#: SwingDesk name -> SwingAgent v1.6.1 name, per nested object of the signal.
TREND_NAMES: dict[str, str] = {"rsi14": "rsi_14"}
ENTRY_NAMES: dict[str, str] = {
    "entry": "entry_price", "stop": "stop_price", "target": "take_profit",
    "golden_pocket_low": "fib_golden_low", "golden_pocket_high": "fib_golden_high",
    "fib_ext_1272": "fib_target_1", "fib_ext_1618": "fib_target_2",
}
SIGNAL_NAMES: dict[str, str] = {
    "mtf_15m": "mtf_15m_trend", "mtf_1h": "mtf_1h_trend", "rs_sector": "rs_sector_20",
    "rs_spy": "rs_spy_20", "time_bucket": "tod_bucket",
}


def _renamed(values: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    return {names.get(key, key): value for key, value in values.items()}


def to_swingagent(signal: Any) -> dict[str, Any]:
    """``signal`` (an :class:`~swing_core.agent.Signal`) as a JSON-ready dict with SwingAgent
    v1.6.1's field names (timestamps as ISO 8601 text; the setup vector left out)."""
    data = signal.model_dump(mode="json", exclude={"vector"})
    data["trend"] = _renamed(data["trend"], TREND_NAMES)
    if data.get("entry") is not None:
        data["entry"] = _renamed(data["entry"], ENTRY_NAMES)
    return _renamed(data, SIGNAL_NAMES)


__all__ = ["ENTRY_NAMES", "SIGNAL_NAMES", "TREND_NAMES", "to_swingagent"]
