"""`audit digest|verify|replay`: tamper evidence. They only read the store."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from ..ledger.errors import BadCommand
from . import render
from .app import HistoryFormat, app, db_url, handled, parse_date
from ..bootstrap import open_books
from .queries import print_holdings, when_text

audit_app = typer.Typer(no_args_is_help=True, help="Tamper evidence: verify, digest, replay.")
app.add_typer(audit_app, name="audit")


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

    with open_books(db_url()) as books, books.reading() as view:
        render.out(head_digest(view.log).to_json())


@audit_app.command("verify")
@handled
def audit_verify(
    digest: Optional[str] = typer.Option(None, "--digest", metavar="FILE|JSON",
                                         help="A digest kept earlier that the history must still extend."),
) -> None:
    """Recompute the chain, check versions and command ids, and projections == a fresh replay."""
    from ..ledger.audit import verify_log
    from ..ledger.unit_of_work import check_meta
    from ..projections.verify import verify_projections

    kept = _read_digest(digest) if digest is not None else None
    started = time.perf_counter()
    # One read transaction: the log, chain, command ids, snapshots and projections are read in
    # one consistent state, whatever another process writes meanwhile.
    with open_books(db_url()) as books, books.reading() as view:
        check_meta(view.log.meta(), books.key, books.config.display)
        status = view.status
        report = render.progress("verifying the log", status.head,
                                 lambda p: verify_log(view.log, books.key, kept, progress=p))
        if report.finding is not None:
            render.err(f"audit: FAILED at {report.finding}")
            raise typer.Exit(1)
        finding = render.progress(
            "replaying for the projections", status.position,
            lambda p: verify_projections(view.log, view.conn, status.position, progress=p),
        )
        if finding is not None:
            render.err(f"audit: FAILED: {finding}")
            raise typer.Exit(1)
    took = time.perf_counter() - started
    lines = [
        f"audit: OK: {report.events} events, chain intact"
        + (" and authenticated by the ledger key" if books.key else "")
        + ", versions contiguous, command ids mapped, every command re-applied under the rules"
        + ", snapshots equal to the events",
        f"head: position {report.head.position}, hash {report.head.hash}",
        f"projections equal a fresh replay up to position {status.position}"
        + (f" ({status.lag} newer events not yet projected: run `projections catch-up`)" if status.lag else ""),
    ]
    if kept is not None:
        lines.append(f"the history extends the kept digest at position {kept.position}")
    lines.append(f"took {took:.2f} s")
    render.out("\n".join(lines))


@audit_app.command("replay")
@handled
def audit_replay(
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format"),
) -> None:
    """Rebuild holdings from the raw events alone and compare them with the projections."""
    from ..ledger.audit import verify_log
    from ..projections.replay import compare_with_projections

    day = parse_date(as_of)
    with open_books(db_url()) as books, books.reading() as view:
        # The replay takes only what the rules give: a history that breaks one is named, as
        # `audit verify` names it (the chain itself is verify's: it needs the ledger key).
        broken = verify_log(view.log, chain=False).finding
        if broken is not None:
            render.err(f"replay: the stored events break the ledger's rules at {broken}")
            raise typer.Exit(1)
        comparison = compare_with_projections(view.log, view.conn, day)
    replayed, difference = comparison.replayed, comparison.difference
    when = when_text(day)
    if fmt == HistoryFormat.json:
        render.write_json(replayed["person"])
    else:
        print_holdings(replayed["person"], "person", "table", f"Replayed from the raw events: holdings by person, {when}")
    if difference:
        render.err(f"replay: DIFFERS from the projections: {difference}")
        raise typer.Exit(1)
    render.err(f"replay: equal to the projections ({when})")
