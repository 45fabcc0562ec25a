"""Queries: `holdings`, `register`, `history`. They only read the store.

The column lists below are the one place that maps the JSON keys of a row to the headers of
its table.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any, Optional

import typer

from . import render
from .app import By, Format, HistoryFormat, app, db_url, handled, parse_date, warn_if_lagging
from ..bootstrap import open_books

# (JSON key, table header, numeric?)
HOLDING_COLUMNS = [
    ("rights_allotted", "allotted", True),
    ("rights_exercised", "exercised", True),
    ("rights_forfeited", "forfeited", True),
    ("rights_expired", "expired", True),
    ("rights_outstanding", "outstanding", True),
    ("shares_underlying", "shares underlying", True),
    ("shares_delivered", "shares delivered", True),
    ("amount_offset", "amount offset", True),
    ("amount_paid", "amount paid", True),
    ("exercise_price_paid", "exercise price paid", True),
    ("currency", "ccy", False),
    ("rights_vested", "vested", True),
    ("rights_unvested", "unvested", True),
    ("rights_exercisable", "exercisable", True),
]

HOLDING_KEY_COLUMNS = {
    "person": [("holder", "holder", False), ("name", "name", False), ("group", "group", False)],
    "group": [("group", "group", False), ("holders", "holders", True)],
    "issuance": [("issuance", "issuance", False), ("holders", "holders", True)],
}

REGISTER_COLUMNS = [
    ("holder", "holder", False),
    ("name", "name", False),
    ("group", "group", False),
    ("rights_held", "rights held", True),
    ("rights_allotted", "allotted", True),
    ("shares_per_right", "shares/right", True),
    ("share_class", "class", False),
    ("exercise_price_per_share", "exercise price/share", True),
    ("exercise_from", "exercise from", False),
    ("exercise_to", "exercise to", False),
    ("acquired_on", "acquired on", False),
    ("amount_paid", "amount paid", True),
    ("payment", "payment", False),
    ("currency", "ccy", False),
    ("address", "address", False),
]

HISTORY_COLUMNS = [
    ("position", "#", True),
    ("effective_on", "effective", False),
    ("type", "event", False),
    ("issuance", "issuance", False),
    ("holder", "holder", False),
    ("figures", "figures", False),
    ("command_id", "command id", False),
    ("actor", "actor", False),
    ("reason", "reason", False),
    ("recorded_at", "recorded at (UTC)", False),
]


def when_text(day: Optional[date]) -> str:
    """How titles say which events count."""
    return f"as at {day.isoformat()}" if day else "all recorded events"


# ------------------------------------------------------------------------------- holdings
def holdings_rows(view: Any, by: str, issuance: Optional[str], as_of: Optional[date]) -> list[dict[str, Any]]:
    """Holdings rows from the projections (`by` is person, group, issuance or all)."""
    from ..projections import queries

    return queries.holdings(view.conn, by, issuance, as_of)


def holdings_totals(view: Any, by: str, issuance: Optional[str], as_of: Optional[date]) -> list[dict[str, Any]]:
    """The total lines of a holdings table: one per currency, keyed `all`."""
    rows = holdings_rows(view, "all", issuance, as_of)
    if by != "group":
        for r in rows:
            r["holder"] = r["issuance"] = "all"
    return rows


def print_holdings(
    rows: list[dict[str, Any]], by: str, fmt: str, title: Optional[str] = None,
    totals: Optional[list[dict[str, Any]]] = None, caption: Optional[str] = None,
) -> None:
    """Holdings rows as a table (with total lines), JSON or CSV."""
    if fmt == "json":
        render.write_json(rows)
    elif fmt == "csv":
        render.write_csv(rows)
    else:
        render.table(title, HOLDING_KEY_COLUMNS[by] + HOLDING_COLUMNS, rows, totals or [], caption=caption)


@app.command()
@handled
def holdings(
    by: By = typer.Option(By.person, "--by", help="One row per person, group or issuance."),
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only this issuance."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Holdings by person, group or issuance, now or as at a date."""
    day = parse_date(as_of)
    with open_books(db_url()) as books, books.reading() as view:
        warn_if_lagging(view)
        rows = holdings_rows(view, by.value, issuance, day)
        totals = holdings_totals(view, by.value, issuance, day) if fmt == Format.table else None
    scope = f"issuance {issuance}" if issuance else "all issuances"
    print_holdings(rows, by.value, fmt.value, f"Holdings by {by.value}, {scope}, {when_text(day)}", totals)


# ------------------------------------------------------------------------------- register
@app.command()
@handled
def register(
    issuance: str = typer.Argument(..., help="The issuance id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """The register of stock acquisition rights of one issuance (Companies Act art. 249)."""
    from ..projections import queries

    day = parse_date(as_of)
    with open_books(db_url()) as books, books.reading() as view:
        warn_if_lagging(view)
        info, rows = queries.register(view.conn, issuance, day)
    if fmt == Format.json:
        render.write_json(rows)
        return
    if fmt == Format.csv:
        render.write_csv(rows, [c for c, _h, _n in REGISTER_COLUMNS] + ["erased"])
        return
    shown = [dict(r, acquired_on=", ".join(r["acquired_on"]), payment=", ".join(r["payment"]),
                  address=r["address"] if not r["erased"] else "(erased)") for r in rows]
    total = {
        "holder": "total",
        "name": f"{len(rows)} holders",
        "rights_held": sum(r["rights_held"] for r in rows),
        "rights_allotted": sum(r["rights_allotted"] for r in rows),
        "amount_paid": str(sum((Decimal(r["amount_paid"]) for r in rows), Decimal(0))),
        "currency": info.get("currency"),
    }
    title = (
        f"Register of stock acquisition rights: {info['issuance']} ({info['title']}), "
        f"{info['issuer']}, {when_text(day)}"
    )
    render.table(title, REGISTER_COLUMNS, shown, [total] if rows else [])


# -------------------------------------------------------------------------------- history
@app.command()
@handled
def history(
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only events of this issuance."),
    holder: Optional[str] = typer.Option(None, "--holder", help="Only events of this holder."),
    fmt: HistoryFormat = typer.Option(HistoryFormat.table, "--format"),
) -> None:
    """Every stored event in store order, with its dates, figures, command id, actor and reason."""
    from ..projections.history import figures_text, history_rows

    with open_books(db_url()) as books, books.reading() as view:
        rows = history_rows(view.log, issuance=issuance, holder=holder)
        if fmt == HistoryFormat.json:
            render.write_json(list(rows))
            return
        render.table("History", HISTORY_COLUMNS, (dict(r, figures=figures_text(r)) for r in rows))
