"""Test helpers: fresh PostgreSQL databases, running the CLI as a user does, command files."""

from __future__ import annotations

import atexit
import io
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from contextlib import redirect_stderr, redirect_stdout
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
            env: dict[str, str] | None = None, cwd: str | Path | None = None, fresh: bool = False) -> Run:
    """Run `equity-ledger` as a user does: a process of its own with this argv, environment,
    working directory and stdin, its exit code and its two streams.

    The process is forked from a zygote that has already imported the CLI (tests/cli_zygote.py:
    a Python start and its imports are most of a small run's CPU); `fresh=True`, or
    EQUITY_LEDGER_TEST_FRESH_CLI=1 for every call, starts a new interpreter instead."""
    argv = (["--db", db] if db is not None else []) + list(args)
    full_env = dict(os.environ, **(env or {}))
    full_env.pop("EQUITY_LEDGER_DB", None) if db is not None else None
    data = input.encode("utf-8") if isinstance(input, str) else input
    if fresh or os.environ.get("EQUITY_LEDGER_TEST_FRESH_CLI") == "1":
        p = subprocess.run([sys.executable, "-m", "equity_ledger.cli", *argv], input=data,
                           capture_output=True, env=full_env, cwd=cwd, timeout=600)
        code, out, err = p.returncode, p.stdout, p.stderr
    else:
        code, out, err = _zygote().run(argv, data, full_env, str(cwd) if cwd is not None else os.getcwd())
    return Run(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


class _Zygote:
    """The client side of tests/cli_zygote.py: one per test process, started on first use."""

    def __init__(self) -> None:
        self.sock, theirs = socket.socketpair()
        script = Path(__file__).with_name("cli_zygote.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(theirs.fileno())],
                                     pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL)
        theirs.close()
        atexit.register(self.close)

    def close(self, kill: bool = False) -> None:
        self.sock.close()
        if kill:
            self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def _int(self) -> int:
        data = b""
        while len(data) < 4:
            chunk = self.sock.recv(4 - len(data))
            if not chunk:
                raise RuntimeError("the CLI zygote ended (see its traceback on stderr)")
            data += chunk
        return struct.unpack(">i", data)[0]

    def run(self, argv: list[str], data: bytes | None, env: dict[str, str], cwd: str,
            timeout: float = 600) -> tuple[int, bytes, bytes]:
        # What an exec refuses, refused here too (subprocess raises the same errors).
        for text in [*argv, *env, *env.values(), cwd]:
            if "\0" in text:
                raise ValueError("embedded null byte")
            os.fsencode(text)
        body = json.dumps({"args": argv, "env": env, "cwd": cwd}).encode("utf-8")
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        ours = {in_w, out_r, err_r}
        pid = 0
        try:
            try:
                socket.send_fds(self.sock, [struct.pack(">I", len(body)) + body], [in_r, out_w, err_w])
            finally:
                for fd in (in_r, out_w, err_w):
                    os.close(fd)
            pid = self._int()

            def feed() -> None:
                try:
                    if data:
                        with open(in_w, "wb", closefd=False) as f:
                            f.write(data)
                except BrokenPipeError:
                    pass  # the CLI stopped reading (a refused line): as with subprocess.run
                finally:
                    os.close(in_w)

            ours.discard(in_w)
            writer = threading.Thread(target=feed, daemon=True)
            writer.start()
            chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
            deadline = time.monotonic() + timeout
            with selectors.DefaultSelector() as sel:
                for fd in chunks:
                    sel.register(fd, selectors.EVENT_READ)
                while sel.get_map():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise subprocess.TimeoutExpired(argv, timeout)
                    for key, _ in sel.select(left):
                        chunk = os.read(key.fd, 65536)
                        if chunk:
                            chunks[key.fd].append(chunk)
                        else:
                            sel.unregister(key.fd)
            code = self._int()
            writer.join()
            return code, b"".join(chunks[out_r]), b"".join(chunks[err_r])
        except BaseException:
            # Out of step with the zygote (a timeout, an interrupted read): kill the child and
            # throw this zygote away; the next run starts a new one.
            if pid > 0:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.close(kill=True)
            raise
        finally:
            for fd in ours:
                os.close(fd)


_ZYGOTES = threading.local()  # one per thread: CLI runs from several threads stay concurrent


def _zygote() -> _Zygote:
    z = getattr(_ZYGOTES, "zygote", None)
    if z is None or z.proc.poll() is not None:
        z = _ZYGOTES.zygote = _Zygote()
    return z


def ask_cli(*args: str, db: str) -> Run:
    """Run the console script's own entry point inside this process: for the reads a test makes
    to observe a store (figures before and after, "was anything stored?"), many times in one
    test. The same argument parsing, error handling, rendering and exit codes as `run_cli`,
    with stdout and stderr as pipes (not terminals); the action a test is about still goes
    through `run_cli`."""
    from cli_zygote import exit_code, run

    # Encoded as a process's pipes encode them (strict UTF-8 on stdout: text that a process
    # could not print fails here too), then decoded as run_cli decodes them.
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict", newline="\n")
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="backslashreplace", newline="\n")
    argv = sys.argv
    sys.argv = ["equity-ledger", "--db", db, *args]
    try:
        with redirect_stdout(out), redirect_stderr(err):
            try:
                run()
                code = 0
            except SystemExit as e:
                code = exit_code(e)
    finally:
        sys.argv = argv
    streams = []
    for s in (out, err):
        s.flush()
        streams.append(s.buffer.getvalue().decode("utf-8", "replace"))
    return Run(code, *streams)


def write_jsonl(path: Path, commands: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(c, ensure_ascii=False) + "\n" for c in commands), encoding="utf-8")
    return path
