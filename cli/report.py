"""`report movements`: the movements of stock acquisition rights over a period, for filings.

It only reads the store. The table is laid out like the filing's note: one line per line of the
note, one column per issuance, then the `all` column of each currency; CSV and workbooks have
one row per JSON object, its nested keys flattened (`unvested.opening`).
"""

from __future__ import annotations

from datetime import date
from enum import Enum
from typing import Any, Optional

import typer

from . import render
from .app import OUTPUT_HELP, Format, app, check_output, db_url, handled, parse_date, warn_if_lagging
from ..bootstrap import open_books

report_app = typer.Typer(no_args_is_help=True, help="Reports for filings: movements.")
app.add_typer(report_app, name="report")


class Unit(str, Enum):
    shares = "shares"
    rights = "rights"


# The lines of the note: (JSON path or None for a heading, label, kind). Kinds: "count",
# "price" (a decimal string or null), "years", "text". The one place that maps the answer's
# keys to the table's lines and to the columns of CSV and workbooks.
NOTE_LINES: list[tuple[Optional[str], str, str]] = [
    ("currency", "currency", "text"),
    (None, "Before vesting (unvested)", ""),
    ("unvested.opening", "  opening", "count"),
    ("unvested.granted", "  granted", "count"),
    ("unvested.forfeited", "  forfeited", "count"),
    ("unvested.vested", "  vested", "count"),
    ("unvested.closing", "  closing (unvested)", "count"),
    (None, "After vesting (vested)", ""),
    ("vested.opening", "  opening", "count"),
    ("vested.vested", "  vested", "count"),
    ("vested.exercised", "  exercised", "count"),
    ("vested.forfeited", "  forfeited", "count"),
    ("vested.expired", "  expired", "count"),
    ("vested.closing", "  closing (vested)", "count"),
    ("exercisable_closing", "exercisable at closing", "count"),
    (None, "Unit prices (per share)", ""),
    ("exercise_price_per_share", "  exercise price", "price"),
    (None, "  weighted average exercise price", ""),
    ("weighted_average_exercise_price.opening", "    opening", "price"),
    ("weighted_average_exercise_price.granted", "    granted", "price"),
    ("weighted_average_exercise_price.forfeited", "    forfeited", "price"),
    ("weighted_average_exercise_price.exercised", "    exercised", "price"),
    ("weighted_average_exercise_price.expired", "    expired", "price"),
    ("weighted_average_exercise_price.closing", "    closing", "price"),
    ("weighted_average_exercise_price.exercisable_closing", "    exercisable at closing", "price"),
    ("average_share_price_at_exercise", "  average share price at exercise", "price"),
    ("fair_value_per_share_at_grant", "  fair value per share at grant", "price"),
    ("remaining_contractual_life_years", "remaining contractual life (years)", "years"),
]

# CSV and workbook columns: the row's own keys first, then the note's lines.
HEAD_KEYS = ["issuance", "title", "currency", "unit"]
EXPORT_KEYS = HEAD_KEYS + [k for k, _label, kind in NOTE_LINES if k is not None and kind != "text"]


def flat(row: dict[str, Any]) -> dict[str, Any]:
    """One answer object with its nested objects' keys joined by dots."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, dict):
            for sub, inner in value.items():
                out[f"{key}.{sub}"] = inner
        else:
            out[key] = value
    return out


def period_text(start: date, end: date, unit: str) -> str:
    """How titles name the period and the unit."""
    counted = f"in shares at the shares per right of {end.isoformat()}" if unit == "shares" else "in rights"
    return f"{start.isoformat()}..{end.isoformat()}, {counted}"


def print_movements(rows: list[dict[str, Any]], title: str, wide: bool = False) -> None:
    """The answer as the filing's note: a line per line of the note, a column per object."""
    if not rows:
        render.out(f"{title}: no rights outstanding or granted in the period")
        return
    flats = [flat(r) for r in rows]
    columns: list[tuple[str, str, bool]] = [("line", "", False)]
    for i, r in enumerate(flats):
        head = f"all {r['currency']}" if r["issuance"] == "all" else r["issuance"]
        columns.append((f"c{i}", head, True))
    lines = []
    for key, label, kind in NOTE_LINES:
        line: dict[str, Any] = {"line": label}
        if key is not None:
            for i, r in enumerate(flats):
                value = r.get(key)
                line[f"c{i}"] = "-" if value is None and kind in ("price", "years") else value
        lines.append(line)
    titles = [f"{r['issuance']}: {r['title']}" for r in rows if r["issuance"] != "all"]
    caption = "; ".join([*titles, "-: no figure (nothing to weigh, or an exercise without a share price)"])
    keep = ["line"] + [f"c{i}" for i, r in enumerate(flats) if r["issuance"] == "all"]
    # The title on a line of its own: the note's table is narrow, and a title wrapped to its
    # width would break the period in two.
    render.out(title)
    render.table(None, columns, lines, caption=caption, wide=wide, keep=keep)


def write_movements(rows: list[dict[str, Any]], fmt: str, output: Optional[str]) -> None:
    """The answer as JSON (the contract's nested objects), CSV or a workbook (flattened)."""
    if fmt == "json":
        if output is None:
            render.write_json(rows)
            return
        render.write_file(output, render.to_json(rows) + "\n")
    elif fmt == "csv":
        flats = [flat(r) for r in rows]
        if output is None:
            render.write_csv(flats, EXPORT_KEYS)
            return
        render.write_file(output, render.to_csv(flats, EXPORT_KEYS), bom=True)
    else:
        from .xlsx import write_xlsx

        kinds = {k: ("text" if kind == "text" else "number") for k, _label, kind in NOTE_LINES if k}
        columns = [(k, k, kinds.get(k, "text")) for k in EXPORT_KEYS]
        write_xlsx(output, "Movements", columns, [flat(r) for r in rows])
    render.out(f"wrote {len(rows)} rows to {output}")


def _day(value: str, option: str) -> date:
    day = parse_date(value, option)
    if day is None:  # pragma: no cover - the option is required
        raise typer.BadParameter("a date is required", param_hint=option)
    return day


@report_app.command("movements")
@handled
def movements(
    start: str = typer.Option(..., "--from", metavar="DATE", help="First day of the period (YYYY-MM-DD)."),
    end: str = typer.Option(..., "--to", metavar="DATE", help="Last day of the period (YYYY-MM-DD)."),
    issuance: Optional[str] = typer.Option(None, "--issuance", help="Only this issuance."),
    unit: Unit = typer.Option(Unit.shares, "--unit", help="Count shares (restated at --to) or rights."),
    fmt: Format = typer.Option(Format.table, "--format"),
    wide: bool = typer.Option(False, "--wide", help="Show every column, even wider than the terminal."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="FILE", help=OUTPUT_HELP),
) -> None:
    """Movements of the rights from --from to --to, per issuance and in total (the filing note)."""
    from ..projections.movements_read import movements as read_movements

    check_output(fmt.value, output)
    first, last = _day(start, "--from"), _day(end, "--to")
    if first > last:
        raise typer.BadParameter(f"{first.isoformat()} is after --to {last.isoformat()}", param_hint="--from")
    with open_books(db_url()) as books, books.reading() as view:
        warn_if_lagging(view)
        rows = read_movements(view.conn, first, last, issuance, unit.value)
    if fmt != Format.table:
        write_movements(rows, fmt.value, output)
        return
    scope = f"issuance {issuance}" if issuance else "all issuances"
    print_movements(rows, f"Movements of stock acquisition rights, {scope}, {period_text(first, last, unit.value)}",
                    wide=wide)
