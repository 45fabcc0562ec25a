"""`init` and `apply FILE|-`: create a store; a command file through the one application service."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Optional

import typer

from ..ledger.errors import LedgerError, StoreUnavailable
from .context import opened
from . import render
from .app import app, db_url, handled


def apply_commands(store: Any, commands: Iterable[Any], progress: Optional[Callable[[int], None]] = None) -> Any:
    """Apply commands in order, then bring the projections up to date, also after a refusal.

    The projector folds each stored batch as it is written; after a refusal (the commands
    before it stay stored) it still catches up, so queries never lag what `apply` stored.
    ``progress`` is called with the number of commands stored by each batch. Returns the
    service's report; re-raises the refusal once the projections are caught up.
    """
    refusal: Optional[LedgerError] = None
    report: Any = None
    store.ledger.on_stored = store.projector.fold_stored
    try:
        report = store.ledger.apply(commands, progress=progress)
    except LedgerError as e:
        refusal = e
    if isinstance(refusal, StoreUnavailable):
        raise refusal
    store.projector.catch_up()
    if refusal is not None:
        raise refusal
    return report


class CommandLines:
    """The commands of a binary command file, counting the bytes read so far."""

    def __init__(self, source: BinaryIO) -> None:
        self.source = source
        self.consumed = 0

    def __iter__(self) -> Iterator[Any]:
        from ..ledger.commands import parse_line

        for n, raw in enumerate(self.source, 1):
            self.consumed += len(raw)
            if raw.endswith(b"\n"):
                raw = raw[:-1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
            cmd = parse_line(raw, n)
            if cmd is not None:
                yield cmd


def apply_file(store: Any, source: BinaryIO, show_progress: Optional[bool] = False,
               total_bytes: Optional[int] = None) -> Any:
    """Apply a binary command file; with a progress bar (by bytes stored) on request."""
    lines = CommandLines(source)

    def work(advance: Callable[[int], None]) -> Any:
        shown = 0

        def stored(_n: int) -> None:
            nonlocal shown
            advance(lines.consumed - shown)
            shown = lines.consumed

        return apply_commands(store, lines, progress=stored)

    return render.progress("applying", total_bytes, work, show=show_progress, bytes_=True)


@app.command()
@handled
def init() -> None:
    """Create an empty store (events, chain, command ids, projections)."""
    with opened(db_url()) as store:
        store.projector.status()
        render.out(f"store ready: {store.config.display}")


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
        if not path.is_file():
            raise typer.BadParameter(f"{render.safe_text(file)}: no such file", param_hint="FILE")
        source = path.open("rb")
        total = path.stat().st_size
    try:
        with opened(db_url()) as store:
            report = apply_file(store, source, progress, total)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
    render.out(
        f"applied {report.applied} commands ({report.events} events), "
        f"skipped {report.skipped} already applied"
    )
