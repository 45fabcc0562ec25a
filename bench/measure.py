"""Timing and memory of child processes, and small statistics helpers.

A child's wall time is measured from just before `fork` to its exit (process start included).
Its peak RSS comes from `os.wait4`, which returns the rusage of that one child (its
`ru_maxrss`, in KiB on Linux, is the child's VmHWM): unlike `getrusage(RUSAGE_CHILDREN)`, it
is not a maximum over every child reaped so far, so a small run measured after a big one is
not hidden by it.

The child is not forked from the benchmark itself: Linux counts the pages a child shares with
its parent between `fork` and `exec` in its peak RSS, so every child of a 90 MiB benchmark
process would "peak" at 90 MiB at least. A small launcher (`_SPAWN`, a fresh interpreter of
~10 MiB) forks and execs the measured command, times it and reads its rusage, and writes
`seconds maxrss status` to a file; the floor under every peak is then that of a bare Python.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence


class BenchError(RuntimeError):
    """Something the benchmark ran failed (not a missed target): the run exits non-zero."""


@dataclass
class ChildRun:
    seconds: float
    peak_rss_kib: int
    returncode: int
    stdout: str
    stderr: str
    # user + system CPU seconds of the child: its own work, which other processes competing for
    # the CPUs stretch far less than its wall time (PostgreSQL's server-side work is not in it)
    cpu_seconds: float = 0.0


def cli_prefix() -> list[str]:
    """The real console script next to this interpreter (what a user runs)."""
    here = Path(sys.executable).parent / "equity-ledger"
    if here.exists():
        return [str(here)]
    found = shutil.which("equity-ledger")
    if found:
        return [found]
    return [sys.executable, "-m", "equity_ledger.cli"]


_SPAWN = """
import os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
took = time.perf_counter() - start
with open(report, "w") as f:
    f.write(f"{took!r} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)} {usage.ru_utime + usage.ru_stime!r}")
"""


def run_child(argv: Sequence[str], env: dict[str, str] | None = None, check: bool = True,
              cwd: str | None = None) -> ChildRun:
    """Run argv to completion; wall seconds (fork to exit), peak RSS, CPU seconds, output."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".spawn") as report:
        launcher = [sys.executable, "-c", _SPAWN, report.name, *argv]
        code = subprocess.call(launcher, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        fields = report.read().split()
        if len(fields) != 4:
            raise BenchError(f"launcher exited {code} without a report for `{' '.join(argv)}`")
        took, rss, returncode, cpu = float(fields[0]), int(fields[1]), int(fields[2]), float(fields[3])
        out.seek(0)
        err.seek(0)
        run = ChildRun(took, rss, returncode,
                       out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"), cpu)
    if check and run.returncode != 0:
        shown = " ".join(argv)
        raise BenchError(f"`{shown}` exited {run.returncode}: {run.stderr.strip()[-2000:]}")
    return run


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of a non-empty sample."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return float(s[k])


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return time.perf_counter() - start, value
