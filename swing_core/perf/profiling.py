"""Profiling on demand: one analyze, backtest or scan under cProfile, in a subprocess with a
time limit, as the original performance guide recommends ("profile before optimizing").

- :func:`profile_operation` (the Performance page's "Profile" action) starts
  ``python -m swing_core profile KIND SYMBOL… --json`` in its own process group, waits at most
  ``timeout_s`` (then kills the group) and returns the :class:`ProfileResult` it printed. A
  subprocess keeps the profiler's overhead and the run's memory out of the app, and lets a stuck
  run be stopped.
- :func:`profile_call` is what that command does inside the subprocess: run one callable under
  ``cProfile`` (exact calls, own and cumulative time per function: the top-functions table)
  with its stack sampled meanwhile (real call paths: the call tree, see
  :mod:`swing_core.perf.stack_sampler` for why not cProfile's caller graph), both shaped by
  :mod:`swing_core.perf.profile_tree`.
- Saving and listing past profiles: :mod:`swing_core.perf.profile_store`.

Standard library only (no pyinstrument dependency). cProfile is deterministic: it counts every
call, at the cost of slowing call-heavy Python code (numpy and pandas kernels are timed as single
calls, so vectorized paths are barely affected). Times are
wall-clock seconds of the profiled run, so they read high against an unprofiled run; compare
shares between functions rather than absolute figures against the benchmarks.

Offline-safe: the subprocess inherits the settings (``SWING_OFFLINE``, the database, the data
folder) and is given ``--source`` / ``--offline`` explicitly.
"""

from __future__ import annotations

import cProfile
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from swing_core.clock import utc_now
from swing_core.config import INTERVALS
from swing_core.errors import SwingError
from swing_core.perf.profile_tree import (
    FUNCTION_COLUMNS,
    TREE_COLUMNS,
    call_tree,
    function_table,
)
from swing_core.perf.stack_sampler import StackSampler

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "DEFAULT_TOP",
    "KINDS",
    "MAX_SYMBOLS",
    "ProfileError",
    "ProfileResult",
    "check_request",
    "profile_call",
    "profile_command",
    "profile_operation",
]

#: The operations that can be profiled.
KINDS: tuple[str, ...] = ("analyze", "backtest", "scan")
#: Seconds a profiled run may take before it is stopped.
DEFAULT_TIMEOUT_S = 180.0
#: Rows of the top-functions table shown by default.
DEFAULT_TOP = 25
#: Symbols a backtest or scan may profile at once (a profile is a look at one run, not a batch).
MAX_SYMBOLS = 20
#: Rows of the top-functions table kept with a profile, and nodes of its call tree.
KEEP_FUNCTIONS = 150
MAX_TREE_NODES = 200
#: Seconds between two stack samples of the call tree.
SAMPLE_INTERVAL_S = 0.0005


class ProfileError(SwingError):
    """A profile could not be made; the message says why and what to do."""


