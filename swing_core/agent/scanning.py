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
from swing_core.verdict import TAKE

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
    in its result and the scan goes on. ``progress(done, total, symbol)`` is called after each.

    Each context series (the sector and market benchmarks, shared by every symbol) is read once
    per scan and handed to every symbol's analysis (``analyze(..., context_cache=)``): the
    signals are those of analyzing each symbol on its own."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in symbols if s and s.strip()))
    results: list[ScanResult] = []
    context_cache: dict[tuple[Any, ...], Any] = {}  # this scan's context reads
    for done, symbol in enumerate(symbols, start=1):
        try:
            signal = analyze(symbol, interval, params=params, lookback_days=lookback_days,
                             engine=engine, offline=offline, prior_provider=prior_provider,
                             source=source, context_cache=context_cache)
            results.append(ScanResult(symbol=symbol, signal=signal))
        except SwingError as exc:  # the symbol's own problem; a bug stops the scan
            results.append(ScanResult(symbol=symbol, signal=None, error=str(exc)))
        if progress is not None:
            progress(done, len(symbols), symbol)
    return results


def scan_table(results: list[ScanResult]) -> pd.DataFrame:
    """Scan results as one table (errors included, with their message), ranked: the signals
    whose verdict is "take" first (:mod:`swing_core.verdict`), then by expected R net of costs
    (``expected_r_net``, highest first; none last), then by confidence. The one ranking of the
    Scanner page and ``python -m swing_core scan``: a confident plan whose neighbours lost money
    after costs ranks below one they made money on, whatever its confidence."""
    rows = []
    for result in results:
        if result.signal is None:
            rows.append({"symbol": result.symbol, "error": result.error})
            continue
        flat = result.signal.flat()
        flat["error"] = None
        rows.append(flat)
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    for column in ("verdict", "expected_r_net", "confidence"):
        if column not in table:
            table[column] = None
    take = table["verdict"].eq(TAKE)
    net = pd.to_numeric(table["expected_r_net"], errors="coerce")
    confidence = pd.to_numeric(table["confidence"], errors="coerce")
    order = pd.DataFrame({"take": take, "net": net, "confidence": confidence}).sort_values(
        ["take", "net", "confidence"], ascending=False, na_position="last", kind="stable").index
    return table.loc[order].reset_index(drop=True)
