"""Every rule of the contract ("Rules every command obeys", "Late entries"), one by one, fast.

Each rule is exercised on the real service over a throw-away SQLite file, fed with command
dicts exactly as a command file holds them (``tests/factories.py``), in two halves:

* refused: the typed error class and its rule slug, and nothing stored (store head, aggregate
  versions in memory and in the store, the command id not recorded);
* accepted: right after the refusal, the boundary case that must pass (exercise exactly on
  ``exercise_to``, a window of 0 days = the departure day, an allotment equal to what the terms
  have left ...), which also shows that the ledger still works after a refusal.

The table ends with the limits: every figure the terms and adjustments imply fits a signed
64-bit integer (rule ``quantity-out-of-range``), refused at the maximum + 1, accepted at it.

Then the figures (shares delivered, exercise price rounded up per currency after each
adjustment, amounts), "all" forfeits, expiry, idempotent re-runs, and the parsing of command
lines (the limits of a line's own values are in test_limits.py).

Defaults of the factories (all dates ISO): resolution 2020-01-10, terms decided 2020-01-20,
100 rights of 100 shares, JPY 1000 per right, JPY 1 per share, allotment date 2020-02-01,
exercise period 2020-02-02..2040-02-01; allotments of 10 rights on 2020-02-01 by offset.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator

import pytest

import factories as f
from equity_ledger.ledger import errors as E
from equity_ledger.bootstrap import Books
from equity_ledger.ledger.service import CommandRefused, LedgerService
from equity_ledger.ledger.commands import MAX_LINE_BYTES, SCHEMAS, Command, parse_command, parse_line
from equity_ledger.ledger.issuance import Issuance
from equity_ledger.ledger.terms import TERMS_FIELDS, Terms


# ---------------------------------------------------------------------------------------------
# A ledger fed with command dicts


class Book:
    """The real service on a temp SQLite file; commands numbered as lines of one command file."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ledger = Books(url).service
        self.line = 0

    def parse(self, dicts: Any) -> list[Command]:
        out = []
        for d in dicts:
            self.line += 1
            out.append(parse_command(d, line=self.line))
        return out

    def apply(self, *dicts: dict[str, Any]):
        report = self.ledger.apply(self.parse(dicts))
        return report

    def events(self, kind: str | None = None) -> list[Any]:
        evs = [e for _, e in self.ledger.uow.log.iter_events()]
        return [e for e in evs if kind is None or type(e).__name__ == kind]

    def last(self, kind: str) -> Any:
        evs = self.events(kind)
        assert evs, f"no {kind} event stored"
        return evs[-1]

    def _versions(self, ledger: LedgerService, d: dict[str, Any]) -> dict[str, int | None]:
        """Versions of the aggregates the command names (None: not on record)."""
        out: dict[str, int | None] = {}
        if "issuance" in d:
            try:
                out["issuance"] = ledger.issuance(d["issuance"]).version
            except E.UnknownIssuance:
                out["issuance"] = None
        if "holder" in d:
            h = ledger.holder(d["holder"])
            out["holder"] = h.version if h is not None else None
        return out

    def refuse(self, d: dict[str, Any], error: type[E.Refused]) -> CommandRefused:
        """Apply `d`, expect the typed refusal `error`, and check that nothing was stored."""
        head = self.ledger.uow.log.head_position()
        versions = self._versions(self.ledger, d)
        digests = self.ledger.uow.log.command_digests([d["id"]])
        with pytest.raises(CommandRefused) as info:
            self.ledger.apply(self.parse([d]))
        refused = info.value
        assert type(refused.error) is error, f"{type(refused.error).__name__}: {refused}"
        assert refused.rule == error.rule
        assert f"[{error.rule}]" in str(refused) and f"id {d['id']}" in str(refused)
        assert "\n" not in str(refused)  # one line for the user
        # Nothing stored: no event, no command id, the aggregates untouched (memory and store).
        assert self.ledger.uow.log.head_position() == head
        assert self.ledger.uow.log.command_digests([d["id"]]) == digests
        assert self._versions(self.ledger, d) == versions
        fresh = Books(self.url).service
        try:
            assert fresh.uow.log.head_position() == head
            assert self._versions(fresh, d) == versions
        finally:
            fresh.close()
        return refused


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Book]:
    b = Book(f"sqlite:///{tmp_path}/l.sqlite")
    yield b
    b.ledger.close()


def setup(issuance: str = "s1", **terms: Any) -> list[dict[str, Any]]:
    return f.setup(issuance, **terms)


# ---------------------------------------------------------------------------------------------
# The rules, each refused then accepted at its boundary


@dataclass
class Rule:
    name: str
    given: list[dict[str, Any]]  # applied first, all accepted
    bad: dict[str, Any]  # refused with `error`
    error: type[E.Refused]
    then: list[dict[str, Any]] = field(default_factory=list)  # accepted after the refusal


ONLY_AFTER = dict(exercisable_only_after_departure=True)
MAX = 2**63 - 1  # the store's integers: every quantity and figure must fit
FREE = dict(price_per_right="1", exercise_price_per_share="0")
PERIOD_2021 = dict(exercise_from="2021-01-01", exercise_to="2021-12-31")
# Vesting schedules (allotments on 2020-02-01 unless said otherwise)
CLIFF = f.schedule({"portion": "1/4", "after_months": 12},
                   {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36})
HALVES = f.schedule({"portion": "1/2", "after_months": 1}, {"portion": "1/2", "after_months": 12})
HALVES_YEARLY = f.schedule({"portion": "1/2", "after_months": 12}, {"portion": "1/2", "after_months": 24})
MONTHLY_HALVES = f.schedule({"portion": "1/2", "after_months": 1, "every_months": 1, "occurrences": 2})
ON_IPO = f.schedule({"portion": "1/2", "after_months": 24}, {"portion": "1/2", "on_event": "ipo"})


