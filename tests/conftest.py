"""Shared fixtures: a fresh store per test, on SQLite and (when a server is given) PostgreSQL,
and copies of stores built once per session (`built_store`).

PostgreSQL runs when EQUITY_LEDGER_TEST_PG_URL is set (`.ci/run` starts a real server and sets
it). Without it the PostgreSQL variants are skipped locally; under CI=true they fail instead,
so a CI run can never pass by silently skipping the real database.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest

from helpers import BACKENDS, clone_pg_database, drop_pg_database, fresh_pg_database


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


class _Built:
    """Stores built once per session (per xdist worker), by key and backend."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.stores: dict[tuple[str, str], str] = {}  # SQLite file path / PostgreSQL database name


@pytest.fixture(scope="session")
def _built_stores(tmp_path_factory: pytest.TempPathFactory) -> Iterable[_Built]:
    built = _Built(tmp_path_factory.mktemp("built"))
    yield built
    for (backend, _key), name in built.stores.items():
        if backend == "postgresql":
            drop_pg_database(name)


@pytest.fixture
def built_store(backend: str, tmp_path: Path, _built_stores: _Built) -> Iterable[Callable[..., str]]:
    """`built_store(key, build)`: a store of this test's own, equal to the one `build(url, folder)`
    makes from an empty store. The first test that asks for a key builds it (so its assertions
    run once per session and backend); every test gets a copy (a copied SQLite file; on
    PostgreSQL a database made with the built one as its template), so tests that change their
    store stay apart, and the same commands are not applied again for each test. `build` must
    leave no connection open (run the CLI, or close what it opens)."""
    made: list[str] = []

    def copy(key: str, build: Callable[[str, Path], None]) -> str:
        k = (backend, key)
        if k not in _built_stores.stores:
            # The database first: without a PostgreSQL server it skips the test before anything
            # is made, so that the next test of this key skips the same way.
            url, name = fresh_pg_database() if backend == "postgresql" else ("", "")
            folder = _built_stores.folder / f"{backend}-{key}"
            folder.mkdir(exist_ok=True)  # a build that failed leaves it: the next test builds again
            if backend == "sqlite":
                path = folder / "ledger.sqlite"
                build(f"sqlite:///{path}", folder)
                _built_stores.stores[k] = str(path)
            else:
                build(url, folder)
                _built_stores.stores[k] = name
        source = _built_stores.stores[k]
        if backend == "sqlite":
            target = tmp_path / "ledger.sqlite"
            for suffix in ("", "-wal"):
                if Path(source + suffix).exists():
                    shutil.copyfile(source + suffix, str(target) + suffix)
            return f"sqlite:///{target}"
        url, name = clone_pg_database(source)
        made.append(name)
        return url

    yield copy
    for name in made:
        drop_pg_database(name)


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
