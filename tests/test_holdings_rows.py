"""The holdings answer by person within one issuance is built by a path of its own (the largest
answer, one row per holder, nothing to add up); it must equal what the general grouping gives."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from equity_ledger.projections import holdings as h

COUNT = st.integers(min_value=0, max_value=10**6)
MONEY = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)


@st.composite
def holding_rows(draw: st.DrawFn) -> tuple[list[dict], dict[str, Fraction]]:
    holders = draw(st.lists(st.text(min_size=1, max_size=6), unique=True, max_size=12))
    rows = []
    for holder in holders:
        allotted = draw(COUNT)
        exercised, forfeited, expired = (draw(st.integers(0, allotted // 3)) for _ in range(3))
        row = {
            "issuance": "s1", "holder": holder, "name": draw(st.text(max_size=8)),
            "grp": draw(st.sampled_from(["director", "executive officer", "employee"])),
            "last_allot_on": date(2020, 1, 1) + timedelta(days=draw(st.integers(0, 3000))),
            "last_allot_pos": draw(st.integers(1, 10**6)),
            "allotted": allotted, "exercised": exercised, "forfeited": forfeited, "expired": expired,
            "shares_delivered": draw(COUNT), "amount_offset": Decimal(draw(MONEY)),
            "amount_paid": Decimal(draw(MONEY)), "exercise_price_paid": Decimal(draw(MONEY)),
            "currency": draw(st.sampled_from(["JPY", "USD"])),
        }
        if draw(st.booleans()):
            row["vested"] = draw(st.integers(0, allotted - exercised - forfeited - expired))
        row["can_exercise"] = draw(st.booleans())
        rows.append(row)
    spr = Fraction(draw(st.integers(1, 600)), draw(st.integers(1, 7)))
    return rows, {"s1": spr}


@settings(max_examples=200, deadline=None)
@given(holding_rows())
def test_by_person_of_one_issuance_equals_the_general_grouping(case: tuple[list[dict], dict[str, Fraction]]) -> None:
    rows, spr = case
    fast = h.holdings(rows, spr, by="person", issuance="s1")
    general = h._grouped(rows, spr, "person", "holder", "s1")
    assert fast == general
    assert [list(r) for r in fast] == [list(r) for r in general]  # the keys in the same order


def test_rows_of_another_issuance_take_the_general_path() -> None:
    row = {"issuance": "s2", "holder": "h1", "name": "n", "grp": "g", "last_allot_on": date(2020, 1, 1),
           "last_allot_pos": 1, "allotted": 3, "exercised": 0, "forfeited": 0, "expired": 0,
           "shares_delivered": 0, "amount_offset": Decimal("1"), "amount_paid": Decimal("1"),
           "exercise_price_paid": Decimal("0"), "currency": "JPY"}
    twice = [row, {**row, "issuance": "s3"}]
    spr = {"s2": Fraction(1), "s3": Fraction(1)}
    [merged] = h.holdings(twice, spr, by="person", issuance="s2")
    assert merged["rights_allotted"] == 6 and merged["amount_paid"] == "2"
