"""Shared fixtures: a fresh store per test, on SQLite and (when a server is given) PostgreSQL.

PostgreSQL runs when EQUITY_LEDGER_TEST_PG_URL is set (`.ci/run` starts a real server and sets
it). Without it the PostgreSQL variants are skipped locally; under CI=true they fail instead,
so a CI run can never pass by silently skipping the real database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pytest

from helpers import BACKENDS, drop_pg_database, fresh_pg_database


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_url(backend: str, tmp_path: Path) -> Iterable[str]:
    """An empty store on the requested backend."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/ledger.sqlite"
        return
    url, name = fresh_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/ledger.sqlite"


