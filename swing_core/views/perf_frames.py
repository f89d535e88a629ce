"""The Performance page's frames: pure aggregation of the persisted performance rows (the
``load_*`` frames of :mod:`swing_core.perf`) into chart series and tables; no I/O here
(loading: :mod:`swing_core.views.perf`; figures: :mod:`swing_core.charts.perf`). Every time is
a timezone-aware UTC ``ts``; figures and tables show them in exchange time.

Time alignment. A persisted timing or cache row aggregates the flush interval that *ends* at its
``ts`` (the app flushes every 15 s, CLI runs at exit); a memory row is one sample at its ``ts``.
Buckets are left-closed and labelled by their start, so a bucket labelled 10:05 holds flushes in
[10:05, 10:10).

Percentiles across flushes. One row's p50 / p95 are exact for its flush interval (linear
interpolation over that interval's samples); a bucket or window holding several rows reports the
call-weighted mean of their p50s and p95s: an approximation (percentiles do not add), exact when
one row is in the bucket, and always between the rows' smallest and largest value. The mean is
exact (total time / calls) and so is the maximum.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pandas as pd

from swing_core.timefmt import exchange_times

__all__ = [
    "LATENCY_COLUMNS",
    "LLM_DAILY_COLUMNS",
    "NOT_SENT_OUTCOMES",
    "bucket_for",
    "cache_series",
    "cache_table",
    "latency_series",
    "latency_table",
    "llm_daily",
    "llm_totals",
    "memory_series",
    "plan_text",
    "process_role",
    "slow_query_groups",
    "statement_id",
    "statement_preview",
    "to_exchange_time",
]

LATENCY_COLUMNS = ["ts", "operation", "count", "mean_ms", "p50_ms", "p95_ms", "max_ms"]
LATENCY_TABLE_COLUMNS = ["operation", "calls", "mean_ms", "p50_ms", "p95_ms", "max_ms",
                         "total_s", "processes", "last_seen"]
MEMORY_COLUMNS = ["ts", "process", "rss_mb", "peak_rss_mb", "cpu_pct"]
SLOW_GROUP_COLUMNS = ["id", "preview", "count", "max_ms", "median_ms", "total_ms", "last_seen",
                      "processes", "dialect", "statement"]
CACHE_TABLE_COLUMNS = ["cache", "hits", "misses", "lookups", "hit_rate", "source"]
CACHE_SERIES_COLUMNS = ["ts", "cache", "hits", "misses", "hit_rate"]
LLM_DAILY_COLUMNS = ["day", "rows", "api_calls", "cache_hits", "failures", "skipped",
                     "tokens_in", "tokens_out", "cost_usd", "mean_latency_ms"]

#: ``llm_calls`` outcomes of rows where no request was sent (answered from the cache, stopped by
#: the budget or the circuit breaker); every other outcome is a request ("ok" or a failure).
NOT_SENT_OUTCOMES = frozenset({"cache_hit", "budget", "circuit_open", "db_error", "skipped"})

_PREVIEW_CHARS = 110
_MAX_MEMORY_LINES = 8


# --------------------------------------------------------------------------- small helpers


def bucket_for(window: timedelta) -> str:
    """The pandas frequency of chart buckets for a window: about 60–170 points per line."""
    if window <= timedelta(hours=1):
        return "1min"
    if window <= timedelta(hours=6):
        return "5min"
    if window <= timedelta(hours=24):
        return "15min"
    return "1h"


def process_role(process: str | None) -> str:
    """The role part of a process name: ``"app:1234"`` → ``"app"`` (``""`` for None)."""
    return str(process or "").split(":", 1)[0]


def _filter_role(frame: pd.DataFrame, role: str | None) -> pd.DataFrame:
    if role is None or frame.empty or "process" not in frame:
        return frame
    return frame[frame["process"].map(process_role) == role].reset_index(drop=True)


def statement_id(statement: str) -> str:
    """A short stable key of a statement's text (12 hex digits of its SHA-1)."""
    return hashlib.sha1(statement.encode("utf-8", "replace")).hexdigest()[:12]


