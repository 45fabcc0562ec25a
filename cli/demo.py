"""`demo`: the IIJ 2013 issuance from the seed, and its holdings by group."""

from __future__ import annotations

import os
from datetime import date
from typing import Any

from . import render
from ..bootstrap import open_books
from .app import app, db_url, handled
from .queries import holdings_rows, holdings_totals, print_holdings
from .report import period_text, print_movements

DEMO_FILE = "iij-2013-sar.jsonl"
DEMO_ISSUANCE = "iij-2013-sar"
DEMO_ALLOTMENT_DATE = date(2013, 7, 31)
DEMO_URL = "sqlite:///equity-ledger-demo.sqlite"
# The fiscal years (April to March) whose stock option note the demo prints: the year of the
# illustrative exercise, and the year the second split falls in.
DEMO_YEARS = ((date(2019, 4, 1), date(2020, 3, 31)), (date(2022, 4, 1), date(2023, 3, 31)))
# Lines of the seed that a later version of the demo changed (same id, new content): a store
# made by an earlier demo holds them as they were, and keeps them (see _earlier_lines).
DEMO_EXERCISE = "iij-2013-sar/21-exercise-e10"  # gained its illustrative share_price
REVISED_LINES = (DEMO_EXERCISE,)


@app.command()
@handled
def demo() -> None:
    """Build the IIJ 2013 issuance from the seed in the store and print holdings by group."""
    from importlib.resources import files

    from ..ledger.commands import read_commands
    from ..projections.movements_read import movements

    sample = files("equity_ledger.ledger").joinpath("samples", DEMO_FILE)
    # The demo never takes over the user's own default store: alone, it has a file of its own.
    url = db_url() or os.environ.get("EQUITY_LEDGER_DB") or DEMO_URL
    with open_books(url) as books:
        with sample.open("rb") as source:
            commands = list(read_commands(source))
        earlier = _earlier_lines(books, commands)
        report = books.apply(c for c in commands if c.id not in earlier)
        with books.reading() as view:
            at_allotment = holdings_rows(view, "group", DEMO_ISSUANCE, DEMO_ALLOTMENT_DATE)
            totals_then = holdings_totals(view, "group", DEMO_ISSUANCE, DEMO_ALLOTMENT_DATE)
            today = date.today()
            now = holdings_rows(view, "group", DEMO_ISSUANCE, today)
            totals_now = holdings_totals(view, "group", DEMO_ISSUANCE, today)
            notes = [(start, end, movements(view.conn, start, end, DEMO_ISSUANCE, "shares"))
                     for start, end in DEMO_YEARS]
        store = books
    share_price = next(c.share_price for c in commands if c.id == DEMO_EXERCISE)
    render.out(
        "IIJ 2013 stock-compensation-type stock acquisition rights (seed: press release of "
        "2013-07-11)\n"
        f"store: {store.config.display}; applied {report.applied} commands, "
        f"{report.skipped} already there"
    )
    print_holdings(
        at_allotment, "group", "table",
        f"Holdings by group as at {DEMO_ALLOTMENT_DATE.isoformat()} (after the allotment)",
        totals_then,
    )
    if now != at_allotment:
        print_holdings(
            now, "group", "table",
            f"Holdings by group as at {today.isoformat()} (today: after the 1:2 splits of "
            "2021-01-01 and 2022-10-01)",
            totals_now,
        )
    render.out(
        "Facts from the seed: 89 rights of 200 common shares, JPY 647,000 a right paid by offset "
        "of remuneration claims; 7 directors (60 rights), 10 executive officers (29 rights).\n"
        "Facts from the company's notices: resolution of 2013-06-26 for at most 135 rights; "
        "1:2 splits effective 2021-01-01 and 2022-10-01.\n"
        "ILLUSTRATIVE ASSUMPTIONS (not in the seed): the holders' names and ids, the split of "
        "each group's rights between persons, the allotment date 2013-07-29, the exercise price "
        "JPY 1 a share, the exercise period 2013-07-30..2043-07-29 with a 10-day window after "
        "leaving office, and the departure (2019-06-30) and exercise (2019-07-05) of e10."
    )
    for start, end, rows in notes:
        print_movements(
            rows,
            f"Stock option note of {DEMO_ISSUANCE}, fiscal year {period_text(start, end, 'shares')}",
        )
    render.out(
        "The notes restate counts and prices at each year's end: 200 shares a right until "
        "2020-12-31, 400 from 2021-01-01 and 800 from 2022-10-01, so the fair value per share at grant is JPY 647,000 "
        "/ 200 = 3,235 in the first note and 647,000 / 800 = 808.75 in the second."
    )
    if earlier:
        render.out(
            "note: this store was made by an earlier version of the demo, whose exercise of e10 "
            "has no share price; it keeps that exercise as recorded, so the first note has no "
            "average share price at exercise (run the demo on a new store to see it)"
        )
    else:
        render.out(
            f"ILLUSTRATIVE ASSUMPTION (not in the seed): the market price of JPY {share_price:,} a "
            "share on e10's exercise date, so the average share price at exercise is illustrative too."
        )


def _earlier_lines(books: Any, commands: list[Any]) -> set[str]:
    """Ids of revised seed lines that this store holds with the content an earlier demo gave
    them: they are left as recorded (re-applying the new content would be refused as the same
    id with other content, and the exercise it records cannot happen twice)."""
    stored = books.service.uow.log.command_digests([c.id for c in commands if c.id in REVISED_LINES])
    return {c.id for c in commands if c.id in stored and stored[c.id] != c.digest}
