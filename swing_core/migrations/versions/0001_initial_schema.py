"""initial schema: bars, setup vectors, signals, backtests, LLM calls, performance history

Revision ID: 0001
Revises:
Create Date: 2026-11-29 13:17:04.755155
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "backtest_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_hash", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("symbols", sa.Text(), nullable=False),
        sa.Column("interval", sa.String(), nullable=False),
        sa.Column("start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("params_json", sa.Text(), nullable=True),
        sa.Column("settings_json", sa.Text(), nullable=True),
        sa.Column("metrics_json", sa.Text(), nullable=True),
        sa.Column("engine_version", sa.String(), nullable=True),
        sa.Column("data_fingerprint", sa.String(), nullable=True),
        sa.Column("lookahead_json", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_runs")),
        sa.UniqueConstraint("run_hash", name=op.f("uq_backtest_runs_run_hash")),
    )
    op.create_table(
        "bars",
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("interval", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("open", sa.Float(), nullable=False),
        sa.Column("high", sa.Float(), nullable=False),
        sa.Column("low", sa.Float(), nullable=False),
        sa.Column("close", sa.Float(), nullable=False),
        sa.Column("volume", sa.Float(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("symbol", "interval", "ts", name=op.f("pk_bars")),
    )
    op.create_table(
        "cache_counters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("cache", sa.String(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cache_counters")),
    )
    op.create_index(op.f("ix_cache_counters_ts"), "cache_counters", ["ts"], unique=False)
    op.create_table(
        "llm_cache",
        sa.Column("key", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("response_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_llm_cache")),
    )
    op.create_index(op.f("ix_llm_cache_expires_at"), "llm_cache", ["expires_at"], unique=False)
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("input_hash", sa.String(), nullable=True),
        sa.Column("symbol", sa.String(), nullable=True),
        sa.Column("tokens_in", sa.Integer(), nullable=False),
        sa.Column("tokens_out", sa.Integer(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    op.create_index(op.f("ix_llm_calls_ts"), "llm_calls", ["ts"], unique=False)
    op.create_table(
        "perf_memory",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("rss_mb", sa.Float(), nullable=True),
        sa.Column("peak_rss_mb", sa.Float(), nullable=True),
        sa.Column("cpu_pct", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_perf_memory")),
    )
    op.create_index(op.f("ix_perf_memory_ts"), "perf_memory", ["ts"], unique=False)
    op.create_table(
        "perf_timings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("operation", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("mean_ms", sa.Float(), nullable=True),
        sa.Column("p50_ms", sa.Float(), nullable=True),
        sa.Column("p95_ms", sa.Float(), nullable=True),
        sa.Column("max_ms", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_perf_timings")),
    )
    op.create_index(op.f("ix_perf_timings_ts"), "perf_timings", ["ts"], unique=False)
    op.create_table(
        "setup_vectors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("interval", sa.String(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("setup", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("trend", sa.String(), nullable=False),
        sa.Column("vol_regime", sa.String(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("realized_r", sa.Float(), nullable=True),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("exit_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hold_bars", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_setup_vectors")),
        sa.UniqueConstraint(
            "symbol",
            "interval",
            "ts",
            "version",
            name=op.f("uq_setup_vectors_symbol_interval_ts_version"),
        ),
    )
    op.create_index(
        "ix_setup_vectors_known",
        "setup_vectors",
        ["interval", "version", "exit_ts"],
        unique=False,
        sqlite_where=sa.text("realized_r IS NOT NULL"),
        postgresql_where=sa.text("realized_r IS NOT NULL"),
    )
    op.create_index("ix_setup_vectors_symbol_ts", "setup_vectors", ["symbol", "ts"], unique=False)
    op.create_table(
        "slow_queries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("process", sa.String(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("dialect", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slow_queries")),
    )
    op.create_index(op.f("ix_slow_queries_ts"), "slow_queries", ["ts"], unique=False)
    op.create_table(
        "backtest_trades",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("setup", sa.String(), nullable=True),
        sa.Column("side", sa.String(), nullable=True),
        sa.Column("trend", sa.String(), nullable=True),
        sa.Column("vol_regime", sa.String(), nullable=True),
        sa.Column("signal_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("entry_price", sa.Float(), nullable=True),
        sa.Column("stop", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("exit_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("exit_price", sa.Float(), nullable=True),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("realized_r", sa.Float(), nullable=True),
        sa.Column("hold_bars", sa.Integer(), nullable=True),
        sa.Column("qty", sa.Float(), nullable=True),
        sa.Column("pnl", sa.Float(), nullable=True),
        sa.Column("fees", sa.Float(), nullable=True),
        sa.Column("predicted_winrate", sa.Float(), nullable=True),
        sa.Column("expected_r", sa.Float(), nullable=True),
        sa.Column("both_touched", sa.Boolean(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["backtest_runs.id"],
            name=op.f("fk_backtest_trades_run_id_backtest_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_backtest_trades")),
    )
    op.create_index(op.f("ix_backtest_trades_run_id"), "backtest_trades", ["run_id"], unique=False)
    op.create_table(
        "signals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run_id", sa.String(), nullable=False),
        sa.Column("symbol", sa.String(), nullable=False),
        sa.Column("interval", sa.String(), nullable=False),
        sa.Column("asof", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data_source", sa.String(), nullable=False),
        sa.Column("last_bar_complete", sa.Boolean(), nullable=False),
        sa.Column("trend_label", sa.String(), nullable=False),
        sa.Column("ema_slope", sa.Float(), nullable=True),
        sa.Column("rsi14", sa.Float(), nullable=True),
        sa.Column("price", sa.Float(), nullable=True),
        sa.Column("setup", sa.String(), nullable=False),
        sa.Column("side", sa.String(), nullable=False),
        sa.Column("entry", sa.Float(), nullable=True),
        sa.Column("stop", sa.Float(), nullable=True),
        sa.Column("target", sa.Float(), nullable=True),
        sa.Column("r_multiple", sa.Float(), nullable=True),
        sa.Column("golden_pocket_low", sa.Float(), nullable=True),
        sa.Column("golden_pocket_high", sa.Float(), nullable=True),
        sa.Column("fib_json", sa.Text(), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("expected_r", sa.Float(), nullable=True),
        sa.Column("expected_winrate", sa.Float(), nullable=True),
        sa.Column("expected_hold_bars", sa.Float(), nullable=True),
        sa.Column("expected_hold_days", sa.Float(), nullable=True),
        sa.Column("prior_n", sa.Integer(), nullable=True),
        sa.Column("prior_json", sa.Text(), nullable=True),
        sa.Column("mtf_15m", sa.String(), nullable=True),
        sa.Column("mtf_1h", sa.String(), nullable=True),
        sa.Column("mtf_alignment", sa.Integer(), nullable=True),
        sa.Column("rs_sector", sa.Float(), nullable=True),
        sa.Column("rs_spy", sa.Float(), nullable=True),
        sa.Column("time_bucket", sa.String(), nullable=True),
        sa.Column("atr_pct", sa.Float(), nullable=True),
        sa.Column("vol_regime", sa.String(), nullable=True),
        sa.Column("llm_vote_json", sa.Text(), nullable=True),
        sa.Column("llm_plan_json", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("evaluated", sa.Boolean(), nullable=False),
        sa.Column("exit_reason", sa.String(), nullable=True),
        sa.Column("exit_price", sa.Float(), nullable=True),
        sa.Column("exit_ts", sa.DateTime(timezone=True), nullable=True),
        sa.Column("realized_r", sa.Float(), nullable=True),
        sa.Column("hold_bars", sa.Integer(), nullable=True),
        sa.Column("vector_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["vector_id"],
            ["setup_vectors.id"],
            name=op.f("fk_signals_vector_id_setup_vectors"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signals")),
    )
    op.create_index("ix_signals_created_at", "signals", ["created_at"], unique=False)
    op.create_index(
        "ix_signals_known",
        "signals",
        ["symbol", "asof"],
        unique=False,
        sqlite_where=sa.text("realized_r IS NOT NULL"),
        postgresql_where=sa.text("realized_r IS NOT NULL"),
    )
    op.create_index("ix_signals_run_id_evaluated", "signals", ["run_id", "evaluated"], unique=False)
    op.create_index("ix_signals_symbol_asof", "signals", ["symbol", "asof"], unique=False)
    op.create_index("ix_signals_trend_label", "signals", ["trend_label"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_signals_trend_label", table_name="signals")
    op.drop_index("ix_signals_symbol_asof", table_name="signals")
    op.drop_index("ix_signals_run_id_evaluated", table_name="signals")
    op.drop_index(
        "ix_signals_known",
        table_name="signals",
        sqlite_where=sa.text("realized_r IS NOT NULL"),
        postgresql_where=sa.text("realized_r IS NOT NULL"),
    )
    op.drop_index("ix_signals_created_at", table_name="signals")
    op.drop_table("signals")
    op.drop_index(op.f("ix_backtest_trades_run_id"), table_name="backtest_trades")
    op.drop_table("backtest_trades")
    op.drop_index(op.f("ix_slow_queries_ts"), table_name="slow_queries")
    op.drop_table("slow_queries")
    op.drop_index("ix_setup_vectors_symbol_ts", table_name="setup_vectors")
    op.drop_index(
        "ix_setup_vectors_known",
        table_name="setup_vectors",
        sqlite_where=sa.text("realized_r IS NOT NULL"),
        postgresql_where=sa.text("realized_r IS NOT NULL"),
    )
    op.drop_table("setup_vectors")
    op.drop_index(op.f("ix_perf_timings_ts"), table_name="perf_timings")
    op.drop_table("perf_timings")
    op.drop_index(op.f("ix_perf_memory_ts"), table_name="perf_memory")
    op.drop_table("perf_memory")
    op.drop_index(op.f("ix_llm_calls_ts"), table_name="llm_calls")
    op.drop_table("llm_calls")
    op.drop_index(op.f("ix_llm_cache_expires_at"), table_name="llm_cache")
    op.drop_table("llm_cache")
    op.drop_index(op.f("ix_cache_counters_ts"), table_name="cache_counters")
    op.drop_table("cache_counters")
    op.drop_table("bars")
    op.drop_table("backtest_runs")
