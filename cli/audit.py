"""`audit digest|verify|replay`: tamper evidence. They only read the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..ledger.errors import BadCommand
from . import render
from .app import HistoryFormat, app, db_url, handled, parse_date
from .context import opened
from .queries import holdings_rows, print_holdings, when_text

audit_app = typer.Typer(no_args_is_help=True, help="Tamper evidence: verify, digest, replay.")
app.add_typer(audit_app, name="audit")

REPLAY_VIEWS = ("person", "group", "issuance")


def _read_digest(value: str) -> Any:
    from ..ledger.audit import Digest

    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value)
        if not path.is_file():
            raise typer.BadParameter(f"{render.safe_text(value)}: no such file, and not a JSON digest",
                                     param_hint="--digest")
        text = path.read_text(encoding="utf-8").strip().splitlines()[-1] if path.stat().st_size else ""
    try:
        return Digest.parse(text)
    except ValueError as e:
        raise BadCommand(f"--digest: not a digest ({e})") from None


@audit_app.command("digest")
@handled
def audit_digest() -> None:
    """Print the head of the hash chain as one JSON line to keep outside the database."""
    from ..ledger.audit import head_digest

    with opened(db_url()) as store:
        store.require_existing()
        render.out(head_digest(store.ledger.recorder).to_json())


@audit_app.command("verify")
@handled
def audit_verify(
    digest: Optional[str] = typer.Option(None, "--digest", metavar="FILE|JSON",
                                         help="A digest kept earlier that the history must still extend."),
) -> None:
    """Recompute the chain, check versions and command ids, and projections == a fresh replay."""
    from ..ledger.audit import verify_log
    from ..projections.verify import verify_projections

    kept = _read_digest(digest) if digest is not None else None
    started = time.perf_counter()
    with opened(db_url()) as store:
        store.require_existing()
        head = store.ledger.head_position()
        report = render.progress("verifying the log", head,
                                 lambda p: verify_log(store.ledger.recorder, kept, progress=p))
        if report.finding is not None:
            render.err(f"audit: FAILED at {report.finding}")
            raise typer.Exit(1)
        status = store.projector.status()
        with store.projector.reader.connect() as conn:
            finding = render.progress(
                "replaying for the projections", status.position,
                lambda p: verify_projections(store.ledger, conn, status.position, progress=p),
            )
        if finding is not None:
            render.err(f"audit: FAILED: {finding}")
            raise typer.Exit(1)
    took = time.perf_counter() - started
    lines = [
        f"audit: OK: {report.events} events, chain intact, versions contiguous, command ids mapped",
        f"head: position {report.head.position}, hash {report.head.hash}",
        f"projections equal a fresh replay up to position {status.position}"
        + (f" ({status.lag} newer events not yet projected: run `projections catch-up`)" if status.lag else ""),
    ]
    if kept is not None:
        lines.append(f"the history extends the kept digest at position {kept.position}")
    lines.append(f"took {took:.2f} s")
    render.out("\n".join(lines))


def replay_difference(replayed: dict[str, list[dict[str, Any]]],
                      live: dict[str, list[dict[str, Any]]]) -> Optional[str]:
    """The first difference between replayed and live holdings rows (by view), or None."""
    for by in REPLAY_VIEWS:
        a, b = replayed[by], live[by]
        for i in range(max(len(a), len(b))):
            ra = a[i] if i < len(a) else None
            rb = b[i] if i < len(b) else None
            if ra != rb:
                key = (ra or rb or {}).get(by if by != "person" else "holder")
                field = next((k for k in (ra or rb or {}) if (ra or {}).get(k) != (rb or {}).get(k)), "row")
                return (
                    f"holdings by {by}, {key}: {field} is {(rb or {}).get(field)!r} in the projections, "
                    f"{(ra or {}).get(field)!r} in the replay"
                )
    return None


@audit_app.command("replay")
@handled
def audit_replay(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format"),
) -> None:
    """Rebuild holdings from the raw events alone and compare them with the projections."""
    from ..projections.verify import replay_holdings

    day = parse_date(as_of)
    with opened(db_url()) as store:
        store.require_existing()
        replayed = {by: replay_holdings(store.ledger.iter_events(), day, by) for by in REPLAY_VIEWS}
        live = {by: holdings_rows(store, by, None, day) for by in REPLAY_VIEWS}
    difference = replay_difference(replayed, live)
    when = when_text(day)
    if fmt == HistoryFormat.json:
        render.write_json(replayed["person"])
    else:
        print_holdings(replayed["person"], "person", "table", f"Replayed from the raw events: holdings by person, {when}")
    if difference:
        render.err(f"replay: DIFFERS from the projections: {difference}")
        raise typer.Exit(1)
    render.err(f"replay: equal to the projections ({when})")
