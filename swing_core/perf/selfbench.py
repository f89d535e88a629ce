"""The self-benchmark: short versions of ``benchmarks/`` run in a subprocess with a time limit,
and their figures against their targets and against the original performance guide.

The work itself is ``benchmarks/run_all.py --quick`` (the guide's five operations measured on
demo data with a temp SQLite database, the 100-signal memory benchmark in a fresh interpreter,
``bench_engine.py`` and a short instrumentation-overhead run); this module starts it without
blocking (:class:`SelfBenchJob`), reports progress, enforces the time limit, and turns its JSON
into a :class:`SelfBenchReport`. A subprocess keeps the app's own memory and timings out of the
figures and lets a stuck run be killed; with ``record_perf`` it records its timings into the
app's database under the process role ``selfbench``, so the Performance page shows them too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from swing_core.clock import utc_now
from swing_core.errors import SwingError

__all__ = [
    "GUIDE_ROWS",
    "GuideRow",
    "JobState",
    "SelfBenchError",
    "SelfBenchJob",
    "SelfBenchReport",
    "benchmarks_dir",
    "guide_frame",
    "parse_report",
    "run_selfbench",
]

#: Default time limit of a quick self-benchmark (seconds); it usually takes well under a minute.
DEFAULT_TIMEOUT_S = 240.0


class SelfBenchError(SwingError):
    """The self-benchmark could not run or failed; the message says what to do."""


@dataclass(frozen=True)
class GuideRow:
    """One row of the original SwingAgent v1.6.1 performance guide's "Benchmarking Results"
    table ("expected performance improvements with optimization"): ``before`` and ``after`` in
    ``unit`` (seconds or MB). The guide gives no workload sizes; ``workload`` says what SwingDesk
    measures for the row."""

    key: str
    operation: str
    before: float
    after: float
    unit: Literal["s", "MB"]
    workload: str


GUIDE_ROWS: tuple[GuideRow, ...] = (
    GuideRow("signal_generation", "Signal generation", 5.2, 1.8, "s",
             "analyze() of one symbol, 30m, bars from a warm SQLite bar cache (demo prices)"),
    GuideRow("vector_search_1000", "Vector search (1,000 vectors)", 2.1, 0.3, "s",
             "load 1,000 stored setup vectors with known outcomes into the PatternIndex + one "
             "point-in-time cosine query (k=50)"),
    GuideRow("batch_insert", "Database batch insert", 8.5, 1.2, "s",
             "record_signals() of 1,000 signals in one transaction (SQLite)"),
    GuideRow("multi_symbol", "Multi-symbol analysis", 45.0, 12.0, "s",
             "scan() of 10 symbols, cold bar cache (demo bars downloaded and stored)"),
    GuideRow("memory_100_signals", "Memory usage (100 signals)", 350.0, 120.0, "MB",
             "peak RSS above the interpreter with its imports, 100 analyze() calls, fresh "
             "process"),
)

GUIDE_COLUMNS = ["key", "operation", "unit", "guide_before", "guide_after", "swingdesk",
                 "x_vs_guide_after", "x_vs_guide_before", "passed", "workload"]
FIGURE_COLUMNS = ["benchmark", "figure", "value", "target", "passed"]


def benchmarks_dir() -> Path | None:
    """The source checkout's ``benchmarks/`` folder (next to the ``swing_core`` package), or
    None when SwingDesk runs from an installed package without it."""
    folder = Path(__file__).resolve().parents[2] / "benchmarks"  # swing_core/perf/selfbench.py
    return folder if (folder / "run_all.py").is_file() else None


def guide_frame(measured: dict[str, float] | None = None) -> pd.DataFrame:
    """The guide's table with SwingDesk's figures beside it (NaN where not measured): columns
    :data:`GUIDE_COLUMNS`. ``x_vs_guide_after`` = guide after / SwingDesk (how many times
    faster, or smaller); ``passed``: SwingDesk at or under the guide's "after" figure."""
    measured = measured or {}
    rows = []
    for row in GUIDE_ROWS:
        value = measured.get(row.key)
        value = float(value) if value is not None else float("nan")
        ok = value == value and value <= row.after  # NaN != NaN
        rows.append({"key": row.key, "operation": row.operation, "unit": row.unit,
                     "guide_before": row.before, "guide_after": row.after, "swingdesk": value,
                     "x_vs_guide_after": row.after / value if value > 0 else float("nan"),
                     "x_vs_guide_before": row.before / value if value > 0 else float("nan"),
                     "passed": bool(ok) if value == value else None,
                     "workload": row.workload})
    return pd.DataFrame(rows, columns=GUIDE_COLUMNS)


