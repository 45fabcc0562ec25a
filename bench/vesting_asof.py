"""As-of holdings with vesting against without, on plans of the same size, in one run.

    python -m bench.vesting_asof [N] [--reps 500] [--seed 20240601] [--workdir DIR] [--out NAME]

Generates the bench plan of N commands twice (``bench.generate``: as always, and with
``--vesting``: every issuance's terms vest), applies each through the CLI into a fresh SQLite
store (apply time and events/s reported), then times ``projections.queries.holdings(conn,
'person', issuance, as_of)`` in-process on the issuance with the most commands of each store,
at random as-of dates, the two stores interleaved (one query on each, in turn) so that a noisy
neighbour hits both alike. Writes ``bench/results/NAME.md`` and ``.json`` (default
``vesting-<N>``). The issue's target: with vesting within 2x of without.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from .generate import DEFAULT_SEED, PlanMeta, plan_file
from .measure import cli_prefix, median, percentile, run_child

RESULTS = Path(__file__).resolve().parent / "results"


def apply_plan(plan: Path, store: Path) -> dict[str, Any]:
    """Apply a plan through the CLI into a fresh SQLite store: seconds and the CLI's summary."""
    run = run_child([*cli_prefix(), "--db", f"sqlite:///{store}", "apply", str(plan), "--no-progress"])
    return {"seconds": run.seconds, "peak_rss_kib": run.peak_rss_kib, "summary": run.stdout.strip()}


def as_of_days(meta: PlanMeta, reps: int, rng: random.Random) -> list[date]:
    first = date.fromisoformat(meta.query_issuance_from)
    last = date.fromisoformat(meta.last_day) + timedelta(days=30)
    return [first + timedelta(days=rng.randrange((last - first).days + 1)) for _ in range(reps)]


def measure(stores: dict[str, tuple[Path, PlanMeta]], reps: int, seed: int) -> dict[str, Any]:
    """Interleaved as-of queries on each store; p50/p90/p99 in ms and rows per answer."""
    from sqlalchemy import create_engine

    from equity_ledger.projections import queries

    rng = random.Random(seed)
    days = {name: as_of_days(meta, reps, rng) for name, (_store, meta) in stores.items()}
    engines = {name: create_engine(f"sqlite:///{store}") for name, (store, _meta) in stores.items()}
    conns = {name: e.connect() for name, e in engines.items()}
    times: dict[str, list[float]] = {name: [] for name in stores}
    rows: dict[str, list[int]] = {name: [] for name in stores}
    vested_shown: dict[str, int] = {name: 0 for name in stores}
    try:
        for name, (_store, meta) in stores.items():  # warm-up: connection, statement caches
            for d in days[name][:3]:
                queries.holdings(conns[name], "person", meta.query_issuance, d)
        for i in range(reps):
            for name, (_store, meta) in stores.items():
                t0 = time.perf_counter()
                result = queries.holdings(conns[name], "person", meta.query_issuance, days[name][i])
                times[name].append((time.perf_counter() - t0) * 1000)
                rows[name].append(len(result))
                vested_shown[name] += sum(1 for r in result if r["rights_unvested"])
    finally:
        for c in conns.values():
            c.close()
        for e in engines.values():
            e.dispose()
    out = {}
    for name, (_store, meta) in stores.items():
        ms = times[name]
        out[name] = {
            "issuance": meta.query_issuance, "events": meta.events, "reps": reps,
            "rows_median": median(rows[name]), "rows_max": max(rows[name]),
            "answers_with_unvested_rights": vested_shown[name],
            "p50_ms": median(ms), "p90_ms": percentile(ms, 90), "p99_ms": percentile(ms, 99), "max_ms": max(ms),
        }
    return out


