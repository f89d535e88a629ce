"""setup_vectors: fillfactor 70 on PostgreSQL, so re-upserted vectors are rewritten in place

A bulk upsert that replaces vectors (same keys, new values) leaves every indexed column as it
was, so PostgreSQL can rewrite each row as a heap-only tuple (no new entry in the four indexes)
when its page has room. With the default fillfactor of 100 no page has any: rewriting 100,000
vectors took 1.8-3.1 s and doubled the table; with 70 about three rows in four stay on their
page and it takes 1.0-1.5 s (benchmarks/bench_storage.py, "vectors_upsert_100k_changed_s").
Existing pages are filled as before until rows move; SQLite has no such setting (no-op there).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 14:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE setup_vectors SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE setup_vectors RESET (fillfactor)")
