"""The benchmark suite behind `python -m bench` (see bench/README.md).

Every figure is a ratio against a raw baseline measured in the same run, on the same machine
and database engine, several repetitions, median reported. Ratios read as "fraction of the raw
speed" (ledger rate / raw rate, or raw time / ledger time): 1.0 = as fast as the raw floor.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from . import report
from .backends import PostgresBackend, SQLiteBackend
from .generate import DEFAULT_SEED, PlanMeta, plan_file
from .measure import BenchError, cli_prefix, median, percentile, run_child

RESULTS = Path(__file__).resolve().parent / "results"
FULL_SIZES = [10_000, 100_000, 1_000_000]
SMOKE_SIZES = [2_000]

# Targets from the issue. Ratios are ledger / raw (higher is better).
TARGET_APPLY_RATIO = 0.25
TARGET_REBUILD_RATIO = 0.50
TARGET_HOLDINGS_P50_MS = 50.0
TARGET_HOLDINGS_P99_MS = 200.0
TARGET_COLD_START_MS = 300.0
TARGET_RSS_GROWTH = 1.5  # peak RSS at the largest size / at a 10x smaller size: "flat"

_APPLIED = re.compile(r"applied (\d+) commands \((\d+) events\)")
_REBUILT = re.compile(r"rebuilt the projections from (\d+) events")
_VERIFIED = re.compile(r"audit: OK: (\d+) events")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- environment
def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        cpu = platform.processor()
    ram = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu,
        "ram_gib": round(ram / 2**30, 1),
        "platform": platform.platform(),
    }


def versions(backends: list[Any]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    import sqlite3

    out["sqlite"] = sqlite3.sqlite_version
    for dist in ("equity-ledger", "eventsourcing", "sqlalchemy", "psycopg", "typer"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "not installed"
    for b in backends:
        if b.name == "postgresql":
            out["postgres server"] = b.version()
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        if head:
            out["product commit"] = head + (" (+ uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return out


# --------------------------------------------------------------------------- the run
class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.smoke = args.smoke
        self.cli = cli_prefix()
        self.errors: list[dict[str, str]] = []
        self.results: dict[str, Any] = {"backends": {}}
        self.env = dict(os.environ)
        self.env.pop("EQUITY_LEDGER_DB", None)
        # The CLI's own progress bars are off (no terminal); keep the child's output plain.
        self.env["NO_COLOR"] = "1"
        self.env.setdefault("COLUMNS", "200")

    # ..................................................................... helpers
    def save_partial(self) -> None:
        """Write what is measured so far (a killed long run still leaves its figures)."""
        base = self.args.out or ("smoke" if self.smoke else "latest")
        try:
            RESULTS.mkdir(exist_ok=True)
            snapshot = dict(self.results, errors=self.errors, partial=True)
            (RESULTS / f"{base}.partial.json").write_text(
                json.dumps(snapshot, indent=1, ensure_ascii=False, default=str))
        except OSError as e:
            log(f"cannot write partial results: {e}")

    def child(self, *argv: str, check: bool = True):
        return run_child([*self.cli, *argv], env=self.env, check=check)

    def guarded(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one measurement; an error is recorded (the run exits 1) and the run goes on."""
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - every failure is reported, none is fatal
            log(f"ERROR in {what}: {type(e).__name__}: {e}")
            self.errors.append({"what": what, "error": f"{type(e).__name__}: {e}",
                                "traceback": traceback.format_exc(limit=8)})
            return None

    # ..................................................................... measurements
    def measure_size(self, backend: Any, n: int, plan: Path, meta: PlanMeta, reps: int) -> tuple[dict, str | None]:
        """apply (vs the floor), rebuild and verify (vs the raw read) for one size."""
        tag = f"{backend.name} n={n:,}"
        out: dict[str, Any] = {"commands": meta.commands, "events": meta.events}
        apply_runs, floor_runs, rss, cpu = [], [], [], []
        store: str | None = None
        for rep in range(reps):
            floor_runs.append(backend.apply_floor(plan))
            url = backend.fresh(f"n{n}")
            run = self.child("--db", url, "apply", str(plan), "--no-progress")
            m = _APPLIED.search(run.stdout)
            if not m or int(m.group(1)) != meta.commands or int(m.group(2)) != meta.events:
                backend.drop(url)
                raise BenchError(f"{tag}: apply reported {run.stdout.strip()!r}, expected "
                                 f"{meta.commands} commands ({meta.events} events)")
            apply_runs.append(run.seconds)
            rss.append(run.peak_rss_kib)
            cpu.append(run.cpu_seconds)
            if store is not None:
                backend.drop(store)
            store = url
            log(f"{tag}: apply {rep + 1}/{reps}: {run.seconds:.2f} s ({meta.commands / run.seconds:,.0f} cmd/s), "
                f"CPU {run.cpu_seconds:.2f} s, floor {floor_runs[-1]:.2f} s, peak RSS {run.peak_rss_kib / 1024:.0f} MiB")
        t, f = median(apply_runs), median(floor_runs)
        out["apply"] = {
            "runs_s": apply_runs, "median_s": t, "commands_per_s": meta.commands / t,
            "events_per_s": meta.events / t, "peak_rss_kib": max(rss),
            "floor_runs_s": floor_runs, "floor_median_s": f, "floor_commands_per_s": meta.commands / f,
            "ratio": f / t, "cpu_runs_s": cpu, "cpu_median_s": median(cpu),
        }
        out["store_bytes"] = backend.size_bytes(store)
        for verb, argv, pattern in (
            ("rebuild", ("projections", "rebuild"), _REBUILT),
            ("verify", ("audit", "verify"), _VERIFIED),
        ):
            out[verb] = self.guarded(f"{tag} {verb}",
                                     lambda: self._vs_raw_read(backend, store, verb, argv, pattern, meta, reps))
        return out, store

    def _vs_raw_read(self, backend: Any, store: str, verb: str, argv: tuple[str, ...], pattern: re.Pattern,
                     meta: PlanMeta, reps: int) -> dict:
        runs, raws, copies, rss, cpu = [], [], [], [], []
        copied = 0
        for rep in range(reps):
            raw_s, n_raw = backend.raw_read(store)
            if n_raw != meta.events:
                raise BenchError(f"raw read found {n_raw} events, expected {meta.events}")
            raws.append(raw_s)
            run = self.child("--db", store, *argv)
            m = pattern.search(run.stdout)
            if not m or int(m.group(1)) != meta.events:
                raise BenchError(f"{verb} reported {run.stdout.strip()[:300]!r}, expected {meta.events} events")
            runs.append(run.seconds)
            rss.append(run.peak_rss_kib)
            cpu.append(run.cpu_seconds)
            extra = ""
            if verb == "rebuild":  # a rebuild also writes the read model: its floor includes that
                copy_s, copied = backend.raw_copy(store)
                copies.append(copy_s)
                extra = f", raw copy of its {copied:,} rows {copy_s:.2f} s"
            log(f"{backend.name} n={meta.commands:,}: {verb} {rep + 1}/{reps}: {run.seconds:.2f} s "
                f"({meta.events / run.seconds:,.0f} ev/s), CPU {run.cpu_seconds:.2f} s, raw read {raw_s:.2f} s{extra}, "
                f"peak RSS {run.peak_rss_kib / 1024:.0f} MiB")
        t, r = median(runs), median(raws)
        out = {"runs_s": runs, "median_s": t, "events_per_s": meta.events / t, "raw_runs_s": raws,
               "raw_median_s": r, "raw_events_per_s": meta.events / r, "ratio": r / t,
               "peak_rss_kib": max(rss), "cpu_runs_s": cpu, "cpu_median_s": median(cpu)}
        if copies:
            c = median(copies)
            out.update({"rows_written": copied, "copy_runs_s": copies, "copy_median_s": c,
                        "read_write_floor_s": r + c, "ratio_read_write": (r + c) / t})
        return out

    def measure_holdings(self, backend: Any, store: str, meta: PlanMeta) -> dict:
        """As-of holdings of one issuance: in-process (many reps), raw SQL, a few CLI calls."""
        from sqlalchemy import create_engine

        from equity_ledger.projections import queries

        reps = self.args.holdings_reps
        rng = random.Random(self.args.seed)
        first = date.fromisoformat(meta.query_issuance_from)
        last = date.fromisoformat(meta.last_day) + timedelta(days=30)
        days = [first + timedelta(days=rng.randrange((last - first).days + 1)) for _ in range(reps)]
        issuance = meta.query_issuance
        engine = create_engine(store)
        raw_query, raw_close = backend.raw_holdings_session(store)
        times, raw_times, rows = [], [], []
        try:
            with engine.connect() as conn:
                for d in days[:3]:  # warm-up: connection, statement caches
                    queries.holdings(conn, "person", issuance, d)
                    raw_query(issuance, d)
                for d in days:
                    t0 = time.perf_counter()
                    result = queries.holdings(conn, "person", issuance, d)
                    t1 = time.perf_counter()
                    raw_rows = raw_query(issuance, d)
                    t2 = time.perf_counter()
                    if len(result) != raw_rows:
                        raise BenchError(f"holdings as of {d}: {len(result)} rows, raw SQL {raw_rows}")
                    times.append(t1 - t0)
                    raw_times.append(t2 - t1)
                    rows.append(len(result))
        finally:
            raw_close()
            engine.dispose()
        cli_runs = []
        for d in days[: self.args.cli_reps]:
            run = self.child("--db", store, "holdings", "--by", "person", "--issuance", issuance,
                             "--as-of", d.isoformat(), "--format", "json")
            if len(json.loads(run.stdout)) != rows[days.index(d)]:
                raise BenchError("holdings CLI and in-process query disagree")
            cli_runs.append(run.seconds)
        ms = [t * 1000 for t in times]
        raw_ms = [t * 1000 for t in raw_times]
        p50, raw_p50 = median(ms), median(raw_ms)
        out = {
            "store_events": meta.events, "issuance": issuance, "reps": reps,
            "rows_median": median(rows), "rows_max": max(rows),
            "p50_ms": p50, "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99), "max_ms": max(ms),
            "raw_p50_ms": raw_p50, "raw_p99_ms": percentile(raw_ms, 99), "ratio": raw_p50 / p50,
            "cli_runs_s": cli_runs, "cli_median_ms": median(cli_runs) * 1000 if cli_runs else None,
        }
        log(f"{backend.name}: holdings over {meta.events:,} events: p50 {p50:.1f} ms, p99 {out['p99_ms']:.1f} ms, "
            f"raw p50 {raw_p50:.1f} ms, CLI median {out['cli_median_ms'] or 0:.0f} ms")
        return out

    def measure_cold_query(self, backend: Any, store: str, meta: PlanMeta) -> dict:
        """A small query through the CLI, from process start, against the same query in bare Python."""
        script = backend.raw_query_script(store, meta.query_issuance)
        cli, raw, sa = [], [], []
        for _ in range(self.args.cold_reps):
            raw.append(run_child([sys.executable, "-c", script], env=self.env).seconds)
            # The floor of any query that goes through SQLAlchemy (which owns the read models).
            sa.append(run_child([sys.executable, "-c", "import sqlalchemy"], env=self.env).seconds)
            cli.append(self.child("--db", store, "holdings", "--by", "group", "--issuance", meta.query_issuance,
                                  "--format", "json").seconds)
        t, r, s = median(cli), median(raw), median(sa)
        log(f"{backend.name}: cold small query {t * 1000:.0f} ms (raw python {r * 1000:.0f} ms, "
            f"import sqlalchemy {s * 1000:.0f} ms)")
        return {"store_events": meta.events, "runs_s": cli, "median_ms": t * 1000, "raw_runs_s": raw,
                "raw_median_ms": r * 1000, "ratio": r / t, "sqlalchemy_runs_s": sa,
                "sqlalchemy_median_ms": s * 1000}

    def measure_cold_help(self) -> dict:
        cli, raw, rss = [], [], []
        for _ in range(self.args.cold_reps):
            r = run_child([sys.executable, "-c", "pass"], env=self.env)
            raw.append(r.seconds)
            rss.append(r.peak_rss_kib)
            cli.append(self.child("--help").seconds)
        t, r = median(cli), median(raw)
        log(f"cold --help {t * 1000:.0f} ms (python -c pass {r * 1000:.0f} ms)")
        return {"runs_s": cli, "median_ms": t * 1000, "raw_runs_s": raw, "raw_median_ms": r * 1000,
                "ratio": r / t, "python_peak_rss_kib": max(rss)}

    def cache_bytecode(self, work: Path) -> str:
        """Let the measured processes start as an installed program does, from compiled bytecode.

        With PYTHONDONTWRITEBYTECODE set (as on the development machines), a product installed
        in editable mode has no .pyc files: every process would compile all of its own modules
        from source, a cost no installed copy pays (pip compiles them at install time) and one
        that grows with the number of modules. The children then write and reuse bytecode under
        the work folder (PYTHONPYCACHEPREFIX); one warm-up run compiles it.
        """
        if not self.env.get("PYTHONDONTWRITEBYTECODE"):
            return "as the environment has it"
        self.env.pop("PYTHONDONTWRITEBYTECODE")
        self.env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
        self.child("--help")
        return "PYTHONDONTWRITEBYTECODE was set: children cache bytecode under the work folder"

    # ..................................................................... orchestration
    def run(self) -> int:
        a = self.args
        work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="equity-ledger-bench-"))
        work.mkdir(parents=True, exist_ok=True)
        backends: list[Any] = []
        if not a.no_sqlite:
            backends.append(SQLiteBackend(work))
        if a.pg:
            backends.append(PostgresBackend(a.pg, os.environ.get("EQUITY_LEDGER_TEST_PG_ADMIN_URL")))
        if not backends:
            raise SystemExit("nothing to measure: --no-sqlite and no PostgreSQL URL")
        bytecode = self.cache_bytecode(work)
        started = time.perf_counter()
        self.results["meta"] = {
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "mode": "smoke" if self.smoke else "full",
            "argv": sys.argv[1:],
            "seed": a.seed, "sizes": a.sizes, "reps": a.reps, "large_reps": a.large_reps,
            "holdings_reps": a.holdings_reps, "cli": " ".join(self.cli),
            "backends": [b.name if b.name == "sqlite" else f"postgresql ({b.display})" for b in backends],
            "machine": machine_info(),
            "loadavg_start": list(os.getloadavg()),
            "versions": self.guarded("versions", lambda: versions(backends)) or {},
            "bytecode": bytecode,
        }
        log(f"sizes {a.sizes}, reps {a.reps}, backends {[b.name for b in backends]}, work dir {work}")

        plans: dict[int, tuple[Path, PlanMeta]] = {}
        self.results["plans"] = {}
        for n in a.sizes:
            t0 = time.perf_counter()
            plans[n] = plan_file(work, n, a.seed)
            took = time.perf_counter() - t0
            self.results["plans"][str(n)] = {**asdict(plans[n][1]), "file_bytes": plans[n][0].stat().st_size,
                                             "prepare_s": took}
            log(f"plan n={n:,}: {plans[n][1].events:,} events, {plans[n][1].holders:,} holders "
                f"({took:.1f} s)")

        for b in backends:
            res: dict[str, Any] = {"sizes": {}}
            self.results["backends"][b.name] = res
            stores: dict[int, str] = {}
            for n in a.sizes:
                plan, meta = plans[n]
                reps = a.large_reps if n >= 500_000 else a.reps
                got = self.guarded(f"{b.name} n={n:,}", lambda: self.measure_size(b, n, plan, meta, reps))
                if got is not None:
                    res["sizes"][str(n)], stores[n] = got
                self.save_partial()
            if stores:
                big, small = max(stores), min(stores)
                res["holdings"] = self.guarded(f"{b.name} holdings",
                                               lambda: self.measure_holdings(b, stores[big], plans[big][1]))
                res["cold_query"] = self.guarded(f"{b.name} cold query",
                                                 lambda: self.measure_cold_query(b, stores[small], plans[small][1]))
                self.save_partial()
            if not a.keep:
                for url in stores.values():
                    self.guarded(f"{b.name} drop", lambda: b.drop(url))
            else:
                res["kept_stores"] = {str(k): v for k, v in stores.items()}
        self.results["cold_help"] = self.guarded("cold --help", self.measure_cold_help)
        self.results["targets"] = targets(self.results, self.smoke)
        self.results["errors"] = self.errors
        self.results["meta"]["took_s"] = time.perf_counter() - started
        self.results["meta"]["loadavg_end"] = list(os.getloadavg())

        RESULTS.mkdir(exist_ok=True)
        base = a.out or ("smoke" if self.smoke else "latest")
        md = report.markdown(self.results)
        (RESULTS / f"{base}.json").write_text(json.dumps(self.results, indent=1, ensure_ascii=False, default=str))
        (RESULTS / f"{base}.md").write_text(md)
        (RESULTS / f"{base}.partial.json").unlink(missing_ok=True)
        print(md)
        print(report.verdict_lines(self.results, self.smoke))
        log(f"results: {RESULTS / (base + '.md')} and .json ({self.results['meta']['took_s']:.0f} s)")
        if not a.workdir and not a.keep:
            _rmtree(work)
        if self.errors:
            log(f"{len(self.errors)} error(s): " + "; ".join(e["what"] for e in self.errors))
            return 1
        if a.strict and any(t["verdict"] == "MISS" for t in self.results["targets"]):
            return 2
        return 0


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- targets
def targets(results: dict[str, Any], smoke: bool) -> list[dict[str, Any]]:
    """Each target with its measured value and PASS / MISS (n/a where it was not measured)."""
    out: list[dict[str, Any]] = []

    def add(name: str, backend: str, scope: str, value: float | None, goal: str, ok: bool | None, shown: str) -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "MISS")
        out.append({"target": name, "backend": backend, "scope": scope, "value": value, "goal": goal,
                    "shown": shown, "verdict": verdict})

    for bname, res in results["backends"].items():
        sizes = res.get("sizes", {})
        for n, r in sizes.items():
            ap = r.get("apply")
            if ap:
                add("apply vs floor", bname, f"{int(n):,} commands", ap["ratio"], f">= {TARGET_APPLY_RATIO:.0%}",
                    ap["ratio"] >= TARGET_APPLY_RATIO,
                    f"{ap['ratio']:.1%} ({ap['commands_per_s']:,.0f} vs {ap['floor_commands_per_s']:,.0f} cmd/s)")
            rb = r.get("rebuild")
            if rb:
                add("rebuild vs raw read", bname, f"{r['events']:,} events", rb["ratio"],
                    f">= {TARGET_REBUILD_RATIO:.0%}", rb["ratio"] >= TARGET_REBUILD_RATIO,
                    f"{rb['ratio']:.1%} ({rb['events_per_s']:,.0f} vs {rb['raw_events_per_s']:,.0f} ev/s)")
                if rb.get("ratio_read_write"):
                    add("rebuild vs raw read + raw copy of its rows", bname, f"{r['events']:,} events",
                        rb["ratio_read_write"], "(no target: reported)", None,
                        f"{rb['ratio_read_write']:.1%} ({rb['median_s']:.2f} s vs {rb['raw_median_s']:.2f} + "
                        f"{rb['copy_median_s']:.2f} s for {rb['rows_written']:,} rows)")
            vf = r.get("verify")
            if vf:
                add("verify vs raw read", bname, f"{r['events']:,} events", vf["ratio"], "(no target: reported)",
                    None, f"{vf['ratio']:.1%} ({vf['events_per_s']:,.0f} vs {vf['raw_events_per_s']:,.0f} ev/s)")
        h = res.get("holdings")
        if h:
            scope = f"store of {h['store_events']:,} events" + ("" if h["store_events"] >= 1_000_000 else " (< 1M)")
            add("holdings p50", bname, scope, h["p50_ms"], f"< {TARGET_HOLDINGS_P50_MS:.0f} ms",
                h["p50_ms"] < TARGET_HOLDINGS_P50_MS, f"{h['p50_ms']:.1f} ms (raw SQL {h['raw_p50_ms']:.1f} ms)")
            add("holdings p99", bname, scope, h["p99_ms"], f"< {TARGET_HOLDINGS_P99_MS:.0f} ms",
                h["p99_ms"] < TARGET_HOLDINGS_P99_MS, f"{h['p99_ms']:.1f} ms (raw SQL {h['raw_p99_ms']:.1f} ms)")
        c = res.get("cold_query")
        if c:
            add("cold start: small query", bname, f"store of {c['store_events']:,} events", c["median_ms"],
                f"< {TARGET_COLD_START_MS:.0f} ms", c["median_ms"] < TARGET_COLD_START_MS,
                f"{c['median_ms']:.0f} ms (bare python + driver {c['raw_median_ms']:.0f} ms)")
        # Flat memory: peak RSS at the largest size against a 10x smaller one (else the next smaller).
        ns = sorted(int(n) for n in sizes)
        if len(ns) >= 2:
            big = ns[-1]
            ref = big // 10 if big // 10 in ns else ns[-2]
            for verb in ("apply", "rebuild", "verify"):
                a, b = (sizes[str(big)].get(verb), sizes[str(ref)].get(verb))
                if a and b:
                    g = a["peak_rss_kib"] / b["peak_rss_kib"]
                    add(f"peak RSS flat: {verb}", bname, f"{ref:,} -> {big:,} commands", g,
                        f"<= {TARGET_RSS_GROWTH}x", g <= TARGET_RSS_GROWTH,
                        f"{b['peak_rss_kib'] / 1024:.0f} -> {a['peak_rss_kib'] / 1024:.0f} MiB ({g:.2f}x)")
    ch = results.get("cold_help")
    if ch:
        add("cold start: --help", "-", "-", ch["median_ms"], f"< {TARGET_COLD_START_MS:.0f} ms",
            ch["median_ms"] < TARGET_COLD_START_MS,
            f"{ch['median_ms']:.0f} ms (python -c pass {ch['raw_median_ms']:.0f} ms)")
    return out


