"""Where the apply path spends its time: cProfile of the real CLI on a generated plan.

    python -m bench.profile_apply [N] [--verb apply|rebuild|verify] [--out FILE]

Runs ``python -m cProfile -m equity_ledger.cli --db <fresh SQLite> apply PLAN --no-progress`` on
the benchmark's plan of N commands (default 100,000) and writes a report
(bench/results/profile-VERB-N.txt): the wall time with and without the profiler, the time per
stage (parse, domain, event encoding, recorder, chain, projections ...), the time per area of
code (own time summed by module), and the top functions by own and cumulative time. With
``--verb rebuild`` or ``verify`` the plan is applied first (not profiled) and the profiled run
is ``projections rebuild`` or ``audit verify`` on that store. cProfile slows Python-heavy code
more than C code, so read the shares, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

from .generate import DEFAULT_SEED, plan_file
from .measure import cli_prefix, run_child

RESULTS = Path(__file__).resolve().parent / "results"

# Own time of a function is charged to the first area whose marker is in its file path.
AREAS = [
    ("json (stdlib: decode + encode)", ("/json/",)),
    ("hashlib / sha256", ("hashlib", "_hashlib")),
    ("sqlite3 driver (C)", ("sqlite3",)),
    ("psycopg driver", ("psycopg",)),
    ("eventsourcing: persistence (mapper, transcoder, recorder)", ("eventsourcing/persistence", "eventsourcing/sqlite",
                                                                   "eventsourcing/postgres")),
    ("eventsourcing: domain (events, aggregates)", ("eventsourcing/domain", "eventsourcing/utils")),
    ("eventsourcing: other", ("eventsourcing/",)),
    ("SQLAlchemy (projections)", ("sqlalchemy/",)),
    ("ledger: commands (parse, validate)", ("ledger/commands", "ledger/money")),
    ("ledger: event encoding (transcodings)", ("ledger/transcodings",)),
    ("ledger: domain (issuance, holder, terms, vesting)", ("ledger/issuance", "ledger/holder", "ledger/issuer",
                                                           "ledger/terms", "ledger/ids", "ledger/vesting",
                                                           "ledger/personal")),
    ("ledger: service, unit of work, log, recorders, chain", ("ledger/service", "ledger/unit_of_work", "ledger/log", "ledger/recorders", "ledger/store")),
    ("projections (fold, plan, writer)", ("projections/",)),
    ("cli", ("cli/",)),
    ("uuid", ("uuid",)),
    ("datetime / decimal / fractions", ("datetime", "decimal", "fractions", "_pydecimal")),
    ("typing / dataclasses / copy", ("typing", "dataclasses", "copy")),
]

# Stages per verb: cumulative time of the function that is the stage's entry point (a nested
# stage is included in its parent).
_FOLD = [
    ("_fold (effects + plan + SQL)", "projections/projector.py", "_fold"),
    ("  load_latest (latest rows of new holdings)", "projections/writer.py", "load_latest"),
    ("  plan (pure row writes)", "projections/plan.py", "plan"),
    ("  Writer.execute (executemany)", "projections/writer.py", "execute"),
    ("  fold.effects_of (pure)", "projections/fold.py", "effects_of"),
]
STAGES = {
    "apply": [
        ("whole apply verb", "cli/apply.py", "apply"),
        ("  LedgerService.apply (parse + domain + store + inline fold)", "ledger/service.py", "apply"),
        ("    parse_line (json.loads + validation + digest)", "ledger/commands.py", "parse_line"),
        ("      canonical json (the digest's input)", "ledger/commands.py", "_canonical"),
        ("      parse_command (fields, types, digest)", "ledger/commands.py", "parse_command"),
        ("    command_digests (idempotency lookup)", "ledger/log.py", "command_digests"),
        ("    prefetch (which aggregates are new)", "ledger/unit_of_work.py", "prefetch"),
        ("    use case allot_rights (domain + event objects)", "ledger/service.py", "allot_rights"),
        ("      Issuance.allot (guards + event)", "ledger/issuance.py", "allot"),
        ("      Holder created (first allotment)", "eventsourcing/domain.py", "_create"),
        ("    use case exercise_rights", "ledger/service.py", "exercise_rights"),
        ("    use case forfeit_rights", "ledger/service.py", "forfeit_rights"),
        ("      eventsourcing trigger_event (all use cases)", "eventsourcing/domain.py", "trigger_event"),
        ("    collect_events", "eventsourcing/domain.py", "collect_events"),
        ("    StoredUnitOfWork.commit (encode + insert + chain)", "ledger/unit_of_work.py", "commit"),
        ("      encode_event (stored JSON)", "ledger/transcodings.py", "encode_event"),
        ("      recorder insert_events (SQL + chain + commit)", "eventsourcing/", "insert_events"),
        ("        link_hash (chain)", "ledger/store.py", "link_hash"),
        ("    Projector.fold_stored (inline projections)", "projections/projector.py", "fold_stored"),
        *[("      " + label, path, fn) for label, path, fn in _FOLD],
        ("    snapshots", "ledger/unit_of_work.py", "snapshot"),
        ("  Projector.catch_up (after the last batch)", "projections/projector.py", "catch_up"),
    ],
    "rebuild": [
        ("whole projections rebuild", "cli/projections.py", "projections_rebuild"),
        ("  Projector.rebuild", "projections/projector.py", "rebuild"),
        ("    catch_up", "projections/projector.py", "catch_up"),
        ("      stored_fields (SELECT pages + JSON decode)", "ledger/log.py", "stored_fields"),
        *[("      " + label, path, fn) for label, path, fn in _FOLD],
    ],
    "verify": [
        ("whole audit verify", "cli/audit.py", "audit_verify"),
        ("  verify_log (chain, versions, command ids, rules, snapshots)", "ledger/audit.py", "verify_log"),
        ("    RuleReplay.check (commands re-applied)", "ledger/audit.py", "check"),
        ("    link_hash", "ledger/store.py", "link_hash"),
        ("  verify_projections (replay + compare)", "projections/verify.py", "verify_projections"),
        ("    iter_events (read + decode)", "ledger/log.py", "iter_events"),
        ("      decode (mapper.to_domain_event)", "ledger/log.py", "decode"),
        ("    _check_holdings", "projections/verify.py", "_check_holdings"),
    ],
}


def area_of(filename: str) -> str:
    f = filename.replace("\\", "/")
    for name, markers in AREAS:
        if any(m in f for m in markers):
            return name
    if f.startswith("~") or f == "~":
        return "builtins (C: dict/list/str methods, isinstance ...)"
    return "other python"


def report(prof: Path, wall_profiled: float, wall_plain: float | None, n: int, events: int, top: int = 35,
           verb: str = "apply", backend: str = "SQLite") -> str:
    st = pstats.Stats(str(prof))
    stats = st.stats  # type: ignore[attr-defined]
    total = sum(v[2] for v in stats.values())
    out = io.StringIO()
    w = out.write
    w(f"{verb} of a plan of {n:,} commands ({events:,} events) through the CLI, {backend} store\n")
    unit, count = ("commands", n) if verb == "apply" else ("events", events)
    w(f"wall time: {wall_profiled:.1f} s under cProfile"
      + (f", {wall_plain:.1f} s without ({count / wall_plain:,.0f} {unit}/s)" if wall_plain else "") + "\n")
    w(f"profiled own time (sum over functions): {total:.1f} s\n")
    from .suite import versions

    v = versions([])
    w("versions: " + ", ".join(f"{k} {x}" for k, x in v.items()) + "\n\n")

    w("== stages (cumulative time of the stage's entry function; share of the whole verb)\n")

    def cum_of(path: str, func: str) -> tuple[float, int]:
        hits = [v for (fname, _line, fn), v in stats.items() if fn == func and path in fname.replace("\\", "/")]
        return sum(v[3] for v in hits), sum(v[1] for v in hits)

    stages = STAGES[verb]
    whole = cum_of(stages[0][1], stages[0][2])[0] or total
    per = f"µs per {unit[:-1]}"
    if wall_plain:
        w(f"  (last column: the stage's share applied to the unprofiled wall time, in {per})\n")
    for label, path, func in stages:
        cum, calls = cum_of(path, func)
        if cum:
            us = f"  {cum / whole * wall_plain / count * 1e6:7.1f} {per}" if wall_plain else ""
            w(f"  {label:<52} {cum:8.2f} s {cum / whole:6.1%}  ({calls:,} calls){us}\n")
    w("\n== own time by area of code\n")
    areas: dict[str, float] = {}
    for (fname, _line, _fn), v in stats.items():
        a = area_of(fname)
        areas[a] = areas.get(a, 0.0) + v[2]
    for a, t in sorted(areas.items(), key=lambda kv: -kv[1]):
        w(f"  {a:<60} {t:8.2f} s {t / total:6.1%}\n")

    for key, title in (("tottime", "own time"), ("cumulative", "cumulative time")):
        w(f"\n== top {top} functions by {title}\n")
        s = io.StringIO()
        pstats.Stats(str(prof), stream=s).strip_dirs().sort_stats(key).print_stats(top)
        body = s.getvalue()
        start = body.find("   ncalls")
        w(body[start:] if start >= 0 else body)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_apply", description=__doc__.split("\n\n")[0])
    p.add_argument("n", nargs="?", type=int, default=100_000, help="commands (default 100,000)")
    p.add_argument("--seed", type=int, default=DEFAULT_SEED)
    p.add_argument("--workdir", default=None, help="where the plan and the store go (default: a temp folder)")
    p.add_argument("--out", type=Path, default=None, help="report file (default bench/results/profile-apply-N.txt)")
    p.add_argument("--no-plain", action="store_true", help="skip the unprofiled run")
    p.add_argument("--verb", choices=("apply", "rebuild", "verify"), default="apply")
    p.add_argument("--db", default=None,
                   help="profile against this store instead of a fresh SQLite file: an EMPTY database "
                        "(e.g. a fresh PostgreSQL one); implies --no-plain")
    a = p.parse_args(argv)
    work = Path(a.workdir or tempfile.mkdtemp(prefix="equity-ledger-profile-"))
    work.mkdir(parents=True, exist_ok=True)
    plan, meta = plan_file(work, a.n, a.seed)
    env = dict(os.environ)
    env.pop("EQUITY_LEDGER_DB", None)
    cli = cli_prefix()
    store = work / f"profile-{os.getpid()}.sqlite"
    db = a.db or f"sqlite:///{store}"
    if a.db:
        a.no_plain = True
    verb_argv = {"apply": ["apply", str(plan), "--no-progress"], "rebuild": ["projections", "rebuild"],
                 "verify": ["audit", "verify"]}[a.verb]

    def fresh() -> None:
        for s in ("", "-wal", "-shm"):
            Path(str(store) + s).unlink(missing_ok=True)

    fresh()
    if a.verb != "apply":
        run_child([*cli, "--db", db, "apply", str(plan), "--no-progress"], env=env)
    plain = None
    if not a.no_plain:
        plain = run_child([*cli, "--db", db, *verb_argv], env=env).seconds
        if a.verb == "apply":
            fresh()
    prof = work / f"{a.verb}-{a.n}.prof"
    t0 = time.perf_counter()
    run_child([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "equity_ledger.cli", "--db", db, *verb_argv],
              env=env)
    profiled = time.perf_counter() - t0
    text = report(prof, profiled, plain, meta.commands, meta.events, verb=a.verb,
                  backend="PostgreSQL" if db.startswith("postgres") else "SQLite")
    out = a.out or RESULTS / f"profile-{a.verb}-{a.n}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)
    print(f"written {out}; raw profile {prof}", file=sys.stderr)
    fresh()
    return 0


if __name__ == "__main__":
    sys.exit(main())
