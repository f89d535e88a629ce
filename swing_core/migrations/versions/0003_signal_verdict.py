"""signals: the verdict (take / skip / no edge) and its reason; backtest_trades: the raw
predicted win rate and the neighbours it rests on

A signal's verdict (swing_core.verdict) is a first-class field a trader filters the journal by,
so it gets its own column rather than a key in prior_json (which holds what the neighbours
said). A stored backtest keeps each trade's raw (uncalibrated) predicted win rate and its
number of neighbours, so a reloaded run shows the same calibration report and n as a fresh
one. Existing rows get NULL: signals saved before had no verdict.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("signals", sa.Column("verdict", sa.String(), nullable=True))
    op.add_column("signals", sa.Column("verdict_reason", sa.Text(), nullable=True))
    op.add_column("backtest_trades",
                  sa.Column("predicted_winrate_raw", sa.Float(), nullable=True))
    op.add_column("backtest_trades", sa.Column("prior_n", sa.Integer(), nullable=True))


def downgrade() -> None:
    # a plain DROP COLUMN: SQLite has it since 3.35, and none of these columns is indexed
    op.drop_column("backtest_trades", "prior_n")
    op.drop_column("backtest_trades", "predicted_winrate_raw")
    op.drop_column("signals", "verdict_reason")
    op.drop_column("signals", "verdict")
