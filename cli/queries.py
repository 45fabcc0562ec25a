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
from .app import (OUTPUT_HELP, By, Format, app, check_output, db_url, handled, parse_date,
                  warn_if_lagging)
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


# What a table too wide for the terminal keeps, and what it leaves out first (`--wide` shows all).
HOLDING_KEEP = ("holder", "name", "group", "issuance", "holders", "rights_outstanding", "shares_underlying")
HOLDING_DROP_ORDER = [
    "exercise_price_paid", "rights_expired", "rights_forfeited", "shares_delivered",
    "amount_paid", "amount_offset", "currency", "rights_exercised", "rights_allotted",
]
# By group or issuance (the demo's table): the money offset matters more than the counts.
HOLDING_DROP_ORDER_TOTALS = [
    "exercise_price_paid", "rights_expired", "rights_forfeited", "shares_delivered",
    "rights_exercised", "rights_allotted", "amount_paid", "currency", "amount_offset",
]
REGISTER_KEEP = ("holder", "name", "group", "rights_held")
REGISTER_DROP_ORDER = [
    "address", "payment", "share_class", "acquired_on", "exercise_from", "exercise_to", "currency",
    "amount_paid", "exercise_price_per_share", "shares_per_right", "rights_allotted",
]
HISTORY_KEEP = ("position", "effective_on", "type", "issuance", "holder", "figures")
HISTORY_DROP_ORDER = ["recorded_at", "reason", "actor", "command_id"]
HISTORY_MIN_WIDTHS = {"figures": 20, "type": 12}

WIDE_HELP = "Show every column, even wider than the terminal."


# Keys whose values are dates (written as dates in a workbook) or a UTC timestamp.
DATE_KEYS = {"effective_on", "exercise_from", "exercise_to", "acquired_on", "allotted_on", "as_of"}
DATETIME_KEYS = {"recorded_at"}
# The history's columns in CSV and workbooks: the table's, then where the event is stored.
HISTORY_EXPORT_KEYS = [k for k, _h, _n in HISTORY_COLUMNS] + ["aggregate", "version"]


