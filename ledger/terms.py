"""The terms of an issuance, and the terms in force over time.

:class:`Terms` is the one home of the fields of ``set_terms`` (the command, the stored
``TermsSet`` event, the aggregate's state): :data:`TERMS_FIELDS` lists them in order for the
projections and the CLI. The functions below are pure and shared by the aggregate (to price an
exercise) and the projections (to answer as-of queries), so that both read the same figures
from the same events.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Mapping

from .money import decimals, minor_digits, round_up_to_minor
from .vesting import Schedule


@dataclass(frozen=True, slots=True)
class Terms:
    """The remaining terms fixed after the resolution (immutable; set once per issuance)."""

    decided_on: date
    rights: int
    shares_per_right: int
    share_class: str
    price_per_right: Decimal
    currency: str
    exercise_price_per_share: Decimal
    allotment_date: date
    exercise_from: date
    exercise_to: date
    exercisable_only_after_departure: bool = False
    exercise_window_days_after_departure: int | None = None
    # Added with vesting: a TermsSet stored before them has neither (None: the fair value is
    # the price per right; rights vest on allotment).
    fair_value_per_right: Decimal | None = None
    vesting: Schedule | None = None

    @classmethod
    def from_fields(cls, values: Mapping[str, Any]) -> Terms:
        """The terms from a mapping holding every field (a set_terms command's, a stored
        TermsSet's: a field it lacks takes its default; ``vesting`` as its JSON object or a
        :class:`~.vesting.Schedule`)."""
        out = {name: values[name] for name in TERMS_FIELDS if name in values}
        if out.get("vesting") is not None:
            out["vesting"] = Schedule.parse(out["vesting"])
        return cls(**out)

    def as_fields(self) -> dict[str, Any]:
        """The fields in :data:`TERMS_FIELDS` order, as the flat ``TermsSet`` event stores them
        (``vesting`` as its normalised JSON object)."""
        out = {name: getattr(self, name) for name in TERMS_FIELDS}
        if self.vesting is not None:
            out["vesting"] = self.vesting.as_json()
        return out

    @property
    def fair_value(self) -> Decimal:
        """The fair value of one right at the grant date (default: the price per right)."""
        return self.price_per_right if self.fair_value_per_right is None else self.fair_value_per_right

    @property
    def shares(self) -> int:
        """Shares underlying all the rights of the terms, before any adjustment."""
        return self.rights * self.shares_per_right

    @property
    def scale(self) -> int:
        """Decimals every money figure of this issuance can be counted in exactly.

        Amounts and prices paid carry the decimals of the price they come from; an adjusted
        exercise price carries the currency's minor unit: the largest of these counts them all.
        """
        return max(
            minor_digits(self.currency),
            decimals(self.price_per_right),
            decimals(self.exercise_price_per_share),
        )


#: The fields of ``set_terms`` (after ``issuance``), in the order of the command and the event.
TERMS_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Terms))


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
