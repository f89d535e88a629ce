"""Data for the Performance page: the persisted performance history of every process (the app,
CLI runs, workers, self-benchmarks) for one window, shaped by
:mod:`swing_core.views.perf_frames` (whose names are re-exported here), and this process's live
registry. No Streamlit and no plotting here (figures: :mod:`swing_core.charts.perf`). Every time
is a timezone-aware UTC ``ts``; figures show them in exchange time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
import sqlalchemy as sa

from swing_core import perf
from swing_core.clock import utc_now
from swing_core.errors import DatabaseError
from swing_core.llm.budget import spend_this_month
from swing_core.models import LLMCall
from swing_core.timefmt import exchange_times
from swing_core.views.perf_frames import (
    LATENCY_COLUMNS,
    LLM_DAILY_COLUMNS,
    NOT_SENT_OUTCOMES,
    _filter_role,
    bucket_for,
    cache_series,
    cache_table,
    latency_series,
    latency_table,
    llm_daily,
    llm_totals,
    memory_series,
    plan_text,
    process_role,
    slow_query_groups,
    statement_id,
    statement_preview,
    to_exchange_time,
)

__all__ = [
    "LATENCY_COLUMNS",
    "LLM_DAILY_COLUMNS",
    "NOT_SENT_OUTCOMES",
    "WINDOWS",
    "LiveStatus",
    "PerfOverview",
    "bucket_for",
    "cache_series",
    "cache_table",
    "latency_series",
    "latency_table",
    "live_status",
    "llm_daily",
    "llm_totals",
    "load_llm_calls",
    "load_overview",
    "memory_series",
    "plan_text",
    "process_role",
    "profile_functions",
    "profile_history",
    "slow_query_groups",
    "statement_id",
    "statement_preview",
    "to_exchange_time",
]

#: Time windows offered by the page, newest history first.
WINDOWS: dict[str, timedelta] = {
    "Last hour": timedelta(hours=1),
    "Last 6 hours": timedelta(hours=6),
    "Last 24 hours": timedelta(hours=24),
    "Last 7 days": timedelta(days=7),
}


# --------------------------------------------------------------------------- LLM calls


def load_llm_calls(engine: sa.Engine, since: datetime | timedelta | None = None) -> pd.DataFrame:
    """Rows of ``llm_calls`` (one per advisor call, cache hit or refusal to call) since a UTC
    time or for the last ``timedelta``; oldest first, ``ts`` as UTC."""
    table = LLMCall.__table__
    query = sa.select(table.c.ts, table.c.model, table.c.purpose, table.c.symbol,
                      table.c.tokens_in, table.c.tokens_out, table.c.cost_usd,
                      table.c.latency_ms, table.c.outcome)
    if isinstance(since, timedelta):
        since = utc_now() - since
    if since is not None:
        query = query.where(table.c.ts >= since)
    query = query.order_by(table.c.ts, table.c.id)
    with engine.connect() as conn:
        result = conn.execute(query)
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame


# --------------------------------------------------------------------------- the overview


@dataclass(frozen=True)
class PerfOverview:
    """Everything the Performance page draws for one window, all processes or one role.

    ``since`` / ``until``: the window (UTC); ``freq``: chart bucket; frames as built by the
    functions of this module; ``roles``: process roles present in the window (for a filter);
    ``month_spend_usd``: LLM spend this UTC calendar month (all of it, not only the window)."""

    since: datetime
    until: datetime
    freq: str
    role: str | None
    latency: pd.DataFrame
    latency_table: pd.DataFrame
    memory: pd.DataFrame
    slow_groups: pd.DataFrame
    caches: pd.DataFrame
    cache_series: pd.DataFrame
    llm_daily: pd.DataFrame
    llm_totals: dict[str, float]
    month_spend_usd: float
    roles: tuple[str, ...] = ()
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """True when the window holds no performance rows at all (timings, memory, slow
        queries, cache counters; LLM calls not counted)."""
        return not any(self.rows.get(k, 0) for k in ("timings", "memory", "slow_queries",
                                                     "cache_counters"))


def load_overview(engine: sa.Engine, *, window: timedelta, role: str | None = None,
                  now: datetime | None = None, slow_limit: int = 5000) -> PerfOverview:
    """Read the persisted history of the last ``window`` (every process, or those whose role is
    ``role``: "app", "cli", "worker", "selfbench", …) and shape it for the page. Raises
    :class:`~swing_core.errors.DatabaseError` when the database cannot be read."""
    until = now or utc_now()
    since = until - window
    freq = bucket_for(window)
    try:
        timings = perf.load_timings(engine, since)
        memory = perf.load_memory(engine, since)
        slow = perf.load_slow_queries(engine, since, limit=slow_limit)
        counters = perf.load_cache_counters(engine, since)
        calls = load_llm_calls(engine, since)
        month_spend = _month_spend(engine, until)
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"Could not read the performance history: {exc}. Check that the "
                            "database is reachable and migrated (python -m swing_core db "
                            "init).") from exc
    frames = {"timings": timings, "memory": memory, "slow_queries": slow,
              "cache_counters": counters}
    frames = {k: _until(f, until) for k, f in frames.items()}
    calls = _until(calls, until)
    roles = sorted({process_role(p) for f in frames.values() if not f.empty
                    for p in f["process"].unique()})
    timings, memory, slow, counters = (_filter_role(f, role) for f in frames.values())
    daily = llm_daily(calls)
    return PerfOverview(
        since=since, until=until, freq=freq, role=role,
        latency=latency_series(timings, freq=freq), latency_table=latency_table(timings),
        memory=memory_series(memory, freq=freq), slow_groups=slow_query_groups(slow),
        caches=cache_table(counters, calls), cache_series=cache_series(counters, freq=freq),
        llm_daily=daily, llm_totals=llm_totals(daily), month_spend_usd=month_spend,
        roles=tuple(roles),
        rows={"timings": len(timings), "memory": len(memory), "slow_queries": len(slow),
              "cache_counters": len(counters), "llm_calls": len(calls)},
    )


def _until(frame: pd.DataFrame, until: datetime) -> pd.DataFrame:
    """Rows at or before ``until`` (the load API bounds windows from below only)."""
    if frame.empty:
        return frame
    return frame[frame["ts"] <= pd.Timestamp(until)].reset_index(drop=True)


def _month_spend(engine: sa.Engine, now: datetime) -> float:
    return float(spend_this_month(engine, now=now))


# --------------------------------------------------------------------------- this process, live


@dataclass(frozen=True)
class LiveStatus:
    """This process right now, from memory (nothing persisted yet): per-operation statistics of
    the last ``window_s`` seconds (columns of :func:`swing_core.perf.snapshot`), cache counters
    since start, the slow queries captured, one memory sample, and the recorder's state."""

    at: datetime
    window_s: float
    operations: pd.DataFrame
    caches: pd.DataFrame
    slow_queries: int
    rss_mb: float
    peak_rss_mb: float
    cpu_pct: float
    enabled: bool


