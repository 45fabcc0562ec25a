"""Test helpers: fresh PostgreSQL databases, running the CLI as a user does, command files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pytest

PG_URL = os.environ.get("EQUITY_LEDGER_TEST_PG_URL")
PG_ADMIN_URL = os.environ.get("EQUITY_LEDGER_TEST_PG_ADMIN_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

BACKENDS = ["sqlite", "postgresql"]


def _psycopg_dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _require_pg() -> None:
    if not PG_URL:
        if IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: EQUITY_LEDGER_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server (set EQUITY_LEDGER_TEST_PG_URL; see .ci/postgres.sh)")


def fresh_pg_database() -> tuple[str, str]:
    """Create an empty database on the test server; returns (its URL, its name)."""
    import psycopg

    _require_pg()
    admin = PG_ADMIN_URL or PG_URL.rsplit("/", 1)[0] + "/postgres"
    # The xdist worker's id in the name (gw0, gw1; "main" without -n): the names never collide
    # anyway, but a database left by a killed worker says whose it was.
    name = f"el_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_psycopg_dsn(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_URL.rsplit("/", 1)[0] + "/" + name, name


def clone_pg_database(template: str) -> tuple[str, str]:
    """A new database on the test server made as a copy of the database `template` (which
    nobody may be connected to); returns (its URL, its name)."""
    import psycopg

    _require_pg()
    admin = PG_ADMIN_URL or PG_URL.rsplit("/", 1)[0] + "/postgres"
    name = f"el_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(_psycopg_dsn(admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return PG_URL.rsplit("/", 1)[0] + "/" + name, name


def drop_pg_database(name: str) -> None:
    import psycopg

    admin = PG_ADMIN_URL or PG_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(_psycopg_dsn(admin), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Run:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def run_cli(*args: str, db: str | None = None, input: str | bytes | None = None,
            env: dict[str, str] | None = None, cwd: str | Path | None = None) -> Run:
    """Run the installed `equity-ledger` as a user does: a subprocess, its exit code, its streams."""
    cmd = [sys.executable, "-m", "equity_ledger.cli"]
    if db is not None:
        cmd += ["--db", db]
    cmd += list(args)
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("EQUITY_LEDGER_DB", None) if db is not None else None
    data = input.encode("utf-8") if isinstance(input, str) else input
    p = subprocess.run(cmd, input=data, capture_output=True, env=full_env, cwd=cwd, timeout=600)
    return Run(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def write_jsonl(path: Path, commands: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in commands), encoding="utf-8")
    return path
