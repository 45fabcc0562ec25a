"""`init` and `apply FILE|-`: create a store; a command file through the one application service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable, Optional

import typer

from ..bootstrap import open_books
from ..ledger.errors import LedgerError
from . import render
from .app import app, db_url, handled


def apply_file(books: Any, source: BinaryIO, show_progress: Optional[bool] = False,
               total_bytes: Optional[int] = None) -> Any:
    """Apply a binary command file through the service; a progress bar (bytes read) on request."""
    from ..ledger.commands import read_commands

    def work(advance: Callable[[int], None]) -> Any:
        return books.apply(read_commands(source, progress=advance))

    return render.progress("applying", total_bytes, work, show=show_progress, bytes_=True)


@app.command()
@handled
def init() -> None:
    """Create an empty store (events, chain, command ids, projections)."""
    with open_books(db_url()) as books:
        books.projector  # opens the event store and installs the read models
        render.out(f"store ready: {books.config.display}")


@app.command()
@handled
def apply(
    file: str = typer.Argument(..., metavar="FILE|-", help="A JSON Lines command file, or - for stdin."),
    progress: Optional[bool] = typer.Option(
        None, "--progress/--no-progress", help="Progress bar (default: on a terminal)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run",
        help="Check the whole file against the store as if applied; store nothing. "
             "Exit 1 when a line would be refused.",
    ),
) -> None:
    """Apply a command file in order; stops at the first refused command."""
    if file == "-":
        source: BinaryIO = sys.stdin.buffer
        total = None
    else:
        path = Path(file)
        if path.is_dir():
            raise typer.BadParameter(f"{render.safe_text(file)}: is a directory, not a command file",
                                     param_hint="FILE")
        if not path.is_file():
            raise typer.BadParameter(f"{render.safe_text(file)}: no such file", param_hint="FILE")
        source = path.open("rb")
        total = path.stat().st_size
    if dry_run:
        try:
            check_file(source)
        finally:
            if source is not sys.stdin.buffer:
                source.close()
        return
    try:
        with open_books(db_url()) as books:
            try:
                report = apply_file(books, source, progress, total)
            except LedgerError as e:
                done = getattr(e, "report", None)
                if done is None:
                    raise
                # Stopped at a bad line: say what the commands before it did (they stay).
                raise LedgerError(
                    f"{e} (before it: {done.applied} commands applied, {done.skipped} already applied)"
                ) from None
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    render.out(
        f"applied {report.applied} commands ({report.events} events), "
        f"skipped {report.skipped} already applied"
    )


def check_file(source: BinaryIO) -> None:
    """`apply --dry-run`: print the service's verdict on every line; exit 1 if one is refused."""
    from ..ledger.commands import read_commands

    counts = {"apply": 0, "skip": 0, "refuse": 0}
    events = 0
    with open_books(db_url()) as books:
        for o in books.check(read_commands(source)):
            counts[o.verdict] += 1
            if o.verdict == "apply":
                events += o.events
                render.out(f"{o.where}: would apply {o.type} ({o.events} events)")
            elif o.verdict == "skip":
                render.out(f"{o.where}: would skip {o.type}: already applied")
            elif o.command_id is None:
                # A line that is not a command: its message names the line; reading stops there.
                render.out(f"{o.message}: would refuse [{o.rule}]; the lines after it were not checked")
            else:
                render.out(f"{o.where}: would refuse {o.type} [{o.rule}]: {o.message}")
    render.out(
        f"dry run: {counts['apply']} commands would be applied ({events} events), "
        f"{counts['skip']} skipped as already applied, {counts['refuse']} refused; nothing stored"
    )
    if counts["refuse"]:
        raise typer.Exit(1)