def live_status(*, window_s: float = 300.0) -> LiveStatus:
    """This process's live figures (one memory reading, not kept; no database access)."""
    sample = perf.get_sampler().peek()
    return LiveStatus(at=sample.ts, window_s=window_s, operations=perf.snapshot(window_s),
                      caches=perf.cache_stats(), slow_queries=len(perf.slow_queries()),
                      rss_mb=sample.rss_mb, peak_rss_mb=sample.peak_rss_mb,
                      cpu_pct=sample.cpu_pct, enabled=perf.is_enabled())



# --------------------------------------------------------------------------- saved profiles


def profile_history(engine: sa.Engine, *, limit: int = 50) -> pd.DataFrame:
    """Saved profiles, newest first (:data:`swing_core.perf.profile_store.LIST_COLUMNS`) with a
    ``label`` for a picker: ``Dec 12, 14:03 · analyze AAPL 1d (demo) · 0.84 s`` (time in New
    York)."""
    from swing_core.perf.profile_store import list_profiles

    frame = list_profiles(engine, limit=limit)
    when = (list(exchange_times(frame["created_at"]).strftime("%b %d, %H:%M")) if len(frame)
            else [])
    what = [" ".join(str(part) for part in parts if part)
            for parts in zip(frame["kind"], frame["symbols"], frame["interval"], strict=True)]
    source = ["" if s == "auto" else f" ({s})" for s in frame["source"]]
    return frame.assign(label=[f"{w} · {x}{src} · {t:,.2f} s" for w, x, src, t
                               in zip(when, what, source, frame["total_s"], strict=True)])


def profile_functions(functions: pd.DataFrame, top: int) -> pd.DataFrame:
    """The ``top`` rows of a profile's functions table, shares as percent (``own_pct``,
    ``cumulative_pct``) for display."""
    table = functions.head(top)
    return pd.DataFrame({
        "function": table["function"], "location": table["location"], "calls": table["calls"],
        "own_s": table["own_s"], "cumulative_s": table["cumulative_s"],
        "cumulative_pct": table["cumulative_share"] * 100, "own_pct": table["own_share"] * 100,
        "per_call_ms": table["per_call_ms"]})
