"""The movements of stock acquisition rights over a period (`report movements`), as pure
functions of plain rows and values.

The filing note (the Japanese annual securities report's stock option note, IFRS 2 para 45)
follows every series through a period in two blocks:

* unvested: opening + granted - forfeited - vested = closing;
* vested: opening + vested - exercised - forfeited - expired = closing;

where the period runs from the end of the day before `--from` (opening) to the end of `--to`
(closing), and `vested` is the same number in both blocks (rights granted and vested on one day
pass through both). A forfeit takes unvested rights first, then vested ones; a lapse at a
departure takes unvested rights; rights still unvested when their issuance expires are
forfeited with it (the unvested block has no expiry line); without a vesting schedule every
right vests on its allotment.

Every count is first found per holding (a holder in an issuance) in rights, where the two
equations hold exactly; in shares each holding's count is restated with the shares per right in
force at `--to` and floored, then the holdings are summed (so with a whole number of shares per
right the equations hold exactly in shares too; with a fraction, see :func:`restated`).

Prices are per share in both units and restated at `--to`; the ones the report computes (a
weighted average over several prices, the average share price at exercise, the fair value per
share) are rounded half-up to two digits beyond the currency's minor unit (:func:`rounded`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any, Iterable, Mapping, Sequence

from ..ledger import vesting as v
from ..ledger.money import minor_digits
from .share_terms import TermsRow, in_force

UNITS = ("shares", "rights")
ALL = "all"


# --------------------------------------------------------------------------- counts
@dataclass(frozen=True, slots=True)
class Flows:
    """The movements of one holding (or a sum of holdings) over a period, in one unit.

    `vested` is the line both blocks share: rights that moved from unvested to vested.
    """

    unvested_opening: int = 0
    granted: int = 0
    unvested_forfeited: int = 0
    vested: int = 0
    unvested_closing: int = 0
    vested_opening: int = 0
    exercised: int = 0
    vested_forfeited: int = 0
    expired: int = 0
    vested_closing: int = 0
    exercisable_closing: int = 0

    def __add__(self, other: Flows) -> Flows:
        return Flows(*(getattr(self, f) + getattr(other, f) for f in _FLOW_FIELDS))

    @property
    def opening(self) -> int:
        """Outstanding at the opening (both blocks)."""
        return self.unvested_opening + self.vested_opening

    @property
    def closing(self) -> int:
        """Outstanding at the closing (both blocks)."""
        return self.unvested_closing + self.vested_closing

    @property
    def forfeited(self) -> int:
        """Forfeited in the period from either block (lapses at departure included)."""
        return self.unvested_forfeited + self.vested_forfeited

    def unvested_gap(self) -> int:
        """opening + granted - forfeited - vested - closing of the unvested block (0 in rights)."""
        return (self.unvested_opening + self.granted - self.unvested_forfeited - self.vested
                - self.unvested_closing)

    def vested_gap(self) -> int:
        """opening + vested - exercised - forfeited - expired - closing of the vested block."""
        return (self.vested_opening + self.vested - self.exercised - self.vested_forfeited
                - self.expired - self.vested_closing)


_FLOW_FIELDS = tuple(f.name for f in fields(Flows))


def total(flows: Iterable[Flows]) -> Flows:
    """The sum of several holdings' movements."""
    out = Flows()
    for f in flows:
        out = out + f
    return out


def in_period(rights: Flows) -> bool:
    """Whether a series belongs in the report: rights outstanding at the opening, or granted
    in the period (`rights` counted in rights, not shares)."""
    return rights.opening > 0 or rights.granted > 0


def _cumulative(row: Mapping[str, Any] | None) -> tuple[int, int, int, int]:
    if row is None:
        return 0, 0, 0, 0
    return row["allotted"], row["exercised"], row["forfeited"], row["expired"]


def flows_vesting_on_allotment(opening: Mapping[str, Any] | None, closing: Mapping[str, Any] | None) -> Flows:
    """A holding of an issuance without vesting, from its cumulative holding rows (allotted,
    exercised, forfeited, expired) as at the opening and the closing (None: no row yet).

    Every right vests on its allotment: grants pass through the unvested block into the vested
    one on their day, so the unvested block opens and closes at 0.
    """
    a0, x0, f0, e0 = _cumulative(opening)
    a1, x1, f1, e1 = _cumulative(closing)
    granted = a1 - a0
    return Flows(
        granted=granted, vested=granted,
        vested_opening=a0 - x0 - f0 - e0, exercised=x1 - x0, vested_forfeited=f1 - f0,
        expired=e1 - e0, vested_closing=a1 - x1 - f1 - e1,
    )


