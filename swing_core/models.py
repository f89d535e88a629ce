"""SQLModel tables: bar cache, signals (journal), setup vectors, backtests, LLM calls, perf history.

Every timestamp column is :class:`UTCDateTime`: written and read back as timezone-aware UTC on
both SQLite (which has no time zones, so values are stored as naive UTC text) and PostgreSQL
(``timestamptz``). Setup vectors are stored as 16 float32 values in raw bytes (64 bytes,
little-endian), never as JSON. The schema itself is versioned by the Alembic revisions in
``swing_core/migrations/versions``; a change here needs a new revision there.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from swing_core.clock import utc_now

#: Constraint names that Alembic can reproduce on every dialect (SQLite batch migrations need
#: named constraints to alter them later).
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: Floats per setup vector (see STRATEGY.md, "Setup vector").
VECTOR_DIM = 16
#: Bytes per stored setup vector (16 little-endian float32 values).
VECTOR_BYTES = VECTOR_DIM * 4

_KNOWN_OUTCOME = sa.text("realized_r IS NOT NULL")
#: The journal's rows (``signals.run_id``): one per (symbol, interval, bar), even from two writers.
JOURNAL_RUN_ID = "live"
_JOURNAL_ROW = sa.text(f"run_id = '{JOURNAL_RUN_ID}'")


class UTCDateTime(sa.types.TypeDecorator):
    """``DateTime(timezone=True)`` that always binds and returns timezone-aware UTC values.

    Naive datetimes are taken to be UTC already. On SQLite the value is stored as naive UTC
    text (so text order is time order); on PostgreSQL as ``timestamptz``.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):  # e.g. an ISO string or numpy datetime64
            import pandas as pd

            value = pd.Timestamp(value).to_pydatetime()
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _ts(*, nullable: bool = True, index: bool = False) -> Any:
    """A UTC timestamp field (Field() builds a fresh Column per model)."""
    return Field(default=None, sa_type=UTCDateTime(), nullable=nullable, index=index)


def _created_at() -> Any:
    return Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False)


def _text() -> Any:
    return Field(default=None, sa_type=sa.Text(), nullable=True)


# --------------------------------------------------------------------------- market data


class Bar(SQLModel, table=True):
    """One cached OHLCV bar, labelled by its UTC open time (known at ``ts + interval``)."""

    __tablename__ = "bars"

    symbol: str = Field(primary_key=True)
    interval: str = Field(primary_key=True)
    ts: datetime = Field(sa_type=UTCDateTime(), primary_key=True)
    open: float
    high: float
    low: float
    close: float
    volume: float = 0.0
    source: str = "yahoo"
    fetched_at: datetime = _created_at()


# --------------------------------------------------------------------------- setup vectors


class SetupVector(SQLModel, table=True):
    """A 16-d float32 setup vector of the bar ``ts`` (open time) and, once known, its outcome.

    ``exit_ts`` is when the outcome became known (close time of the exit bar): a point-in-time
    query at as-of time ``t`` may only use rows with ``exit_ts <= t``.
    """

    __tablename__ = "setup_vectors"
    __table_args__ = (
        sa.UniqueConstraint("symbol", "interval", "ts", "version"),
        sa.Index("ix_setup_vectors_symbol_ts", "symbol", "ts"),
        sa.Index(
            "ix_setup_vectors_known",
            "interval",
            "version",
            "exit_ts",
            sqlite_where=_KNOWN_OUTCOME,
            postgresql_where=_KNOWN_OUTCOME,
        ),
        # Room on each page, so a re-upserted vector is rewritten in place (a heap-only tuple,
        # no index entries): revision 0002.
        {"postgresql_with": {"fillfactor": 70}},
    )

    id: int | None = Field(default=None, primary_key=True)
    symbol: str
    interval: str
    ts: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    version: str = "v1"
    setup: str = "none"
    side: str = "none"
    trend: str = "sideways"
    vol_regime: str = "M"
    vector: bytes = Field(sa_type=sa.LargeBinary(), nullable=False)
    realized_r: float | None = None
    exit_reason: str | None = None
    exit_ts: datetime | None = _ts()
    hold_bars: int | None = None
    created_at: datetime = _created_at()


