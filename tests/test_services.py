"""The runtime: one function opens the database and the pattern priors, for the CLI and the app;
an unusable database is a reason on the runtime, never an exception, until storage is needed."""

from __future__ import annotations

import pytest

from swing_core.config import get_settings
from swing_core.errors import DatabaseError
from swing_core.services import Runtime, open_runtime


def test_the_runtime_opens_the_database_and_the_priors_of_an_interval(sqlite_engine,
                                                                      monkeypatch):
    monkeypatch.setenv("SWING_DATABASE_URL", str(sqlite_engine.url))
    runtime = open_runtime(interval="1d")
    assert isinstance(runtime, Runtime) and runtime.settings == get_settings()
    assert runtime.engine is not None and runtime.database_error is None
    assert runtime.require_engine() is runtime.engine
    assert "SQLite file" in runtime.database
    assert runtime.pattern_index is not None and len(runtime.pattern_index) == 0
    assert runtime.prior_provider is not None and runtime.interval == "1d"


def test_without_priors_only_the_database_is_opened():
    runtime = open_runtime(priors=False)
    assert runtime.engine is not None
    assert runtime.pattern_index is None and runtime.prior_provider is None


@pytest.mark.parametrize("url", ["postgresql+psycopg://trader:s3cret@127.0.0.1:1/swing",
                                 "nosuchdb://x"])
def test_an_unusable_database_is_a_reason_not_an_exception(monkeypatch, url):
    monkeypatch.setenv("SWING_DATABASE_URL", url)
    runtime = open_runtime(interval="1d")
    assert runtime.engine is None and runtime.prior_provider is None
    assert runtime.database_error and "s3cret" not in runtime.database_error
    assert "s3cret" not in runtime.database
    with pytest.raises(DatabaseError) as caught:
        runtime.require_engine()
    assert str(caught.value) == runtime.database_error
