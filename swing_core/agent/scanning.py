"""``scan(symbols)``: the analysis of every symbol of a watchlist, one :class:`ScanResult` each
(a symbol's own error is kept and the scan goes on), and :func:`scan_table` to rank them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from swing_core.agent.analyzer import analyze
from swing_core.agent.signals import PriorProvider, Signal
from swing_core.config import StrategyParams
from swing_core.errors import SwingError
from swing_core.perf import timed_fn

__all__ = ["ScanResult", "scan", "scan_table"]


@dataclass(frozen=True)
class ScanResult:
    """One symbol of a scan: a signal, or the error that stopped it (the scan goes on)."""

    symbol: str
    signal: Signal | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.signal is not None


@timed_fn("scan")
def scan(
    symbols: Iterable[str],
    interval: str = "30m",
    *,
    params: StrategyParams | None = None,
    lookback_days: int | None = None,
    engine: Any = None,
    offline: bool | None = None,
    prior_provider: PriorProvider | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    source: str | None = None,
) -> list[ScanResult]:
    """Analyze every symbol; one result per symbol, in input order. A failing symbol's error is
    in its result and the scan goes on. ``progress(done, total, symbol)`` is called after each."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    results: list[ScanResult] = []
    for done, symbol in enumerate(symbols, start=1):
        try:
            signal = analyze(symbol, interval, params=params, lookback_days=lookback_days,
                             engine=engine, offline=offline, prior_provider=prior_provider,
                             source=source)
            results.append(ScanResult(symbol=symbol, signal=signal))
        except SwingError as exc:  # the symbol's own problem; a bug stops the scan
            results.append(ScanResult(symbol=symbol, signal=None, error=str(exc)))
        if progress is not None:
            progress(done, len(symbols), symbol)
    return results


def scan_table(results: list[ScanResult]) -> pd.DataFrame:
    """Scan results as one sortable table (errors included, with their message)."""
    rows = []
    for result in results:
        if result.signal is None:
            rows.append({"symbol": result.symbol, "error": result.error})
            continue
        flat = result.signal.flat()
        flat["error"] = None
        rows.append(flat)
    table = pd.DataFrame(rows)
    if "confidence" in table:
        table = table.sort_values("confidence", ascending=False, na_position="last")
    return table.reset_index(drop=True)