# --------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class SelfBenchReport:
    """A finished self-benchmark: the guide comparison (:data:`GUIDE_COLUMNS`), every figure
    with a target (:data:`FIGURE_COLUMNS`: benchmark, figure, value, target text, passed), the
    mode ("quick" / "full"), wall time (s), when it finished (UTC), benchmark errors, and the
    raw JSON document."""

    guide: pd.DataFrame
    figures: pd.DataFrame
    mode: str
    seconds: float
    finished_at: datetime
    errors: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> int:
        return int(self.figures["passed"].eq(True).sum())

    @property
    def failed(self) -> int:
        return int(self.figures["passed"].eq(False).sum())


def parse_report(doc: dict[str, Any], *, seconds: float | None = None) -> SelfBenchReport:
    """Turn ``run_all.py``'s JSON document into a :class:`SelfBenchReport`."""
    if not isinstance(doc, dict) or doc.get("benchmark") != "run_all":
        raise SelfBenchError("The self-benchmark printed something that is not a run_all "
                             "report; run `python benchmarks/run_all.py --quick` by hand to "
                             "see why.")
    measured = {row["key"]: row.get("swingdesk") for row in doc.get("guide", [])
                if row.get("swingdesk") is not None}
    figures = []
    for bench, targets in (doc.get("targets") or {}).items():
        for name, spec in (targets or {}).items():
            figures.append({"benchmark": bench, "figure": name, "value": spec.get("value"),
                            "target": spec.get("target"), "passed": spec.get("pass")})
    errors = tuple(f"{name}: {b['error']}" for name, b in (doc.get("benches") or {}).items()
                   if b.get("error"))
    return SelfBenchReport(
        guide=guide_frame(measured),
        figures=pd.DataFrame(figures, columns=FIGURE_COLUMNS),
        mode=str(doc.get("mode", "?")),
        seconds=float(seconds if seconds is not None else doc.get("seconds", float("nan"))),
        finished_at=utc_now(), errors=errors + tuple(doc.get("errors", ())), raw=doc)


# --------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class JobState:
    """Where a :class:`SelfBenchJob` is: ``status`` running / done / failed / timeout /
    cancelled, seconds since start, the last progress line, and the report or the error."""

    status: Literal["running", "done", "failed", "timeout", "cancelled"]
    elapsed_s: float
    progress: str = ""
    report: SelfBenchReport | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.status != "running"


_ACTIVE_LOCK = threading.Lock()
_ACTIVE: list[SelfBenchJob] = []  # at most one running job per process (shared CPUs)


