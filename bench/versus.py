"""This checkout against another installed version of equity-ledger, on the same plan, in one run.

    python -m bench.versus N --other-python PATH [--label NAME] [--reps 3] [--asof-reps 500]
                           [--vesting] [--seed S] [--workdir DIR] [--out NAME]

PATH is the interpreter of a venv where the other version is installed (for example the code
of an earlier commit: ``git worktree add /tmp/old COMMIT && python -m venv /tmp/venv-old &&
/tmp/venv-old/bin/pip install /tmp/old``). Both versions get the same generated plan of N
commands (``bench.generate``; ``--vesting`` for the plan whose terms vest) and run their own
console script, so each side pays its own start-up. Repetitions alternate (this, other, this,
other ...) so that a noisy neighbour hits both alike:

* ``apply`` into a fresh SQLite store, then ``projections rebuild`` and ``audit verify`` on it:
  wall seconds, CPU seconds of the child and its peak RSS (``bench.measure.run_child``);
* as-of ``holdings`` by person of the issuance with the most commands, in-process in each
  version's own interpreter (``projections.queries.holdings``), in rounds of 50 queries at
  random dates, alternating between the two versions.

Writes ``bench/results/NAME.md`` and ``.json`` (default ``versus-<label>-<N>``). There is no
raw baseline here: the other version is the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

from .generate import DEFAULT_SEED, plan_file
from .measure import BenchError, cli_prefix, median, percentile, run_child
from .suite import machine_info
from .vesting_asof import as_of_days

RESULTS = Path(__file__).resolve().parent / "results"
ROUND = 50  # as-of queries per turn of one version

# Run by each version's own interpreter: times queries.holdings in-process, one line of ms each.
_ASOF = """
import sys, time
from datetime import date
from sqlalchemy import create_engine
from equity_ledger.projections import queries
url, issuance, days = sys.argv[1], sys.argv[2], [date.fromisoformat(d) for d in sys.argv[3:]]
engine = create_engine(url)
with engine.connect() as conn:
    for d in days[:3]:
        queries.holdings(conn, "person", issuance, d)
    for d in days:
        t0 = time.perf_counter()
        queries.holdings(conn, "person", issuance, d)
        print((time.perf_counter() - t0) * 1000)