def flows_of_walk(walk: v.Walk, first: int, last: int) -> Flows:
    """A holding of an issuance with vesting, from its walk (:func:`ledger.vesting.walk`) over
    the days `first`..`last` (date ordinals, both included).

    Opening and closing are the walk's state at the end of the day before `first` and of
    `last`; each movement of the period is split as the walk took it (the walk's points hold
    the state just before each movement): a forfeit from unvested rights first, a lapse from
    unvested ones, an expiry of both (its unvested part is forfeited). The vested line is what
    is left: the rights that moved from unvested to vested.
    """
    u0, w0 = walk.on(first - 1)
    u1, w1 = walk.on(last)
    granted = unvested_forfeited = exercised = vested_forfeited = expired = 0
    for point in walk.points:
        m = point.movement
        if not first <= m.ordinal <= last:
            continue
        if m.kind == v.ALLOT:
            granted += m.rights
        elif m.kind == v.EXERCISE:
            exercised += m.rights
        elif m.kind in (v.FORFEIT, v.LAPSE):
            take = min(m.rights, point.unvested)
            unvested_forfeited += take
            vested_forfeited += m.rights - take
        elif m.kind == v.EXPIRE:
            unvested_forfeited += point.unvested
            expired += point.vested
    return Flows(
        unvested_opening=u0, granted=granted, unvested_forfeited=unvested_forfeited,
        vested=u0 + granted - unvested_forfeited - u1, unvested_closing=u1,
        vested_opening=w0, exercised=exercised, vested_forfeited=vested_forfeited,
        expired=expired, vested_closing=w1,
    )


def with_exercisable(flows: Flows, can_exercise: bool) -> Flows:
    """The holding's vested closing rights count as exercisable when the holder could exercise
    them on `--to` (see :func:`.vesting.exercisable_on`)."""
    return replace(flows, exercisable_closing=flows.vested_closing if can_exercise else 0)


