"""Profile statistics as the two tables the Performance page and the CLI show: the top
functions (from cProfile) and a bounded call tree for a flame / icicle chart (from sampled
stacks). Pure functions, no I/O.

cProfile's raw statistics (``cProfile.Profile().stats`` after ``create_stats()``, the dict of
``pstats.Stats(...).stats``) map a function ``(file, line, name)`` to ``(primitive calls, calls,
own seconds, cumulative seconds, callers)``: exact counts and times per function, but caller →
callee edges only, not call paths. A tree rebuilt from those edges is wrong wherever a function
is shared: the ``timed_fn`` wrapper around most engine entry points would hold every timed call
as siblings. The tree is therefore built from real stacks sampled during the same run
(:mod:`swing_core.perf.stack_sampler`).
"""

from __future__ import annotations

import heapq
import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from swing_core.perf.stack_sampler import StackKey

__all__ = [
    "FUNCTION_COLUMNS",
    "TREE_COLUMNS",
    "call_tree",
    "function_label",
    "function_table",
    "location_label",
]

#: A function in the raw statistics: (file name, first line, function name).
FunctionKey = tuple[str, int, str]
#: Columns of :func:`function_table`: seconds, shares of the profiled call's time (0–1).
FUNCTION_COLUMNS = ["function", "location", "calls", "primitive_calls", "own_s", "cumulative_s",
                    "own_share", "cumulative_share", "per_call_ms"]
#: Columns of :func:`call_tree`: ``id`` / ``parent`` ("" for the root) / ``value_us`` are what an
#: icicle needs; ``seconds`` is the node's wall time (with its callees), ``self_s`` the part
#: outside its children, ``share`` its part of the root's time.
TREE_COLUMNS = ["id", "parent", "function", "location", "seconds", "self_s", "share",
                "value_us"]

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding swing_core/
_LIBRARY_ROOTS = tuple(sorted({p for p in (sysconfig.get_paths().get("purelib"),
                                           sysconfig.get_paths().get("platlib"),
                                           sysconfig.get_paths().get("stdlib")) if p},
                              key=len, reverse=True))


def location_label(key: FunctionKey) -> str:
    """``swing_core/frame.py:42``, ``pandas/core/frame.py:640`` or ``built-in``: the file
    relative to the checkout, the site-packages folder or the standard library."""
    file, line, _ = key
    if file == "~" or not file:
        return "built-in"
    text = file
    for root in (_PACKAGE_ROOT, *_LIBRARY_ROOTS):
        if file.startswith(root + os.sep):
            text = file[len(root) + 1:]
            break
    return f"{text}:{line}"


def function_label(key: FunctionKey) -> str:
    """The function's (qualified) name without ``<locals>``; a built-in's description without
    its angle brackets (``<built-in method time.sleep>`` → ``built-in method time.sleep``)."""
    name = key[2]
    if name.startswith("<") and name.endswith(">") and key[0] == "~":
        return name[1:-1]
    return name.replace(".<locals>.", ".")  # timed_fn.<locals>.decorate → timed_fn.decorate


def function_table(stats: Mapping[FunctionKey, Any], *, total_s: float,
                   limit: int | None = 100,
                   qualnames: Mapping[tuple[str, int], str] | None = None) -> pd.DataFrame:
    """One row per function, by cumulative time (highest first), at most ``limit`` rows:
    :data:`FUNCTION_COLUMNS`. ``total_s``: the profiled call's time, the base of the shares.
    ``own_s`` excludes the time of the functions it called; ``cumulative_s`` includes it
    (counted once for recursive calls); ``per_call_ms``: cumulative per call. ``qualnames``:
    (file, line) → qualified name (``PatternIndex.query``), where known, for cProfile's bare
    names (``query``)."""
    qualnames = qualnames or {}
    rows = []
    for key, (primitive, calls, own, cumulative, _callers) in stats.items():
        if key[2].startswith("<method 'disable' of '_lsprof.Profiler"):
            continue  # the profiler switching itself off
        name = function_label((key[0], key[1], qualnames.get((key[0], key[1])) or key[2]))
        rows.append((name, location_label(key), int(calls), int(primitive), float(own),
                     float(cumulative)))
    frame = pd.DataFrame(rows, columns=FUNCTION_COLUMNS[:6])
    frame = frame.sort_values(["cumulative_s", "own_s"], ascending=False, kind="stable")
    if limit is not None:
        frame = frame.head(limit)
    base = total_s if total_s > 0 else float("nan")
    frame = frame.assign(own_share=frame["own_s"] / base,
                         cumulative_share=frame["cumulative_s"] / base,
                         per_call_ms=frame["cumulative_s"] * 1000.0 / frame["calls"].clip(lower=1))
    return frame.reset_index(drop=True)[FUNCTION_COLUMNS]


def call_tree(samples: Mapping[tuple[StackKey, ...], int], *, max_nodes: int = 200,
              min_share: float = 0.002) -> pd.DataFrame:
    """The call tree of sampled stacks (:class:`~swing_core.perf.stack_sampler.StackSampler`:
    stack, root first → nanoseconds), its ``max_nodes`` biggest nodes: :data:`TREE_COLUMNS`,
    grown best-first from the root (the biggest pending node next), so every node's parent is in
    the tree and no node left out is bigger than one kept. A node below ``min_share`` of the
    root's time is left out (the uncovered part of its parent's box; ``self_s`` stays the
    parent's own time). ``value_us`` is whole
    microseconds, exact: a node's children never add up to more than the node (what a plotly
    icicle with ``branchvalues="total"`` requires). Empty when there are no samples."""
    trie: dict[tuple[StackKey, ...], list[Any]] = {}  # path -> [ns, children paths]
    for stack, ns in samples.items():
        for depth in range(1, len(stack) + 1):
            path = stack[:depth]
            if path not in trie:
                trie[path] = [0, []]
                if depth > 1:
                    trie[stack[:depth - 1]][1].append(path)
            trie[path][0] += int(ns)
    roots = [path for path in trie if len(path) == 1]
    if not roots:
        return pd.DataFrame(columns=TREE_COLUMNS)
    root = max(roots, key=lambda path: trie[path][0])
    root_ns = trie[root][0]
    floor = root_ns * min_share
    rows: list[tuple[Any, ...]] = []
    pending: list[tuple[int, int, str, tuple[StackKey, ...]]] = [(-root_ns, 0, "", root)]
    order = 1
    while pending and len(rows) < max_nodes:
        _, _, parent, path = heapq.heappop(pending)
        ns, children = trie[path]
        node_id = str(len(rows))
        # whole microseconds, each floored: children's floors never add up past the parent's
        rows.append((node_id, parent, function_label(path[-1]), location_label(path[-1]),
                     ns / 1e9, (ns - sum(trie[c][0] for c in children)) / 1e9,
                     ns / root_ns, ns // 1000))
        for child in children:
            if trie[child][0] >= floor:
                heapq.heappush(pending, (-trie[child][0], order, node_id, child))
                order += 1
    return pd.DataFrame(rows, columns=TREE_COLUMNS)
