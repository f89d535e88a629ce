"""Loading the pattern index from the ``setup_vectors`` table and keeping it current.

:class:`DatabaseSync` is mixed into :class:`~swing_core.patterns.index.PatternIndex`: a full
load, then incremental refreshes that read only rows with a higher id and rows that had no
outcome at the last load (their ids are remembered). The database is read without holding the
index's lock, so queries keep being answered meanwhile.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Self

import numpy as np
import pandas as pd
import sqlalchemy as sa

from swing_core import db, models
from swing_core.db.vector_load import load_vector_library
from swing_core.errors import DatabaseError
from swing_core.patterns.backends import VECTOR_DIM

if TYPE_CHECKING:
    from swing_core.patterns.backends import VectorIndex

__all__ = ["DatabaseSync"]


class DatabaseSync:
    """Database loading for the pattern index (expects the index's ``add``, ``clear``,
    ``interval``, ``version``, ``_lock``, ``_db_max_id`` and ``_db_pending``)."""

    @classmethod
    def from_db(cls, engine: Any, *, interval: str | None = None, version: str = "v1",
                backend: str | VectorIndex | None = None) -> Self:
        """The index over every stored vector with a known outcome (``setup_vectors``), of one
        interval (None: all) and vector version."""
        index = cls(backend=backend, interval=interval, version=version)
        index.refresh(engine, full=True)
        return index

    def refresh(self, engine: Any, *, full: bool = False) -> int:
        """Load what changed since the last load: rows with a higher id, and rows that had no
        outcome then and have one now (ids remembered from the last load). ``full``: reload
        everything (also picks up deleted rows and re-evaluated outcomes). The database is read
        without holding the index, which queries keep using meanwhile. Returns rows made
        searchable or replaced."""
        with self._lock:
            since, waiting = self._db_max_id, sorted(self._db_pending)
        if full or since is None:  # rows, highest id and ids without outcome: one snapshot
            loaded = load_vector_library(engine, interval=self.interval, version=self.version)
            with self._lock:
                self.clear()
                added = self.add(loaded.rows.meta, loaded.rows.matrix)
                self._db_max_id = loaded.max_id
                self._db_pending = set(loaded.pending.tolist())
            return added
        table = self._db_table()
        frames = [self._db_select(engine, table.c.id > since)]
        for start in range(0, len(waiting), 500):
            chunk = waiting[start:start + 500]
            frames.append(self._db_select(engine, table.c.id.in_(chunk)
                                          & table.c.realized_r.is_not(None)))
        frames = [f for f in frames if not f.empty]  # (concat of empty frames is deprecated)
        if not frames:
            return 0
        frame = pd.concat(frames, ignore_index=True)
        has_outcome = frame["realized_r"].notna().to_numpy()
        known = frame.loc[has_outcome]
        matrix = np.frombuffer(b"".join(known["vector"]), dtype="<f4").reshape(-1, VECTOR_DIM)
        with self._lock:
            self._db_max_id = max(self._db_max_id or 0, int(frame["id"].max()))
            self._db_pending |= set(frame.loc[~has_outcome, "id"].astype(int))
            self._db_pending -= set(known["id"].astype(int))
            return self.add(known.drop(columns=["vector"]), matrix)

    @staticmethod
    def _db_table() -> Any:
        return models.SetupVector.__table__

    def _db_where(self, table: Any) -> list[Any]:
        where = [table.c.version == self.version]
        if self.interval is not None:
            where.append(table.c.interval == self.interval)
        return where

    def _db_run(self, engine: Any, stmt: Any) -> list[Any]:
        try:
            with engine.connect() as conn:
                return list(conn.execute(stmt).all())
        except sa.exc.SQLAlchemyError as exc:
            raise DatabaseError(f"Could not read setup vectors from "
                                f"{db.describe_database(engine)}: {exc.__class__.__name__}. "
                                "Check the database is reachable and migrated "
                                "(python -m swing_core db init).") from exc

    def _db_select(self, engine: Any, condition: Any) -> pd.DataFrame:
        t = self._db_table()
        names = ["id", "symbol", "interval", "ts", "setup", "side", "vol_regime", "realized_r",
                 "exit_reason", "exit_ts", "hold_bars", "vector"]
        rows = self._db_run(engine, sa.select(*[t.c[c] for c in names])
                            .where(*self._db_where(t), condition))
        return pd.DataFrame(rows, columns=names)
