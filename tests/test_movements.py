"""`report movements`: the pure functions of projections/movements.py, the seed's notes, a plan
with vesting, two currencies and a split worked out by hand, and the CLI in every format (on
SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import factories as f
from helpers import run_cli, write_jsonl

from equity_ledger.bootstrap import Books
from equity_ledger.ledger import vesting as v
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.errors import UnknownIssuance
from equity_ledger.projections import movements as m
from equity_ledger.projections.movements_read import movements

SEED = Path(__file__).resolve().parents[1] / "ledger" / "samples" / "iij-2013-sar.jsonl"
FY2019 = ("2019-04-01", "2020-03-31")
FY2022 = ("2022-04-01", "2023-03-31")
TITLE_JA = "第1回新株予約権（ストック・オプション）"


def d(text: str) -> date:
    return date.fromisoformat(text)


# --------------------------------------------------------------------------- counts (pure)

def test_without_vesting_grants_pass_through_both_blocks() -> None:
    opening = {"allotted": 10, "exercised": 1, "forfeited": 2, "expired": 0}
    closing = {"allotted": 15, "exercised": 4, "forfeited": 3, "expired": 1}
    got = m.flows_vesting_on_allotment(opening, closing)
    assert got == m.Flows(granted=5, vested=5, vested_opening=7, exercised=3, vested_forfeited=1, expired=1,
                          vested_closing=7)
    assert got.unvested_gap() == got.vested_gap() == 0
    assert m.flows_vesting_on_allotment(None, opening) == m.Flows(granted=10, vested=10, exercised=1,
                                                                  vested_forfeited=2, vested_closing=7)


HALF_NOW_HALF_IN_A_YEAR = v.Schedule.parse(f.schedule({"portion": "1/2", "after_months": 0},
                                                      {"portion": "1/2", "after_months": 12}))


def _move(on: str, seq: int, kind: str, rights: int) -> v.Movement:
    return v.Movement(d(on).toordinal(), seq, kind, rights)


def _period(walk: v.Walk, start: str, end: str) -> m.Flows:
    return m.flows_of_walk(walk, d(start).toordinal(), d(end).toordinal())


def test_with_vesting_forfeits_take_unvested_rights_first_and_vesting_is_the_rest() -> None:
    walk = v.walk(HALF_NOW_HALF_IN_A_YEAR, [
        _move("2024-01-15", 1, v.ALLOT, 10),  # 5 vest on the allotment, 5 on 2025-01-15
        _move("2024-06-01", 2, v.FORFEIT, 3),  # 3 of the 5 unvested
        _move("2024-07-01", 3, v.EXERCISE, 1),
        _move("2025-03-01", 4, v.FORFEIT, 2),  # nothing unvested left: 2 vested
    ])
    y2024 = _period(walk, "2024-01-01", "2024-12-31")
    assert y2024 == m.Flows(granted=10, unvested_forfeited=3, vested=5, unvested_closing=2,
                            exercised=1, vested_closing=4)
    y2025 = _period(walk, "2025-01-01", "2025-12-31")
    assert y2025 == m.Flows(unvested_opening=2, vested=2, vested_opening=4, vested_forfeited=2, vested_closing=4)
    both = _period(walk, "2024-01-01", "2025-12-31")
    assert both.vested == 7 and both.forfeited == 5
    for flows in (y2024, y2025, both):
        assert flows.unvested_gap() == flows.vested_gap() == 0


def test_with_vesting_a_lapse_is_unvested_and_an_expiry_forfeits_what_is_still_unvested() -> None:
    walk = v.walk(HALF_NOW_HALF_IN_A_YEAR, [
        _move("2024-01-15", 1, v.ALLOT, 10),
        _move("2024-01-20", 2, v.ALLOT, 4),
        _move("2024-03-01", 3, v.LAPSE, 2),
        _move("2024-09-01", 4, v.EXPIRE, 12),  # 5 unvested + 7 vested
    ])
    got = _period(walk, "2024-02-01", "2024-12-31")
    assert got == m.Flows(unvested_opening=7, unvested_forfeited=7, vested_opening=7, expired=7)
    assert got.unvested_gap() == got.vested_gap() == 0
    # granted and vested on one day pass through both blocks
    first = _period(walk, "2024-01-15", "2024-01-15")
    assert first == m.Flows(granted=10, vested=5, unvested_closing=5, vested_closing=5)


def test_a_period_before_anything_and_the_first_day_of_the_calendar() -> None:
    walk = v.walk(HALF_NOW_HALF_IN_A_YEAR, [_move("2024-01-15", 1, v.ALLOT, 10)])
    assert _period(walk, "2020-01-01", "2020-12-31") == m.Flows()
    assert m.flows_of_walk(walk, 1, d("2024-12-31").toordinal()).granted == 10


def test_exercisable_is_the_vested_closing_when_the_holder_could_exercise() -> None:
    flows = m.Flows(vested_closing=7, unvested_closing=3)
    assert m.with_exercisable(flows, True).exercisable_closing == 7
    assert m.with_exercisable(flows, False).exercisable_closing == 0


def test_restated_counts_are_floored_per_holding() -> None:
    flows = m.Flows(granted=7, vested=7, vested_closing=7, exercisable_closing=7)
    assert m.restated(flows, Fraction(200)) == m.Flows(granted=1400, vested=1400, vested_closing=1400,
                                                       exercisable_closing=1400)
    assert m.restated(flows, Fraction(200, 3)).granted == 466  # 7 x 200/3 = 466.67


def test_the_fraction_bounds_are_reached_and_never_passed() -> None:
    """Every holding of up to 6 rights a line, every split of shares per right in thirds,
    quarters and sixths: the gaps in shares stay within -1..2 and -1..3, and reach 2."""
    import itertools

    seen_u, seen_v = set(), set()
    for spr in (Fraction(1, 3), Fraction(2, 3), Fraction(5, 4), Fraction(7, 6)):
        for o, g, fo, vv in itertools.product(range(4), repeat=4):
            c = o + g - fo - vv
            if c < 0:
                continue
            for vo, x, fv in itertools.product(range(4), repeat=3):
                vc = vo + vv - x - fv
                if vc < 0:
                    continue
                flows = m.Flows(o, g, fo, vv, c, vo, x, fv, 0, vc)
                shares = m.restated(flows, spr)
                seen_u.add(shares.unvested_gap())
                seen_v.add(shares.vested_gap())
    assert seen_u <= {-1, 0, 1, 2} and 2 in seen_u and -1 in seen_u
    assert seen_v <= {-1, 0, 1, 2, 3} and 2 in seen_v


# --------------------------------------------------------------------------- prices (pure)

@pytest.mark.parametrize("value, digits, want", [
    (Fraction(1, 8), 2, "0.13"), (Fraction(5, 2), 0, "3"), (Fraction(1, 3), 4, "0.3333"),
    (Fraction(2, 3), 2, "0.67"), (Fraction(0), 2, "0"), (Fraction(3235), 2, "3235"),
    (Fraction(80875, 100), 2, "808.75"), (Fraction(70810, 20), 2, "3540.5"),
])
def test_rounded_half_up_and_printed_without_trailing_zeros(value, digits, want) -> None:
    assert m.decimal_text(m.rounded(value, digits)) == want


def test_price_digits_are_two_beyond_the_minor_unit() -> None:
    assert (m.price_digits("JPY"), m.price_digits("USD"), m.price_digits("BHD")) == (2, 4, 5)


def test_weighted_average_of_one_price_is_that_price_and_of_several_is_rounded() -> None:
    assert m.weighted_average([(100, Decimal("2.50")), (0, Decimal("9"))], "USD") == "2.5"
    assert m.weighted_average([(2000, Decimal("50")), (50, Decimal("7"))], "JPY") == "48.95"
    assert m.weighted_average([(1, Decimal("1")), (2, Decimal("2"))], "USD") == "1.6667"
    assert m.weighted_average([(0, Decimal("50"))], "JPY") is None
    assert m.weighted_average([], "JPY") is None


def test_average_share_price_is_weighted_by_restated_shares() -> None:
    before_split = m.ExerciseAt(Decimal("9.99"), 3, Fraction(3))  # 3 shares, 9 after a 1:3 split
    after_split = m.ExerciseAt(Decimal("4.00"), 6, Fraction(1))
    assert m.average_share_price([before_split, after_split], "USD") == "3.598"  # 53.97 / 15
    assert m.average_share_price([after_split], "JPY") == "4"
    assert m.average_share_price([], "JPY") is None
    assert m.average_share_price([after_split, m.ExerciseAt(None, 3, Fraction(1))], "JPY") is None
    assert m.average_share_price([m.ExerciseAt(Decimal("5"), 0, Fraction(1))], "JPY") is None


def test_fair_value_per_share_is_restated_at_the_end_of_the_period() -> None:
    assert m.fair_value_per_share(Decimal("647000"), Fraction(200), "JPY") == "3235"
    assert m.fair_value_per_share(Decimal("647000"), Fraction(800), "JPY") == "808.75"
    assert m.fair_value_per_share(Decimal("12.50"), Fraction(3), "USD") == "4.1667"


def test_remaining_life_is_weighted_by_closing_counts_and_zero_once_past() -> None:
    to = d("2020-03-31")
    assert m.remaining_life_years([(17400, d("2043-07-29"))], to) == "23.34"
    assert m.remaining_life_years([(5, d("2019-01-01"))], to) == "0"
    assert m.remaining_life_years([(0, d("2043-07-29"))], to) is None
    # 1 x 365 days and 3 x 0 days: 0.25 years
    assert m.remaining_life_years([(1, d("2021-03-31")), (3, d("2020-01-01"))], to) == "0.25"


def _series(issuance: str, currency: str, flows: m.Flows, price: str, **kw: Any) -> m.Series:
    return m.Series(issuance=issuance, title=f"title {issuance}", currency=currency, flows=flows,
                    exercise_price=Decimal(price), fair_value_per_right=Decimal(kw.get("fair", "100")),
                    shares_per_right=Fraction(kw.get("spr", 1)), exercise_to=d(kw.get("end", "2030-01-01")),
                    exercises=tuple(kw.get("exercises", ())))


def test_report_rows_then_one_all_row_per_currency() -> None:
    a = _series("b", "JPY", m.Flows(vested_opening=10, vested_closing=10), "5")
    b = _series("a", "USD", m.Flows(vested_opening=4, exercised=1, vested_closing=3), "2.50",
                exercises=[m.ExerciseAt(Decimal("3"), 1, Fraction(1))])
    c = _series("c", "JPY", m.Flows(vested_opening=30, vested_closing=30), "1", end="2019-01-01")
    rows = m.report([a, b, c], "shares", d("2024-12-31"))
    assert [(r["issuance"], r["currency"]) for r in rows] == [
        ("a", "USD"), ("b", "JPY"), ("c", "JPY"), ("all", "JPY"), ("all", "USD")]
    all_jpy = rows[3]
    assert all_jpy["vested"]["opening"] == 40 and all_jpy["title"] is None
    assert all_jpy["exercise_price_per_share"] is None and all_jpy["fair_value_per_share_at_grant"] is None
    assert all_jpy["weighted_average_exercise_price"]["opening"] == "2"  # (10 x 5 + 30 x 1) / 40
    assert all_jpy["remaining_contractual_life_years"] == "1.25"  # 10 x 1827 days / 40 / 365
    assert all_jpy["average_share_price_at_exercise"] is None  # no exercise in JPY
    assert rows[4]["average_share_price_at_exercise"] == "3"
    assert list(rows[0]) == ["issuance", "title", "currency", "unit", "unvested", "vested", "exercisable_closing",
                             "exercise_price_per_share", "weighted_average_exercise_price",
                             "average_share_price_at_exercise", "fair_value_per_share_at_grant",
                             "remaining_contractual_life_years"]
    assert m.report([], "shares", d("2024-12-31")) == []


# --------------------------------------------------------------------------- the seed's notes

def seed_note(start: str, end: str, *, exercised: int, opening: int, asp: str | None, fair: str,
              life: str, unit: str = "shares") -> dict[str, Any]:
    return {
        "issuance": "iij-2013-sar", "title": "Stock acquisition rights, stock-compensation type (3rd series)",
        "currency": "JPY", "unit": unit,
        "unvested": {"opening": 0, "granted": 0, "forfeited": 0, "vested": 0, "closing": 0},
        "vested": {"opening": opening, "vested": 0, "exercised": exercised, "forfeited": 0, "expired": 0,
                   "closing": opening - exercised},
        "exercisable_closing": 0,
        "exercise_price_per_share": "1",
        "weighted_average_exercise_price": {"opening": "1", "granted": None, "forfeited": None,
                                            "exercised": "1" if exercised else None, "expired": None,
                                            "closing": "1", "exercisable_closing": None},
        "average_share_price_at_exercise": asp,
        "fair_value_per_share_at_grant": fair,
        "remaining_contractual_life_years": life,
    }


SEED_FY2019 = seed_note(*FY2019, exercised=400, opening=17800, asp="2250", fair="3235", life="23.34")
SEED_FY2022 = seed_note(*FY2022, exercised=0, opening=69600, asp=None, fair="808.75", life="20.34")


def _all(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "issuance": "all", "title": None, "exercise_price_per_share": None,
            "fair_value_per_share_at_grant": None}


def test_the_seeds_notes_for_both_fiscal_years(store_url: str) -> None:
    r = run_cli("demo", db=store_url)
    assert r.code == 0, r.stderr
    for (start, end), note in ((FY2019, SEED_FY2019), (FY2022, SEED_FY2022)):
        got = run_cli("report", "movements", "--from", start, "--to", end, "--format", "json", db=store_url)
        assert got.code == 0, got.stderr
        assert got.json() == [note, _all(note)]
    rights = run_cli("report", "movements", "--from", FY2019[0], "--to", FY2019[1], "--unit", "rights",
                     "--issuance", "iij-2013-sar", "--format", "json", db=store_url).json()
    assert rights == [seed_note(*FY2019, exercised=2, opening=89, asp="2250", fair="3235", life="23.34",
                                unit="rights"), _all(rights[0])]
    # the demo prints both notes, and labels the share price as illustrative
    for text in ("fiscal year 2019-04-01..2020-03-31", "fiscal year 2022-04-01..2023-03-31", "808.75",
                 "3,235", "2,250", "17,400", "69,600", "23.34", "20.34",
                 "ILLUSTRATIVE ASSUMPTION (not in the seed): the market price of JPY 2,250"):
        assert text in r.stdout, text


OLD_EXERCISE_LINE = {
    "id": "iij-2013-sar/21-exercise-e10", "type": "exercise_rights", "issuance": "iij-2013-sar",
    "holder": "e10", "rights": 2, "exercised_on": "2019-07-05", "delivery": "treasury_shares", "actor": "demo",
    "reason": "ILLUSTRATIVE ASSUMPTION (not in the seed): exercise of all 2 rights within the 10-day window, "
              "shares delivered from treasury stock.",
}


def _sql(url: str, *statements: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


def test_demo_on_a_store_made_by_the_previous_demo_keeps_its_exercise_and_says_so(store_url, tmp_path) -> None:
    """The previous demo recorded e10's exercise without a share price, under the same id: the
    new line would be refused as the same id with other content. The demo leaves it as
    recorded, twice, with exit 0 (and refolds read models of the previous layout)."""
    lines = [json.loads(x) for x in SEED.read_text(encoding="utf-8").splitlines()]
    old = [OLD_EXERCISE_LINE if c["id"] == OLD_EXERCISE_LINE["id"] else c for c in lines]
    assert old != lines and len(old) == len(lines)
    assert run_cli("apply", str(write_jsonl(tmp_path / "old.jsonl", old)), db=store_url).code == 0
    # read models of the previous layout, which had no exercise table
    _sql(store_url, "DROP TABLE proj_exercises", "UPDATE proj_tracking SET schema_version = 5")
    first = run_cli("demo", db=store_url)
    assert first.code == 0, first.stderr
    assert "made by an earlier version of the demo" in first.stdout
    assert "applied 0 commands, 22 already there" in first.stdout
    digest = run_cli("audit", "digest", db=store_url).json()
    second = run_cli("demo", db=store_url)
    assert second.code == 0 and "made by an earlier version of the demo" in second.stdout
    assert run_cli("audit", "digest", db=store_url).json() == digest
    assert run_cli("audit", "verify", db=store_url).code == 0
    note = run_cli("report", "movements", "--from", FY2019[0], "--to", FY2019[1], "--format", "json",
                   db=store_url).json()
    assert note[0] == {**SEED_FY2019, "average_share_price_at_exercise": None}


def test_demo_twice_on_a_fresh_store_changes_nothing_and_never_says_earlier(sqlite_url) -> None:
    first = run_cli("demo", db=sqlite_url)
    digest = run_cli("audit", "digest", db=sqlite_url).json()
    second = run_cli("demo", db=sqlite_url)
    assert first.code == second.code == 0
    assert "applied 23 commands" in first.stdout and "applied 0 commands, 23 already there" in second.stdout
    assert "earlier version" not in first.stdout + second.stdout
    assert run_cli("audit", "digest", db=sqlite_url).json() == digest


# --------------------------------------------------------------------------- a plan worked out by hand

VESTING = f.schedule({"portion": "1/2", "after_months": 0}, {"portion": "1/2", "after_months": 12})


def plan() -> list[dict[str, Any]]:
    """v1: JPY with vesting (a Japanese title); u2: USD with a 1:3 split; j3: JPY at another price."""
    return [
        f.resolution("v1", title=TITLE_JA),
        f.terms("v1", exercise_price_per_share="50", exercise_to="2030-02-01", fair_value_per_right="2000",
                vesting=VESTING),
        f.allot("h1", 10, "v1"),  # 2020-02-01: 5 vest now, 5 on 2021-02-01
        f.allot("h2", 6, "v1"),  # 3 now, 3 on 2021-02-01
        f.allot("h3", 4, "v1", allotted_on="2020-03-01"),  # 2 now, 2 on 2021-03-01
        f.exercise("h1", 2, on="2020-06-01", issuance="v1", share_price="120"),
        f.forfeit("h2", 4, on="2020-07-01", issuance="v1"),  # 3 unvested, then 1 vested
        f.depart("h1", on="2020-12-01"),  # h1's 5 unvested lapse
        f.resolution("u2"),
        f.terms("u2", shares_per_right=1, currency="USD", price_per_right="12.50", exercise_price_per_share="2.50"),
        f.allot("h4", 10, "u2"),
        f.exercise("h4", 3, on="2020-05-01", issuance="u2", share_price="9.99"),  # 3 shares
        f.adjust("3", on="2020-09-01", issuance="u2"),  # 3 shares a right, price 2.50 / 3 -> 0.84
        f.exercise("h4", 2, on="2020-10-01", issuance="u2", share_price="4.00"),  # 6 shares
        f.resolution("j3"),
        f.terms("j3", shares_per_right=10, exercise_price_per_share="7"),
        f.allot("h5", 5, "j3"),
        f.resolution("z9"),  # rights allotted only after the period: no row
        f.terms("z9"),
        f.allot("h6", 1, "z9", allotted_on="2021-06-01"),
    ]


FY2020 = (d("2020-04-01"), d("2021-03-31"))


def by_hand(unit: str) -> list[dict[str, Any]]:
    k = {"v1": 100, "u2": 3, "j3": 10} if unit == "shares" else {"v1": 1, "u2": 1, "j3": 1}
    life = lambda end: m.decimal_text(m.rounded(Fraction((d(end) - FY2020[1]).days, 365), 2))  # noqa: E731
    v1 = {
        "issuance": "v1", "title": TITLE_JA, "currency": "JPY", "unit": unit,
        # opening h1 5/5, h2 3/3, h3 2/2; h2 forfeits 3 unvested + 1 vested, h1's 5 lapse, h3's 2 vest
        "unvested": {"opening": 10 * k["v1"], "granted": 0, "forfeited": 8 * k["v1"], "vested": 2 * k["v1"],
                     "closing": 0},
        "vested": {"opening": 10 * k["v1"], "vested": 2 * k["v1"], "exercised": 2 * k["v1"],
                   "forfeited": 1 * k["v1"], "expired": 0, "closing": 9 * k["v1"]},
        "exercisable_closing": 9 * k["v1"],
        "exercise_price_per_share": "50",
        "weighted_average_exercise_price": {"opening": "50", "granted": None, "forfeited": "50",
                                            "exercised": "50", "expired": None, "closing": "50",
                                            "exercisable_closing": "50"},
        "average_share_price_at_exercise": "120",
        "fair_value_per_share_at_grant": "20",
        "remaining_contractual_life_years": life("2030-02-01"),
    }
    u2 = {
        "issuance": "u2", "title": "1st series", "currency": "USD", "unit": unit,
        "unvested": {"opening": 0, "granted": 0, "forfeited": 0, "vested": 0, "closing": 0},
        "vested": {"opening": 10 * k["u2"], "vested": 0, "exercised": 5 * k["u2"], "forfeited": 0, "expired": 0,
                   "closing": 5 * k["u2"]},
        "exercisable_closing": 5 * k["u2"],
        "exercise_price_per_share": "0.84",
        "weighted_average_exercise_price": {"opening": "0.84", "granted": None, "forfeited": None,
                                            "exercised": "0.84", "expired": None, "closing": "0.84",
                                            "exercisable_closing": "0.84"},
        "average_share_price_at_exercise": "3.598",  # (9.99 x 3 + 4.00 x 6) / (9 + 6)
        "fair_value_per_share_at_grant": "4.1667",
        "remaining_contractual_life_years": life("2040-02-01"),
    }
    j3 = {
        "issuance": "j3", "title": "1st series", "currency": "JPY", "unit": unit,
        "unvested": {"opening": 0, "granted": 0, "forfeited": 0, "vested": 0, "closing": 0},
        "vested": {"opening": 5 * k["j3"], "vested": 0, "exercised": 0, "forfeited": 0, "expired": 0,
                   "closing": 5 * k["j3"]},
        "exercisable_closing": 5 * k["j3"],
        "exercise_price_per_share": "7",
        "weighted_average_exercise_price": {"opening": "7", "granted": None, "forfeited": None, "exercised": None,
                                            "expired": None, "closing": "7", "exercisable_closing": "7"},
        "average_share_price_at_exercise": None,
        "fair_value_per_share_at_grant": "100",
        "remaining_contractual_life_years": life("2040-02-01"),
    }
    return [j3, u2, v1]


def test_a_plan_with_vesting_two_currencies_and_a_split(store_url: str) -> None:
    books = Books(store_url)
    try:
        books.apply(parse_command(c, line=i) for i, c in enumerate(plan(), 1))
        with books.reading() as view:
            shares = movements(view.conn, *FY2020)
            rights = movements(view.conn, *FY2020, unit="rights")
            only = movements(view.conn, *FY2020, issuance="u2")
            with pytest.raises(UnknownIssuance):
                movements(view.conn, *FY2020, issuance="nope")
            assert movements(view.conn, d("2019-01-01"), d("2019-12-31"), issuance="v1") == []
            later = movements(view.conn, d("2021-04-01"), d("2021-12-31"))
    finally:
        books.close()
    for got, unit in ((shares, "shares"), (rights, "rights")):
        j3, u2, v1 = by_hand(unit)
        assert got[:3] == [j3, u2, v1]
        all_jpy, all_usd = got[3:]
        assert [all_jpy["issuance"], all_jpy["currency"], all_usd["currency"]] == ["all", "JPY", "USD"]
        assert all_usd == {**u2, "issuance": "all", "title": None, "exercise_price_per_share": None,
                           "fair_value_per_share_at_grant": None}
        assert all_jpy["vested"]["opening"] == v1["vested"]["opening"] + j3["vested"]["opening"]
        assert all_jpy["average_share_price_at_exercise"] == "120"
    # at the opening, unvested and vested: shares (2000 x 50 + 50 x 7) / 2050, rights (20 x 50 + 5 x 7) / 25
    assert shares[3]["weighted_average_exercise_price"]["opening"] == "48.95"
    assert rights[3]["weighted_average_exercise_price"]["opening"] == "41.4"
    assert only == [by_hand("shares")[1], shares[4]]
    assert [r["issuance"] for r in later] == ["j3", "u2", "v1", "z9", "all", "all"]


# --------------------------------------------------------------------------- the CLI

@pytest.fixture
def planned(store_url: str, tmp_path: Path) -> str:
    r = run_cli("apply", str(write_jsonl(tmp_path / "plan.jsonl", plan())), db=store_url)
    assert r.code == 0, r.stderr
    return store_url


def _report(url: str, *args: str) -> Any:
    return run_cli("report", "movements", "--from", "2020-04-01", "--to", "2021-03-31", *args, db=url)


def test_cli_in_every_format(planned: str, tmp_path: Path) -> None:
    expected = by_hand("shares")
    as_json = _report(planned, "--format", "json")
    assert as_json.code == 0, as_json.stderr
    rows = as_json.json()
    assert rows[:3] == expected and TITLE_JA in as_json.stdout  # UTF-8, not \u escapes

    table = _report(planned)
    assert table.code == 0, table.stderr
    for text in ("Before vesting (unvested)", "After vesting (vested)", "all JPY", "all USD", TITLE_JA,
                 "exercisable at closing", "3.598", "4.1667", "48.95", "1,000"):
        assert text in table.stdout, text
    # lines of the note in the filing's order, one column per series
    lines = [line for line in table.stdout.splitlines() if "│" in line]
    opening = next(line for line in lines if "  opening" in line and "1,050" in line)
    assert [c.strip() for c in opening.split("│")[2:-1]] == ["50", "30", "1,000", "1,050", "30"]

    as_csv = _report(planned, "--format", "csv")
    assert as_csv.code == 0 and not as_csv.stdout.startswith("\ufeff")
    table_rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [r["issuance"] for r in table_rows] == ["j3", "u2", "v1", "all", "all"]
    v1 = table_rows[2]
    assert v1["title"] == TITLE_JA and v1["unvested.forfeited"] == "800" and v1["vested.closing"] == "900"
    assert v1["weighted_average_exercise_price.granted"] == "" and v1["average_share_price_at_exercise"] == "120"
    out = tmp_path / "m.csv"
    wrote = _report(planned, "--format", "csv", "--output", str(out))
    assert wrote.code == 0 and "wrote 5 rows" in wrote.stdout
    assert out.read_text(encoding="utf-8").startswith("\ufeffissuance,title,currency,unit,unvested.opening")

    book = tmp_path / "m.xlsx"
    wrote = _report(planned, "--format", "xlsx", "--output", str(book))
    assert wrote.code == 0, wrote.stderr
    from openpyxl import load_workbook

    ws = load_workbook(book).active
    values = list(ws.values)
    header = list(values[0])
    assert header[:5] == ["issuance", "title", "currency", "unit", "unvested.opening"]
    got = [dict(zip(header, row)) for row in values[1:]]
    assert [r["issuance"] for r in got] == ["j3", "u2", "v1", "all", "all"]
    assert got[2]["title"] == TITLE_JA and got[2]["vested.closing"] == 900
    assert got[1]["average_share_price_at_exercise"] == pytest.approx(3.598)
    assert got[1]["fair_value_per_share_at_grant"] == pytest.approx(4.1667)
    assert got[0]["average_share_price_at_exercise"] is None

    rights = _report(planned, "--unit", "rights", "--issuance", "v1", "--format", "json").json()
    assert rights[0] == by_hand("rights")[2]


def test_cli_errors_are_one_line_with_the_contracts_exit_codes(planned: str) -> None:
    unknown = _report(planned, "--issuance", "nope")
    assert unknown.code == 1 and unknown.stderr.count("\n") == 1 and "nope" in unknown.stderr
    assert "Traceback" not in unknown.stderr
    backwards = run_cli("report", "movements", "--from", "2021-01-01", "--to", "2020-01-01", db=planned)
    assert backwards.code == 2 and "is after --to" in backwards.stderr and "Traceback" not in backwards.stderr
    no_output = _report(planned, "--format", "xlsx")
    assert no_output.code == 2 and "--output" in no_output.stderr
    table_to_file = _report(planned, "--output", "x.txt")
    assert table_to_file.code == 2
    assert run_cli("report", "movements", "--from", "2020-02-30", "--to", "2021-01-01", db=planned).code == 2
    assert run_cli("report", "movements", "--from", "2020-01-01", db=planned).code == 2
    assert _report(planned, "--unit", "lots").code == 2
    empty = run_cli("report", "movements", "--from", "2000-01-01", "--to", "2000-12-31", "--format", "json",
                    db=planned)
    assert empty.code == 0 and empty.json() == []
    nothing = run_cli("report", "movements", "--from", "2000-01-01", "--to", "2000-12-31", db=planned)
    assert nothing.code == 0 and "no rights outstanding or granted in the period" in nothing.stdout


def test_hostile_titles_are_text_in_the_table(sqlite_url: str, tmp_path: Path) -> None:
    cmds = [f.resolution("x1", title="[bold]evil\x1b[31m\u202e"), f.terms("x1"), f.allot("h1", 3, "x1")]
    assert run_cli("apply", str(write_jsonl(tmp_path / "x.jsonl", cmds)), db=sqlite_url).code == 0
    r = run_cli("report", "movements", "--from", "2020-01-01", "--to", "2020-12-31", db=sqlite_url)
    assert r.code == 0 and "\x1b" not in r.stdout and "\u202e" not in r.stdout
    assert "[bold]evil\\x1b[31m\\u202e" in r.stdout
