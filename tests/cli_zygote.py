"""A process that has imported the CLI once and forks a child for each CLI run a test asks for.

Run by :func:`helpers.run_cli` as ``python tests/cli_zygote.py FD`` (FD: its end of a Unix socket
pair). Starting Python and importing SQLAlchemy, typer and the ledger is most of the CPU of a
small CLI run, and the suite makes about a thousand of them (README, Tests). Each request brings the
child's stdin, stdout and stderr (pipes the test reads, passed as file descriptors), its argv,
environment and working directory; the child is a separate process with those streams, that
environment and directory, and runs the console script's entry point exactly as the installed
script does, then exits with its exit code (an uncaught exception: a traceback and 1, as Python
does). Only the interpreter's start and the imports are shared. This process itself runs no
thread and no test code; it ends when the test process closes the socket.

Protocol (one request at a time): the test sends a 4-byte length and a JSON request
({"args", "env", "cwd"}) with the three descriptors attached; this process answers with the
child's pid (4 bytes) and, when the child ends, its exit code as ``subprocess`` gives it
(4 bytes, signed: -N for a signal).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import socket
import struct
import sys
import traceback

from equity_ledger.cli.main import run  # the import every child shares (and ask_cli's)

# What the verbs import when they run (the CLI defers them so that `--help` starts fast): taken
# here once, so that a child only does the verb's own work. Importing early changes no behaviour.
_WARM = [
    "sqlalchemy", "sqlalchemy.dialects.sqlite.pysqlite", "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg", "eventsourcing.application", "rich.console", "rich.table", "rich.progress",
    "equity_ledger.ledger.service", "equity_ledger.ledger.audit",
    "equity_ledger.projections.projector", "equity_ledger.projections.queries",
    "equity_ledger.projections.history", "equity_ledger.projections.verify",
    "equity_ledger.projections.movements", "equity_ledger.projections.movements_read",
]


def warm() -> None:
    """Import what the verbs would import when they run."""
    for name in _WARM:
        try:
            __import__(name)
        except ImportError:  # a module renamed since: the child imports what it needs anyway
            pass


def exit_code(e: SystemExit) -> int:
    """The exit status Python gives a process that ends with this SystemExit (a code that is
    not a number is printed on stderr, status 1)."""
    if e.code is None:
        return 0
    if isinstance(e.code, int):
        return e.code
    print(e.code, file=sys.stderr)
    return 1


def _streams() -> None:
    """Fresh sys.stdin/stdout/stderr on fds 0-2, encoded as a new interpreter encodes them."""
    enc = {name: (getattr(sys, f"__{name}__").encoding, getattr(sys, f"__{name}__").errors)
           for name in ("stdin", "stdout", "stderr")}
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)),
                                 encoding=enc["stdin"][0], errors=enc["stdin"][1])
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)),
                                  encoding=enc["stdout"][0], errors=enc["stdout"][1])
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                  encoding=enc["stderr"][0], errors=enc["stderr"][1], line_buffering=True)


def _child(sock: socket.socket, request: dict, fds: list[int]) -> None:
    """Runs in the forked child and never returns. It ends as an interpreter ends (the exit
    handlers run, such as a library's clean-up of its temporary files; stdout and stderr are
    flushed, and a failed flush exits 120), but without tearing every module down, which would
    cost as much again as the run itself."""
    code = 1
    try:
        sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        _streams()
        sys.argv = ["equity-ledger", *request["args"]]
        try:
            run()
            code = 0
        except SystemExit as e:
            code = exit_code(e)
        except BaseException:
            traceback.print_exc()
            code = 1
    finally:
        try:
            atexit._run_exitfuncs()
        except BaseException:
            pass  # as at a normal exit: a failing handler is reported by atexit and ignored
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                code = 120  # what Python exits with when it cannot flush a standard stream
        os._exit(code)


def _recv_exact(sock: socket.socket, n: int, head: bytes = b"") -> bytes:
    data = head
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data


def serve(sock: socket.socket) -> None:
    while True:
        try:
            first, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
        except OSError:
            return
        if not first:
            return  # the test process is gone
        size = struct.unpack(">I", _recv_exact(sock, 4, first[:4]))[0]
        body = _recv_exact(sock, 4 + size, first)[4:]
        request = json.loads(body)
        pid = os.fork()
        if pid == 0:
            _child(sock, request, fds)
        for fd in fds:
            os.close(fd)
        sock.sendall(struct.pack(">i", pid))
        _, status = os.waitpid(pid, 0)
        sock.sendall(struct.pack(">i", os.waitstatus_to_exitcode(status)))


if __name__ == "__main__":
    warm()
    serve(socket.socket(fileno=int(sys.argv[1])))
