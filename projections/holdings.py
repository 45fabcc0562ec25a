"""Holdings rows (by person, group or issuance) as pure functions of holding rows and terms.

The same functions serve the SQL projections (:mod:`.queries`) and the audit replay
(:mod:`.replay`), so the JSON a user sees and the replay it is compared with are shaped by one
piece of code.
"""

from __future__ import annotations

from fractions import Fraction
from operator import itemgetter
from typing import Any, Iterable, Mapping

from .fold import MONEY

# The money among the figures a holdings row shows (holding_figures names them all).
_MONEY_SHOWN = MONEY


def outstanding(row: Mapping[str, Any]) -> int:
    """Rights still held: allotted less exercised, forfeited and expired."""
    return row["allotted"] - row["exercised"] - row["forfeited"] - row["expired"]


def holding_figures(row: Mapping[str, Any], spr: Fraction, head: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The figures a holdings row shows for one holding (from its cumulative row, see
    :data:`.fold.FIGURES`), in the order shown, after the keys of `head` if given; shares
    floored per holding.

    The vested figures read two keys the caller may set on the row: ``vested`` (the vested
    rights outstanding; absent or None: every outstanding right has vested) and
    ``can_exercise`` (whether the holder could exercise on the date asked; see
    :func:`.vesting.exercisable_on`)."""
    out = outstanding(row)
    vested = row.get("vested")
    if vested is None:
        vested = out
    return {
        **(head or {}),
        "rights_allotted": row["allotted"],
        "rights_exercised": row["exercised"],
        "rights_forfeited": row["forfeited"],
        "rights_expired": row["expired"],
        "rights_outstanding": out,
        # floor(out x spr) in integers: a Fraction product cost ~3 us a row (4,000-row queries).
        "shares_underlying": out * spr.numerator // spr.denominator,
        "shares_delivered": row["shares_delivered"],
        "amount_offset": row["amount_offset"],
        # What was paid for the rights by offset or in cash (gratis pays nothing).
        "amount_paid": row["amount_paid"],
        "exercise_price_paid": row["exercise_price_paid"],
        "rights_vested": vested,
        "rights_unvested": out - vested,
        "rights_exercisable": vested if row.get("can_exercise") else 0,
    }


def _add(total: dict[str, Any], figures: Mapping[str, Any]) -> None:
    for f, v in figures.items():
        total[f] += v


# The row field a grouping keys on ("all" is the total line of a table: one key).
_KEY_FIELD = {"person": "holder", "group": "grp", "issuance": "issuance"}


def _money_out(d: dict[str, Any]) -> dict[str, Any]:
    for f in _MONEY_SHOWN:
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
    if by == "person" and issuance is not None:
        rows = list(rows)
        if all(r["issuance"] == issuance for r in rows):
            return _of_one_issuance(rows, spr_by_issuance, issuance)
    return _grouped(rows, spr_by_issuance, by, keyed, issuance)


_BY_HOLDER = itemgetter("holder", "currency")


def _of_one_issuance(
    rows: list[Mapping[str, Any]], spr_by_issuance: Mapping[str, Fraction], issuance: str
) -> list[dict[str, Any]]:
    """By person within one issuance: each holder has one holding, so one row each and nothing
    to add up (the largest answer, built without the grouping's intermediate totals; equal to
    what :func:`_grouped` gives, which a test checks)."""
    out = []
    for row in sorted(rows, key=_BY_HOLDER):
        d = holding_figures(row, spr_by_issuance[row["issuance"]],
                            {"holder": row["holder"], "name": row["name"], "group": row["grp"], "issuance": issuance})
        d["currency"] = row["currency"]
        out.append(_money_out(d))
    return out


def _grouped(
    rows: Iterable[Mapping[str, Any]],
    spr_by_issuance: Mapping[str, Fraction],
    by: str,
    keyed: str | None,
    issuance: str | None,
) -> list[dict[str, Any]]:
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

