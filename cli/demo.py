"""`demo`: the IIJ 2013 issuance from the seed, and its holdings by group."""

from __future__ import annotations

import os
from datetime import date

from . import render
from ..bootstrap import open_books
from .app import app, db_url, handled
from .apply import apply_file
from .queries import holdings_rows, holdings_totals, print_holdings

DEMO_FILE = "iij-2013-sar.jsonl"
DEMO_ISSUANCE = "iij-2013-sar"
DEMO_ALLOTMENT_DATE = date(2013, 7, 31)
DEMO_URL = "sqlite:///equity-ledger-demo.sqlite"


@app.command()
@handled
def demo() -> None:
    """Build the IIJ 2013 issuance from the seed in the store and print holdings by group."""
    from importlib.resources import files

    sample = files("equity_ledger.ledger").joinpath("samples", DEMO_FILE)
    # The demo never takes over the user's own default store: alone, it has a file of its own.
    url = db_url() or os.environ.get("EQUITY_LEDGER_DB") or DEMO_URL
    with open_books(url) as books:
        with sample.open("rb") as source:
            report = apply_file(books, source)
        with books.reading() as view:
            at_allotment = holdings_rows(view, "group", DEMO_ISSUANCE, DEMO_ALLOTMENT_DATE)
            totals_then = holdings_totals(view, "group", DEMO_ISSUANCE, DEMO_ALLOTMENT_DATE)
            today = date.today()
            now = holdings_rows(view, "group", DEMO_ISSUANCE, today)
            totals_now = holdings_totals(view, "group", DEMO_ISSUANCE, today)
        store = books
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
