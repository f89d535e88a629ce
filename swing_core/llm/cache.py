"""The database cache of advisor answers (``llm_cache``), keyed by
:func:`~swing_core.llm.prompts.request_hash`; an answer written under an older schema is a miss.
A failure to write is logged, never raised."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pydantic
import sqlalchemy as sa
from pydantic import BaseModel

from swing_core import db
from swing_core.llm.schemas import _Answer
from swing_core.models import LLMCacheEntry

log = logging.getLogger(__name__)


def _cache_get(engine: sa.Engine, key: str, schema: type[_Answer], *,
               now: datetime) -> _Answer | None:
    """The cached answer under ``key`` if it has not expired and still fits ``schema``."""
    stmt = sa.select(LLMCacheEntry.response_json, LLMCacheEntry.expires_at).where(
        LLMCacheEntry.key == key)
    with engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None or (row.expires_at is not None and row.expires_at <= now):
        return None
    try:
        return schema.model_validate_json(row.response_json)
    except pydantic.ValidationError:
        return None  # written under an older schema: ask again


def _cache_put(engine: sa.Engine, key: str, model: str, answer: BaseModel, *,
               now: datetime, ttl_s: float) -> None:
    """Store (or replace) one answer; expired entries are purged in the same transaction."""
    entry = {"key": key, "model": model, "created_at": now,
             "expires_at": now + timedelta(seconds=ttl_s),
             "response_json": answer.model_dump_json()}
    try:
        with db.write_transaction(engine) as conn:
            conn.execute(sa.delete(LLMCacheEntry).where(
                sa.or_(LLMCacheEntry.key == key, LLMCacheEntry.expires_at <= now)))
            conn.execute(sa.insert(LLMCacheEntry).values(**entry))
    except sa.exc.SQLAlchemyError as exc:
        log.warning("could not cache an LLM answer: %s", exc)
