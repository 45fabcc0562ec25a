"""Register rows of one issuance (Companies Act art. 249) as a pure function of holding rows,
allotments and the terms in force."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Mapping

from .holdings import outstanding

ZERO = Decimal(0)


def spr_json(spr: Fraction) -> int | str:
    """Shares per right as JSON: an integer, or an exact fraction "200/3" after a 1/3 ratio."""
    return spr.numerator if spr.denominator == 1 else f"{spr.numerator}/{spr.denominator}"


def register(
    info: Mapping[str, Any],
    rows: Iterable[Mapping[str, Any]],
    allotments: Iterable[Mapping[str, Any]],
    spr: Fraction,
    price: Decimal,
    details: Mapping[str, tuple[str | None, bool]] | None = None,
) -> list[dict[str, Any]]:
    """The register of stock acquisition rights (Companies Act art. 249) for one issuance;
    `details` gives each holder's (address in force, erased?)."""
    acquired: dict[str, list[str]] = {}
    methods: dict[str, list[str]] = {}
    paid: dict[str, Decimal] = {}
    for a in allotments:
        h = a["holder"]
        day = a["allotted_on"].isoformat()
        if day not in acquired.setdefault(h, []):
            acquired[h].append(day)
        if a["payment"] not in methods.setdefault(h, []):
            methods[h].append(a["payment"])
        paid[h] = paid.get(h, ZERO) + a["amount"]
    out = []
    for row in sorted(rows, key=lambda r: r["holder"]):
        h = row["holder"]
        out.append(
            {
                "holder": h,
                "name": row["name"],
                "group": row["grp"],
                "rights_held": outstanding(row),
                "rights_allotted": row["allotted"],
                "shares_per_right": spr_json(spr),
                "share_class": info["share_class"],
                "exercise_price_per_share": format(price, "f"),
                "exercise_from": info["exercise_from"].isoformat(),
                "exercise_to": info["exercise_to"].isoformat(),
                "acquired_on": sorted(acquired.get(h, [])),
                "amount_paid": format(paid.get(h, ZERO), "f"),
                "payment": sorted(methods.get(h, [])),
                "currency": info["currency"],
                "address": (details or {}).get(h, (None, False))[0],
                "erased": (details or {}).get(h, (None, False))[1],
            }
        )
    return out