# --------------------------------------------------------------------------- entry point
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="equity-ledger benchmarks: apply, rebuild, verify, as-of holdings, cold start, peak RSS; "
                    "each against a raw baseline measured in the same run.",
    )
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes, 1 repetition (CI): fails on errors only, never on missed targets")
    p.add_argument("--sizes", type=_sizes, default=None,
                   help="comma-separated command counts (default 10000,100000,1000000; smoke 2000)")
    p.add_argument("--reps", type=int, default=None, help="repetitions per measurement (default 3; smoke 1)")
    p.add_argument("--large-reps", type=int, default=None,
                   help="repetitions for sizes >= 500,000 (default: --reps)")
    p.add_argument("--holdings-reps", type=int, default=None, help="in-process holdings queries (default 500; smoke 30)")
    p.add_argument("--cli-reps", type=int, default=None, help="holdings CLI invocations (default 5; smoke 2)")
    p.add_argument("--cold-reps", type=int, default=None, help="cold-start invocations (default 10; smoke 2)")
    p.add_argument("--pg", default=None, help="PostgreSQL server URL (default $EQUITY_LEDGER_TEST_PG_URL); "
                                              "a fresh database is created on it per measurement")
    p.add_argument("--no-pg", action="store_true", help="ignore $EQUITY_LEDGER_TEST_PG_URL")
    p.add_argument("--no-sqlite", action="store_true", help="PostgreSQL only")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", default=None,
                   help="where command files and SQLite stores go (kept; command files are reused); "
                        "default: a temporary folder removed at the end")
    p.add_argument("--keep", action="store_true", help="keep the stores (SQLite files, PostgreSQL databases)")
    p.add_argument("--out", default=None, help="results base name in bench/results (default latest; smoke: smoke)")
    p.add_argument("--strict", action="store_true", help="exit 2 when a target is missed (full runs)")
    a = p.parse_args(argv)
    a.sizes = a.sizes or (SMOKE_SIZES if a.smoke else FULL_SIZES)
    a.reps = a.reps or (1 if a.smoke else 3)
    a.large_reps = a.large_reps or a.reps
    a.holdings_reps = a.holdings_reps or (30 if a.smoke else 500)
    a.cli_reps = a.cli_reps if a.cli_reps is not None else (2 if a.smoke else 5)
    a.cold_reps = a.cold_reps or (2 if a.smoke else 10)
    if a.no_pg:
        a.pg = None
    else:
        a.pg = a.pg or os.environ.get("EQUITY_LEDGER_TEST_PG_URL") or None
    if a.smoke and a.strict:
        p.error("--strict makes no sense with --smoke (smoke never fails on targets)")
    return a


def _sizes(text: str) -> list[int]:
    try:
        sizes = sorted({int(s.replace("_", "")) for s in text.split(",") if s.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or sizes[0] < 50:
        raise argparse.ArgumentTypeError("sizes must be >= 50 commands")
    return sizes


def _terminated(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminated)
    try:
        return Run(args).run()
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'SIGINT'}); figures so far are in bench/results/*.partial.json")
        return 130
    except Exception:  # noqa: BLE001 - a crash of the harness itself is an error too
        traceback.print_exc()
        return 1


__all__ = ["main", "targets"]
