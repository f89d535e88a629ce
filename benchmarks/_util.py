"""Small helpers shared by the benchmarks: timing medians and the JSON report."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any


def median_seconds(fn: Callable[[], Any], *, repeats: int = 7, warmup: int = 1) -> dict[str, float]:
    """Run ``fn`` ``warmup + repeats`` times; median, min and max of the timed runs in seconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"median_s": statistics.median(samples), "min_s": min(samples), "max_s": max(samples),
            "repeats": repeats}


def target(value: float, limit: float, *, at_least: bool = False) -> dict[str, Any]:
    ok = value >= limit if at_least else value <= limit
    return {"value": value, "target": (">= " if at_least else "<= ") + str(limit), "pass": ok}


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "cpus": os.cpu_count()}


def emit(report: dict[str, Any]) -> None:
    report.setdefault("machine", machine())
    print(json.dumps(report, indent=2, default=float))


def in_postgres_schema(url: str, run: Callable[[Any, str], dict[str, Any]]) -> dict[str, Any]:
    """``run(engine, schema)`` on PostgreSQL at ``url`` in a schema made for it and dropped
    afterwards; ``{"skipped": why}`` when the server cannot be reached."""
    import uuid

    import sqlalchemy as sa

    from swing_core import db

    admin = db.make_engine(url)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        return {"skipped": f"PostgreSQL unreachable: {str(exc.orig).splitlines()[0]}"}
    engine = db.make_engine(url, schema=schema)
    try:
        return {"database": db.describe_database(url), **run(engine, schema)}
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
