"""Markdown rendering of a run's results (the JSON holds the same figures, unrounded)."""

from __future__ import annotations

import math
from typing import Any


def _fmt_int(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def _mib(kib: int | None) -> str:
    return "-" if not kib else f"{kib / 1024:,.0f}"


def _runs(values: list[float] | None, unit: float = 1.0, digits: int = 2) -> str:
    return "-" if not values else " / ".join(f"{v * unit:.{digits}f}" for v in values)


def _table(head: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right if right is not None else set(range(1, len(head)))
    out = ["| " + " | ".join(head) + " |",
           "| " + " | ".join("---:" if i in right else "---" for i in range(len(head))) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _growth(series: list[tuple[int, float]]) -> list[str]:
    """Cost growth exponent between consecutive sizes: log(t2/t1) / log(n2/n1); 1.00 = linear."""
    out = ["-"]
    for (n1, t1), (n2, t2) in zip(series, series[1:]):
        out.append(f"{math.log(t2 / t1) / math.log(n2 / n1):.2f}" if t1 > 0 and t2 > 0 and n2 != n1 else "-")
    return out


def _load_note(meta: dict[str, Any]) -> str:
    if not meta.get("loadavg_end"):
        return ""
    a, b = meta["loadavg_start"][0], meta["loadavg_end"][0]
    note = f" Load average (1 min) at start / end: {a:.1f} / {b:.1f}"
    if max(a, b) > meta["machine"]["nproc"]:
        note += (" - more runnable processes than CPUs: other work competed with the run, absolute figures "
                 "are noisy (ratios less so, raw and ledger runs are interleaved)")
    return note + "."


def markdown(res: dict[str, Any]) -> str:
    meta = res["meta"]
    m = meta["machine"]
    v = meta.get("versions", {})
    parts = [
        f"# equity-ledger benchmarks ({meta['mode']} run)",
        "",
        f"Date (UTC): {meta['date']}; took {meta.get('took_s', 0):.0f} s. "
        f"Sizes (commands): {', '.join(f'{n:,}' for n in meta['sizes'])}; repetitions: {meta['reps']}"
        + (f" ({meta['large_reps']} at >= 500k)" if meta.get("large_reps") != meta["reps"] else "")
        + f"; seed {meta['seed']}; medians reported. Backends: {', '.join(meta['backends'])}.",
        "",
        f"Machine: {m['nproc']} CPUs usable ({m['cpu_count']} online), {m['cpu_model'] or 'unknown CPU'}, "
        f"{m['ram_gib']} GiB RAM, {m['platform']}."
        + _load_note(meta),
        "",
        "Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()) + "."
        + (f" Bytecode: {meta['bytecode']}." if meta.get("bytecode") else ""),
        "",
        "Ratios are *fraction of the raw baseline's speed*, measured in the same run on the same "
        "database engine: ledger rate / raw rate (or raw time / ledger time). 1.0 = as fast as the raw "
        "floor; a target `>= 25%` means at most 4x slower than it. See bench/README.md.",
        "",
        "## Targets",
        "",
    ]
    rows = [[t["target"], t["backend"], t["scope"], t["shown"], t["goal"], t["verdict"]] for t in res.get("targets", [])]
    parts.append(_table(["target", "backend", "scope", "measured", "goal", "verdict"], rows, right=set()))
    if meta["mode"] == "smoke":
        parts += ["", "_Smoke run: tiny sizes, one repetition; verdicts are informative only and never fail the run._"]

    for verb, title, unit_name in (
        ("apply", "Bulk apply through the CLI (process start included) vs the raw floor", "command"),
        ("rebuild", "`projections rebuild` vs the raw read of the stored events", "event"),
        ("verify", "`audit verify` vs the raw read of the stored events", "event"),
    ):
        rows = []
        for bname, b in res["backends"].items():
            series = []
            entries = []
            for n in sorted(b.get("sizes", {}), key=int):
                r = b["sizes"][n]
                x = r.get(verb)
                if not x:
                    continue
                count = r["commands"] if verb == "apply" else r["events"]
                series.append((count, x["median_s"]))
                entries.append((n, r, x, count))
            growth = _growth(series)
            for (n, r, x, count), g in zip(entries, growth):
                if verb == "apply":
                    rows.append([bname, f"{r['commands']:,}", f"{r['events']:,}", f"{x['median_s']:.2f}",
                                 _fmt_int(x["commands_per_s"]), _fmt_int(x["floor_commands_per_s"]),
                                 _pct(x["ratio"]), f"{x['median_s'] / count * 1e6:.0f}", g,
                                 _mib(x["peak_rss_kib"]), f"{r.get('store_bytes', 0) / 2**20:,.0f}",
                                 _runs(x["runs_s"]), _runs(x["floor_runs_s"]), _cpu(x)])
                else:
                    rows.append([bname, f"{r['commands']:,}", f"{r['events']:,}", f"{x['median_s']:.2f}",
                                 _fmt_int(x["events_per_s"]), _fmt_int(x["raw_events_per_s"]), _pct(x["ratio"]),
                                 f"{x['median_s'] / count * 1e6:.0f}", g, _mib(x["peak_rss_kib"]),
                                 _runs(x["runs_s"]), _runs(x["raw_runs_s"]), _cpu(x)])
                    if verb == "rebuild":
                        rows[-1][10:10] = [f"{x.get('rows_written', 0):,}", _secs(x.get("copy_median_s")),
                                           _pct(x.get("ratio_read_write"))]
        parts += ["", f"## {title}", ""]
        if not rows:
            parts.append("_not measured_")
            continue
        if verb == "apply":
            head = ["backend", "commands", "events", "median s", "commands/s", "floor commands/s", "ratio",
                    "µs/command", "growth", "peak RSS MiB", "store MiB", "runs s", "floor runs s",
                    "CPU s (median)"]
        else:
            head = ["backend", "commands", "events", "median s", "events/s", "raw events/s", "ratio",
                    "µs/event", "growth", "peak RSS MiB", "runs s", "raw runs s", "CPU s (median)"]
            if verb == "rebuild":
                head[10:10] = ["rows written", "raw copy s", "ratio vs read + copy"]
        parts.append(_table(head, rows, right=set(range(1, len(head) - 3))))
        if verb == "rebuild":
            parts += ["", "A rebuild reads every event *and* writes the read model's rows; `raw copy` "
                      "writes those same rows (read back from the rebuilt tables) through the bare "
                      "driver into empty tables with the same indexes, so `ratio vs read + copy` is "
                      "the rebuild against the floor of its own work."]
    parts += ["", "`growth` = log(t2/t1) / log(n2/n1) against the previous size: 1.00 is linear cost "
              "(constant µs per unit), above 1 is super-linear. `CPU s`: user + system CPU time of the "
              "ledger's process (its own work; other load stretches it far less than wall time; on "
              "PostgreSQL the server's share is not in it)."]

    rows = []
    for bname, b in res["backends"].items():
        h = b.get("holdings")
        if h:
            rows.append([bname, f"{h['store_events']:,}", h["issuance"], f"{h['rows_median']:,.0f}",
                         str(h["reps"]), f"{h['p50_ms']:.1f}", f"{h['p90_ms']:.1f}", f"{h['p99_ms']:.1f}",
                         f"{h['max_ms']:.1f}", f"{h['raw_p50_ms']:.1f}", f"{h['raw_p99_ms']:.1f}", _pct(h["ratio"]),
                         "-" if h["cli_median_ms"] is None else f"{h['cli_median_ms']:.0f}"])
    parts += ["", "## As-of `holdings --by person --issuance X --as-of D` (random D)", ""]
    parts.append(_table(["backend", "store events", "issuance", "rows (median)", "queries", "p50 ms", "p90 ms",
                         "p99 ms", "max ms", "raw SQL p50 ms", "raw SQL p99 ms", "ratio (p50)", "CLI median ms"],
                        rows) if rows else "_not measured_")
    parts += ["", "In-process: `projections.queries.holdings(conn, 'person', issuance, as_of)` on one open "
              "connection; raw SQL: the same latest-row-per-holder query through the bare driver; CLI: "
              "the whole process, start included."]

    rows = []
    ch = res.get("cold_help")
    if ch:
        rows.append(["`equity-ledger --help`", "-", f"{ch['median_ms']:.0f}", f"{ch['raw_median_ms']:.0f}",
                     "`python -c pass`", _pct(ch["ratio"]), _runs(ch["runs_s"], 1000, 0)])
    for bname, b in res["backends"].items():
        c = b.get("cold_query")
        if c:
            rows.append(["`holdings --by group --issuance X --format json`", bname, f"{c['median_ms']:.0f}",
                         f"{c['raw_median_ms']:.0f}", "same SQL in bare python + driver", _pct(c["ratio"]),
                         _runs(c["runs_s"], 1000, 0)])
            if c.get("sqlalchemy_median_ms"):
                rows.append(["(reference) `python -c 'import sqlalchemy'`", bname,
                             f"{c['sqlalchemy_median_ms']:.0f}", "-", "the import every SQLAlchemy query pays",
                             "-", _runs(c["sqlalchemy_runs_s"], 1000, 0)])
    parts += ["", "## Cold start (process start to exit)", ""]
    parts.append(_table(["command", "backend", "median ms", "raw ms", "raw baseline", "ratio", "runs ms"], rows,
                        right={2, 3, 5}) if rows else "_not measured_")
    if ch:
        parts += ["", f"Peak RSS of a bare `python -c pass`: {ch['python_peak_rss_kib'] / 1024:.0f} MiB "
                  "(the floor under every peak RSS above)."]

    if res.get("errors"):
        parts += ["", "## Errors", ""]
        for e in res["errors"]:
            parts.append(f"- {e['what']}: {e['error']}")
    plans = res.get("plans", {})
    if plans:
        parts += ["", "## Generated plans", ""]
        rows = []
        for n, p in sorted(plans.items(), key=lambda kv: int(kv[0])):
            types = ", ".join(f"{k} {val:,}" for k, val in sorted(p["types"].items()))
            rows.append([f"{p['commands']:,}", f"{p['events']:,}", str(p["issuances"]), f"{p['holders']:,}",
                         str(p["late_allotments"]), f"{p['file_bytes'] / 2**20:,.1f}", types])
        parts.append(_table(["commands", "events", "issuances", "holders", "late allotments", "file MiB",
                             "commands by type"], rows, right={0, 1, 2, 3, 4, 5}))
    return "\n".join(parts) + "\n"


def _cpu(x: dict[str, Any]) -> str:
    return f"{x['cpu_median_s']:.2f}" if x.get("cpu_median_s") is not None else "-"


def verdict_lines(res: dict[str, Any], smoke: bool) -> str:
    head = ("Targets (smoke run: informative only, never a failure):" if smoke else "Targets:")
    lines = [head]
    for t in res.get("targets", []):
        where = " ".join(x for x in (t["backend"], t["scope"]) if x and x != "-")
        lines.append(f"  {t['verdict']:<4} {t['target']}" + (f" [{where}]" if where else "")
                     + f": {t['shown']} (goal {t['goal']})")
    if res.get("errors"):
        lines.append(f"ERRORS: {len(res['errors'])} (see the results file)")
    return "\n".join(lines)