# --------------------------------------------------------------------------- signals (journal)


class SignalRecord(SQLModel, table=True):
    """One trading signal: the plan at bar ``asof`` (open time of the signal bar), its context
    and priors, and (once evaluated) its real outcome. ``run_id`` is ``"live"`` for signals
    produced by the live scanner; backtest runs use their own id."""

    __tablename__ = "signals"
    __table_args__ = (
        sa.Index("ix_signals_symbol_asof", "symbol", "asof"),
        sa.Index("ix_signals_created_at", "created_at"),
        sa.Index("ix_signals_trend_label", "trend_label"),
        sa.Index("ix_signals_run_id_evaluated", "run_id", "evaluated"),
        sa.Index("ix_signals_known", "symbol", "asof", sqlite_where=_KNOWN_OUTCOME,
                 postgresql_where=_KNOWN_OUTCOME),
        sa.Index("ux_signals_live_bar", "symbol", "interval", "asof", unique=True,
                 sqlite_where=_JOURNAL_ROW, postgresql_where=_JOURNAL_ROW),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _created_at()
    run_id: str = JOURNAL_RUN_ID
    symbol: str
    interval: str = "30m"
    asof: datetime = Field(sa_type=UTCDateTime(), nullable=False)
    data_source: str = "yahoo"
    last_bar_complete: bool = True
    trend_label: str = "sideways"
    ema_slope: float | None = None
    rsi14: float | None = None
    price: float | None = None
    setup: str = "none"
    side: str = "none"
    entry: float | None = None
    stop: float | None = None
    target: float | None = None
    r_multiple: float | None = None
    golden_pocket_low: float | None = None
    golden_pocket_high: float | None = None
    fib_json: str | None = _text()
    confidence: float | None = None
    expected_r: float | None = None
    expected_winrate: float | None = None
    expected_hold_bars: float | None = None
    expected_hold_days: float | None = None
    prior_n: int | None = None
    prior_json: str | None = _text()
    verdict: str | None = None
    verdict_reason: str | None = _text()
    mtf_15m: str | None = None
    mtf_1h: str | None = None
    mtf_alignment: int | None = None
    rs_sector: float | None = None
    rs_spy: float | None = None
    time_bucket: str | None = None
    atr_pct: float | None = None
    vol_regime: str | None = None
    llm_vote_json: str | None = _text()
    llm_plan_json: str | None = _text()
    note: str | None = _text()
    evaluated: bool = False
    exit_reason: str | None = None
    exit_price: float | None = None
    exit_ts: datetime | None = _ts()
    realized_r: float | None = None
    hold_bars: int | None = None
    vector_id: int | None = Field(
        default=None,
        sa_column_args=[sa.ForeignKey("setup_vectors.id", ondelete="SET NULL")],
    )


# --------------------------------------------------------------------------- backtests


class BacktestRun(SQLModel, table=True):
    """One backtest run; ``run_hash`` identifies its inputs (params, data, engine version)."""

    __tablename__ = "backtest_runs"

    id: int | None = Field(default=None, primary_key=True)
    run_hash: str = Field(unique=True)
    created_at: datetime = _created_at()
    name: str | None = None
    symbols: str = Field(default="", sa_type=sa.Text(), nullable=False)
    interval: str = "30m"
    start: datetime | None = _ts()
    end: datetime | None = _ts()
    params_json: str | None = _text()
    settings_json: str | None = _text()
    metrics_json: str | None = _text()
    engine_version: str | None = None
    data_fingerprint: str | None = None
    lookahead_json: str | None = _text()
    status: str = "done"


class BacktestTrade(SQLModel, table=True):
    """One simulated trade of a backtest run (times are UTC bar open times, except ``exit_ts``:
    the close time of the exit bar)."""

    __tablename__ = "backtest_trades"

    id: int | None = Field(default=None, primary_key=True)
    run_id: int = Field(
        sa_column_args=[sa.ForeignKey("backtest_runs.id", ondelete="CASCADE")],
        nullable=False,
        index=True,
    )
    symbol: str
    setup: str | None = None
    side: str | None = None
    trend: str | None = None
    vol_regime: str | None = None
    signal_ts: datetime | None = _ts()
    entry_ts: datetime | None = _ts()
    entry_price: float | None = None
    stop: float | None = None
    target: float | None = None
    exit_ts: datetime | None = _ts()
    exit_price: float | None = None
    exit_reason: str | None = None
    realized_r: float | None = None
    hold_bars: int | None = None
    qty: float | None = None
    pnl: float | None = None
    fees: float | None = None
    predicted_winrate: float | None = None
    predicted_winrate_raw: float | None = None
    prior_n: int | None = None
    expected_r: float | None = None
    both_touched: bool | None = None


# --------------------------------------------------------------------------- LLM


class LLMCall(SQLModel, table=True):
    """One call to the LLM advisor (for cost, latency and budget accounting)."""

    __tablename__ = "llm_calls"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False,
                         index=True)
    model: str
    purpose: str = "vote"
    input_hash: str | None = None
    symbol: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    outcome: str = "ok"