def export_kinds(keys: list[str], rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(key, header, kind) for a workbook: headers are the JSON keys (as in CSV); a column is
    a number where the table lists it as numeric (or its values are integers), a date where
    its key names one."""
    numeric = {k for cols in (HOLDING_COLUMNS, REGISTER_COLUMNS, HISTORY_COLUMNS,
                              *HOLDING_KEY_COLUMNS.values()) for k, _h, n in cols if n}
    first = rows[0] if rows else {}
    out = []
    for k in keys:
        v = first.get(k)
        if k in DATETIME_KEYS:
            kind = "datetime"
        elif k in DATE_KEYS:
            kind = "date"
        elif k in numeric or (isinstance(v, int) and not isinstance(v, bool)):
            kind = "number"
        else:
            kind = "text"
        out.append((k, k, kind))
    return out


def export(rows: list[dict[str, Any]], keys: list[str], fmt: str, output: Optional[str], title: str) -> None:
    """Rows as JSON, CSV or an Excel workbook: on stdout, or into the file `output`."""
    if fmt == "xlsx":
        from .xlsx import write_xlsx

        n = write_xlsx(output, title, export_kinds(keys, rows), rows)
        render.out(f"wrote {n} rows to {output}")
        return
    if output is None:
        if fmt == "json":
            render.write_json(rows)
        else:
            render.write_csv(rows, keys)
        return
    text = render.to_json(rows) + "\n" if fmt == "json" else render.to_csv(rows, keys)
    render.write_file(output, text, bom=fmt == "csv")
    render.out(f"wrote {len(rows)} rows to {output}")


def holdings_keys(rows: list[dict[str, Any]], by: str, issuance: Optional[str]) -> list[str]:
    """The columns of holdings in CSV and workbooks: the rows' own keys, or (no rows) the
    columns they would have, so that an empty answer still has its header."""
    if rows:
        return list(rows[0].keys())
    keys = [k for k, _h, _n in HOLDING_KEY_COLUMNS[by]]
    if by == "person" and issuance:
        keys.insert(keys.index("group") + 1, "issuance")
    return keys + [k for k, _h, _n in HOLDING_COLUMNS]


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
    wide: bool = False,
) -> None:
    """Holdings rows as a table (with total lines), JSON or CSV."""
    if fmt == "json":
        render.write_json(rows)
    elif fmt == "csv":
        render.write_csv(rows)
    else:
        render.table(title, HOLDING_KEY_COLUMNS[by] + HOLDING_COLUMNS, rows, totals or [], caption=caption,
                     wide=wide, keep=HOLDING_KEEP,
                     drop_order=HOLDING_DROP_ORDER if by == "person" else HOLDING_DROP_ORDER_TOTALS)


@app.command()
@handled
def holdings(
    by: By = typer.Option(By.person, "--by", help="One row per person, group or issuance."),
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only this issuance."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help=OUTPUT_HELP),
) -> None:
    """Holdings by person, group or issuance, now or as at a date."""
    check_output(fmt.value, output)
    day = parse_date(as_of)
    with open_books(db_url()) as books, books.reading() as view:
        warn_if_lagging(view)
        rows = holdings_rows(view, by.value, issuance, day)
        totals = holdings_totals(view, by.value, issuance, day) if fmt == Format.table else None
    scope = f"issuance {issuance}" if issuance else "all issuances"
    if fmt != Format.table:
        export(rows, holdings_keys(rows, by.value, issuance), fmt.value, output,
               f"Holdings by {by.value}")
        return
    print_holdings(rows, by.value, fmt.value, f"Holdings by {by.value}, {scope}, {when_text(day)}", totals,
                   wide=wide)


# ------------------------------------------------------------------------------- register
@app.command()
@handled
def register(
    issuance: str = typer.Argument(..., help="The issuance id."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="As at the end of this date (YYYY-MM-DD)."),
    fmt: Format = typer.Option(Format.table, "--format"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help=OUTPUT_HELP),
) -> None:
    """The register of stock acquisition rights of one issuance (Companies Act art. 249)."""
    from ..projections import queries

    check_output(fmt.value, output)
    day = parse_date(as_of)
    with open_books(db_url()) as books, books.reading() as view:
        warn_if_lagging(view)
        info, rows = queries.register(view.conn, issuance, day)
    if fmt == Format.json and output is None:
        render.write_json(rows)
        return
    if fmt != Format.table:
        export(rows, [c for c, _h, _n in REGISTER_COLUMNS] + ["erased"], fmt.value, output,
               f"Register {issuance}")
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
    render.table(title, REGISTER_COLUMNS, shown, [total] if rows else [], wide=wide,
                 keep=REGISTER_KEEP, drop_order=REGISTER_DROP_ORDER)


# -------------------------------------------------------------------------------- history
@app.command()
@handled
def history(
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only events of this issuance."),
    holder: Optional[str] = typer.Option(None, "--holder", help="Only events of this holder."),
    fmt: Format = typer.Option(Format.table, "--format"),
    wide: bool = typer.Option(False, "--wide", help=WIDE_HELP),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help=OUTPUT_HELP),
) -> None:
    """Every stored event in store order, with its dates, figures, command id, actor and reason."""
    from ..projections.history import check_known, figures_text, history_rows

    check_output(fmt.value, output)
    with open_books(db_url()) as books, books.reading() as view:
        check_known(view.log, issuance=issuance, holder=holder)
        rows = history_rows(view.log, issuance=issuance, holder=holder)
        if fmt == Format.json:
            export(list(rows), [], "json", output, "History")
            return
        if fmt != Format.table:
            shown = [dict(r, figures=figures_text(r)) for r in rows]
            export(shown, HISTORY_EXPORT_KEYS, fmt.value, output, "History")
            return
        render.table("History", HISTORY_COLUMNS, (dict(r, figures=figures_text(r)) for r in rows),
                     wide=wide, keep=HISTORY_KEEP, drop_order=HISTORY_DROP_ORDER,
                     min_widths=HISTORY_MIN_WIDTHS)
