"""Vesting: month arithmetic, schedules, the walk, and the events a departure and a vesting
event record (the rules themselves are in test_domain_rules.py's table)."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import factories as f
from equity_ledger.bootstrap import Books
from equity_ledger.ledger import vesting as v
from equity_ledger.ledger.audit import _comparable, verify_log
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.errors import BadCommand
from equity_ledger.ledger.issuance import Issuance
from equity_ledger.ledger.terms import Terms


# --------------------------------------------------------------------------- month arithmetic


@pytest.mark.parametrize(
    "start, months, want",
    [
        ("2024-01-31", 1, "2024-02-29"),  # leap year: the last day of February
        ("2023-01-31", 1, "2023-02-28"),
        ("2024-01-30", 1, "2024-02-29"),
        ("2024-01-29", 1, "2024-02-29"),
        ("2024-01-28", 1, "2024-02-28"),
        ("2024-03-31", 1, "2024-04-30"),
        ("2024-01-31", 2, "2024-03-31"),  # counted from the start, not from Feb 29
        ("2024-02-29", 12, "2025-02-28"),
        ("2024-02-29", 48, "2028-02-29"),
        ("2023-12-31", 2, "2024-02-29"),
        ("2024-08-31", 6, "2025-02-28"),
        ("2024-05-15", 0, "2024-05-15"),
        ("2024-11-30", 3, "2025-02-28"),
        ("2000-02-29", 1200, "2100-02-28"),  # 2100 is not a leap year
        ("9999-11-30", 1, "9999-12-30"),
    ],
)
def test_add_months_clamps_to_the_end_of_the_month(start: str, months: int, want: str) -> None:
    assert v.add_months(date.fromisoformat(start), months) == date.fromisoformat(want)


def test_add_months_beyond_9999_never_comes() -> None:
    assert v.add_months(date(9999, 12, 31), 1) is None


def test_instalments_are_counted_from_the_start_and_never_drift() -> None:
    s = v.Schedule.parse(f.schedule({"portion": "1/4", "after_months": 1, "every_months": 1, "occurrences": 4}))
    days = [date.fromordinal(o).isoformat() for o, _p in s.instalments(date(2024, 1, 31))]
    assert days == ["2024-02-29", "2024-03-31", "2024-04-30", "2024-05-31"]


# --------------------------------------------------------------------------- schedules


CLIFF = f.schedule({"portion": "1/4", "after_months": 12},
                   {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36})


def test_schedule_normalised_json() -> None:
    s = v.Schedule.parse({**CLIFF, "tranches": [*CLIFF["tranches"]]})
    assert s.as_json() == {
        "tranches": [{"portion": "1/4", "after_months": 12},
                     {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36}],
        "unvested_lapse_on_departure": True,
        "allocation": "cumulative_round_down",
    }
    assert v.Schedule.parse(s.as_json()) == s
    assert v.Schedule.parse(f.schedule({"portion": "0.5", "after_months": 0}, {"portion": "1/2", "on_event": "x"})) \
        .tranches[0].portion == Fraction(1, 2)


@pytest.mark.parametrize(
    "vesting",
    [
        {"tranches": []},
        {"tranches": [{"portion": "1/2", "after_months": 12}]},  # adds up to 1/2
        {"tranches": [{"portion": "1/4", "after_months": 12, "every_months": 1, "occurrences": 5}]},  # 5/4
        {"tranches": [{"portion": "1", "after_months": -1}]},
        {"tranches": [{"portion": "1", "after_months": 1, "every_months": 1}]},  # every without occurrences
        {"tranches": [{"portion": "1/2", "after_months": 1, "occurrences": 2}]},  # occurrences > 1 without every
        {"tranches": [{"portion": "1", "after_months": 1, "every_months": 0, "occurrences": 1}]},
        {"tranches": [{"portion": "1", "after_months": 1, "on_event": "x"}]},  # two triggers
        {"tranches": [{"portion": "1"}]},  # no trigger
        {"tranches": [{"portion": "0", "after_months": 1}, {"portion": "1", "after_months": 2}]},
        {"tranches": [{"portion": 0.5, "after_months": 1}, {"portion": "1/2", "after_months": 2}]},
        {"tranches": [{"portion": "1/2", "on_event": "x"}, {"portion": "1/2", "on_event": "x"}]},
        {"tranches": [{"portion": "1", "after_months": 1, "colour": "red"}]},
        {"tranches": [{"portion": "1", "after_months": 1}], "allocation": "fractional"},
        {"tranches": [{"portion": "1", "after_months": 1}], "unvested_lapse_on_departure": "yes"},
        {"tranches": [{"portion": "1", "after_months": 1}], "cliff": 12},
        {"tranches": [{"portion": "1/2000", "after_months": 1, "every_months": 1, "occurrences": 2000}]},
        [{"portion": "1", "after_months": 1}],
    ],
)
def test_bad_schedules_are_bad_input(vesting: Any) -> None:
    with pytest.raises(BadCommand) as info:
        parse_command({**f.terms(), "vesting": vesting}, line=3)
    assert "vesting" in str(info.value) and str(info.value).startswith("line 3")


@pytest.mark.parametrize("met", ["1.5", "-1", "2/1", 0.5, "half"])
def test_bad_portion_met_is_bad_input(met: Any) -> None:
    with pytest.raises(BadCommand):
        parse_command(f.vest("ipo", portion_met=met), line=1)


def test_cumulative_round_down_and_rounding() -> None:
    thirds = [{"portion": "1/3", "after_months": 1, "every_months": 1, "occurrences": 3}]
    down = v.Schedule.parse({"tranches": thirds})
    half_up = v.Schedule.parse({"tranches": thirds, "allocation": "cumulative_rounding"})
    allot = v.Movement(date(2020, 1, 1).toordinal(), 1, v.ALLOT, 10)
    assert [n for _o, n in v.allotment_steps(down, allot, [])[1]] == [3, 3, 4]  # 3, 6, 10
    assert [n for _o, n in v.allotment_steps(half_up, allot, [])[1]] == [3, 4, 3]  # 3, 7, 10
    # two rights over 3 thirds: floor 0, 1, 2 (nothing vests on the first date)
    two = v.Movement(allot.ordinal, 1, v.ALLOT, 2)
    assert [n for _o, n in v.allotment_steps(down, two, [])[1]] == [1, 1]


def test_walk_moves_unvested_to_vested_and_never_more_than_remains() -> None:
    s = v.Schedule.parse(f.schedule({"portion": "1/2", "after_months": 1}, {"portion": "1/2", "after_months": 2}))
    d = date(2020, 1, 1).toordinal()
    moves = [v.Movement(d, 1, v.ALLOT, 10), v.Movement(d + 1, 2, v.FORFEIT, 7)]
    w = v.walk(s, moves)
    # the forfeit takes the 10 unvested first: 3 remain, and only they can vest
    assert w.on(d) == (10, 0) and w.on(d + 1) == (3, 0)
    assert w.on(date(2020, 2, 1).toordinal()) == (0, 3)
    assert w.on(date(2020, 3, 1).toordinal()) == (0, 3)
    assert v.walk(None, moves).on(d + 1) == (0, 3)  # without a schedule: vested on allotment


# --------------------------------------------------------------------------- through the service


def _books(tmp_path: Path) -> Books:
    return Books(f"sqlite:///{tmp_path}/v.sqlite")


def _apply(books: Books, *dicts: dict[str, Any]) -> None:
    books.service.apply([parse_command(d, line=i) for i, d in enumerate(dicts, 1)])


def _events(books: Books, kind: str) -> list[Any]:
    return [e for _p, e in books.service.uow.log.iter_events() if type(e).__name__ == kind]


def test_departure_lapses_what_is_unvested_as_its_own_event(tmp_path: Path) -> None:
    books = _books(tmp_path)
    try:
        _apply(books, *f.setup(vesting=CLIFF), f.allot("h1", 48), f.allot("h2", 48),
               f.depart("h1", on="2021-04-15"), f.depart("h2", on="2020-06-01", reason="resigned"))
        lapses = _events(books, "UnvestedLapsed")
        # h1: 12 at the cliff (2021-02-01) and 1 on 2021-03-01, 2021-04-01: 14 vested, 34 lapse
        assert [(e.holder, e.rights, e.lapsed_on.isoformat(), e.lapse_reason) for e in lapses] == [
            ("h1", 34, "2021-04-15", "unvested at departure"),
            ("h2", 48, "2020-06-01", "unvested at departure"),
        ]
        assert lapses[1].reason == "resigned" and lapses[1].issuance == "s1"
        issuance = books.service.issuance("s1")
        assert issuance.holdings["h1"].forfeited == 34 and issuance.holdings["h1"].outstanding == 14
        # later instalments vest nothing: h1 can exercise 14, never more
        _apply(books, f.exercise("h1", 14, on="2030-01-01"))
        assert verify_log(books.service.uow.log).finding is None
    finally:
        books.service.close()


def test_no_lapse_event_when_terms_keep_unvested_rights(tmp_path: Path) -> None:
    books = _books(tmp_path)
    try:
        keep = {**CLIFF, "unvested_lapse_on_departure": False}
        _apply(books, *f.setup(vesting=keep), f.allot("h1", 48), f.depart("h1", on="2020-06-01"),
               f.exercise("h1", 48, on="2024-02-01"))
        assert _events(books, "UnvestedLapsed") == []
    finally:
        books.service.close()


def test_vesting_event_record_and_audit(tmp_path: Path) -> None:
    books = _books(tmp_path)
    try:
        on_ipo = f.schedule({"portion": "1/2", "after_months": 24}, {"portion": "1/2", "on_event": "ipo"})
        _apply(books, *f.setup(vesting=on_ipo, fair_value_per_right="250"),
               f.allot("h1", 10, vesting_start="2020-01-15"),
               f.vest("ipo", on="2021-01-01", portion_met="0.5"),
               f.exercise("h1", 2, on="2021-01-01", share_price="1234.5"))
        [rec] = _events(books, "VestingEventRecorded")
        assert (rec.event, rec.occurred_on, rec.holder, rec.portion_met) == ("ipo", date(2021, 1, 1), None, "1/2")
        [terms] = _events(books, "TermsSet")
        assert terms.vesting == v.Schedule.parse(on_ipo).as_json() and str(terms.fair_value_per_right) == "250"
        [allot] = _events(books, "RightsAllotted")
        assert allot.vesting_start == date(2020, 1, 15)
        [ex] = _events(books, "RightsExercised")
        assert str(ex.share_price) == "1234.5"
        assert verify_log(books.service.uow.log).finding is None
        assert books.service.issuance("s1").terms.fair_value == 250
    finally:
        books.service.close()


def test_events_stored_before_vesting_still_load_and_verify() -> None:
    """A TermsSet, RightsAllotted and RightsExercised without the fields vesting added mean
    "vests on allotment", no fair value, no vesting start, no share price."""
    meta = dict(command_id="c", actor="a", reason="", command_digest="d")
    agg = Issuance(issuance="s1", issuer="X", body="board_of_directors", resolved_on=date(2020, 1, 10),
                   title="t", max_rights=None, **meta)
    terms = Terms.from_fields(parse_command(f.terms(), line=1).fields)
    agg.set_terms(terms, **meta)
    agg.allot("h1", "n", "g", 10, date(2020, 2, 1), "offset", None, **meta)
    agg.exercise("h1", 1, date(2021, 1, 1), "new_shares", None, **meta)
    events = agg.collect_events()
    for e, added in zip(events[1:], (("vesting", "fair_value_per_right"), ("vesting_start",), ("share_price",))):
        made = _comparable(e)
        for name in added:
            del e.__dict__[name]  # as an event stored before vesting
        assert _comparable(e) == {k: x for k, x in made.items() if k not in added}
        assert _comparable(_made(e, made), e) == _comparable(e)
    copy = None
    for e in events:
        copy = e.mutate(copy)
    assert copy.terms.vesting is None and copy.terms.fair_value == 1000
    assert copy.holdings["h1"].outstanding == 9


class _made:
    """An event as the rules make it now (all fields), for _comparable against a stored one."""

    def __init__(self, stored: Any, fields: dict[str, Any]) -> None:
        self.__dict__.update({**fields, "timestamp": None})


def test_a_lapse_shows_as_forfeited_in_holdings_and_the_history(tmp_path: Path) -> None:
    from helpers import run_cli, write_jsonl
    import json

    db = f"sqlite:///{tmp_path}/cli.sqlite"
    cmds = [*f.setup(vesting=CLIFF), f.allot("h1", 48), f.depart("h1", on="2021-04-15")]
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=db).code == 0
    [row] = json.loads(run_cli("holdings", "--format", "json", db=db).stdout)
    assert (row["rights_forfeited"], row["rights_outstanding"]) == (34, 14)
    [before] = json.loads(run_cli("holdings", "--as-of", "2021-04-14", "--format", "json", db=db).stdout)
    assert (before["rights_forfeited"], before["rights_outstanding"]) == (0, 48)
    history = json.loads(run_cli("history", "--holder", "h1", "--format", "json", db=db).stdout)
    lapse = [h for h in history if h["type"] == "unvested_lapsed"]
    assert [(h["effective_on"], h["rights"], h["lapse_reason"]) for h in lapse] == [
        ("2021-04-15", 34, "unvested at departure")]
    assert run_cli("audit", "verify", db=db).code == 0
    assert run_cli("audit", "replay", db=db).code == 0


# --------------------------------------------------------------------------- read models


def _holdings(books: Books, by: str = "person", as_of: str | None = None, issuance: str | None = None,
              today: date | None = None) -> list[dict[str, Any]]:
    from equity_ledger.projections.queries import holdings

    books.projector.catch_up()
    with books.projector.reader.connect() as conn:
        return holdings(conn, by, issuance, date.fromisoformat(as_of) if as_of else None, today)


def _vested(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(r.get("holder") or r.get("group") or r.get("issuance"), r["rights_outstanding"], r["rights_vested"],
             r["rights_unvested"], r["rights_exercisable"]) for r in rows]


def test_holdings_show_vested_unvested_and_exercisable_at_any_date(tmp_path: Path) -> None:
    from equity_ledger.projections import schema
    from equity_ledger.projections.verify import verify_projections
    from sqlalchemy import func, select

    books = _books(tmp_path)
    try:
        # h1: cliff 12 on 2021-02-01, then 1 a month; h2 from a hire date (2019-12-31, a month
        # end: its instalments fall on the last day of shorter months); h3 departs and lapses.
        _apply(books, *f.setup(vesting=CLIFF, exercise_window_days_after_departure=30, rights=200),
               f.allot("h1", 48), f.allot("h2", 48, vesting_start="2020-01-31", group="employee"),
               f.allot("h3", 48, group="employee"))
        assert _vested(_holdings(books, as_of="2021-01-31")) == [
            ("h1", 48, 0, 48, 0), ("h2", 48, 12, 36, 12), ("h3", 48, 0, 48, 0)]
        # h2: 2021-01-31 cliff, 2021-02-28 (month end), 2021-03-31
        assert _vested(_holdings(books, as_of="2021-02-28")) == [
            ("h1", 48, 12, 36, 12), ("h2", 48, 13, 35, 13), ("h3", 48, 12, 36, 12)]
        _apply(books, f.exercise("h1", 12, on="2021-02-01"), f.forfeit("h1", 5, on="2021-02-15"),
               f.depart("h3", on="2021-04-15"))
        assert _vested(_holdings(books, as_of="2021-02-15")) == [
            ("h1", 31, 0, 31, 0), ("h2", 48, 12, 36, 12), ("h3", 48, 12, 36, 12)]
        assert _vested(_holdings(books, as_of="2021-03-01")) == [
            ("h1", 31, 1, 30, 1), ("h2", 48, 13, 35, 13), ("h3", 48, 13, 35, 13)]
        # h3 departed: 14 vested, 34 lapsed; exercisable within 30 days after the departure only
        assert _vested(_holdings(books, as_of="2021-05-15")) == [
            ("h1", 31, 3, 28, 3), ("h2", 48, 15, 33, 15), ("h3", 14, 14, 0, 14)]
        assert _vested(_holdings(books, as_of="2021-05-16"))[2] == ("h3", 14, 14, 0, 0)
        assert _vested(_holdings(books, by="group", as_of="2021-05-15")) == [
            ("director", 31, 3, 28, 3), ("employee", 62, 29, 33, 29)]
        assert _vested(_holdings(books, by="issuance", issuance="s1", as_of="2021-05-15")) == [
            ("s1", 93, 32, 61, 32)]
        # without --as-of: as at today (here 2022-06-30), every recorded event counting
        assert _vested(_holdings(books, today=date(2022, 6, 30))) == [
            ("h1", 31, 16, 15, 16), ("h2", 48, 29, 19, 29), ("h3", 14, 14, 0, 0)]
        # a late forfeit (unvested first) rewrites the series from its date
        _apply(books, f.forfeit("h2", 2, on="2020-06-01"))
        assert _vested(_holdings(books, as_of="2021-01-31"))[1] == ("h2", 46, 12, 34, 12)
        with books.projector.reader.connect() as conn:
            position = books.projector.position()
            assert verify_projections(books.service.uow.log, conn, position) is None
            assert conn.execute(select(func.count()).select_from(schema.vesting)).scalar() > 0
    finally:
        books.service.close()


def test_vesting_events_and_rounding_in_holdings(tmp_path: Path) -> None:
    books = _books(tmp_path)
    try:
        half = f.schedule({"portion": "1/3", "after_months": 0}, {"portion": "2/3", "on_event": "ipo"},
                          allocation="cumulative_rounding")
        _apply(books, *f.setup(vesting=half), f.allot("h1", 10, allotted_on="2020-03-01"),
               f.allot("h2", 10, allotted_on="2020-06-01"))
        # rounding half-up: 10/3 -> 3
        assert _vested(_holdings(books, as_of="2020-06-01")) == [("h1", 10, 3, 7, 3), ("h2", 10, 3, 7, 3)]
        # the event covers allotments made on or before it: h1 only; met in part (1/2 of 2/3)
        _apply(books, f.vest("ipo", on="2020-05-01", portion_met="1/2"))
        assert _vested(_holdings(books, as_of="2020-05-01"))[0] == ("h1", 10, 7, 3, 7)
        assert _vested(_holdings(books, as_of="2020-06-01")) == [("h1", 10, 7, 3, 7), ("h2", 10, 3, 7, 3)]
        assert _vested(_holdings(books, as_of="2020-04-30"))[0] == ("h1", 10, 3, 7, 3)
    finally:
        books.service.close()


def test_plans_without_vesting_write_no_vesting_rows(tmp_path: Path) -> None:
    from equity_ledger.projections import schema
    from sqlalchemy import func, select

    books = _books(tmp_path)
    try:
        _apply(books, *f.setup(), f.allot("h1", 10), f.exercise("h1", 2, on="2021-01-01"))
        assert _vested(_holdings(books)) == [("h1", 8, 8, 0, 8)]
        with books.projector.reader.connect() as conn:
            for table in (schema.vesting, schema.vesting_moves, schema.vesting_events):
                assert conn.execute(select(func.count()).select_from(table)).scalar() == 0
    finally:
        books.service.close()


def test_a_late_departure_cannot_lapse_rights_a_recorded_expiry_took(tmp_path: Path) -> None:
    from equity_ledger.ledger.service import CommandRefused

    books = _books(tmp_path)
    try:
        _apply(books, *f.setup(vesting=CLIFF, exercise_to="2022-01-01"), f.allot("h1", 48),
               {"id": "x", "type": "expire_rights", "issuance": "s1", "expired_on": "2022-02-01"})
        with pytest.raises(CommandRefused, match="would-change-recorded-figure"):
            _apply(books, f.depart("h1", on="2021-04-15"))
        _apply(books, f.depart("h1", on="2022-03-01"))  # after the expiry: nothing to lapse
    finally:
        books.service.close()


def test_a_late_departure_cannot_lapse_rights_a_recorded_all_forfeit_took(tmp_path: Path) -> None:
    from equity_ledger.ledger.service import CommandRefused

    books = _books(tmp_path)
    try:
        _apply(books, *f.setup(vesting=CLIFF), f.allot("h1", 48), f.forfeit("h1", "all", on="2022-01-01"))
        with pytest.raises(CommandRefused, match="would-change-recorded-figure"):
            _apply(books, f.depart("h1", on="2021-04-15"))
        _apply(books, f.depart("h1", on="2022-03-01"))  # after the forfeit: nothing left to lapse
    finally:
        books.service.close()


# --------------------------------------------------------------------------- cached steps
import math  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _steps_by_definition(schedule: v.Schedule, allot: v.Movement) -> dict[int, int]:
    """Rights vesting on each date of one allotment, straight from the contract's words: each
    instalment date (clamped to the allotment date), floor(rights x cumulative portion)."""
    start = date.fromordinal(allot.start or allot.ordinal)
    due: dict[int, int] = {}
    cumulative, done = Fraction(0), 0
    for ordinal, portion in schedule.instalments(start):
        cumulative += portion
        exact = allot.rights * cumulative
        n = allot.rights if cumulative >= 1 else (
            math.floor(exact + Fraction(1, 2)) if schedule.allocation == v.ROUNDING else math.floor(exact))
        day = max(ordinal, allot.ordinal)
        if n > done:
            due[day] = due.get(day, 0) + n - done
            done = n
    return due


@settings(max_examples=150, deadline=None)
@given(
    cliff=st.integers(0, 24),
    every=st.integers(1, 6),
    occurrences=st.integers(1, 48),
    first=st.sampled_from([Fraction(0), Fraction(1, 4), Fraction(1, 3)]),
    rounding=st.booleans(),
    start=st.dates(date(1999, 1, 1), date(2030, 12, 31)),
    delay=st.integers(0, 900),
    rights=st.integers(1, 10**6),
)
def test_cached_steps_match_the_definition(cliff, every, occurrences, first, rounding, start, delay, rights):
    """The fast path (cumulative portions per schedule, integer counts, caches) vests what the
    definition vests, date by date, whatever the schedule, start, allotment date and rounding."""
    tranches = []
    if first:
        tranches.append({"portion": str(first.numerator) + "/" + str(first.denominator), "after_months": cliff})
    rest = (1 - first) / occurrences
    tranches.append({"portion": f"{rest.numerator}/{rest.denominator}", "after_months": cliff + 1,
                     "every_months": every, "occurrences": occurrences} if occurrences > 1 else
                    {"portion": f"{rest.numerator}/{rest.denominator}", "after_months": cliff + 1})
    schedule = v.Schedule.parse({"tranches": tranches,
                                 "allocation": v.ROUNDING if rounding else v.ROUND_DOWN})
    allotted = start.toordinal() + delay
    allot = v.Movement(allotted, 1, v.ALLOT, rights, start.toordinal())
    now, later = v.allotment_steps(schedule, allot, ())
    got: dict[int, int] = {}
    if now:
        got[allotted] = now
    for ordinal, n in later:
        got[ordinal] = got.get(ordinal, 0) + n
    assert got == _steps_by_definition(schedule, allot)
    assert sum(got.values()) == rights
