"""Exact money: Decimal amounts with an ISO 4217 currency, minor units from CLDR (babel).

Limits: the store keeps every quantity and figure in signed 64-bit integers, so an amount is
accepted only when its unscaled digits (the amount counted in units of its last written digit)
fit one, with at most :data:`MAX_DECIMALS` digits after the point; ratios only when the
numerator and denominator of their exact fraction fit one. Products are computed on integers
(coefficient x quantity), never in a Decimal context that could round them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

INT64_MAX = 2**63 - 1
MAX_DECIMALS = 18
# A quantity as JSON text: at most this many digits (INT64_MAX has 19).
MAX_INT_DIGITS = len(str(INT64_MAX))

_PLAIN_DECIMAL = re.compile(r"[0-9]+(\.[0-9]+)?")  # ASCII digits only: "６" is not a digit here
_RATIO = re.compile(r"([0-9]+(\.[0-9]+)?)(/([0-9]+(\.[0-9]+)?))?")


class OutOfRange(ValueError):
    """A well-formed value that does not fit the store's 64-bit integers."""


def _check_digits(text: str) -> None:
    """Refuse a plain decimal whose unscaled digits or decimals would not fit (cheap, on text)."""
    whole, _, decimals = text.partition(".")
    if len(decimals) > MAX_DECIMALS:
        raise OutOfRange(f"has more than {MAX_DECIMALS} digits after the point")
    unscaled = (whole + decimals).lstrip("0")
    if len(unscaled) > MAX_INT_DIGITS or (unscaled and int(unscaled) > INT64_MAX):
        raise OutOfRange(f"has more digits than a 64-bit integer holds (at most {INT64_MAX} "
                         "units of its last digit)")


def parse_amount(text: str) -> Decimal:
    """Parse a plain non-negative decimal string ("647000", "0.75"); ValueError otherwise.

    Exponents, signs, floats and JSON numbers are refused by the caller's type check and this
    pattern: an amount must be written the way it is meant. :class:`OutOfRange` (a ValueError)
    when its digits would not fit a 64-bit integer (see the module's docstring).
    """
    if not isinstance(text, str) or not _PLAIN_DECIMAL.fullmatch(text):
        raise ValueError("not a plain decimal string")
    _check_digits(text)
    return Decimal(text)


def parse_ratio(text: str) -> Fraction:
    """Parse an adjustment ratio: a plain decimal ("2", "0.5") or a fraction ("1/3").

    :class:`OutOfRange` when a part has more digits than an amount may have, or when the
    numerator or the denominator of the exact fraction exceeds a 64-bit integer.
    """
    m = _RATIO.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise ValueError("not a decimal or a fraction")
    _check_digits(m.group(1))
    num = Fraction(Decimal(m.group(1)))
    if m.group(4) is None:
        value = num
    else:
        _check_digits(m.group(4))
        den = Fraction(Decimal(m.group(4)))
        if den == 0:
            raise ValueError("zero denominator")
        value = num / den
    if not fraction_fits(value):
        raise OutOfRange(f"is {value} as an exact fraction; its numerator and denominator must "
                         f"not exceed {INT64_MAX}")
    return value


def fraction_fits(value: Fraction) -> bool:
    """True when the numerator and the denominator of `value` fit a signed 64-bit integer."""
    return abs(value.numerator) <= INT64_MAX and value.denominator <= INT64_MAX


def decimals(amount: Decimal) -> int:
    """Digits after the point as written ("0.750" -> 3, "647000" -> 0)."""
    exponent = amount.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def units(amount: Decimal | Fraction, scale: int) -> Fraction:
    """`amount` counted in units of 10**-scale (exact; integral when `scale` >= its decimals)."""
    return Fraction(amount) * 10**scale


def fits(amount: Decimal | Fraction, scale: int) -> bool:
    """True when `amount`, counted in units of 10**-scale, fits a signed 64-bit integer."""
    return abs(units(amount, scale)) <= INT64_MAX


def times(quantity: int, amount: Decimal) -> Decimal:
    """`quantity` x `amount`, exact: an integer product on the coefficient, no context rounding.

    The result keeps the amount's exponent (JPY 647000 x 15 = 9705000; USD 0.75 x 3 = 2.25).
    """
    sign, digits, exponent = amount.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"not a finite amount: {amount}")
    coefficient = int("".join(map(str, digits)) or "0") * quantity
    return Decimal(f"{'-' if sign else ''}{coefficient}E{exponent}")


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
    """Round an exact amount up (towards +inf) to the currency's minor unit, exactly.

    Built from the integer count of minor units, so no Decimal context (28 digits by default)
    can round the result a second time.
    """
    digits = minor_digits(currency)
    scaled = Fraction(amount) * 10**digits
    count = -((-scaled.numerator) // scaled.denominator)  # ceiling on exact rationals
    return Decimal(f"{count}E-{digits}")


def fraction_str(value: Fraction) -> str:
    """Canonical text of an exact ratio: "2", "1/2", "1/3"."""
    return str(value)
