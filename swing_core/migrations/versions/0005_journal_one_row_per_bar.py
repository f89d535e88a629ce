"""signals: the journal holds one signal per (symbol, interval, bar)

Saving the same bar's signal twice used to store two journal rows (run_id 'live'), so the
journal's win rates and the calibration counted that trade twice. A partial unique index on
(symbol, interval, asof) WHERE run_id = 'live' now makes a second save a no-op, even from two
writers at once (swing_core.db.signals inserts with ON CONFLICT DO NOTHING). Backtest and
benchmark rows (other run ids) are not affected.

Existing duplicates are resolved first, oldest row kept as the journal's, nothing of value lost:
- a copy identical to the oldest row in every stored column but its id and created_at (the
  same click twice) is deleted: it holds nothing the kept row does not;
- a copy that differs in anything (an advisor vote, a plan, an outcome, a note) is kept, moved
  out of the journal to run_id 'live-duplicate' (``python -m swing_core journal list --run-id
  live-duplicate`` lists them, ``journal export --run-id live-duplicate`` exports them).
The downgrade drops the index; deleted copies are not restored (they were identical).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-10 12:00:00
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOURNAL_RUN_ID = "live"
#: Where differing copies of a journal row go (kept, out of the journal's unique key).
DUPLICATE_RUN_ID = "live-duplicate"  # the same value in swing_core.journal
INDEX = "ux_signals_live_bar"
_WHERE = sa.text(f"run_id = '{JOURNAL_RUN_ID}'")
_log = logging.getLogger("alembic.runtime.migration")


def _resolve_duplicates(bind: sa.Connection) -> tuple[int, int]:
    """Delete exact copies of a journal row, move differing ones to DUPLICATE_RUN_ID; returns
    (deleted, moved). Values are compared as the driver returns them (raw, no type
    processing): identical stored values compare equal."""
    names = [c["name"] for c in sa.inspect(bind).get_columns("signals")]
    compared = [n for n in names if n not in ("id", "created_at")]
    t = sa.table("signals", *(sa.column(n) for n in names))
    key = (t.c.symbol, t.c.interval, t.c.asof)
    groups = bind.execute(sa.select(*key).where(t.c.run_id == JOURNAL_RUN_ID).group_by(*key)
                          .having(sa.func.count() > 1)).all()
    deleted = moved = 0
    for symbol, interval, asof in groups:
        rows = bind.execute(
            sa.select(t.c.id, *(t.c[n] for n in compared))
            .where(t.c.run_id == JOURNAL_RUN_ID, t.c.symbol == symbol,
                   t.c.interval == interval, t.c.asof == asof)
            .order_by(t.c.id)).all()
        kept = tuple(rows[0][1:])
        copies = [r[0] for r in rows[1:] if tuple(r[1:]) == kept]
        differing = [r[0] for r in rows[1:] if tuple(r[1:]) != kept]
        if copies:
            bind.execute(sa.delete(t).where(t.c.id.in_(copies)))
        if differing:
            bind.execute(sa.update(t).where(t.c.id.in_(differing))
                         .values(run_id=DUPLICATE_RUN_ID))
        deleted += len(copies)
        moved += len(differing)
    return deleted, moved


def upgrade() -> None:
    deleted, moved = _resolve_duplicates(op.get_bind())
    if deleted or moved:
        _log.warning("journal: %d identical duplicate signal(s) removed, %d differing one(s) "
                     "kept under run id %r", deleted, moved, DUPLICATE_RUN_ID)
    op.create_index(INDEX, "signals", ["symbol", "interval", "asof"], unique=True,
                    sqlite_where=_WHERE, postgresql_where=_WHERE)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="signals")
