"""profile_runs: on-demand profiles of one analyze / backtest / scan

The Performance page's "Profile" action and ``python -m swing_core profile … --save`` run one
operation under cProfile in a subprocess (swing_core.perf.profiling) and save what it found here:
the operation, its arguments, the total seconds, the top-functions table and the call tree (JSON
text), so past profiles can be listed and viewed again. Only the newest profiles are kept
(swing_core.perf.profile_store.KEEP_PROFILES); listing is by id, so no index beyond the key.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-12 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "profile_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("total_s", sa.Float(), nullable=False),
        sa.Column("arguments_json", sa.Text(), nullable=False),
        sa.Column("functions_json", sa.Text(), nullable=False),
        sa.Column("tree_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_runs")),
    )


def downgrade() -> None:
    op.drop_table("profile_runs")