def statement_preview(statement: str, *, limit: int = _PREVIEW_CHARS) -> str:
    """The statement on one line, whitespace collapsed, cut at ``limit`` characters (…)."""
    flat = re.sub(r"\s+", " ", statement).strip()
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def to_exchange_time(frame: pd.DataFrame, columns: tuple[str, ...] = ("ts",)) -> pd.DataFrame:
    """A copy of ``frame`` whose UTC time ``columns`` are naive New York wall-clock times (for
    tables; figures convert on their own)."""
    out = frame.copy()
    for column in columns:
        if column in out and len(out):
            out[column] = exchange_times(out[column]).to_numpy()
    return out


def plan_text(plan: pd.DataFrame) -> str:
    """A query plan from :func:`swing_core.perf.explain` as indented text: SQLite's
    ``EXPLAIN QUERY PLAN`` rows (id, parent, detail) as a tree; PostgreSQL's "QUERY PLAN" lines
    as they are."""
    if plan.empty:
        return "(empty plan)"
    if "QUERY PLAN" in plan.columns:
        return "\n".join(str(line) for line in plan["QUERY PLAN"])
    if not {"id", "parent", "detail"} <= set(plan.columns):
        return plan.to_string(index=False)
    depth: dict[int, int] = {0: -1}
    lines = []
    for row in plan.itertuples(index=False):
        level = depth.get(int(row.parent), -1) + 1
        depth[int(row.id)] = level
        lines.append("   " * level + "└─ " + str(row.detail))
    return "\n".join(lines)


def _weighted(values: pd.Series, weights: pd.Series) -> float:
    mask = values.notna() & weights.notna() & (weights > 0)
    if not mask.any():
        return float("nan")
    return float(np.average(values[mask].astype(float), weights=weights[mask].astype(float)))


def _aggregate_timings(group: pd.DataFrame) -> pd.Series:
    counts = group["count"].astype(float)
    calls = float(counts.sum())
    total_ms = float((group["mean_ms"].astype(float) * counts).sum())
    return pd.Series({
        "count": int(calls),
        "mean_ms": total_ms / calls if calls else float("nan"),
        "p50_ms": _weighted(group["p50_ms"], counts),
        "p95_ms": _weighted(group["p95_ms"], counts),
        "max_ms": float(group["max_ms"].max()),
        "total_ms": total_ms,
    })


# --------------------------------------------------------------------------- latency


def latency_series(timings: pd.DataFrame, *, freq: str = "5min") -> pd.DataFrame:
    """Per bucket (UTC, labelled by its start) and operation: calls, exact mean, call-weighted
    p50 / p95 (ms) and maximum, over every process in ``timings`` (rows from
    :func:`swing_core.perf.load_timings`). Columns :data:`LATENCY_COLUMNS`, oldest first."""
    if timings.empty:
        return pd.DataFrame(columns=LATENCY_COLUMNS)
    frame = timings.assign(ts=pd.to_datetime(timings["ts"], utc=True).dt.floor(freq))
    out = (frame.groupby(["ts", "operation"], sort=True)[["count", "mean_ms", "p50_ms", "p95_ms",
                                                           "max_ms"]]
           .apply(_aggregate_timings).reset_index())
    out["count"] = out["count"].astype("int64")
    return out[LATENCY_COLUMNS]


