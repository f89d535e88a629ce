"""slow_queries: the keyed signature (HMAC-SHA256) of each recorded statement

EXPLAIN plans only statements SwingDesk recorded itself: the recorder signs each slow
statement (with its dialect) with a per-installation key, and EXPLAIN checks the signature, so a
row written into slow_queries by anything else is refused. Existing rows get NULL: they were
recorded unsigned and cannot be explained (new slow queries can).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-10 10:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("slow_queries", sa.Column("statement_hmac", sa.String(), nullable=True))


def downgrade() -> None:
    op.drop_column("slow_queries", "statement_hmac")
