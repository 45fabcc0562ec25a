"""Exact money: Decimal amounts with an ISO 4217 currency, minor units from CLDR (babel)."""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction
from functools import lru_cache

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII digits only: "６" is not a digit here
_RATIO = re.compile(r"([0-9]+(\.[0-9]+)?)(/([0-9]+(\.[0-9]+)?))?")


def parse_amount(text: str) -> Decimal:
    """Parse a plain non-negative decimal string ("647000", "0.75"); ValueError otherwise.

    Exponents, signs, floats and JSON numbers are refused by the caller's type check and this
    pattern: an amount must be written the way it is meant.
    """
    if not isinstance(text, str) or not _PLAIN_DECIMAL.fullmatch(text):
        raise ValueError("not a plain decimal string")
    return Decimal(text)


def parse_ratio(text: str) -> Fraction:
    """Parse an adjustment ratio: a plain decimal ("2", "0.5") or a fraction ("1/3")."""
    m = _RATIO.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError("not a decimal or a fraction")
    num = Fraction(Decimal(m.group(1)))
    if m.group(4) is None:
        return num
    den = Fraction(Decimal(m.group(4)))
    if den == 0:
        raise ValueError("zero denominator")
    return num / den


@lru_cache(maxsize=None)
def _currencies() -> frozenset[str]:
    from babel.numbers import list_currencies

    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True for an ISO 4217 code known to CLDR (upper case, three letters)."""
    return isinstance(code, str) and len(code) == 3 and code.isupper() and code in _currencies()


@lru_cache(maxsize=None)
def minor_digits(currency: str) -> int:
    """Digits of the currency's minor unit (JPY 0, USD 2, BHD 3), from CLDR via babel."""
    from babel.numbers import get_currency_precision

    return get_currency_precision(currency)


def round_up_to_minor(amount: Fraction | Decimal, currency: str) -> Decimal:
    """Round an exact amount up (towards +inf) to the currency's minor unit."""
    digits = minor_digits(currency)
    frac = Fraction(amount)
    scaled = frac * 10**digits
    units = -((-scaled.numerator) // scaled.denominator)  # ceiling on exact rationals
    quantum = Decimal(1).scaleb(-digits)
    return (Decimal(units) * quantum).quantize(quantum, rounding=ROUND_CEILING)


def fraction_str(value: Fraction) -> str:
    """Canonical text of an exact ratio: "2", "1/2", "1/3"."""
    return str(value)


def fmt(amount: Decimal) -> str:
    """Money as the contract's decimal string: exact, no exponent, no float."""
    text = format(amount, "f")
    return text
