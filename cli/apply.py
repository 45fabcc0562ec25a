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