"""


def console_script(python: Path) -> list[str]:
    """The equity-ledger console script installed next to that interpreter."""
    script = python.parent / "equity-ledger"
    if not script.exists():
        raise BenchError(f"no equity-ledger script next to {python}")
    return [str(script)]


def verb_runs(cli: list[str], plan: Path, store: Path) -> dict[str, dict[str, float]]:
    """apply into a fresh store, then rebuild and verify it: seconds, CPU seconds, peak RSS."""
    url = f"sqlite:///{store}"
    out = {}
    for verb, args in (("apply", ["apply", str(plan), "--no-progress"]),
                       ("rebuild", ["projections", "rebuild"]),
                       ("verify", ["audit", "verify"])):
        run = run_child([*cli, "--db", url, *args])
        out[verb] = {"seconds": run.seconds, "cpu_seconds": run.cpu_seconds,
                     "peak_rss_mib": run.peak_rss_kib / 1024}
    return out


def asof_round(python: Path, store: Path, issuance: str, days: list[date]) -> list[float]:
    """One turn of in-process as-of queries in that interpreter: ms per query."""
    argv = [str(python), "-c", _ASOF, f"sqlite:///{store}", issuance, *(d.isoformat() for d in days)]
    # run from the store's folder: `python -c` puts the working directory first on sys.path, and
    # a source checkout there would shadow the other interpreter's installed package
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL, cwd=store.parent)
    if done.returncode != 0:
        raise BenchError(f"as-of queries under {python} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return [float(line) for line in done.stdout.split()]


def summary(runs: list[dict[str, dict[str, float]]], verb: str) -> dict[str, float]:
    return {k: median([r[verb][k] for r in runs]) for k in ("seconds", "cpu_seconds", "peak_rss_mib")}


def report_md(result: dict[str, Any]) -> str:
    label, n = result["label"], result["n"]
    lines = [
        f"# This checkout against {label}, {n:,} commands{' (vesting plan)' if result['vesting'] else ''}, SQLite",
        "",
        f"`python -m bench.versus {n} --label {label}` on {result['when']} ({result['machine']}; "
        f"load average at start / end {result['load'][0]:.1f} / {result['load'][1]:.1f}). "
        f"This checkout: {result['this']}; {label}: {result['other']}. "
        f"{result['events']:,} events; medians of {result['reps']} runs each, alternating.",
        "",
        f"| measure | {label} | this checkout | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for verb in ("apply", "rebuild", "verify"):
        o, t = result["verbs"]["other"][verb], result["verbs"]["this"][verb]
        lines.append(f"| {verb}, wall s | {o['seconds']:.2f} | {t['seconds']:.2f} | {t['seconds'] / o['seconds'] - 1:+.1%} |")
        lines.append(f"| {verb}, CPU s | {o['cpu_seconds']:.2f} | {t['cpu_seconds']:.2f} "
                     f"| {t['cpu_seconds'] / o['cpu_seconds'] - 1:+.1%} |")
        lines.append(f"| {verb}, peak RSS MiB | {o['peak_rss_mib']:.0f} | {t['peak_rss_mib']:.0f} "
                     f"| {t['peak_rss_mib'] / o['peak_rss_mib'] - 1:+.1%} |")
    for q in ("p50", "p90", "p99"):
        o, t = result["asof"]["other"][f"{q}_ms"], result["asof"]["this"][f"{q}_ms"]
        lines.append(f"| as-of holdings {q}, ms | {o:.1f} | {t:.1f} | {t / o - 1:+.1%} |")
    lines += [
        "",
        f"As-of: {result['asof']['this']['count']} queries per version on {result['issuance']} "
        f"({result['holders']:,} holders), rounds of {ROUND} alternating between the versions, each "
        "in its own interpreter. Wall times move with the machine's load; CPU seconds are the "
        "child's own work.",
        "",
    ]
    return "\n".join(lines)


def describe(python: Path) -> str:
    done = subprocess.run([*console_script(python), "--version"], capture_output=True, text=True)
    return done.stdout.strip() or "unknown version"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.versus", description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, help="commands in the plan")
    p.add_argument("--other-python", type=Path, required=True, help="interpreter of the other version's venv")
    p.add_argument("--label", default="other", help="the other version's name in the report")
    p.add_argument("--reps", type=int, default=3, help="apply/rebuild/verify runs per version (default 3)")
    p.add_argument("--asof-reps", type=int, default=500, help="as-of queries per version (default 500)")
    p.add_argument("--vesting", action="store_true", help="the plan whose terms vest")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", type=Path, default=None, help="keep the plan and stores here")
    p.add_argument("--out", default=None, help="results name in bench/results")
    a = p.parse_args(argv)
    other_py = a.other_python.absolute()  # a venv's python is a symlink: keep the venv's path
    sides = {"this": (Path(sys.executable), cli_prefix()), "other": (other_py, console_script(other_py))}
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="el-versus-") as tmp:
        work = (a.workdir or Path(tmp)).absolute()
        work.mkdir(parents=True, exist_ok=True)
        plan, meta = plan_file(work, a.n, a.seed, a.vesting)
        runs: dict[str, list[dict[str, dict[str, float]]]] = {"this": [], "other": []}
        stores: dict[str, Path] = {}
        for rep in range(a.reps):
            for side, (_py, cli) in sides.items():
                store = work / f"versus-{side}-{rep}.sqlite"
                store.unlink(missing_ok=True)
                runs[side].append(verb_runs(cli, plan, store))
                print(f"{side} #{rep + 1}: " + ", ".join(
                    f"{v} {r['seconds']:.1f} s" for v, r in runs[side][-1].items()), file=sys.stderr)
                if side in stores:
                    stores[side].unlink(missing_ok=True)
                stores[side] = store
        days = as_of_days(meta, a.asof_reps, random.Random(a.seed))
        times: dict[str, list[float]] = {"this": [], "other": []}
        for start in range(0, len(days), ROUND):
            for side, (py, _cli) in sides.items():
                times[side] += asof_round(py, stores[side], meta.query_issuance, days[start:start + ROUND])
    result = {
        "n": a.n, "seed": a.seed, "vesting": a.vesting, "label": a.label, "events": meta.events,
        "issuance": meta.query_issuance, "holders": meta.query_issuance_holders, "reps": a.reps,
        "when": time.strftime("%Y-%m-%d"), "load": [load0, os.getloadavg()[0]],
        "machine": f"{machine_info()['cpu_model']}, {platform.python_implementation()} {platform.python_version()}",
        "this": describe(sides["this"][0]), "other": describe(other_py),
        "verbs": {side: {v: summary(runs[side], v) for v in ("apply", "rebuild", "verify")} for side in sides},
        "runs": runs,
        "asof": {side: {"count": len(ms), "p50_ms": median(ms), "p90_ms": percentile(ms, 90),
                        "p99_ms": percentile(ms, 99)} for side, ms in times.items()},
    }
    name = a.out or f"versus-{a.label}-{a.n // 1000}k"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    md = report_md(result)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