def _rules() -> list[Any]:
    A = f.allot
    X = f.exercise
    F = f.forfeit
    rules = [
        # --- One resolution per issuance; one issuer per store --------------------------------
        Rule("one-resolution-per-issuance", [f.resolution("s1")],
             f.resolution("s1", title="again"), E.ResolutionExists, [f.resolution("s2")]),
        Rule("one-resolution-per-issuance/even-identical-under-another-id", setup(),
             f.resolution("s1"), E.ResolutionExists, [A("h1")]),
        Rule("one-issuer-per-store", [f.resolution("s1")],
             f.resolution("s2", issuer="Other Corp."), E.OtherIssuer, [f.resolution("s2")]),
        # --- Nothing dated before the issuance's resolution -----------------------------------
        Rule("nothing-before-resolution/terms-decided", [f.resolution("s1")],
             f.terms(decided_on="2020-01-09"), E.BeforeResolution,
             [f.terms(decided_on="2020-01-10", allotment_date="2020-01-10")]),
        Rule("nothing-before-resolution/allotment-date", [f.resolution("s1")],
             f.terms(allotment_date="2020-01-09"), E.BeforeResolution,
             [f.terms(allotment_date="2020-01-10")]),
        Rule(
            "nothing-before-resolution/exercise-period", [f.resolution("s1")],
            f.terms(exercise_from="2020-01-09"), E.BeforeResolution,
            [f.terms(exercise_from="2020-01-10")]),
        Rule("nothing-before-resolution/forfeit", [*setup(), A("h1")],
             F("h1", 1, on="2020-01-09"), E.BeforeResolution, [F("h1", 1, on="2020-02-01")]),
        Rule("nothing-before-resolution/adjustment", setup(),
             f.adjust("2", on="2020-01-09"), E.BeforeResolution, [f.adjust("2", on="2020-02-01")]),
        # --- Terms: after the resolution, once, period in order, within max_rights -----------
        Rule("terms-need-a-resolution", [], f.terms(), E.UnknownIssuance, setup()),
        Rule("terms-only-once", setup(), f.terms(rights=50), E.TermsAlreadySet,
             [A("h1", 100)]),  # the first terms (100 rights) stay in force
        Rule("exercise-from-after-exercise-to", [f.resolution("s1")],
             f.terms(exercise_from="2030-01-02", exercise_to="2030-01-01"), E.ExercisePeriodInverted,
             [f.terms(exercise_from="2030-01-01", exercise_to="2030-01-01")]),
        Rule("terms-over-max-rights", [f.resolution("s1", max_rights=89)],
             f.terms(rights=90), E.OverMaxRights, [f.terms(rights=89)]),
        # --- Allotments -----------------------------------------------------------------------
        Rule("terms-required/allotment", [f.resolution("s1")], A("h1"), E.TermsNotSet,
             [f.terms(), A("h1")]),
        Rule("allotment-unknown-issuance", setup(), A("h1", issuance="s9"), E.UnknownIssuance,
             [A("h1")]),
        Rule("allotment-before-allotment-date", setup(), A("h1", allotted_on="2020-01-31"),
             E.BeforeAllotmentDate, [A("h1", allotted_on="2020-02-01")]),
        Rule("allotment-before-terms-decided",
             [f.resolution("s1"), f.terms(allotment_date="2020-01-15")],
             A("h1", allotted_on="2020-01-19"), E.BeforeAllotmentDate,
             [A("h1", allotted_on="2020-01-20")]),
        Rule("allotment-over-terms", [*setup(), A("h1", 60), A("h2", 30)],
             A("h3", 11), E.OverTerms, [A("h3", 10)]),
        Rule("allotment-over-terms/forfeited-rights-are-not-allotted-again",
             [*setup(rights=10), A("h1", 10), F("h1", "all", on="2020-06-01")],
             A("h2", 1), E.OverTerms, [f.adjust("2", on="2020-07-01")]),
        Rule("one-group-per-holder", [*setup(), *setup("s2"), A("h1", 1, group="director")],
             A("h1", 1, group="employee"), E.GroupChanged,
             [A("h1", 1, group="director"), A("h1", 1, issuance="s2", group="employee")]),
        Rule("allotment-after-departure", [*setup(), A("h1"), f.depart("h1", on="2021-01-01")],
             A("h1", allotted_on="2021-01-01"), E.AfterDeparture,
             [A("h1", allotted_on="2020-12-31")]),
        Rule("allotment-after-departure/other-issuance",
             [*setup(), *setup("s2"), A("h1"), f.depart("h1", on="2021-01-01")],
             A("h1", issuance="s2", allotted_on="2021-01-02"), E.AfterDeparture,
             [A("h1", issuance="s2", allotted_on="2020-12-31")]),
        # --- Exercise and forfeit never exceed what the holder has outstanding ------------------
        Rule("over-outstanding/exercise", [*setup(), A("h1", 10), X("h1", 4)],
             X("h1", 7), E.OverOutstanding, [X("h1", 6)]),
        Rule("over-outstanding/forfeit", [*setup(), A("h1", 10), X("h1", 4)],
             F("h1", 7), E.OverOutstanding, [F("h1", 6)]),
        Rule("over-outstanding/no-pooling-between-holders", [*setup(), A("h1", 5), A("h2", 5)],
             X("h1", 6), E.OverOutstanding, [X("h1", 5)]),
        Rule("over-outstanding/rights-of-another-issuance",
             [*setup(), *setup("s2"), A("h1", 5), A("h1", 5, issuance="s2")],
             X("h1", 6), E.OverOutstanding, [X("h1", 5), X("h1", 5, issuance="s2")]),
        Rule("nothing-outstanding/forfeit-all", [*setup(), A("h1", 10), X("h1", 10, on="2021-01-01")],
             F("h1", "all", on="2021-01-02"), E.NothingOutstanding,
             [A("h1", 2, allotted_on="2021-01-02"), F("h1", "all", on="2021-01-02")]),
        Rule("unknown-holder/exercise", [*setup(), A("h1")], X("h2"), E.UnknownHolder, [X("h1")]),
        Rule("unknown-holder/forfeit", [*setup(), A("h1")], F("h2"), E.UnknownHolder, [F("h1")]),
        Rule("unknown-holder/holder-of-another-issuance", [*setup(), *setup("s2"), A("h1")],
             X("h1", issuance="s2"), E.UnknownHolder, [X("h1")]),
        Rule("unknown-holder/departure", [*setup(), A("h1")], f.depart("h2"), E.UnknownHolder,
             [f.depart("h1")]),
        Rule("unknown-issuance/exercise", [*setup(), A("h1")], X("h1", issuance="s9"),
             E.UnknownIssuance, [X("h1")]),
        # --- Exercise within exercise_from..exercise_to (inclusive) -----------------------------
        Rule("outside-exercise-period/day-before-exercise-from", [*setup(**PERIOD_2021), A("h1")],
             X("h1", on="2020-12-31"), E.OutsideExercisePeriod, [X("h1", on="2021-01-01")]),
        Rule("outside-exercise-period/day-after-exercise-to", [*setup(**PERIOD_2021), A("h1")],
             X("h1", on="2022-01-01"), E.OutsideExercisePeriod, [X("h1", on="2021-12-31")]),
        # --- Before departure only where the terms allow it ------------------------------------
        Rule("exercisable-only-after-departure/not-departed", [*setup(**ONLY_AFTER), A("h1")],
             X("h1", on="2021-01-01"), E.BeforeDeparture,
             [f.depart("h1", on="2021-01-01"), X("h1", on="2021-01-01")]),
        Rule("exercisable-only-after-departure/dated-before-departure",
             [*setup(**ONLY_AFTER), A("h1"), f.depart("h1", on="2021-06-01")],
             X("h1", on="2021-05-31"), E.BeforeDeparture, [X("h1", on="2021-06-01")]),
        # --- After departure only while exercised_on <= departed_on + window days ---------------
        Rule("departure-window-closed/0-days-is-the-departure-day-only",
             [*setup(exercise_window_days_after_departure=0), A("h1"), f.depart("h1", on="2021-06-01")],
             X("h1", on="2021-06-02"), E.WindowClosed, [X("h1", on="2021-06-01")]),
        Rule("departure-window-closed/10-days",
             [*setup(exercise_window_days_after_departure=10, **ONLY_AFTER), A("h1"),
              f.depart("h1", on="2021-06-01")],
             X("h1", on="2021-06-12"), E.WindowClosed, [X("h1", on="2021-06-11")]),
        Rule("departure-window-closed/exercise-before-departure-allowed-by-terms",
             [*setup(exercise_window_days_after_departure=10), A("h1"), f.depart("h1", on="2021-06-01")],
             X("h1", on="2021-06-12"), E.WindowClosed,
             [X("h1", on="2021-05-01"), X("h1", on="2021-06-11")]),
        Rule("no-window-means-no-time-limit-after-departure",
             [*setup(**ONLY_AFTER), A("h1"), f.depart("h1", on="2021-06-01")],
             X("h1", on="2040-02-02"), E.OutsideExercisePeriod, [X("h1", on="2040-02-01")]),
        Rule("departure-window-closed/window-ends-after-exercise-to",
             [*setup(exercise_window_days_after_departure=10, **PERIOD_2021), A("h1"),
              f.depart("h1", on="2021-12-28")],
             X("h1", on="2022-01-01"), E.OutsideExercisePeriod, [X("h1", on="2021-12-31")]),
        # --- Never after expiry ---------------------------------------------------------------
        Rule("issuance-expired/exercise", [*setup(), A("h1"), f.expire(on="2040-02-02")],
             X("h1", on="2040-02-01"), E.IssuanceExpired, [f.resolution("s2")]),
        Rule("issuance-expired/forfeit", [*setup(), A("h1"), f.expire(on="2040-02-02")],
             F("h1", 1, on="2040-02-01"), E.IssuanceExpired, [f.resolution("s2")]),
        Rule("issuance-expired/allotment", [*setup(), A("h1"), f.expire(on="2040-02-02")],
             A("h2", allotted_on="2030-01-01"), E.IssuanceExpired, [f.resolution("s2")]),
        Rule("issuance-expired/second-expiry", [*setup(), A("h1"), f.expire(on="2040-02-02")],
             f.expire(on="2040-03-01"), E.IssuanceExpired, [f.resolution("s2")]),
        Rule(
            "issuance-expired/adjustment", [*setup(), A("h1"), f.expire(on="2040-02-02")],
            f.adjust("2", on="2040-03-01"), E.IssuanceExpired, [f.resolution("s2")]),
        # --- Expiry only after exercise_to, and not before recorded events ----------------------
        Rule("expiry-before-end-of-exercise-period", [*setup(), A("h1")],
             f.expire(on="2040-02-01"), E.ExpiryTooEarly, [f.expire(on="2040-02-02")]),
        Rule("expiry-needs-terms", [f.resolution("s1")], f.expire(on="2040-02-02"), E.TermsNotSet,
             [f.terms(), f.expire(on="2040-02-02")]),
        Rule("expiry-before-recorded-events", [*setup(), A("h1"), F("h1", 1, on="2040-03-01")],
             f.expire(on="2040-02-29"), E.ExpiryBeforeRecorded, [f.expire(on="2040-03-01")]),
        # --- Adjustments: positive ratio, never changing a recorded exercise -------------------
        Rule("ratio-must-be-positive", setup(), f.adjust("0"), E.NonPositiveRatio,
             [f.adjust("0.5")]),
        Rule("ratio-must-be-positive/zero-fraction", setup(), f.adjust("0/3"), E.NonPositiveRatio,
             [f.adjust("1/3")]),
        Rule("adjustment-needs-terms", [f.resolution("s1")], f.adjust("2", on="2020-02-01"),
             E.TermsNotSet, [f.terms(), f.adjust("2", on="2020-02-01")]),
        Rule(
            "adjustment-before-the-terms-were-decided", [*setup(), A("h1")],
            f.adjust("2", on="2020-01-15"), E.TermsNotSet, [f.adjust("2", on="2020-01-21")]),
        Rule("would-change-recorded-figure/split-on-the-day-of-an-exercise",
             [*setup(), A("h1"), X("h1", on="2021-06-01")],
             f.adjust("2", on="2021-06-01"), E.ChangesRecordedFigure, [f.adjust("2", on="2021-06-02")]),
        Rule("would-change-recorded-figure/split-before-an-exercise-of-another-holder",
             [*setup(), A("h1"), A("h2"), X("h2", on="2021-06-01")],
             f.adjust("2", on="2021-01-01"), E.ChangesRecordedFigure,
             [X("h1", on="2021-06-01"), f.adjust("2", on="2021-06-02")]),
        # --- Departures -----------------------------------------------------------------------
        Rule("one-departure-per-holder", [*setup(), A("h1"), f.depart("h1", on="2021-01-01")],
             f.depart("h1", on="2021-02-01"), E.AlreadyDeparted, [X("h1", on="2021-01-01")]),
        Rule("departure-conflicts/allotment-on-departure-day",
             [*setup(), A("h1", allotted_on="2020-03-01")],
             f.depart("h1", on="2020-03-01"), E.DepartureConflicts, [f.depart("h1", on="2020-03-02")]),
        Rule("departure-conflicts/allotment-in-another-issuance",
             [*setup(), *setup("s2"), A("h1"), A("h1", issuance="s2", allotted_on="2020-05-01")],
             f.depart("h1", on="2020-04-01"), E.DepartureConflicts, [f.depart("h1", on="2020-05-02")]),
        Rule("departure-conflicts/exercise-outside-the-window",
             [*setup(exercise_window_days_after_departure=10), A("h1"), X("h1", on="2021-06-20")],
             f.depart("h1", on="2021-06-09"), E.DepartureConflicts, [f.depart("h1", on="2021-06-10")]),
        # --- Late entries: the timeline with the command in its place --------------------------
        Rule("late/forfeit-starving-a-recorded-exercise",
             [*setup(), A("h1", 10), X("h1", 8, on="2021-06-01")],
             F("h1", 3, on="2021-01-01"), E.OverOutstanding, [F("h1", 2, on="2021-01-01")]),
        Rule("late/exercise-before-the-allotment",
             [*setup(), A("h1", 10, allotted_on="2020-03-01"), X("h1", 1, on="2020-06-01")],
             X("h1", 1, on="2020-02-29"), E.OverOutstanding, [X("h1", 1, on="2020-03-01")]),
        Rule("late/forfeit-all-starving-a-recorded-exercise",
             [*setup(), A("h1", 10), X("h1", 3, on="2021-06-01")],
             F("h1", "all", on="2021-01-01"), E.OverOutstanding,
             [F("h1", "all", on="2021-06-01")]),  # same date, recorded later: comes after
        Rule("late/forfeit-all-before-any-allotment",
             [*setup(), A("h1", 10, allotted_on="2020-03-01"), X("h1", 1, on="2020-06-01")],
             F("h1", "all", on="2020-02-15"), E.NothingOutstanding,
             [F("h1", "all", on="2020-06-01")]),
        Rule("late/exercise-would-change-a-recorded-all-forfeit",
             [*setup(), A("h1", 10), F("h1", "all", on="2021-06-01")],
             X("h1", 1, on="2021-01-01"), E.ChangesRecordedFigure,
             [A("h1", 5, allotted_on="2021-06-01"), X("h1", 5, on="2021-06-01")]),
        Rule("late/allotment-would-change-a-recorded-all-forfeit",
             [*setup(), A("h1", 10), F("h1", "all", on="2021-06-01"), A("h1", 1, allotted_on="2021-07-01")],
             A("h1", 5, allotted_on="2021-05-31"), E.ChangesRecordedFigure,
             [A("h1", 5, allotted_on="2021-06-01")]),
        Rule("late/forfeit-would-change-a-recorded-all-forfeit",
             [*setup(), A("h1", 10), F("h1", "all", on="2021-06-01")],
             F("h1", 1, on="2021-01-01"), E.ChangesRecordedFigure, [f.depart("h1", on="2021-06-01")]),
        Rule("late/exercise-before-departure-of-only-after-departure-terms",
             [*setup(**ONLY_AFTER), A("h1", 10), f.depart("h1", on="2021-06-01"), X("h1", 1, on="2021-06-05")],
             X("h1", 1, on="2021-05-31"), E.BeforeDeparture, [X("h1", 1, on="2021-06-01")]),
        Rule("late/allotment-after-a-later-recorded-departure",
             [*setup(), A("h1", 1, allotted_on="2020-03-01"), f.depart("h1", on="2020-06-01")],
             A("h1", 1, allotted_on="2020-06-01"), E.AfterDeparture,
             [A("h1", 1, allotted_on="2020-05-31")]),
        Rule("late/expiry-after-a-forfeit-dated-after-it",
             [*setup(**PERIOD_2021), A("h1"), F("h1", 1, on="2022-06-01")],
             f.expire(on="2022-01-01"), E.ExpiryBeforeRecorded, [f.expire(on="2022-06-01")]),
        # --- Vesting: exercise of vested rights only; forfeits take unvested first; lapses ------
        Rule("exercise-of-unvested/before-the-cliff", [*setup(vesting=CLIFF), A("h1", 48)],
             X("h1", 1, on="2021-01-31"), E.ExerciseOfUnvested, [X("h1", 12, on="2021-02-01")]),
        Rule("exercise-of-unvested/more-than-the-instalments-so-far",
             [*setup(vesting=CLIFF), A("h1", 48), X("h1", 12, on="2021-02-01")],
             X("h1", 2, on="2021-03-01"), E.ExerciseOfUnvested, [X("h1", 1, on="2021-03-01")]),
        Rule("exercise-of-unvested/month-end-clamping",
             [*setup(vesting=f.schedule({"portion": "1", "after_months": 1})),
              A("h1", 4, vesting_start="2020-01-31")],
             X("h1", 1, on="2020-02-28"), E.ExerciseOfUnvested, [X("h1", 4, on="2020-02-29")]),
        Rule("exercise-of-unvested/instalments-already-due-vest-on-the-allotment",
             [*setup(vesting=HALVES), A("h1", 10, allotted_on="2020-03-01", vesting_start="2020-01-10")],
             X("h1", 6, on="2020-03-01"), E.ExerciseOfUnvested, [X("h1", 5, on="2020-03-01")]),
        Rule("exercise-of-unvested/forfeit-takes-unvested-first",
             [*setup(vesting=HALVES), A("h1", 10), F("h1", 3, on="2020-03-01")],
             X("h1", 6, on="2020-03-01"), E.ExerciseOfUnvested, [X("h1", 5, on="2020-03-01")]),
        Rule("exercise-of-unvested/event-met-in-part",
             [*setup(vesting=ON_IPO), A("h1", 10), f.vest("ipo", on="2021-01-01", portion_met="1/2")],
             X("h1", 3, on="2021-01-01"), E.ExerciseOfUnvested, [X("h1", 2, on="2021-01-01")]),
        Rule("exercise-of-unvested/event-covers-allotments-made-on-or-before-it",
             [*setup(vesting=ON_IPO), A("h1", 10), A("h2", 10, allotted_on="2021-01-02"),
              f.vest("ipo", on="2021-01-01")],
             X("h2", 1, on="2021-06-01"), E.ExerciseOfUnvested, [X("h1", 5, on="2021-06-01")]),
        Rule("exercise-of-unvested/late-departure-lapses-what-a-recorded-exercise-needed",
             [*setup(vesting=HALVES_YEARLY), A("h1", 10), X("h1", 10, on="2022-02-01")],
             f.depart("h1", on="2021-06-01"), E.ExerciseOfUnvested, [f.depart("h1", on="2022-02-01")]),
        Rule("would-change-recorded-figure/vesting-event-before-a-recorded-lapse",
             [*setup(vesting=ON_IPO), A("h1", 10), f.depart("h1", on="2021-06-01")],
             f.vest("ipo", on="2021-01-01"), E.ChangesRecordedFigure, [f.vest("ipo", on="2021-06-02")]),
        Rule("would-change-recorded-figure/late-allotment-unvested-at-a-recorded-departure",
             [*setup(vesting=MONTHLY_HALVES), A("h1", 10), f.depart("h1", on="2021-01-01")],
             A("h1", 10, allotted_on="2020-12-01"), E.ChangesRecordedFigure,
             [A("h1", 10, allotted_on="2020-10-01")]),
        Rule("unknown-vesting-event", [*setup(vesting=ON_IPO), A("h1")],
             f.vest("listing"), E.UnknownVestingEvent, [f.vest("ipo")]),
        Rule("unknown-vesting-event/terms-without-vesting", [*setup(), A("h1")],
             f.vest("ipo"), E.UnknownVestingEvent, [X("h1")]),
        Rule("one-vesting-event-record/all-then-one-holder",
             [*setup(vesting=ON_IPO), A("h1"), f.vest("ipo")],
             f.vest("ipo", holder="h1", on="2021-02-01"), E.VestingEventRecorded, [X("h1", 5)]),
        Rule("one-vesting-event-record/same-holder",
             [*setup(vesting=ON_IPO), A("h1"), A("h2"), f.vest("ipo", holder="h1")],
             f.vest("ipo", holder="h1", on="2021-02-01"), E.VestingEventRecorded,
             [f.vest("ipo", holder="h2")]),
        Rule("nothing-before-resolution/vesting-start", [*setup(vesting=CLIFF)],
             A("h1", vesting_start="2020-01-09"), E.BeforeResolution,
             [A("h1", vesting_start="2020-01-10")]),
        Rule("nothing-before-resolution/vesting-event", [*setup(vesting=ON_IPO), A("h1")],
             f.vest("ipo", on="2020-01-09"), E.BeforeResolution, [f.vest("ipo", on="2020-01-10")]),
        Rule("unknown-holder/vesting-event", [*setup(vesting=ON_IPO), A("h1")],
             f.vest("ipo", holder="h9"), E.UnknownHolder, [f.vest("ipo", holder="h1")]),
        Rule("terms-required/vesting-event", [f.resolution("s1")], f.vest("ipo"), E.TermsNotSet,
             [f.terms(vesting=ON_IPO), f.vest("ipo")]),
        Rule("issuance-expired/vesting-event", [*setup(vesting=ON_IPO), A("h1"), f.expire(on="2040-02-02")],
             f.vest("ipo", on="2030-01-01"), E.IssuanceExpired, [f.resolution("s2")]),
        # --- Every figure fits a signed 64-bit integer: refused at max + 1, accepted at max ------
        Rule("quantity-out-of-range/terms-shares", [f.resolution("s1")],
             f.terms(rights=2, shares_per_right=2**62, **FREE), E.QuantityOutOfRange,
             [f.terms(rights=1, shares_per_right=MAX, **FREE), A("h1", 1), X("h1", 1)]),
        Rule("quantity-out-of-range/terms-amount-payable", [f.resolution("s1")],
             f.terms(rights=3, shares_per_right=1, price_per_right=str(MAX // 3 + 1),
                     exercise_price_per_share="0"), E.QuantityOutOfRange,
             [f.terms(rights=3, shares_per_right=1, price_per_right=str(MAX // 3),
                      exercise_price_per_share="0"), A("h1", 3)]),
        Rule("quantity-out-of-range/terms-exercise-price-of-all-shares", [f.resolution("s1")],
             f.terms(rights=1, shares_per_right=3, price_per_right="1",
                     exercise_price_per_share=str(MAX // 3 + 1)), E.QuantityOutOfRange,
             [f.terms(rights=1, shares_per_right=3, price_per_right="1",
                      exercise_price_per_share=str(MAX // 3)), A("h1", 1), X("h1", 1)]),
        Rule("quantity-out-of-range/terms-counted-in-the-currency-minor-unit", [f.resolution("s1")],
             f.terms(rights=1, shares_per_right=1, currency="USD", price_per_right="1",
                     exercise_price_per_share="92233720368547759"), E.QuantityOutOfRange,
             [f.terms(rights=1, shares_per_right=1, currency="USD", price_per_right="1",
                      exercise_price_per_share="92233720368547758")]),  # 100 x: cents
        Rule("quantity-out-of-range/adjusted-shares-per-right",
             setup(rights=1, shares_per_right=2**62, **FREE),
             f.adjust("2"), E.QuantityOutOfRange, [f.adjust(f"{MAX}/{2**62}")]),
        Rule("quantity-out-of-range/adjusted-denominator",
             [*setup(rights=1, shares_per_right=1, **FREE), f.adjust(f"1/{MAX}", on="2021-01-01")],
             f.adjust("1/2", on="2021-02-01"), E.QuantityOutOfRange,
             [f.adjust("2", on="2021-02-01")]),
        Rule("quantity-out-of-range/adjusted-shares-of-the-terms",
             setup(rights=2, shares_per_right=2**61, **FREE),
             f.adjust("2"), E.QuantityOutOfRange, [f.adjust(f"{MAX}/{2**62}")]),
        Rule("quantity-out-of-range/adjusted-exercise-price",
             setup(rights=1, shares_per_right=1, price_per_right="1",
                   exercise_price_per_share=str(2**62)),
             f.adjust("1/2"), E.QuantityOutOfRange, [f.adjust(f"{2**62}/{MAX}")]),
        Rule("quantity-out-of-range/late-adjustment-compounds-with-later-ones",
             [*setup(rights=1, shares_per_right=2**61, **FREE), f.adjust("2", on="2022-01-01")],
             f.adjust("2", on="2021-01-01"), E.QuantityOutOfRange,
             [f.adjust(f"{MAX}/{2**62}", on="2023-01-01")]),
        # --- Personal details: holder on record, erased once and for good, bounded address ----
        Rule("unknown-holder/details", [*setup(), A("h1")], f.details("h2"), E.UnknownHolder,
             [f.details("h1")]),
        Rule("unknown-holder/erase", [*setup(), A("h1")], f.erase("h2"), E.UnknownHolder,
             [f.erase("h1")]),
        Rule("details-erased", [*setup(), A("h1"), f.details("h1"), f.erase("h1")],
             f.details("h1", "new address", on="2021-01-01"), E.DetailsErased,
             [A("h2"), f.details("h2", on="2021-01-01")]),
        Rule("details-erased/even-dated-before-the-first-details",
             [*setup(), A("h1"), f.erase("h1")], f.details("h1", on="2019-01-01"), E.DetailsErased,
             [A("h1", 1)]),  # the rights are not touched by an erasure
        Rule("erase-once", [*setup(), A("h1"), f.details("h1"), f.erase("h1")], f.erase("h1"),
             E.AlreadyErased, [A("h2"), f.erase("h2")]),
        Rule("address-too-long", [*setup(), A("h1")], f.details("h1", "x" * 1025), E.AddressTooLong,
             [f.details("h1", "x" * 1024), f.details("h1", "日" * 341, on="2021-01-01")]),
        Rule("address-too-long/counted-in-utf8-bytes", [*setup(), A("h1")],
             f.details("h1", "日" * 342), E.AddressTooLong, [f.details("h1", "日本" * 170 + "x")]),
    ]
    return [pytest.param(r, id=r.name) for r in rules]


RULES = _rules()


@pytest.mark.parametrize("rule", RULES)
def test_rule_refused_then_boundary_accepted(book: Book, rule: Rule) -> None:
    if rule.given:
        book.apply(*rule.given)
    book.refuse(rule.bad, rule.error)
    if rule.then:
        report = book.apply(*rule.then)
        assert report.applied == len(rule.then)


def test_every_refusal_class_is_exercised() -> None:
    """The table above names every rule class of ledger.errors (IdReused is tested below)."""
    named = {p.values[0].error for p in RULES}
    rules = {c for c in vars(E).values() if isinstance(c, type) and issubclass(c, E.Refused)}
    assert rules - named - {E.Refused, E.IdReused} == set()
    assert len({c.rule for c in rules}) == len(rules), "rule slugs must be distinct"


# ---------------------------------------------------------------------------------------------
# Refusals in a run: earlier commands stay, the refused one and those after it are not applied


def test_apply_stops_at_the_first_refusal_keeping_the_commands_before(book: Book) -> None:
    good, bad, after = f.allot("h1", 10), f.exercise("h1", 11), f.allot("h2", 1)
    with pytest.raises(CommandRefused) as info:
        book.ledger.apply(book.parse([*setup(), good, bad, after]))
    assert info.value.rule == "over-outstanding" and f"line {book.line - 1}" in str(info.value)
    digests = book.ledger.uow.log.command_digests([good["id"], bad["id"], after["id"]])
    assert set(digests) == {good["id"]}
    assert [e.holder for e in book.events("RightsAllotted")] == ["h1"]
    book.apply(f.exercise("h1", 10), after)


def test_a_malformed_line_stops_the_run_after_the_lines_before(book: Book) -> None:
    lines = [json.dumps(c) for c in setup()] + ['{"id": "x", "type": "allot_rights", "rights": 1.5}']

    def commands() -> Iterator[Command]:
        for n, text in enumerate(lines, 1):
            cmd = parse_line(text, n)
            if cmd is not None:
                yield cmd

    with pytest.raises(E.BadCommand, match="line 3"):
        book.ledger.apply(commands())
    assert [type(e).__name__ for e in book.events()] == ["Registered", "ResolutionPassed", "TermsSet"]


# ---------------------------------------------------------------------------------------------
# Figures: shares delivered, exercise price per share (rounded up after each adjustment), paid


@dataclass
class Fig:
    name: str
    terms: dict[str, Any]
    adjustments: list[tuple[str, str]]  # (ratio, effective_on), in record order
    rights: int
    exercised_on: str
    shares: int
    price: str  # exercise price per share in force, as stored (its exact digits)
    paid: str


FIGURES = [
    Fig("no-adjustment", dict(shares_per_right=200), [], 3, "2021-01-01", 600, "1", "600"),
    Fig("jpy1-split-stays-jpy1", dict(shares_per_right=200), [("2", "2021-01-01")],
        3, "2021-06-01", 1200, "1", "1200"),
    Fig("iij-two-splits-compound", dict(shares_per_right=200),
        [("2", "2021-01-01"), ("2", "2022-10-01")], 3, "2022-10-01", 2400, "1", "2400"),
    Fig("day-before-the-second-split", dict(shares_per_right=200),
        [("2", "2021-01-01"), ("2", "2022-10-01")], 3, "2022-09-30", 1200, "1", "1200"),
    Fig("day-before-the-first-split", dict(shares_per_right=200),
        [("2", "2021-01-01"), ("2", "2022-10-01")], 3, "2020-12-31", 600, "1", "600"),
    Fig("adjustment-applies-first-on-its-date", dict(shares_per_right=100), [("3", "2021-06-01")],
        1, "2021-06-01", 300, "1", "300"),
    Fig("usd-split-rounds-price-up-to-cents",
        dict(currency="USD", price_per_right="12.34", exercise_price_per_share="0.75"),
        [("2", "2021-01-01")], 10, "2021-01-01", 2000, "0.38", "760.00"),
    Fig("usd-two-splits-round-after-each",
        dict(currency="USD", price_per_right="12.34", exercise_price_per_share="0.75"),
        [("2", "2021-01-01"), ("2", "2022-01-01")], 10, "2022-01-01", 4000, "0.19", "760.00"),
    Fig("usd-consolidation", dict(currency="USD", price_per_right="1", exercise_price_per_share="0.75"),
        [("0.5", "2021-01-01")], 3, "2021-01-01", 150, "1.50", "225.00"),
    Fig("usd-ratio-3-rounds-up", dict(currency="USD", price_per_right="1", exercise_price_per_share="1.00"),
        [("3", "2021-01-01")], 1, "2021-01-01", 300, "0.34", "102.00"),
    Fig("jpy-ratio-3-rounds-up-to-the-yen", dict(exercise_price_per_share="100"),
        [("3", "2021-01-01")], 1, "2021-01-01", 300, "34", "10200"),
    Fig("one-third-floors-the-shares-delivered", dict(exercise_price_per_share="100"),
        [("1/3", "2021-01-01")], 10, "2021-01-01", 333, "300", "99900"),
    Fig("one-third-floors-each-exercise", dict(exercise_price_per_share="100"),
        [("1/3", "2021-01-01")], 1, "2021-01-01", 33, "300", "9900"),
    Fig("compounding-rounds-after-each-adjustment", dict(exercise_price_per_share="1"),
        [("2", "2021-01-01"), ("0.5", "2022-01-01")], 1, "2022-01-01", 100, "2", "200"),
    Fig("compounding-three-then-one-third", dict(shares_per_right=10, exercise_price_per_share="10"),
        [("3", "2021-01-01"), ("1/3", "2022-01-01")], 1, "2022-01-01", 10, "12", "120"),
    Fig("shares-per-right-kept-exact-between-adjustments",
        dict(shares_per_right=10, exercise_price_per_share="10"),
        [("1/3", "2021-01-01"), ("3", "2022-01-01")], 1, "2022-01-01", 10, "10", "100"),
    Fig("two-adjustments-on-one-date", dict(shares_per_right=100),
        [("2", "2021-01-01"), ("3", "2021-01-01")], 1, "2021-01-01", 600, "1", "600"),
    Fig("late-adjustment-applies-in-effective-order", dict(shares_per_right=100),
        [("2", "2022-01-01"), ("1/3", "2021-01-01")], 3, "2022-01-01", 200, "2", "400"),
]


@pytest.mark.parametrize("fig", FIGURES, ids=lambda x: x.name)
def test_figures_shares_delivered_and_price_paid(book: Book, fig: Fig) -> None:
    book.apply(*setup(**fig.terms), f.allot("h1", 10))
    book.apply(*[f.adjust(ratio, on=on) for ratio, on in fig.adjustments])
    book.apply(f.exercise("h1", fig.rights, on=fig.exercised_on))
    ev = book.last("RightsExercised")
    assert ev.shares_delivered == fig.shares
    assert str(ev.exercise_price_per_share) == fig.price
    assert ev.exercise_price_paid == Decimal(fig.paid)
    assert ev.exercise_price_paid == fig.shares * ev.exercise_price_per_share


def test_late_exercise_takes_the_figures_in_force_at_its_date(book: Book) -> None:
    book.apply(*setup(shares_per_right=200, exercise_price_per_share="3"), f.allot("h1", 10))
    book.apply(f.adjust("2", on="2021-01-01"), f.exercise("h1", 1, on="2021-03-01"))
    book.apply(f.exercise("h1", 2, on="2020-12-31"))  # late: before the split
    late, first = book.last("RightsExercised"), book.events("RightsExercised")[0]
    assert (late.shares_delivered, late.exercise_price_per_share, late.exercise_price_paid) == (
        400, Decimal("3"), Decimal("1200"))
    assert (first.shares_delivered, first.exercise_price_per_share) == (400, Decimal("2"))


@pytest.mark.parametrize(
    "terms, rights, payment, amount",
    [
        (dict(price_per_right="647000"), 15, "offset", "9705000"),
        (dict(price_per_right="647000", rights=89), 89, "offset", "57583000"),
        (dict(price_per_right="12.34", currency="USD"), 7, "cash", "86.38"),
        (dict(price_per_right="647000"), 5, "gratis", "0"),
    ],
    ids=["offset", "iij-total", "cash-usd", "gratis"],
)
def test_allotment_amount_is_rights_times_price_per_right(book: Book, terms, rights, payment, amount) -> None:
    book.apply(*setup(**terms), f.allot("h1", rights, payment=payment))
    ev = book.last("RightsAllotted")
    assert (ev.amount, ev.currency, ev.payment) == (Decimal(amount), terms.get("currency", "JPY"), payment)


def test_adjustment_keeps_the_ratio_exact(book: Book) -> None:
    book.apply(*setup(), f.adjust("1/3"), f.adjust("0.5", on="2021-02-01"), f.adjust("2/4", on="2021-03-01"))
    assert [Fraction(e.ratio) for e in book.events("SharesAdjusted")] == [
        Fraction(1, 3), Fraction(1, 2), Fraction(1, 2)]


def test_terms_in_force_on_the_issuance_aggregate() -> None:
    """Directly on the aggregate: shares per right exact, price rounded up after each step."""
    meta = dict(command_id="c", actor="t", reason="")
    iss = Issuance(issuance="x", issuer="I", body="board_of_directors",
                   resolved_on=_d("2020-01-10"), title="t", max_rights=None, **meta)
    terms = parse_command(f.terms("x", shares_per_right=200, exercise_price_per_share="1")).fields
    iss.set_terms(Terms.from_fields(terms), **meta)
    iss.adjust(Fraction(2), _d("2021-01-01"), **meta)
    iss.adjust(Fraction(1, 3), _d("2022-10-01"), **meta)
    assert iss.terms_on(_d("2020-12-31")) == (Fraction(200), Decimal("1"))
    assert iss.terms_on(_d("2021-01-01")) == (Fraction(400), Decimal("1"))
    assert iss.terms_on(_d("2022-10-01")) == (Fraction(400, 3), Decimal("3"))
    # A refused use case leaves the aggregate as it was: same version, no pending event.
    version = iss.version
    iss.collect_events()
    with pytest.raises(E.NonPositiveRatio):
        iss.adjust(Fraction(0), _d("2023-01-01"), **meta)
    with pytest.raises(E.UnknownHolder):
        iss.exercise("nobody", 1, _d("2023-01-01"), "new_shares", None, **meta)
    assert iss.version == version and iss.collect_events() == []


def _d(text: str):
    from datetime import date

    return date.fromisoformat(text)


# ---------------------------------------------------------------------------------------------
# "all" forfeits and expiry


def test_forfeit_all_stands_for_what_is_outstanding_and_keeps_that_number(book: Book) -> None:
    book.apply(*setup(), f.allot("h1", 10), f.allot("h1", 5, allotted_on="2021-01-01"),
               f.exercise("h1", 3, on="2021-02-01"), f.forfeit("h1", "all", on="2021-03-01"))
    ev = book.last("RightsForfeited")
    assert (ev.rights, ev.all_outstanding) == (12, True)
    # Allotted later (after the forfeit's date): outstanding again, and the recorded 12 stays.
    book.apply(f.allot("h1", 4, allotted_on="2021-04-01"), f.forfeit("h1", "all", on="2021-05-01"))
    assert [e.rights for e in book.events("RightsForfeited")] == [12, 4]


def test_late_forfeit_all_stands_for_what_was_outstanding_at_its_date(book: Book) -> None:
    book.apply(*setup(), f.allot("h1", 10), f.allot("h2", 1), f.allot("h1", 5, allotted_on="2021-01-01"))
    book.apply(f.forfeit("h1", "all", on="2020-06-01"))  # late: before the second allotment
    assert book.last("RightsForfeited").rights == 10
    book.apply(f.exercise("h1", 5, on="2021-01-01"))
    book.refuse(f.exercise("h1", 1, on="2021-01-02"), E.OverOutstanding)


def test_expiry_lapses_what_each_holder_has_outstanding(book: Book) -> None:
    book.apply(*setup(), f.allot("h1", 10), f.allot("h2", 5), f.allot("h3", 2),
               f.exercise("h1", 3), f.forfeit("h3", "all"))
    book.apply(f.expire(on="2040-02-02"))
    assert book.last("RightsExpired").expired == {"h1": 7, "h2": 5}


@pytest.mark.parametrize("allotted", [False, True], ids=["no-allotment", "all-exercised"])
def test_expiry_may_find_nothing_outstanding(book: Book, allotted: bool) -> None:
    book.apply(*setup())
    if allotted:
        book.apply(f.allot("h1", 10), f.exercise("h1", 10, on="2040-02-01"))
    book.apply(f.expire(on="2040-02-02"))
    assert book.last("RightsExpired").expired == {}
    book.refuse(f.allot("h2", 1, allotted_on="2040-02-03"), E.IssuanceExpired)


# ---------------------------------------------------------------------------------------------
# Command ids: same id and content skipped, same id with other content refused


def _reordered(d: dict[str, Any]) -> dict[str, Any]:
    return dict(reversed(list(d.items())))


def test_reapplying_the_same_commands_is_skipped(book: Book) -> None:
    cmds = [*setup(), f.allot("h1", 10), f.exercise("h1", 2), f.adjust("2", on="2030-01-01")]
    book.apply(*cmds)
    head = book.ledger.uow.log.head_position()
    report = book.apply(*[_reordered(c) for c in cmds])  # key order does not matter
    assert (report.applied, report.skipped, report.events) == (0, len(cmds), 0)
    fresh = Book(book.url)  # also from the store, not only the ledger's memory
    report = fresh.apply(*cmds)
    assert (report.applied, report.skipped) == (0, len(cmds))
    assert fresh.ledger.uow.log.head_position() == book.ledger.uow.log.head_position() == head
    fresh.ledger.close()


def test_reapplying_a_file_skips_commands_the_ledger_would_now_refuse(book: Book) -> None:
    cmds = [*setup(), f.allot("h1", 10), f.exercise("h1", 10), f.expire()]
    book.apply(*cmds)
    report = book.apply(*cmds, f.resolution("s2"))  # the allotment would now be refused
    assert (report.applied, report.skipped) == (1, len(cmds))


def test_same_id_twice_in_one_run_is_applied_once(book: Book) -> None:
    a = f.allot("h1", 10)
    report = book.apply(*setup(), a, _reordered(a))
    assert (report.applied, report.skipped) == (3, 1)
    assert len(book.events("RightsAllotted")) == 1


@pytest.mark.parametrize(
    "change",
    [dict(rights=11), dict(actor="someone"), dict(reason="typo fixed"), dict(allotted_on="2020-02-02")],
    ids=["rights", "actor", "reason", "date"],
)
@pytest.mark.parametrize("same_run", [False, True], ids=["later-run", "same-run"])
def test_same_id_with_other_content_is_refused(book: Book, change: dict[str, Any], same_run: bool) -> None:
    a = f.allot("h1", 10)
    book.apply(*setup())
    other = {**a, **change}
    if same_run:
        head = book.ledger.uow.log.head_position()
        with pytest.raises(CommandRefused) as info:
            book.ledger.apply(book.parse([a, other]))
        assert type(info.value.error) is E.IdReused and info.value.rule == "id-reused-with-other-content"
        assert book.ledger.uow.log.head_position() > head  # the first one stays applied
        assert len(book.events("RightsAllotted")) == 1
    else:
        book.apply(a)
        book.refuse(other, E.IdReused)
    book.apply(a, f.allot("h1", 1))  # the original is still skipped; others go on


def test_a_refused_command_id_stays_free_for_the_corrected_command(book: Book) -> None:
    book.apply(*setup())
    bad = f.allot("h1", 101)
    book.refuse(bad, E.OverTerms)
    report = book.apply({**bad, "rights": 100})
    assert report.applied == 1 and book.last("RightsAllotted").command_id == bad["id"]


# ---------------------------------------------------------------------------------------------
# Parsing the command file: BadCommand (rule "bad-input"), naming the line


RAW = "__raw__"  # a placeholder replaced by raw JSON text (numbers json.dumps cannot write)

VALID: dict[str, dict[str, Any]] = {
    "pass_resolution": {**f.resolution("s1", max_rights=135), "id": "v"},
    "set_terms": {**f.terms("s1", exercisable_only_after_departure=True,
                            exercise_window_days_after_departure=10), "id": "v"},
    "allot_rights": {**f.allot("h1"), "id": "v"},
    "exercise_rights": {**f.exercise("h1", delivery="treasury_shares"), "id": "v"},
    "forfeit_rights": {**f.forfeit("h1", "all"), "id": "v"},
    "record_departure": {**f.depart("h1"), "id": "v"},
    "record_holder_details": {**f.details("h1", "東京都千代田区1-1"), "id": "v"},
    "erase_holder_details": {**f.erase("h1"), "id": "v"},
    "adjust_shares": {**f.adjust("1/3"), "id": "v"},
    "expire_rights": {**f.expire(), "id": "v"},
    "record_vesting_event": {**f.vest("ipo", holder="h1", portion_met="1/2"), "id": "v"},
}


def _line(ctype: str, raw: str | None = None, drop: tuple[str, ...] = (), **change: Any) -> str:
    d = {k: v for k, v in {**VALID[ctype], **change}.items() if k not in drop}
    text = json.dumps(d, ensure_ascii=False)
    return text.replace(f'"{RAW}"', raw) if raw is not None else text


def test_valid_lines_parse_into_exact_typed_values() -> None:
    terms = parse_line(_line("set_terms", price_per_right="647000", exercise_price_per_share="0.75"), 7)
    assert terms.line == 7 and terms.type == "set_terms"
    assert terms.price_per_right == Decimal("647000") and str(terms.exercise_price_per_share) == "0.75"
    assert terms.share_class == "common" and terms.exercise_window_days_after_departure == 10
    assert parse_line(_line("adjust_shares"), 1).ratio == Fraction(1, 3)
    assert parse_line(_line("adjust_shares", ratio="0.5"), 1).ratio == Fraction(1, 2)
    assert parse_line(_line("forfeit_rights"), 1).rights == "all"
    assert parse_line(_line("exercise_rights", drop=("delivery",)), 1).delivery == "new_shares"
    window0 = parse_line(_line("set_terms", exercise_window_days_after_departure=0), 1)
    assert window0.exercise_window_days_after_departure == 0
    absent = parse_line(_line("set_terms", drop=("exercise_window_days_after_departure",
                                                 "exercisable_only_after_departure")), 1)
    assert absent.exercise_window_days_after_departure is None
    assert absent.exercisable_only_after_departure is False
    assert parse_line(_line("allot_rights", allotted_on="2020-02-29"), 1).allotted_on.isoformat() == "2020-02-29"
    assert parse_line("   ", 1) is None and parse_line(b"", 2) is None
    for ctype in SCHEMAS:
        assert parse_line(_line(ctype).encode("utf-8"), 1).type == ctype


def test_same_content_has_the_same_digest_whatever_the_key_order_and_spacing() -> None:
    d = VALID["allot_rights"]
    compact = json.dumps(d, separators=(",", ":"))
    spaced = json.dumps(_reordered(d), indent=None, separators=(" , ", " : "))
    assert parse_line(compact, 1).digest == parse_line(spaced, 2).digest
    assert parse_line(compact, 1).digest != parse_line(json.dumps({**d, "rights": 11}), 1).digest
    # The same JSON object after parsing: escapes do not matter, nor the default actor (OS user).
    named = {**d, "name": "山田 太郎"}
    assert (parse_line(json.dumps(named, ensure_ascii=True), 1).digest
            == parse_line(json.dumps(named, ensure_ascii=False), 1).digest)
    assert parse_command(d, actor="alice").digest == parse_command(d, actor="bob").digest
    assert parse_command(d, actor="alice").actor == "alice"
    assert parse_command({**d, "actor": "carol"}, actor="alice").actor == "carol"


BAD_LINES = [
    # Money: a JSON string holding a plain decimal, nothing else.
    ("money-float", _line("set_terms", price_per_right=1000.5)),
    ("money-json-integer", _line("set_terms", price_per_right=1000)),
    ("money-json-exponent", _line("set_terms", price_per_right=RAW, raw="1e3")),
    ("money-string-exponent", _line("set_terms", price_per_right="1e3")),
    ("money-string-exponent-upper", _line("set_terms", exercise_price_per_share="1E0")),
    ("money-negative", _line("set_terms", price_per_right="-1")),
    ("money-plus-sign", _line("set_terms", price_per_right="+1")),
    ("money-trailing-dot", _line("set_terms", price_per_right="1.")),
    ("money-leading-dot", _line("set_terms", price_per_right=".5")),
    ("money-thousands-separator", _line("set_terms", price_per_right="647,000")),
    ("money-underscore", _line("set_terms", price_per_right="647_000")),
    ("money-spaces", _line("set_terms", price_per_right=" 647000")),
    ("money-empty", _line("set_terms", price_per_right="")),
    ("money-nan-string", _line("set_terms", price_per_right="NaN")),
    ("money-infinity-string", _line("set_terms", price_per_right="Infinity")),
    ("money-bool", _line("set_terms", exercise_price_per_share=True)),
    ("money-null", _line("set_terms", exercise_price_per_share=None)),
    ("money-bare-nan", _line("set_terms", price_per_right=RAW, raw="NaN")),
    ("money-bare-infinity", _line("set_terms", price_per_right=RAW, raw="-Infinity")),
    ("currency-lowercase", _line("set_terms", currency="jpy")),
    ("currency-unknown", _line("set_terms", currency="YEN")),
    ("currency-number", _line("set_terms", currency=392)),
    # Quantities: JSON integers >= 1 (never a bool, a float or a string).
    ("rights-true", _line("allot_rights", rights=True)),
    ("rights-false", _line("allot_rights", rights=False)),
    ("rights-zero", _line("allot_rights", rights=0)),
    ("rights-negative", _line("allot_rights", rights=-1)),
    ("rights-float-integral", _line("allot_rights", rights=1.0)),
    ("rights-exponent", _line("allot_rights", rights=RAW, raw="1e1")),
    ("rights-string", _line("allot_rights", rights="1")),
    ("rights-null", _line("allot_rights", rights=None)),
    ("exercise-rights-all", _line("exercise_rights", rights="all")),
    ("exercise-rights-zero", _line("exercise_rights", rights=0)),
    ("forfeit-rights-ALL", _line("forfeit_rights", rights="ALL")),
    ("forfeit-rights-zero", _line("forfeit_rights", rights=0)),
    ("forfeit-rights-negative", _line("forfeit_rights", rights=-2)),
    ("forfeit-rights-true", _line("forfeit_rights", rights=True)),
    ("terms-rights-zero", _line("set_terms", rights=0)),
    ("shares-per-right-true", _line("set_terms", shares_per_right=True)),
    ("shares-per-right-zero", _line("set_terms", shares_per_right=0)),
    ("shares-per-right-float", _line("set_terms", shares_per_right=200.0)),
    ("max-rights-zero", _line("pass_resolution", max_rights=0)),
    ("max-rights-true", _line("pass_resolution", max_rights=True)),
    ("window-negative", _line("set_terms", exercise_window_days_after_departure=-1)),
    ("window-true", _line("set_terms", exercise_window_days_after_departure=True)),
    ("window-float", _line("set_terms", exercise_window_days_after_departure=1.5)),
    ("window-string", _line("set_terms", exercise_window_days_after_departure="10")),
    ("only-after-departure-string", _line("set_terms", exercisable_only_after_departure="true")),
    ("only-after-departure-int", _line("set_terms", exercisable_only_after_departure=1)),
    # Dates: ISO YYYY-MM-DD calendar dates.
    ("date-feb-30", _line("allot_rights", allotted_on="2021-02-30")),
    ("date-feb-29-non-leap", _line("allot_rights", allotted_on="2021-02-29")),
    ("date-month-13", _line("allot_rights", allotted_on="2021-13-01")),
    ("date-day-0", _line("allot_rights", allotted_on="2021-01-00")),
    ("date-not-zero-padded", _line("allot_rights", allotted_on="2021-1-1")),
    ("date-basic-format", _line("allot_rights", allotted_on="20210101")),
    ("date-slashes", _line("allot_rights", allotted_on="2021/01/01")),
    ("date-with-time", _line("allot_rights", allotted_on="2021-01-01T00:00:00")),
    ("date-with-zone", _line("allot_rights", allotted_on="2021-01-01Z")),
    ("date-padded", _line("allot_rights", allotted_on=" 2021-01-01")),
    ("date-number", _line("allot_rights", allotted_on=20210101)),
    ("date-fullwidth-digits", _line("allot_rights", allotted_on="２０２１-０１-０１")),
    ("date-year-0", _line("record_departure", departed_on="0000-01-01")),
    # Enumerations and ratios.
    ("body-unknown", _line("pass_resolution", body="ceo")),
    ("payment-unknown", _line("allot_rights", payment="credit")),
    ("delivery-unknown", _line("exercise_rights", delivery="cash")),
    ("ratio-number", _line("adjust_shares", ratio=2)),
    ("ratio-negative", _line("adjust_shares", ratio="-2")),
    ("ratio-zero-denominator", _line("adjust_shares", ratio="2/0")),
    ("ratio-negative-denominator", _line("adjust_shares", ratio="1/-3")),
    ("ratio-exponent", _line("adjust_shares", ratio="1e1")),
    ("ratio-text", _line("adjust_shares", ratio="two")),
    ("ratio-empty", _line("adjust_shares", ratio="")),
    ("ratio-colon", _line("adjust_shares", ratio="1:2")),
    # Fields: unknown, misspelt, of another type; text fields non-empty and without NUL.
    ("unknown-field", _line("allot_rights", colour="red")),
    ("typo-field", _line("allot_rights", drop=("allotted_on",), alloted_on="2020-02-01")),
    ("field-of-another-type", _line("allot_rights", exercised_on="2020-02-01")),
    ("issuer-on-terms", _line("set_terms", issuer="Example K.K.")),
    ("holder-on-adjustment", _line("adjust_shares", holder="h1")),
    ("empty-issuance", _line("allot_rights", issuance="")),
    ("blank-holder", _line("allot_rights", holder="   ")),
    ("nul-in-name", _line("allot_rights", name="A\u0000B")),
    ("actor-not-text", _line("allot_rights", actor=7)),
    ("reason-not-text", _line("allot_rights", reason=["x"])),
    ("forfeit-without-reason", _line("forfeit_rights", drop=("reason",))),
    ("forfeit-with-blank-reason", _line("forfeit_rights", reason="  ")),
    ("nul-in-address", _line("record_holder_details", address="1-1\u0000Chiyoda")),
    ("blank-address", _line("record_holder_details", address="  ")),
    ("address-not-text", _line("record_holder_details", address=["1-1", "Chiyoda"])),
    ("erase-without-reason", _line("erase_holder_details", drop=("reason",))),
    ("erase-with-blank-reason", _line("erase_holder_details", reason=" ")),
    ("erase-with-address", _line("erase_holder_details", address="x")),
    # Type and id.
    ("unknown-type", _line("allot_rights", type="grant_rights")),
    ("type-missing", _line("allot_rights", drop=("type",))),
    ("type-null", _line("allot_rights", type=None)),
    ("id-missing", _line("allot_rights", drop=("id",))),
    ("id-empty", _line("allot_rights", id="")),
    ("id-number", _line("allot_rights", id=7)),
    # Not a JSON object.
    ("malformed-json", '{"id": "v", "type": '),
    ("trailing-garbage", _line("allot_rights") + " x"),
    ("two-objects", _line("allot_rights") + _line("allot_rights")),
    ("array", "[1, 2]"),
    ("string", '"allot_rights"'),
    ("null", "null"),
    ("number", "7"),
] + [
    # Every required field of every type, missing.
    (f"missing-{ctype}.{name}", _line(ctype, drop=(name,)))
    for ctype, schema in SCHEMAS.items()
    for name, (_parser, required, _default) in schema.items()
    if required
]

BAD_LINES += [  # money and ratios take ASCII digits only
    ("money-fullwidth-digits", _line("set_terms", price_per_right="６４７０００")),
    ("money-arabic-indic-digits", _line("set_terms", exercise_price_per_share="١")),
    ("ratio-fullwidth-digits", _line("adjust_shares", ratio="２")),
]


@pytest.mark.parametrize("case, text", [pytest.param(*c, id=c[0]) for c in BAD_LINES])
def test_bad_line_is_refused_as_bad_input(case: str, text: str) -> None:
    for raw in (text, text.encode("utf-8")):
        with pytest.raises(E.BadCommand) as info:
            parse_line(raw, 42)
        assert info.value.rule == "bad-input"
        assert str(info.value).startswith("line 42") and "\n" not in str(info.value)


def _padded_line(size: int) -> bytes:
    """A valid allot_rights line of exactly `size` bytes (padding in `reason`)."""
    empty = _line("allot_rights", reason="").encode("utf-8")
    return _line("allot_rights", reason="x" * (size - len(empty))).encode("utf-8")


def test_a_line_of_exactly_1_mib_is_accepted_one_byte_more_is_refused() -> None:
    exact = _padded_line(MAX_LINE_BYTES)
    assert len(exact) == MAX_LINE_BYTES
    assert parse_line(exact, 1).type == "allot_rights"
    assert parse_line(exact.decode("utf-8"), 1).type == "allot_rights"
    over = _padded_line(MAX_LINE_BYTES + 1)
    for raw in (over, over.decode("utf-8")):
        with pytest.raises(E.BadCommand, match="line 3: longer than 1 MiB"):
            parse_line(raw, 3)
    # Counted in bytes, not characters: 1 MiB of bytes in fewer characters is still too long.
    wide = _line("allot_rights", reason="日" * (MAX_LINE_BYTES // 3 + 1))
    assert len(wide) < MAX_LINE_BYTES < len(wide.encode("utf-8"))
    with pytest.raises(E.BadCommand, match="longer than 1 MiB"):
        parse_line(wide, 4)


@pytest.mark.parametrize(
    "bad_bytes",
    [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"],
    ids=["0xff", "truncated", "overlong", "surrogate", "5-byte", "lone-continuation"],
)
def test_invalid_utf8_is_refused(bad_bytes: bytes) -> None:
    good = _line("allot_rights", name="NAME").encode("utf-8")
    with pytest.raises(E.BadCommand, match="line 5: not valid UTF-8"):
        parse_line(good.replace(b"NAME", b"N" + bad_bytes + b"E"), 5)
    assert parse_line(good.replace(b"NAME", "名前".encode("utf-8")), 5).name == "名前"
