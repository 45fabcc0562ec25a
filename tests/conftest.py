"""Shared fixtures: a fresh store per test, on SQLite and (when a server is given) PostgreSQL.

PostgreSQL runs when EQUITY_LEDGER_TEST_PG_URL is set (`.ci/run` starts a real server and sets
it). Without it the PostgreSQL variants are skipped locally; under CI=true they fail instead,
so a CI run can never pass by silently skipping the real database.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

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


# pytest-xdist starts its workers with COLUMNS=80 and LINES=24 in their environment; the CLI
# runs the tests start would then fit every table into 80 columns. Each worker gets back the
# values of the process that started it (none, when it had none).
_TERMINAL = ("COLUMNS", "LINES")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput["terminal_env"] = {k: os.environ.get(k) for k in _TERMINAL}


def pytest_configure(config: pytest.Config) -> None:
    saved = getattr(config, "workerinput", {}).get("terminal_env")
    for key, value in (saved or {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
