"""The circuit breaker that pauses the advisor after repeated failures, one per endpoint and
process (:func:`circuit_breaker_for`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from swing_core.llm.budget import _OPENAI_HOST

__all__ = ["CircuitBreaker", "circuit_breaker_for"]


class CircuitBreaker:
    """Stops calling an endpoint after ``failure_threshold`` failed calls in a row.

    Open for ``cooldown_s`` seconds, then half-open: one trial call is let through; its success
    closes the breaker, its failure opens it again. Thread-safe.
    """

    def __init__(self, *, failure_threshold: int = 3, cooldown_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> Literal["closed", "open", "half_open"]:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.cooldown_s:
                return "half_open"
            return "open"

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def seconds_until_retry(self) -> float:
        with self._lock:
            if self._opened_at is None:
                return 0.0
            return max(0.0, self.cooldown_s - (self._clock() - self._opened_at))

    def allow(self) -> bool:
        """True if a call may go out now (claims the single trial when half-open)."""
        with self._lock:
            if self._opened_at is None:
                return True
            if self._clock() - self._opened_at >= self.cooldown_s and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            return False

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            self._trial_in_flight = False
            if self._failures >= self.failure_threshold:
                self._opened_at = self._clock()


_BREAKERS: dict[str, CircuitBreaker] = {}
_BREAKERS_LOCK = threading.Lock()


def circuit_breaker_for(base_url: str | None) -> CircuitBreaker:
    """The process-wide breaker of one endpoint (shared by every :class:`Advisor` using it)."""
    key = base_url or _OPENAI_HOST
    with _BREAKERS_LOCK:
        return _BREAKERS.setdefault(key, CircuitBreaker())