class LLMCacheEntry(SQLModel, table=True):
    """A cached LLM response keyed by a hash of (model, purpose, input)."""

    __tablename__ = "llm_cache"

    key: str = Field(primary_key=True)
    model: str
    created_at: datetime = _created_at()
    expires_at: datetime | None = _ts(index=True)
    response_json: str = Field(sa_type=sa.Text(), nullable=False)


# --------------------------------------------------------------------------- performance


class PerfTiming(SQLModel, table=True):
    """Timing statistics of one operation over a sampling window (milliseconds)."""

    __tablename__ = "perf_timings"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False,
                         index=True)
    process: str = "app"
    operation: str
    count: int = 0
    mean_ms: float | None = None
    p50_ms: float | None = None
    p95_ms: float | None = None
    max_ms: float | None = None


class PerfMemory(SQLModel, table=True):
    """One memory / CPU sample of a process (megabytes, percent)."""

    __tablename__ = "perf_memory"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False,
                         index=True)
    process: str = "app"
    rss_mb: float | None = None
    peak_rss_mb: float | None = None
    cpu_pct: float | None = None


class SlowQuery(SQLModel, table=True):
    """A database statement slower than ``SWING_SLOW_QUERY_MS``."""

    __tablename__ = "slow_queries"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False,
                         index=True)
    process: str = "app"
    duration_ms: float
    statement: str = Field(sa_type=sa.Text(), nullable=False)
    dialect: str | None = None
    statement_hmac: str | None = None  # keyed signature, set by the recorder (perf.sqlhooks)


class CacheCounter(SQLModel, table=True):
    """Hit / miss counts of one cache over a sampling window."""

    __tablename__ = "cache_counters"

    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime(), nullable=False,
                         index=True)
    process: str = "app"
    cache: str
    hits: int = 0
    misses: int = 0


class ProfileRun(SQLModel, table=True):
    """An on-demand profile (swing_core.perf.profiling); its tables and call tree as JSON."""

    __tablename__ = "profile_runs"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _created_at()
    kind: str
    total_s: float
    arguments_json: str = Field(sa_type=sa.Text(), nullable=False)
    functions_json: str = Field(sa_type=sa.Text(), nullable=False)
    tree_json: str = Field(sa_type=sa.Text(), nullable=False)


#: The metadata every table above belongs to (Alembic's target).
metadata: sa.MetaData = SQLModel.metadata

__all__ = ["VECTOR_BYTES", "VECTOR_DIM", "BacktestRun", "BacktestTrade", "Bar", "CacheCounter",
           "LLMCacheEntry", "LLMCall", "PerfMemory", "PerfTiming", "ProfileRun", "SetupVector",
           "SignalRecord", "SlowQuery", "UTCDateTime", "metadata", "utc_now"]