def restated(flows: Flows, shares_per_right: Fraction) -> Flows:
    """One holding's counts in shares: each count x the shares per right, floored.

    With a whole number of shares per right this is exact and the two equations hold in shares
    as in rights. With a fraction (after a "1/3" adjustment, say) each count is floored on its
    own, so an equation of one holding may miss by the floors' remainders: the unvested block's
    opening + granted - forfeited - vested - closing is then -1, 0, 1 or 2 shares, the vested
    block's -1 to 3 shares (the vested line is still one number in both blocks).
    """
    num, den = shares_per_right.numerator, shares_per_right.denominator
    return Flows(*(getattr(flows, f) * num // den for f in _FLOW_FIELDS))


# --------------------------------------------------------------------------- prices
def price_digits(currency: str) -> int:
    """Decimals of a computed price: two beyond the currency's minor unit (JPY 2, USD 4)."""
    return minor_digits(currency) + 2


def rounded(value: Fraction, digits: int) -> Decimal:
    """`value` (>= 0) rounded half-up to `digits` decimals, exactly (no Decimal context)."""
    n = floor(value * 10**digits + Fraction(1, 2))
    return Decimal(f"{n}E-{digits}")


def decimal_text(value: Decimal) -> str:
    """A decimal as the report prints it: plain digits, no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def weighted_average(weighted: Iterable[tuple[int, Decimal]], currency: str) -> str | None:
    """The average of prices weighted by counts; None when the counts add up to 0.

    Over one price (every count that is not 0 at the same price: an issuance row) it is that
    price as recorded; over several it is rounded (:func:`price_digits`)."""
    pairs = [(n, p) for n, p in weighted if n]
    if not pairs:
        return None
    prices = {p for _n, p in pairs}
    if len(prices) == 1:
        return decimal_text(prices.pop())
    count = sum(n for n, _p in pairs)
    value = sum((n * Fraction(p) for n, p in pairs), Fraction(0)) / count
    return decimal_text(rounded(value, price_digits(currency)))


@dataclass(frozen=True, slots=True)
class ExerciseAt:
    """An exercise of the period as the average share price reads it: the market price of a
    share on its date (None: not given), the shares it delivered, and the factor that
    restates them at `--to` (shares per right at `--to` / at the exercise date)."""

    share_price: Decimal | None
    shares_delivered: int
    restatement: Fraction


def average_share_price(exercises: Sequence[ExerciseAt], currency: str) -> str | None:
    """Sum of share price x shares delivered over the exercises, divided by the same shares
    restated at `--to`: each price restated and weighted by restated shares. None without an
    exercise, when one lacks a share price, or when none delivered a share."""
    if not exercises or any(e.share_price is None for e in exercises):
        return None
    paid = sum((Fraction(e.share_price) * e.shares_delivered for e in exercises), Fraction(0))
    shares = sum((e.restatement * e.shares_delivered for e in exercises), Fraction(0))
    if not shares:
        return None
    return decimal_text(rounded(paid / shares, price_digits(currency)))


def fair_value_per_share(fair_value_per_right: Decimal, shares_per_right: Fraction, currency: str) -> str:
    """The fair value of one right at the grant date / the shares per right at `--to`."""
    return decimal_text(rounded(Fraction(fair_value_per_right) / shares_per_right, price_digits(currency)))


def remaining_life_years(weighted: Iterable[tuple[int, date]], to: date) -> str | None:
    """The closing counts' weighted average of the days from `to` to the end of the exercise
    period (0 once past), in years of 365 days, rounded half-up to 2 decimals; None when the
    counts add up to 0."""
    pairs = [(n, end) for n, end in weighted if n]
    count = sum(n for n, _end in pairs)
    if not count:
        return None
    days = sum(n * max(0, (end - to).days) for n, end in pairs)
    return decimal_text(rounded(Fraction(days, count * 365), 2))


# --------------------------------------------------------------------------- series and rows
@dataclass(frozen=True)
class Series:
    """One issuance over the period, counted in the report's unit."""

    issuance: str
    title: str
    currency: str
    flows: Flows
    exercise_price: Decimal  # per share, in force at `--to`
    fair_value_per_right: Decimal
    shares_per_right: Fraction  # in force at `--to`
    exercise_to: date
    exercises: tuple[ExerciseAt, ...]


def series_of(
    info: Mapping[str, Any],
    terms: Sequence[TermsRow],
    holdings: Iterable[Flows],
    exercises: Iterable[Mapping[str, Any]],
    unit: str,
    to: date,
) -> Series | None:
    """An issuance's series from its row (``proj_issuances``), its terms in force over time,
    its holdings' movements in rights (one :class:`Flows` each, exercisable set) and the
    exercises of the period (``exercised_on``, ``shares_delivered``, ``share_price``); None
    when it had no rights outstanding at the opening and granted none in the period."""
    if unit not in UNITS:
        raise ValueError(f"unknown unit {unit!r}")
    held = list(holdings)
    if not in_period(total(held)):
        return None
    spr, price = in_force(terms, to)
    counted = total(restated(h, spr) for h in held) if unit == "shares" else total(held)
    fair = info.get("fair_value_per_right")
    return Series(
        issuance=info["issuance"],
        title=info["title"],
        currency=info["currency"],
        flows=counted,
        exercise_price=price,
        fair_value_per_right=info["price_per_right"] if fair is None else fair,
        shares_per_right=spr,
        exercise_to=info["exercise_to"],
        exercises=tuple(
            ExerciseAt(e["share_price"], e["shares_delivered"], spr / in_force(terms, e["exercised_on"])[0])
            for e in exercises
        ),
    )


# The lines of weighted_average_exercise_price and the count each weighs by.
_PRICE_LINES = (
    ("opening", lambda f: f.opening),
    ("granted", lambda f: f.granted),
    ("forfeited", lambda f: f.forfeited),
    ("exercised", lambda f: f.exercised),
    ("expired", lambda f: f.expired),
    ("closing", lambda f: f.closing),
    ("exercisable_closing", lambda f: f.exercisable_closing),
)


def _counts(f: Flows) -> dict[str, Any]:
    return {
        "unvested": {"opening": f.unvested_opening, "granted": f.granted, "forfeited": f.unvested_forfeited,
                     "vested": f.vested, "closing": f.unvested_closing},
        "vested": {"opening": f.vested_opening, "vested": f.vested, "exercised": f.exercised,
                   "forfeited": f.vested_forfeited, "expired": f.expired, "closing": f.vested_closing},
        "exercisable_closing": f.exercisable_closing,
    }


def _row(key: str, title: str | None, currency: str, unit: str, series: Sequence[Series], to: date,
         one: Series | None) -> dict[str, Any]:
    flows = total(s.flows for s in series)
    return {
        "issuance": key,
        "title": title,
        "currency": currency,
        "unit": unit,
        **_counts(flows),
        "exercise_price_per_share": decimal_text(one.exercise_price) if one else None,
        "weighted_average_exercise_price": {
            line: weighted_average(((count(s.flows), s.exercise_price) for s in series), currency)
            for line, count in _PRICE_LINES
        },
        "average_share_price_at_exercise": average_share_price(
            [e for s in series for e in s.exercises], currency),
        "fair_value_per_share_at_grant": (
            fair_value_per_share(one.fair_value_per_right, one.shares_per_right, currency) if one else None),
        "remaining_contractual_life_years": remaining_life_years(
            ((s.flows.closing, s.exercise_to) for s in series), to),
    }


def series_row(s: Series, unit: str, to: date) -> dict[str, Any]:
    """The report's object for one issuance."""
    return _row(s.issuance, s.title, s.currency, unit, [s], to, s)


def total_rows(series: Sequence[Series], unit: str, to: date) -> list[dict[str, Any]]:
    """The `all` objects: one per currency (sorted), over that currency's issuances; their
    title, exercise price and fair value are null, their weighted averages mix issuances."""
    currencies = sorted({s.currency for s in series})
    return [_row(ALL, None, c, unit, [s for s in series if s.currency == c], to, None) for c in currencies]


def report(series: Iterable[Series], unit: str, to: date) -> list[dict[str, Any]]:
    """The contract's answer: one object per issuance, sorted by issuance id, then the `all`
    objects, one per currency; an empty list when no issuance had rights in the period."""
    ordered = sorted(series, key=lambda s: s.issuance)
    return [series_row(s, unit, to) for s in ordered] + total_rows(ordered, unit, to)
