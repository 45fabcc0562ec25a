"""`projections status|catch-up|rebuild`: the read models' position and their upkeep."""

from __future__ import annotations

import typer

from . import render
from .app import app, db_url, handled
from ..bootstrap import open_books

projections_app = typer.Typer(no_args_is_help=True, help="Read models: status, catch-up, rebuild.")
app.add_typer(projections_app, name="projections")


@projections_app.command("status")
@handled
def projections_status() -> None:
    """Position of the projections against the head of the log."""
    with open_books(db_url()) as books, books.reading() as view:
        st = view.status
    state = "up to date" if st.lag == 0 else f"{st.lag} events behind"
    render.out(f"projections at position {st.position}, log head {st.head}: {state}")


@projections_app.command("catch-up")
@handled
def projections_catch_up() -> None:
    """Fold the events recorded since the projections' position."""
    with open_books(db_url()) as books:
        projector = books.upkeep
        st = projector.status()
        n = render.progress("catching up", st.lag, projector.catch_up)
        st = projector.status()
    render.out(f"folded {n} events; projections at position {st.position} of {st.head}")


@projections_app.command("rebuild")
@handled
def projections_rebuild() -> None:
    """Empty the read models and refold them from the first event."""
    with open_books(db_url()) as books:
        projector = books.upkeep
        n = render.progress("rebuilding", projector.log.head_position(), projector.rebuild)
    render.out(f"rebuilt the projections from {n} events")