@dataclass(frozen=True)
class ProfileResult:
    """One profiled run: ``kind`` ("analyze" / "backtest" / "scan"), its ``arguments``
    (symbols, interval, source, …), ``total_s`` (wall seconds of the run under the profiler),
    ``functions`` (:data:`~swing_core.perf.profile_tree.FUNCTION_COLUMNS`, by cumulative time),
    ``tree`` (:data:`~swing_core.perf.profile_tree.TREE_COLUMNS`, for an icicle chart),
    ``created_at`` (UTC), ``notes`` (e.g. demo data) and ``profile_id`` once saved."""

    kind: str
    arguments: dict[str, Any]
    total_s: float
    functions: pd.DataFrame
    tree: pd.DataFrame
    created_at: datetime = field(default_factory=utc_now)
    notes: tuple[str, ...] = ()
    profile_id: int | None = None

    @property
    def title(self) -> str:
        """``analyze AAPL 1d (demo)``: what was profiled."""
        args = self.arguments
        source = args.get("source") or "auto"
        return (f"{self.kind} {' '.join(args.get('symbols') or [])} {args.get('interval', '')}"
                + ("" if source == "auto" else f" ({source})")).strip()

    def top(self, n: int = DEFAULT_TOP) -> pd.DataFrame:
        """The ``n`` functions with the most cumulative time."""
        return self.functions.head(n).reset_index(drop=True)

    def to_payload(self) -> dict[str, Any]:
        """A JSON-ready document (what ``profile … --json`` prints); :meth:`from_payload`
        reads it back."""
        return {"kind": self.kind, "arguments": self.arguments, "total_s": self.total_s,
                "created_at": self.created_at.isoformat(), "notes": list(self.notes),
                "profile_id": self.profile_id,
                "functions": self.functions.to_dict(orient="records"),
                "tree": self.tree.to_dict(orient="records")}

    @classmethod
    def from_payload(cls, doc: dict[str, Any]) -> ProfileResult:
        try:
            created = pd.Timestamp(doc["created_at"])
            return cls(kind=str(doc["kind"]), arguments=dict(doc["arguments"]),
                       total_s=float(doc["total_s"]),
                       functions=pd.DataFrame(doc["functions"], columns=FUNCTION_COLUMNS),
                       tree=pd.DataFrame(doc["tree"], columns=TREE_COLUMNS),
                       created_at=(created.tz_localize("UTC") if created.tzinfo is None
                                   else created.tz_convert("UTC")).to_pydatetime(),
                       notes=tuple(doc.get("notes") or ()),
                       profile_id=doc.get("profile_id"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileError(f"This is not a SwingDesk profile ({type(exc).__name__}: "
                               f"{exc}).") from None


# --------------------------------------------------------------------------- in this process


def profile_call(fn: Callable[[], Any], *, kind: str, arguments: dict[str, Any],
                 keep_functions: int = KEEP_FUNCTIONS, max_nodes: int = MAX_TREE_NODES,
                 interval_s: float = SAMPLE_INTERVAL_S) -> tuple[Any, ProfileResult]:
    """Run ``fn()`` (a Python function) once in this thread under cProfile, its stack sampled
    every ``interval_s`` meanwhile; returns what it returned and the :class:`ProfileResult`:
    the top functions from cProfile, the call tree (rooted at ``fn``) from the sampled stacks.
    An exception of ``fn`` propagates."""
    code = getattr(fn, "__code__", None)
    if code is None:  # a builtin or a partial: no frame of its own to root the tree at
        raise ProfileError("profile_call needs a Python function to profile.")
    profiler = cProfile.Profile()
    with StackSampler(code, interval_s=interval_s) as sampler:
        started = time.perf_counter()
        value = profiler.runcall(fn)
        total_s = time.perf_counter() - started
    profiler.create_stats()
    stats = profiler.stats  # type: ignore[attr-defined]
    qualnames = {(k[0], k[1]): k[2] for stack in sampler.samples for k in stack}
    notes = () if sampler.count >= 50 else (
        f"Only {sampler.count} stack samples (a {total_s * 1000:,.0f} ms run): the call tree "
        "is coarse; the table's times and calls are exact. Profile a longer run (more "
        "symbols, a finer interval) for a finer tree.",)
    result = ProfileResult(
        kind=kind, arguments=arguments, total_s=total_s, notes=notes,
        functions=function_table(stats, total_s=total_s, limit=keep_functions,
                                 qualnames=qualnames),
        tree=call_tree(sampler.samples, max_nodes=max_nodes))
    return value, result


# --------------------------------------------------------------------------- in a subprocess


def check_request(kind: str, symbols: Sequence[str], interval: str) -> list[str]:
    """The validated, upper-cased symbols of a profile request; :class:`ProfileError` (or the
    market's error for a malformed ticker) with what to fix otherwise."""
    from swing_core.market import normalize_symbol

    if kind not in KINDS:
        raise ProfileError(f"Cannot profile {kind!r}: choose one of {', '.join(KINDS)}.")
    if interval not in INTERVALS:
        raise ProfileError(f"Unknown interval {interval!r}: choose one of "
                           f"{', '.join(INTERVALS)}.")
    names = list(dict.fromkeys(normalize_symbol(s) for s in symbols if str(s).strip()))
    if not names:
        raise ProfileError("No symbol given: name one, e.g. AAPL.")
    if kind == "analyze" and len(names) != 1:
        raise ProfileError(f"analyze profiles one symbol ({len(names)} given): use scan for "
                           "several.")
    if len(names) > MAX_SYMBOLS:
        raise ProfileError(f"At most {MAX_SYMBOLS} symbols per profile ({len(names)} given).")
    return names


def profile_command(kind: str, symbols: Sequence[str], interval: str, *, source: str = "auto",
                    offline: bool = False, priors: bool = True, warm: bool = False,
                    lookback_days: int | None = None, python: str | None = None) -> list[str]:
    """The command line of a profiled run: ``python -m swing_core profile KIND SYMBOL… --json``
    with the options given."""
    command = [python or sys.executable, "-m", "swing_core", "profile", kind, *symbols,
               "--interval", interval, "--source", source, "--json"]
    if offline:
        command.append("--offline")
    if not priors:
        command.append("--no-priors")
    if warm:
        command.append("--warm")
    if lookback_days is not None:
        command += ["--lookback-days", str(int(lookback_days))]
    return command


_RUNNING = threading.Lock()  # one profiled run at a time per process: the CPUs are shared


def profile_operation(kind: str, symbols: Sequence[str] | str, interval: str = "1d", *,
                      source: str = "auto", offline: bool = False, priors: bool = True,
                      warm: bool = False, lookback_days: int | None = None,
                      timeout_s: float = DEFAULT_TIMEOUT_S) -> ProfileResult:
    """Profile one ``kind`` run of ``symbols`` at ``interval`` in a subprocess (cProfile) and
    return its :class:`ProfileResult` (not saved: see
    :func:`swing_core.perf.profile_store.save_profile`).

    ``warm``: run the operation once unprofiled first and profile the second run (what a running
    app pays, imports and caches warm); otherwise the first run of a fresh process is profiled.
    Raises :class:`ProfileError` on bad input, when the run fails (with the run's own message),
    when another profile is running in this process, or past ``timeout_s`` (the run's process
    group is killed)."""
    names = check_request(kind, [symbols] if isinstance(symbols, str) else symbols, interval)
    command = profile_command(kind, names, interval, source=source, offline=offline,
                              priors=priors, warm=warm, lookback_days=lookback_days)
    if not _RUNNING.acquire(blocking=False):
        raise ProfileError("A profile is already running in this app; wait for it to finish "
                           "(the CPUs are shared).")
    try:
        code, stdout, stderr = _run(command, timeout_s)
    finally:
        _RUNNING.release()
    shown = " ".join(["python -m swing_core", *(a for a in command[3:] if a != "--json")])
    return _parse(code, stdout, stderr, shown)


def _run(command: list[str], timeout_s: float) -> tuple[int, str, str]:
    checkout = str(Path(__file__).resolve().parents[2])  # the folder holding swing_core/
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ, "PYTHONPATH": checkout + (os.pathsep + path if path else ""),
           "PYTHONUNBUFFERED": "1"}
    # Its own session (process group): a kill reaches anything the run started.
    proc = subprocess.Popen(command, cwd=checkout, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=os.name == "posix")
    try:
        stdout, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        if os.name == "posix":
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the group this run leads, only
            except ProcessLookupError:
                pass
        else:
            proc.kill()
        proc.communicate()
        raise ProfileError(f"The profiled run took longer than {timeout_s:.0f} s and was "
                           "stopped. Profile fewer symbols or a shorter interval, or try again "
                           "when the machine is less busy.") from None
    return proc.returncode, stdout, stderr


def _parse(code: int, stdout: str, stderr: str, shown: str) -> ProfileResult:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    if code != 0:
        errors = [ln[len("error: "):] for ln in lines if ln.startswith("error: ")]
        if code == 2 and errors:  # bad input, data or database: the run's own message
            raise ProfileError(errors[-1])
        tail = (errors or lines or ["no output"])[-1][:300]
        raise ProfileError(f"The profiled run failed (exit code {code}): {tail}. Run `{shown}` "
                           "in a terminal to see the whole output.")
    last = next((ln for ln in reversed(stdout.splitlines()) if ln.strip()), "")
    try:
        return ProfileResult.from_payload(json.loads(last))
    except (json.JSONDecodeError, AttributeError):
        raise ProfileError(f"The profiled run printed no profile. Run `{shown}` in a terminal "
                           "to see its output.") from None
