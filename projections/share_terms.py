"""The terms in force over time of one issuance, as rows: the one function that makes them.

The projector writes these rows to ``proj_share_terms``, ``audit verify`` recomputes them from
the events to check that table, and ``audit replay`` reads the shares per right in force from
them: three users, one definition, built on the domain's pure :func:`terms_in_force`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Iterable, Sequence

from ..ledger.terms import terms_in_force

TermsRow = tuple[date, Fraction, Decimal]  # (in force from, shares per right, exercise price)


def share_terms_rows(
    resolved_on: date,
    shares_per_right: int | Fraction,
    exercise_price: Decimal,
    currency: str,
    adjustments: Iterable[tuple[date, str | Fraction]],
) -> list[TermsRow]:
    """[(date, shares per right, exercise price per share)] in force from each date on.

    The first row is the terms as set, in force from the resolution date; then one row per
    adjustment date (all adjustments of a date applied; one dated on the resolution date
    replaces the first row). `adjustments` are (effective date, ratio) in effective order, same
    date in record order.
    """
    rows = {resolved_on.toordinal(): (Fraction(shares_per_right), exercise_price)}
    steps = terms_in_force(
        shares_per_right, exercise_price, currency, [(d.toordinal(), ratio) for d, ratio in adjustments]
    )
    for ordinal, spr, price in steps:
        rows[ordinal] = (spr, price)
    return [(date.fromordinal(o), *rows[o]) for o in sorted(rows)]


def in_force(rows: Sequence[TermsRow], as_of: date | None) -> tuple[Fraction, Decimal]:
    """The shares per right and exercise price at the end of `as_of` (None: the latest); before
    the first row, the first row's terms (as the terms were set)."""
    current = rows[0]
    for row in rows:
        if as_of is not None and row[0] > as_of:
            break
        current = row
    return current[1], current[2]