class SelfBenchJob:
    """A self-benchmark running in a subprocess. :meth:`start` returns at once; :meth:`poll`
    says where it is (and kills it past ``timeout_s``); :meth:`cancel` stops it. One job runs at
    a time per process: starting a second raises :class:`SelfBenchError`."""

    def __init__(self, *, quick: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S,
                 record_perf: bool = True, extra_args: tuple[str, ...] = ()) -> None:
        folder = benchmarks_dir()
        if folder is None:
            raise SelfBenchError("The benchmarks/ folder is not next to swing_core, so the "
                                 "self-benchmark cannot run here; run it from a source checkout "
                                 "of SwingDesk.")
        self.command = [sys.executable, str(folder / "run_all.py"), "--format", "json",
                        *(["--quick"] if quick else []),
                        *(["--record-perf"] if record_perf else []), *extra_args]
        self.cwd = folder.parent
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._started = 0.0
        self._state: JobState | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> SelfBenchJob:
        with _ACTIVE_LOCK:
            _ACTIVE[:] = [job for job in _ACTIVE if job._alive()]
            if _ACTIVE:
                raise SelfBenchError(f"A self-benchmark is already running (for "
                                     f"{time.monotonic() - _ACTIVE[0]._started:.0f} s); wait "
                                     "for it to finish: the machine's CPUs are shared.")
            self._tmp = tempfile.TemporaryDirectory(prefix="swing_selfbench_")
            out = Path(self._tmp.name)
            env = {**os.environ, "PYTHONPATH": str(self.cwd), "SWING_PERF_ROLE": "selfbench",
                   "PYTHONUNBUFFERED": "1"}
            with open(out / "stdout", "wb") as stdout, open(out / "stderr", "wb") as stderr:
                # Its own session (process group): a kill reaches the benchmarks it started.
                self._proc = subprocess.Popen(self.command, cwd=self.cwd, env=env,
                                              stdout=stdout, stderr=stderr,
                                              stdin=subprocess.DEVNULL,
                                              start_new_session=os.name == "posix")
            self._started = time.monotonic()
            _ACTIVE.append(self)
        return self

    def poll(self) -> JobState:
        """The job's state now; finishes it (parses the report) once the process has exited."""
        if self._state is not None:
            return self._state
        if self._proc is None:
            raise SelfBenchError("The self-benchmark was not started.")
        elapsed = time.monotonic() - self._started
        code = self._proc.poll()
        if code is None and elapsed > self.timeout_s:
            self._kill()
            return self._finish(JobState("timeout", elapsed, error=(
                f"The self-benchmark took longer than {self.timeout_s:.0f} s and was stopped. "
                "The machine may be busy: try again later, or run `python benchmarks/run_all.py "
                "--quick` in a terminal.")))
        if code is None:
            return JobState("running", elapsed, progress=self._progress())
        return self._finish(self._result(code, elapsed))

    def wait(self, poll_s: float = 0.5) -> JobState:
        """Block until the job has finished (or timed out)."""
        while not (state := self.poll()).finished:
            time.sleep(poll_s)
        return state

    def cancel(self) -> JobState:
        """Stop the job (no-op if it already finished)."""
        if self._state is None and self._proc is not None:
            self._kill()
            return self._finish(JobState("cancelled", time.monotonic() - self._started,
                                         error="The self-benchmark was cancelled."))
        return self.poll()

    # -- internals ---------------------------------------------------------------------------
    def _alive(self) -> bool:
        """Running and within its time limit (an abandoned job past it is killed here)."""
        if self._state is not None or self._proc is None or self._proc.poll() is not None:
            return False
        if time.monotonic() - self._started > self.timeout_s:
            self._kill()
            return False
        return True

    def _read(self, name: str) -> str:
        if self._tmp is None:
            return ""
        try:
            return (Path(self._tmp.name) / name).read_text(errors="replace")
        except OSError:
            return ""

    def _progress(self) -> str:
        lines = [ln.strip() for ln in self._read("stderr").splitlines() if ln.startswith("[")]
        return lines[-1] if lines else "starting…"

    def _kill(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return
        if os.name == "posix":
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)  # the group this job leads, only
            except ProcessLookupError:
                pass
        else:
            self._proc.kill()
        self._proc.wait(timeout=10)

    def _result(self, code: int, elapsed: float) -> JobState:
        stdout, stderr = self._read("stdout"), self._read("stderr")
        if code != 0:
            tail = stderr.strip().splitlines()[-1:] or ["no output"]
            return JobState("failed", elapsed, error=(
                f"The self-benchmark failed (exit code {code}): {tail[0][:300]}. Run "
                "`python benchmarks/run_all.py --quick` in a terminal to see the whole error."))
        try:
            report = parse_report(json.loads(stdout), seconds=elapsed)
        except (json.JSONDecodeError, SelfBenchError) as exc:
            return JobState("failed", elapsed, error=(
                f"The self-benchmark's output could not be read ({exc}). Run `python "
                "benchmarks/run_all.py --quick` in a terminal to see it."))
        return JobState("done", elapsed, report=report)

    def _finish(self, state: JobState) -> JobState:
        self._state = state
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        with _ACTIVE_LOCK:
            if self in _ACTIVE:
                _ACTIVE.remove(self)
        return state


def run_selfbench(*, quick: bool = True, timeout_s: float = DEFAULT_TIMEOUT_S,
                  record_perf: bool = False, extra_args: tuple[str, ...] = ()
                  ) -> SelfBenchReport:
    """Run the self-benchmark to the end and return its report; raises
    :class:`SelfBenchError` (with what to do) when it fails or times out."""
    state = SelfBenchJob(quick=quick, timeout_s=timeout_s, record_perf=record_perf,
                         extra_args=extra_args).start().wait()
    if state.report is None:
        raise SelfBenchError(state.error or "The self-benchmark did not finish.")
    return state.report