def report_md(n: int, result: dict[str, Any]) -> str:
    w, wo = result["asof"]["with_vesting"], result["asof"]["without_vesting"]
    ap_w, ap_wo = result["apply"]["with_vesting"], result["apply"]["without_vesting"]
    ratio50, ratio99 = w["p50_ms"] / wo["p50_ms"], w["p99_ms"] / wo["p99_ms"]
    lines = [
        f"# As-of holdings with vesting vs without, {n:,} commands, SQLite",
        "",
        f"`python -m bench.vesting_asof {n}` on {result['when']} ({result['machine']}); the machine is "
        "shared and noisy: compare the two columns, measured in the same run, interleaved.",
        "",
        "| | without vesting | with vesting | ratio | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| events in the store | {wo['events']:,} | {w['events']:,} | | |",
        f"| holders of the queried issuance (median / max rows) | {wo['rows_median']:,.0f} / {wo['rows_max']:,} "
        f"| {w['rows_median']:,.0f} / {w['rows_max']:,} | | |",
        f"| as-of holdings p50, ms | {wo['p50_ms']:.1f} | {w['p50_ms']:.1f} | {ratio50:.2f}x | <= 2x |",
        f"| as-of holdings p90, ms | {wo['p90_ms']:.1f} | {w['p90_ms']:.1f} | {w['p90_ms'] / wo['p90_ms']:.2f}x | |",
        f"| as-of holdings p99, ms | {wo['p99_ms']:.1f} | {w['p99_ms']:.1f} | {ratio99:.2f}x | <= 2x |",
        f"| apply through the CLI, s (commands/s) | {ap_wo['seconds']:.1f} ({n / ap_wo['seconds']:,.0f}) "
        f"| {ap_w['seconds']:.1f} ({n / ap_w['seconds']:,.0f}) | {ap_w['seconds'] / ap_wo['seconds']:.2f}x | |",
        f"| apply peak RSS, MiB | {ap_wo['peak_rss_kib'] / 1024:.0f} | {ap_w['peak_rss_kib'] / 1024:.0f} | | |",
        "",
        f"{w['reps']} queries per store at random as-of dates over each plan's span, on its issuance "
        f"with the most commands ({wo['issuance']} / {w['issuance']}); with vesting "
        f"{w['answers_with_unvested_rights']:,} holder rows answered had unvested rights.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.vesting_asof", description=__doc__.split("\n\n")[0])
    p.add_argument("n", type=int, nargs="?", default=100_000, help="commands per plan (default 100,000)")
    p.add_argument("--reps", type=int, default=500, help="as-of queries per store (default 500)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", type=Path, default=None, help="keep plans and stores here (default: a temp dir)")
    p.add_argument("--out", default=None, help="results name in bench/results (default vesting-<N>)")
    a = p.parse_args(argv)
    import platform

    with tempfile.TemporaryDirectory(prefix="el-vesting-") as tmp:
        work = a.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        stores: dict[str, tuple[Path, PlanMeta]] = {}
        applied: dict[str, Any] = {}
        for name, vesting in (("without_vesting", False), ("with_vesting", True)):
            plan, meta = plan_file(work, a.n, a.seed, vesting)
            store = work / f"{plan.stem}-{time.monotonic_ns()}.sqlite"
            print(f"{name}: applying {plan.name} ({meta.commands:,} commands)", file=sys.stderr)
            applied[name] = apply_plan(plan, store)
            print(f"  {applied[name]['summary']} in {applied[name]['seconds']:.1f} s", file=sys.stderr)
            stores[name] = (store, meta)
        print(f"as-of holdings: {a.reps} queries per store, interleaved", file=sys.stderr)
        asof = measure(stores, a.reps, a.seed)
    result = {"n": a.n, "seed": a.seed, "when": time.strftime("%Y-%m-%d"),
              "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
              "apply": applied, "asof": asof}
    name = a.out or (f"vesting-{a.n // 1000}k" if a.n % 1000 == 0 else f"vesting-{a.n}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    md = report_md(a.n, result)
    (RESULTS / f"{name}.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
