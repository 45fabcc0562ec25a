"""Holdings and register rows as pure functions of holding rows and terms in force.

The same functions serve the SQL projections (:mod:`.queries`) and the audit replay, so the
JSON a user sees and the replay it is compared with are shaped by one piece of code.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from typing import Any, Iterable, Mapping

ZERO = Decimal(0)

FIGURES = (
    "rights_allotted",
    "rights_exercised",
    "rights_forfeited",
    "rights_expired",
    "rights_outstanding",
    "shares_underlying",
    "shares_delivered",
    "amount_offset",
    "exercise_price_paid",
)
MONEY = ("amount_offset", "exercise_price_paid")


def outstanding(row: Mapping[str, Any]) -> int:
    return row["allotted"] - row["exercised"] - row["forfeited"] - row["expired"]


def holding_figures(row: Mapping[str, Any], spr: Fraction) -> dict[str, Any]:
    """Contract figures of one holder in one issuance; shares floored per holding."""
    out = outstanding(row)
    return {
        "rights_allotted": row["allotted"],
        "rights_exercised": row["exercised"],
        "rights_forfeited": row["forfeited"],
        "rights_expired": row["expired"],
        "rights_outstanding": out,
        # floor(out x spr) in integers: a Fraction product cost ~3 us a row (4,000-row queries).
        "shares_underlying": out * spr.numerator // spr.denominator,
        "shares_delivered": row["shares_delivered"],
        "amount_offset": row["amount_offset"],
        "exercise_price_paid": row["exercise_price_paid"],
    }


def _add(total: dict[str, Any], figures: Mapping[str, Any]) -> None:
    for f in FIGURES:
        total[f] += figures[f]


# The row field a grouping keys on ("all" is the total line of a table: one key).
_KEY_FIELD = {"person": "holder", "group": "grp", "issuance": "issuance"}


def _money_out(d: dict[str, Any]) -> dict[str, Any]:
    for f in MONEY:
        d[f] = format(d[f], "f")
    return d


def holdings(
    rows: Iterable[Mapping[str, Any]],
    spr_by_issuance: Mapping[str, Fraction],
    by: str = "person",
    issuance: str | None = None,
) -> list[dict[str, Any]]:
    """Holdings by person, group or issuance, as the contract's JSON objects.

    `rows` are cumulative holding rows (one per issuance and holder, as at the date asked);
    money is never summed across currencies: the currency is part of every key.
    """
    keyed = _KEY_FIELD.get(by)
    if keyed is None and by != "all":
        raise ValueError(f"unknown grouping {by!r}")
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    holders: dict[tuple[str, str], set[str]] = {}
    latest: dict[tuple[str, str], tuple[Any, ...]] = {}
    for row in rows:
        figures = holding_figures(row, spr_by_issuance[row["issuance"]])
        key = (row[keyed] if keyed else "all", row["currency"])
        total = totals.get(key)
        if total is None:
            totals[key] = figures  # a fresh dict: the first row of a key is its total so far
            holders[key] = {row["holder"]}
        else:
            _add(total, figures)
            holders[key].add(row["holder"])
        if by == "person":
            stamp = (row["last_allot_on"], row["last_allot_pos"])
            if key not in latest or stamp > latest[key][0]:
                latest[key] = (stamp, row["name"], row["grp"])
    out = []
    for key in sorted(totals):
        head: dict[str, Any]
        if by == "person":
            head = {"holder": key[0], "name": latest[key][1], "group": latest[key][2]}
            if issuance is not None:
                head["issuance"] = issuance
        elif by in ("group", "all"):
            head = {"group": key[0], "holders": len(holders[key])}
        else:
            head = {"issuance": key[0], "holders": len(holders[key])}
        out.append(_money_out({**head, **totals[key], "currency": key[1]}))
    return out


def spr_json(spr: Fraction) -> int | str:
    """Shares per right as JSON: an integer, or an exact fraction "200/3" after a 1/3 ratio."""
    return spr.numerator if spr.denominator == 1 else f"{spr.numerator}/{spr.denominator}"


def register(
    info: Mapping[str, Any],
    rows: Iterable[Mapping[str, Any]],
    allotments: Iterable[Mapping[str, Any]],
    spr: Fraction,
    price: Decimal,
) -> list[dict[str, Any]]:
    """The register of stock acquisition rights (Companies Act art. 249) for one issuance."""
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
            }
        )
    return out
