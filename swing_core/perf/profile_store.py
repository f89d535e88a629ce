"""Saved profiles (table ``profile_runs``): each profile made on the Performance page or with
``python -m swing_core profile … --save`` is stored with its operation, arguments, total
seconds, top-functions table and call tree (JSON text), so it can be listed and viewed again.
The newest :data:`KEEP_PROFILES` are kept; older ones are deleted when a new one is saved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import sqlalchemy as sa

from swing_core import db, models
from swing_core.errors import DatabaseError
from swing_core.perf.profiling import ProfileError, ProfileResult

__all__ = ["KEEP_PROFILES", "LIST_COLUMNS", "list_profiles", "load_profile", "save_profile"]

#: Saved profiles kept (newest first); a profile is tens of kilobytes of JSON.
KEEP_PROFILES = 200
#: Columns of :func:`list_profiles`.
LIST_COLUMNS = ["id", "created_at", "kind", "symbols", "interval", "source", "total_s"]


def _table() -> sa.Table:
    return models.ProfileRun.__table__  # type: ignore[attr-defined,no-any-return]


@contextmanager
def _database(engine: sa.Engine, doing: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as exc:
        raise DatabaseError(f"Could not {doing} on {db.describe_database(engine)}: "
                            f"{type(exc.orig or exc).__name__}. Check that the database is "
                            "reachable and up to date (`python -m swing_core db upgrade`)."
                            ) from exc


def save_profile(engine: sa.Engine, result: ProfileResult) -> int:
    """Store ``result`` and return its id (one transaction, which also deletes profiles older
    than the newest :data:`KEEP_PROFILES`)."""
    table = _table()
    payload = result.to_payload()
    values = {"created_at": result.created_at, "kind": result.kind,
              "total_s": float(result.total_s),
              # the notes (e.g. "demo data") travel with the arguments: no column of their own
              "arguments_json": json.dumps({**payload["arguments"], "notes": payload["notes"]}),
              "functions_json": json.dumps(payload["functions"]),
              "tree_json": json.dumps(payload["tree"])}
    with _database(engine, "save the profile"), db.write_transaction(engine) as conn:
        new_id = int(conn.execute(sa.insert(table).values(values)).inserted_primary_key[0])
        oldest_kept = conn.execute(sa.select(table.c.id).order_by(table.c.id.desc())
                                   .offset(KEEP_PROFILES - 1).limit(1)).scalar()
        if oldest_kept is not None:
            conn.execute(sa.delete(table).where(table.c.id < oldest_kept))
    return new_id


def list_profiles(engine: sa.Engine, *, limit: int = 50) -> pd.DataFrame:
    """Saved profiles, newest first (:data:`LIST_COLUMNS`; ``created_at`` UTC, ``symbols`` as
    text); their tables are not read (see :func:`load_profile`)."""
    table = _table()
    query = (sa.select(table.c.id, table.c.created_at, table.c.kind, table.c.arguments_json,
                       table.c.total_s).order_by(table.c.id.desc()).limit(limit))
    with _database(engine, "list the saved profiles"), engine.connect() as conn:
        rows = conn.execute(query).all()
    records = []
    for row in rows:
        arguments = _arguments(row.arguments_json)
        records.append({"id": int(row.id), "created_at": row.created_at, "kind": row.kind,
                        "symbols": " ".join(arguments.get("symbols") or []),
                        "interval": arguments.get("interval"),
                        "source": arguments.get("source") or "auto",
                        "total_s": float(row.total_s)})
    frame = pd.DataFrame(records, columns=LIST_COLUMNS)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    return frame


def load_profile(engine: sa.Engine, profile_id: int) -> ProfileResult:
    """The saved profile ``profile_id``; :class:`ProfileError` when there is none."""
    table = _table()
    with _database(engine, "read the profile"), engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == int(profile_id))).first()
    if row is None:
        raise ProfileError(f"There is no saved profile {profile_id}: it may have been replaced "
                           f"by newer ones (the newest {KEEP_PROFILES} are kept).")
    arguments = _arguments(row.arguments_json)
    notes = arguments.pop("notes", None) or []
    return ProfileResult.from_payload({
        "kind": row.kind, "arguments": arguments, "notes": notes, "total_s": row.total_s,
        "created_at": row.created_at.isoformat(), "profile_id": int(row.id),
        "functions": json.loads(row.functions_json), "tree": json.loads(row.tree_json)})


def _arguments(text: str | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
