"""What a filtered history costs: `history --holder X` and `history --issuance X` through the
history index, against the full scan of the log they replaced, measured in the same run.

    python -m bench.history [N] [--pg URL] [--no-sqlite] [--store URL] [--workdir DIR]

For each backend: the bench plan of N commands (default 100,000; `bench.generate`) is applied
through the CLI into a fresh store (or `--store URL` names a store already applied, e.g. a 1M
one built in the background), then four filters are measured: the holder with the most events,
a holder with the median number, the issuance with the fewest events and the one with the most.
Each is timed in-process (open a read view, read the answer as the CLI does: median and worst
of `--reps`), through the CLI from process start (`--format json`, median of `--cli-reps`,
next to `python -c pass`), and by the full scan (the answer before the index, `--scan-reps`).
At sizes up to `--rebuild-max` it also times `projections rebuild` with and without the index
writes, in-process. Writes bench/results/history-<backend>-<N>.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from .backends import PostgresBackend, SQLiteBackend
from .generate import DEFAULT_SEED, plan_file
from .measure import cli_prefix, median, run_child

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 200.0


def log(msg: str) -> None:
    print(f"[bench.history {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pick_filters(url: str) -> list[tuple[str, str, int]]:
    """(option, value, events shown) for the filters measured, read from the store's index."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            holders = conn.execute(text(
                "SELECT holder, COUNT(*) FROM proj_history_holders GROUP BY holder ORDER BY 2, 1")).all()
            issuances = conn.execute(text(
                "SELECT issuance, COUNT(*) FROM proj_history_issuances GROUP BY issuance ORDER BY 2, 1")).all()
    finally:
        engine.dispose()
    typical = holders[len(holders) // 2]
    return [
        ("--holder", holders[-1][0], int(holders[-1][1])),
        ("--holder", typical[0], int(typical[1])),
        ("--issuance", issuances[0][0], int(issuances[0][1])),
        ("--issuance", issuances[-1][0], int(issuances[-1][1])),
    ]


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def measure_store(url: str, kind: str, reps: int, cli_reps: int, scan_reps: int) -> dict[str, Any]:
    from sqlalchemy import create_engine

    from equity_ledger.bootstrap import Books
    from equity_ledger.ledger.log import LogReader
    from equity_ledger.projections.history import history_rows

    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    env.pop("EQUITY_LEDGER_DB", None)
    cli = cli_prefix()
    floor = median([run_child([sys.executable, "-c", "pass"], env=env).seconds for _ in range(cli_reps)])
    out: dict[str, Any] = {"python_start_ms": floor * 1000, "filters": []}
    books = Books(url)
    try:
        with books.reading() as view:
            out["events"] = view.status.head
        for option, value, shown in pick_filters(url):
            key = option.lstrip("-")

            def indexed() -> list[dict[str, Any]]:
                with books.reading() as view:
                    return list(history_rows(view.log, **{key: value}))

            indexed()  # warm-up: engine, statement caches
            runs, rows = [], None
            for _ in range(reps):
                s, rows = timed(indexed)
                runs.append(s * 1000)
            engine = create_engine(books.config.sqlalchemy_url)
            try:
                scans = []
                for _ in range(scan_reps):
                    s, scanned = timed(lambda: list(history_rows(LogReader(engine, kind), **{key: value})))
                    scans.append(s * 1000)
                    if scanned != rows:
                        raise SystemExit(f"history {option} {value}: the index and the scan disagree")
            finally:
                engine.dispose()
            clis = []
            for _ in range(cli_reps):
                run = run_child([*cli, "--db", url, "history", option, value, "--format", "json"], env=env)
                if len(json.loads(run.stdout)) != len(rows):
                    raise SystemExit(f"history {option} {value}: CLI and in-process disagree")
                clis.append(run.seconds * 1000)
            got = {
                "filter": f"{option} {value}", "rows": len(rows), "index_rows": shown,
                "p50_ms": median(runs), "max_ms": max(runs), "cli_median_ms": median(clis),
                "scan_median_ms": median(scans), "speedup": median(scans) / median(runs),
            }
            out["filters"].append(got)
            log(f"{kind}: history {got['filter']}: {len(rows)} rows, p50 {got['p50_ms']:.1f} ms "
                f"(max {got['max_ms']:.1f}), CLI {got['cli_median_ms']:.0f} ms, scan {got['scan_median_ms']:.0f} ms")
    finally:
        books.close()
    return out


def measure_rebuild(url: str, reps: int = 3) -> dict[str, Any]:
    """`projections rebuild` in-process, with and without the history index's writes."""
    from equity_ledger.bootstrap import Books
    from equity_ledger.projections import history_index

    def rebuild() -> float:
        books = Books(url)
        try:
            s, _n = timed(books.projector.rebuild)
            return s
        finally:
            books.close()

    real = history_index.HistoryIndexWriter.execute
    with_index, without = [], []
    try:
        for _ in range(reps):  # interleaved, so that a change in the machine's load hits both
            history_index.HistoryIndexWriter.execute = real  # type: ignore[method-assign]
            with_index.append(rebuild())
            history_index.HistoryIndexWriter.execute = lambda self, conn, batch: None  # type: ignore[method-assign]
            without.append(rebuild())
    finally:
        history_index.HistoryIndexWriter.execute = real  # type: ignore[method-assign]
        rebuild()  # leave the store with its index
    w, wo = min(with_index), min(without)
    log(f"rebuild {w:.2f} s with the history index, {wo:.2f} s without ({(w / wo - 1) * 100:+.0f}%)")
    return {"with_index_s": with_index, "without_index_s": without, "overhead": w / wo - 1}


def markdown(res: dict[str, Any]) -> str:
    lines = [
        f"# History by holder and by issuance: {res['backend']}, {res['events']:,} events",
        "",
        f"`python -m bench.history` ({res['date']}, {res['machine']['nproc']} cores of "
        f"{res['machine']['cpu_model'] or 'an unknown CPU'}, load average at start "
        f"{res['loadavg_start']}). In-process: median and worst of {res['reps']} reads, each opening a "
        "read view and reading the whole answer as the CLI does (rows decoded, not printed). CLI: "
        "`equity-ledger history ... --format json` from process start, median of "
        f"{res['cli_reps']} (`python -c pass` takes {res['python_start_ms']:.0f} ms here). Scan: "
        "the same answer by streaming every event, as before the index.",
        "",
        "| filter | rows | in-process p50 | worst | CLI | full scan | scan / index |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for f in res["filters"]:
        lines.append(f"| `{f['filter']}` | {f['rows']:,} | {f['p50_ms']:.1f} ms | {f['max_ms']:.1f} ms | "
                     f"{f['cli_median_ms']:.0f} ms | {f['scan_median_ms']:,.0f} ms | {f['speedup']:,.0f}x |")
    rb = res.get("rebuild")
    if rb:
        lines += ["", f"`projections rebuild` in-process, best of {len(rb['with_index_s'])} (interleaved): {min(rb['with_index_s']):.2f} s writing the "
                  f"history index, {min(rb['without_index_s']):.2f} s without it "
                  f"({rb['overhead'] * 100:+.0f}%)."]
    lines += ["", f"Target (issue 16): under {TARGET_MS:.0f} ms at 1M events. "
              "Per-row cost of a long answer: see the issuances' rows."]
    return "\n".join(lines) + "\n"


def _label(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, nargs="?", default=100_000, help="commands in the plan (default 100,000)")
    p.add_argument("--pg", default=os.environ.get("EQUITY_LEDGER_TEST_PG_URL"),
                   help="a PostgreSQL server URL (default: $EQUITY_LEDGER_TEST_PG_URL)")
    p.add_argument("--no-pg", action="store_true")
    p.add_argument("--no-sqlite", action="store_true")
    p.add_argument("--store", help="measure this store (already applied) instead of a fresh one")
    p.add_argument("--workdir", help="folder for plans and SQLite stores (default: a temporary one)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--reps", type=int, default=20)
    p.add_argument("--cli-reps", type=int, default=3)
    p.add_argument("--scan-reps", type=int, default=1)
    p.add_argument("--rebuild-max", type=int, default=100_000,
                   help="time the rebuild with and without the index up to this many commands")
    p.add_argument("--rebuild-reps", type=int, default=3, help="rebuilds with and without the index (interleaved)")
    p.add_argument("--keep", action="store_true", help="keep the stores made")
    p.add_argument("--label", help="the results' name: history-<backend>-<label> (default from N: 100k, 1m)")
    a = p.parse_args(argv)
    from bench.suite import machine_info

    work = Path(a.workdir) if a.workdir else Path(tempfile.mkdtemp(prefix="equity-ledger-bench-history-"))
    work.mkdir(parents=True, exist_ok=True)
    targets: list[tuple[str, Any]] = []
    if a.store:
        targets.append(("postgresql" if a.store.startswith("postgres") else "sqlite", a.store))
    else:
        if not a.no_sqlite:
            targets.append(("sqlite", SQLiteBackend(work)))
        if a.pg and not a.no_pg:
            targets.append(("postgresql", PostgresBackend(a.pg, os.environ.get("EQUITY_LEDGER_TEST_PG_ADMIN_URL"))))
    env = dict(os.environ, NO_COLOR="1")
    env.pop("EQUITY_LEDGER_DB", None)
    for kind, target in targets:
        res: dict[str, Any] = {
            "backend": kind, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg_start": [round(x, 2) for x in os.getloadavg()],
            "reps": a.reps, "cli_reps": a.cli_reps, "machine": machine_info(),
        }
        if isinstance(target, str):
            url, backend = target, None
        else:
            plan, meta = plan_file(work, a.n, a.seed)
            backend = target
            url = backend.fresh(f"history{a.n}")
            s, _ = timed(lambda: run_child([*cli_prefix(), "--db", url, "apply", str(plan), "--no-progress"], env=env))
            res["apply_s"] = s
            log(f"{kind}: applied {meta.commands:,} commands ({meta.events:,} events) in {s:.1f} s")
        try:
            res.update(measure_store(url, kind, a.reps, a.cli_reps, a.scan_reps))
            if res["events"] <= a.rebuild_max * 1.2:
                res["rebuild"] = measure_rebuild(url, a.rebuild_reps)
        finally:
            if backend is not None and not a.keep:
                backend.drop(url)
        RESULTS.mkdir(exist_ok=True)
        base = RESULTS / f"history-{kind}-{a.label or _label(a.n)}"
        base.with_suffix(".json").write_text(json.dumps(res, indent=1, default=str))
        base.with_suffix(".md").write_text(markdown(res))
        print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
