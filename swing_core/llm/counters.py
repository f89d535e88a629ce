"""Counters of the advisor's traffic in this process (what the Performance page and tests read):
answers served from the database cache, and requests made, retried, failed or not made."""

from __future__ import annotations

import threading

__all__ = ["LLM_CACHE_STATS", "LLM_CALL_STATS"]


class _Counters(dict[str, int]):
    """A dict of named counters that threads can increment safely."""

    def __init__(self, *names: str) -> None:
        super().__init__(dict.fromkeys(names, 0))
        self._lock = threading.Lock()

    def increment(self, name: str, by: int = 1) -> None:
        with self._lock:
            self[name] = self.get(name, 0) + by

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self)

    def reset(self) -> None:
        with self._lock:
            for name in self:
                self[name] = 0


#: LLM answer cache: ``hits`` (answered from the database, no cost) and ``misses``.
LLM_CACHE_STATS = _Counters("hits", "misses")
#: API traffic: ``calls`` (requests made, retries included), ``retries``, ``failures`` (calls
#: that gave no usable answer), ``budget_stops`` and ``circuit_stops`` (calls not made).
LLM_CALL_STATS = _Counters("calls", "retries", "failures", "budget_stops", "circuit_stops")