def latency_table(timings: pd.DataFrame) -> pd.DataFrame:
    """One row per operation over all of ``timings``: calls, exact mean, call-weighted p50 / p95,
    maximum (ms), total time (s), distinct processes and the last flush time (UTC); slowest p95
    first. Columns ``LATENCY_TABLE_COLUMNS``."""
    if timings.empty:
        return pd.DataFrame(columns=LATENCY_TABLE_COLUMNS)
    stats = (timings.groupby("operation")[["count", "mean_ms", "p50_ms", "p95_ms", "max_ms"]]
             .apply(_aggregate_timings))
    extra = timings.groupby("operation").agg(processes=("process", "nunique"),
                                              last_seen=("ts", "max"))
    table = stats.join(extra).reset_index().rename(columns={"count": "calls"})
    table["calls"] = table["calls"].astype("int64")
    table["total_s"] = table.pop("total_ms") / 1000.0
    table = table.sort_values("p95_ms", ascending=False, na_position="last")
    return table[LATENCY_TABLE_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- memory


def memory_series(memory: pd.DataFrame, *, freq: str = "1min",
                  max_processes: int = _MAX_MEMORY_LINES) -> pd.DataFrame:
    """Per bucket and process: the largest RSS sampled (MiB), the peak RSS so far (MiB) and the
    mean CPU (percent of one core). Only the ``max_processes`` processes seen most recently are
    kept (short CLI runs would otherwise crowd the chart). Columns ts, process, rss_mb,
    peak_rss_mb, cpu_pct, oldest first."""
    if memory.empty:
        return pd.DataFrame(columns=MEMORY_COLUMNS)
    frame = memory.assign(ts=pd.to_datetime(memory["ts"], utc=True))
    recent = frame.groupby("process")["ts"].max().sort_values(ascending=False)
    frame = frame[frame["process"].isin(recent.index[:max_processes])]
    frame = frame.assign(ts=frame["ts"].dt.floor(freq))
    out = (frame.groupby(["ts", "process"], sort=True)
           .agg(rss_mb=("rss_mb", "max"), peak_rss_mb=("peak_rss_mb", "max"),
                cpu_pct=("cpu_pct", "mean"))
           .reset_index())
    return out[MEMORY_COLUMNS]


# --------------------------------------------------------------------------- slow queries


def slow_query_groups(slow: pd.DataFrame) -> pd.DataFrame:
    """Slow queries grouped by statement text: how often, the slowest, median and total
    duration (ms), the last time (UTC), distinct processes, the dialect, a one-line preview and
    a stable ``id``; slowest first. Columns ``SLOW_GROUP_COLUMNS``."""
    if slow.empty:
        return pd.DataFrame(columns=SLOW_GROUP_COLUMNS)
    grouped = slow.groupby("statement", sort=False).agg(
        count=("duration_ms", "size"), max_ms=("duration_ms", "max"),
        median_ms=("duration_ms", "median"), total_ms=("duration_ms", "sum"),
        last_seen=("ts", "max"), processes=("process", "nunique"),
        dialect=("dialect", "first"))
    grouped = grouped.reset_index()
    grouped["id"] = grouped["statement"].map(statement_id)
    grouped["preview"] = grouped["statement"].map(statement_preview)
    grouped["count"] = grouped["count"].astype("int64")
    grouped = grouped.sort_values(["max_ms", "last_seen"], ascending=[False, False])
    return grouped[SLOW_GROUP_COLUMNS].reset_index(drop=True)


# --------------------------------------------------------------------------- caches


def _rate(hits: pd.Series | float, misses: pd.Series | float) -> Any:
    total = hits + misses
    if isinstance(total, pd.Series):
        return (hits / total.where(total > 0)).astype("float64")
    return hits / total if total > 0 else float("nan")


def cache_table(counters: pd.DataFrame, llm_calls: pd.DataFrame | None = None) -> pd.DataFrame:
    """Hits, misses, lookups and hit rate (0..1, NaN without lookups) per cache over the
    persisted counter rows. The LLM answer cache comes from ``llm_calls`` (a ``cache_hit`` row
    is a hit, any other row a miss) unless the counters already hold a cache named "llm".
    Columns ``CACHE_TABLE_COLUMNS``; ``source`` says where each figure comes from."""
    rows: list[dict[str, Any]] = []
    if not counters.empty:
        sums = counters.groupby("cache")[["hits", "misses"]].sum()
        for cache, row in sums.iterrows():
            rows.append({"cache": cache, "hits": int(row["hits"]), "misses": int(row["misses"]),
                         "source": "perf counters"})
    if llm_calls is not None and not llm_calls.empty and not any(r["cache"] == "llm"
                                                                  for r in rows):
        hits = int((llm_calls["outcome"] == "cache_hit").sum())
        rows.append({"cache": "llm", "hits": hits, "misses": int(len(llm_calls) - hits),
                     "source": "llm_calls table"})
    table = pd.DataFrame(rows, columns=["cache", "hits", "misses", "source"])
    table["hits"] = table["hits"].astype("int64")
    table["misses"] = table["misses"].astype("int64")
    table["lookups"] = table["hits"] + table["misses"]
    table["hit_rate"] = _rate(table["hits"], table["misses"])
    return table[CACHE_TABLE_COLUMNS].sort_values("cache").reset_index(drop=True)


def cache_series(counters: pd.DataFrame, *, freq: str = "5min") -> pd.DataFrame:
    """Per bucket and cache: hits, misses and hit rate (NaN when the bucket had no lookups).
    Columns ``CACHE_SERIES_COLUMNS``, oldest first."""
    if counters.empty:
        return pd.DataFrame(columns=CACHE_SERIES_COLUMNS)
    frame = counters.assign(ts=pd.to_datetime(counters["ts"], utc=True).dt.floor(freq))
    out = frame.groupby(["ts", "cache"], sort=True)[["hits", "misses"]].sum().reset_index()
    out["hit_rate"] = _rate(out["hits"], out["misses"])
    return out[CACHE_SERIES_COLUMNS]


def llm_daily(calls: pd.DataFrame) -> pd.DataFrame:
    """Per UTC calendar day (the budget's calendar is UTC too): rows, requests sent
    (``api_calls``), cache hits, failed requests, calls not made (budget / circuit breaker),
    tokens in / out, cost (USD) and the mean latency of sent requests (ms). Columns
    :data:`LLM_DAILY_COLUMNS`, oldest day first."""
    if calls.empty:
        return pd.DataFrame(columns=LLM_DAILY_COLUMNS)
    frame = calls.assign(day=pd.to_datetime(calls["ts"], utc=True).dt.tz_convert(UTC)
                         .dt.floor("D"))
    sent = ~frame["outcome"].isin(NOT_SENT_OUTCOMES)
    frame = frame.assign(
        api_calls=sent.astype(int),
        cache_hits=(frame["outcome"] == "cache_hit").astype(int),
        failures=(sent & (frame["outcome"] != "ok")).astype(int),
        skipped=frame["outcome"].isin({"budget", "circuit_open"}).astype(int),
        sent_latency=frame["latency_ms"].where(sent),
    )
    out = frame.groupby("day", sort=True).agg(
        rows=("outcome", "size"), api_calls=("api_calls", "sum"),
        cache_hits=("cache_hits", "sum"), failures=("failures", "sum"),
        skipped=("skipped", "sum"), tokens_in=("tokens_in", "sum"),
        tokens_out=("tokens_out", "sum"), cost_usd=("cost_usd", "sum"),
        mean_latency_ms=("sent_latency", "mean")).reset_index()
    for column in ("rows", "api_calls", "cache_hits", "failures", "skipped", "tokens_in",
                   "tokens_out"):
        out[column] = out[column].astype("int64")
    return out[LLM_DAILY_COLUMNS]


def llm_totals(daily: pd.DataFrame) -> dict[str, float]:
    """Sums over the window of :func:`llm_daily`'s columns (cost in USD)."""
    keys = ["rows", "api_calls", "cache_hits", "failures", "skipped", "tokens_in", "tokens_out",
            "cost_usd"]
    return {key: float(daily[key].sum()) if not daily.empty else 0.0 for key in keys}
