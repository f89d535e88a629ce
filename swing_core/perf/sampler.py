"""Memory and CPU sampling of this process (RSS, peak RSS, CPU percent), on demand or in a
daemon thread, and the after-fork reset of the process-wide registry and sampler."""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import psutil

from swing_core.clock import utc_now
from swing_core.perf import timers as _timers
from swing_core.perf.timers import _REGISTRY, _SEQUENCE

logger = logging.getLogger("swing_core.perf")

_MB = 1024.0 * 1024.0

# --------------------------------------------------------------------------- memory / CPU


@dataclass(frozen=True)
class MemorySample:
    """Resident memory now and at its peak (MiB), CPU since the previous sample (percent of one
    core, psutil's convention: 200 means two cores busy), sampled at ``ts`` (UTC)."""

    ts: datetime
    rss_mb: float
    peak_rss_mb: float
    cpu_pct: float


def _peak_rss_mb(proc: psutil.Process, rss_mb: float) -> float:
    try:
        import resource  # Unix only: here, not at the top, so the module imports on Windows

        maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return max(rss_mb, maxrss / (_MB if sys.platform == "darwin" else 1024.0))
    except ImportError:  # Windows
        peak = getattr(proc.memory_info(), "peak_wset", 0)
        return max(rss_mb, peak / _MB)


class MemorySampler:
    """Samples this process's RSS, peak RSS and CPU on demand or in a daemon thread."""

    def __init__(self, *, max_samples: int = 2_880) -> None:
        self._max_samples = max_samples
        self._reinit()

    def _reinit(self) -> None:
        self._lock = threading.Lock()
        self._proc = psutil.Process()  # binds the pid: rebuilt after fork
        self._proc.cpu_percent(None)  # the first call only starts the measurement
        # A second handle for peek(): its CPU baseline is its own, so a look from the page never
        # shortens the interval the next kept sample measures CPU over.
        self._peek_proc = psutil.Process()
        self._peek_proc.cpu_percent(None)
        self._history: deque[tuple[int, MemorySample]] = deque(maxlen=self._max_samples)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.interval_s: float | None = None

    def sample(self) -> MemorySample:
        """Measure now, keep the sample in the history, and return it."""
        with self._lock:
            rss_mb = self._proc.memory_info().rss / _MB
            result = MemorySample(ts=utc_now(), rss_mb=rss_mb,
                                  peak_rss_mb=_peak_rss_mb(self._proc, rss_mb),
                                  cpu_pct=float(self._proc.cpu_percent(None)))
            self._history.append((next(_SEQUENCE), result))
        return result

    def peek(self) -> MemorySample:
        """Measure now without keeping the sample (nothing is persisted); the CPU figure covers
        the time since the previous peek (0.0 on the first one)."""
        with self._lock:
            rss_mb = self._peek_proc.memory_info().rss / _MB
            return MemorySample(ts=utc_now(), rss_mb=rss_mb,
                                peak_rss_mb=_peak_rss_mb(self._peek_proc, rss_mb),
                                cpu_pct=float(self._peek_proc.cpu_percent(None)))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, interval_s: float = 10.0) -> MemorySampler:
        """Sample every ``interval_s`` seconds in a daemon thread (no-op if already running)."""
        if not self.running:
            self._stop = threading.Event()
            self.interval_s = interval_s
            self._thread = threading.Thread(target=self._run, args=(interval_s, self._stop),
                                            name="swing-perf-memory", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the sampling thread (if any) and wait for it."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._thread = None

    def _run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            try:
                if _timers._enabled:
                    self.sample()
            except Exception:  # a sampler must never kill the process
                logger.debug("memory sample failed", exc_info=True)

    def history(self, window_s: float | None = None) -> pd.DataFrame:
        """Retained samples, oldest first, columns ts, rss_mb, peak_rss_mb, cpu_pct."""
        with self._lock:
            samples = [s for _, s in self._history]
        frame = pd.DataFrame([s.__dict__ for s in samples],
                             columns=["ts", "rss_mb", "peak_rss_mb", "cpu_pct"])
        if window_s is not None and len(frame):
            frame = frame[frame["ts"] >= utc_now() - timedelta(seconds=window_s)]
        return frame.reset_index(drop=True)

    def _since(self, seq: int) -> tuple[int, list[MemorySample]]:
        with self._lock:
            new = [(n, s) for n, s in self._history if n > seq]
        return (new[-1][0] if new else seq), [s for _, s in new]


_SAMPLER = MemorySampler()


def get_sampler() -> MemorySampler:
    """The process-wide memory / CPU sampler."""
    return _SAMPLER


def _after_fork_in_child() -> None:
    # A worker forked from the app starts with empty statistics of its own (and fresh locks).
    _REGISTRY._reinit()
    _SAMPLER._reinit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
