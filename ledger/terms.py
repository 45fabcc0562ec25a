"""Terms in force over time: shares per right and exercise price after each adjustment.

A pure function shared by the aggregate (to price an exercise) and the projections (to answer
as-of queries), so that both read the same figures from the same events.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Iterable

from .money import round_up_to_minor


def terms_in_force(
    shares_per_right: int | Fraction,
    exercise_price: Decimal,
    currency: str,
    adjustments: Iterable[tuple[int, str | Fraction]],
) -> list[tuple[int, Fraction, Decimal]]:
    """[(date ordinal, shares per right, exercise price)] from each adjustment date on.

    `adjustments` are (ordinal, ratio) in effective order (same date: record order). Shares per
    right are kept exact; the price is divided by each ratio and rounded up to the currency's
    minor unit after each one, so successive adjustments compound as the contract says. Several
    adjustments of one date give one row, with all of them applied.
    """
    spr = Fraction(shares_per_right)
    price = exercise_price
    out: list[tuple[int, Fraction, Decimal]] = []
    for ordinal, ratio in adjustments:
        r = Fraction(ratio)
        spr *= r
        price = round_up_to_minor(Fraction(price) / r, currency)
        if out and out[-1][0] == ordinal:
            out[-1] = (ordinal, spr, price)
        else:
            out.append((ordinal, spr, price))
    return out


def in_force_on(
    base: tuple[Fraction, Decimal], steps: list[tuple[int, Fraction, Decimal]], ordinal: int
) -> tuple[Fraction, Decimal]:
    """Shares per right and exercise price at the end of the day `ordinal`."""
    current = base
    for day, spr, price in steps:
        if day > ordinal:
            break
        current = (spr, price)
    return current
