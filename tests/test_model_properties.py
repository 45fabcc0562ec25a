"""The product against an independent model of the contract (tests/model.py).

a. A hypothesis state machine drives the real service + `Projector` and the model side by side
   with random valid and invalid commands (late entries, same-date events, splits and
   consolidations, departures, "all" forfeits, expiry, re-applied and reused ids, malformed
   commands, reopening the store). After every step: accepted/refused agree, `holdings` by
   person/group/issuance (current and as at a few dates) equal the model, the invariants hold,
   `report movements` over a random period (in shares and in rights) equals the model's and
   its two equations hold for every series, and a rebuilt projection equals the incremental one.
b. A deterministic scenario checked as at every day from the day before the first event to the
   day after the last.

Runs on SQLite always, and on PostgreSQL when EQUITY_LEDGER_TEST_PG_URL is set. The number of
examples of (a) comes from EQUITY_LEDGER_HYPOTHESIS_EXAMPLES (default 25, quick enough for CI);
a long run:

    EQUITY_LEDGER_HYPOTHESIS_EXAMPLES=2000 python -m pytest -q tests/test_model_properties.py
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

import helpers
from model import Model, Refused, UnknownIssuanceQuery

from equity_ledger.bootstrap import Books
from equity_ledger.ledger.service import CommandRefused, LedgerService
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.errors import BadCommand, LedgerError, UnknownIssuance
from equity_ledger.projections import schema
from equity_ledger.projections.movements_read import movements
from equity_ledger.projections.queries import holdings
from equity_ledger.projections.projector import Projector

EXAMPLES = int(os.environ.get("EQUITY_LEDGER_HYPOTHESIS_EXAMPLES", "25"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

BYS = ("person", "group", "issuance")
MONEY = ("amount_offset", "amount_paid", "exercise_price_paid")
_PLAIN_DECIMAL = re.compile(r"\d+(\.\d+)?")


# --------------------------------------------------------------------------- comparing answers

def normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Money by value: the contract fixes decimal strings, not their number of decimals."""
    out = []
    for r in rows:
        r = dict(r)
        for m in MONEY:
            assert isinstance(r[m], str) and _PLAIN_DECIMAL.fullmatch(r[m]), (m, r[m])
            r[m] = Decimal(r[m])
        for k, v in r.items():
            if k not in MONEY and k not in ("holder", "name", "group", "issuance", "currency"):
                assert type(v) is int, (k, v)
        out.append(r)
    return out


def product_holdings(projector: Projector, by: str, issuance: str | None, as_of: date | None):
    with projector.reader.connect() as conn:
        return holdings(conn, by, issuance, as_of)


def assert_same(product: list[dict[str, Any]], expected: list[dict[str, Any]], what: str) -> None:
    p, e = normalise(product), normalise(expected)
    if p != e:
        lines = [f"{what}: product != model"]
        for i in range(max(len(p), len(e))):
            a = p[i] if i < len(p) else None
            b = e[i] if i < len(e) else None
            if a != b:
                lines.append(f"  product: {a}\n  model:   {b}")
        raise AssertionError("\n".join(lines))


def answers(projector: Projector, model: Model, dates: list[date | None]) -> dict[Any, Any]:
    """Every holdings answer asked for, from the product, checked against the model."""
    seen = {}
    issuances = [None, *sorted(model.issuances)]
    for as_of in dates:
        for by in BYS:
            for iss in issuances:
                got = product_holdings(projector, by, iss, as_of)
                assert_same(got, model.holdings(by, iss, as_of), f"holdings --by {by} "
                            f"--issuance {iss} --as-of {as_of}")
                seen[(as_of, by, iss)] = got
    return seen


def check_invariants(projector: Projector, model: Model) -> None:
    with projector.reader.connect() as conn:
        info = {r.issuance: r for r in conn.execute(select(schema.issuances))}
    assert set(info) == set(model.issuances)
    for iss, row in info.items():
        rows = product_holdings(projector, "person", iss, None)
        for r in rows:
            used = r["rights_exercised"] + r["rights_forfeited"] + r["rights_expired"]
            assert used <= r["rights_allotted"], r
            assert r["rights_outstanding"] == r["rights_allotted"] - used >= 0, r
        allotted = sum(r["rights_allotted"] for r in rows)
        if row.rights is None:
            assert allotted == 0
            continue
        assert allotted <= row.rights, (iss, allotted, row.rights)
        if row.max_rights is not None:
            assert row.rights <= row.max_rights, (iss, row.rights, row.max_rights)


def gaps(row: dict[str, Any]) -> tuple[int, int]:
    """How far a row of `report movements` is from its two equations (unvested, vested)."""
    u, v = row["unvested"], row["vested"]
    return (u["opening"] + u["granted"] - u["forfeited"] - u["vested"] - u["closing"],
            v["opening"] + v["vested"] - v["exercised"] - v["forfeited"] - v["expired"] - v["closing"])


def check_movements(projector: Projector, model: Model, start: date, end: date) -> list[Any]:
    """`report movements` from START to END in both units: equal to the model's, and the
    equations hold for every row; in shares exactly where every issuance of the row has a whole
    number of shares per right at END, else within the floors' bound (docs/commands.md: per
    holder, -1..2 shares unvested, -1..3 vested)."""
    seen = []
    for unit in ("shares", "rights"):
        with projector.reader.connect() as conn:
            got = movements(conn, start, end, None, unit)
        expected = model.movements(start, end, None, unit)
        if got != expected:
            lines = [f"report movements --from {start} --to {end} --unit {unit}: product != model"]
            for i in range(max(len(got), len(expected))):
                a = got[i] if i < len(got) else None
                b = expected[i] if i < len(expected) else None
                if a != b:
                    lines.append(f"  product: {a}\n  model:   {b}")
            raise AssertionError("\n".join(lines))
        for row in got:
            assert row["unvested"]["vested"] == row["vested"]["vested"], row
            members = [i for i, iss in model.issuances.items() if iss.terms is not None and (
                row["issuance"] == i or row["issuance"] == "all" and iss.terms.currency == row["currency"])]
            whole = all(model.terms_at(i, end)[0].denominator == 1 for i in members)
            gap_u, gap_v = gaps(row)
            if unit == "rights" or whole:
                assert (gap_u, gap_v) == (0, 0), (unit, row)
            else:
                holders = sum(len(model.positions(end, i)) for i in members)
                assert -holders <= gap_u <= 2 * holders and -holders <= gap_v <= 3 * holders, (holders, row)
                event("movements in shares with a fraction of a share per right")
        seen.append(got)
    return seen


# --------------------------------------------------------------------------- a store per run

class Store:
    """The service and its Projector on a fresh SQLite file or PostgreSQL database."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.fold_on_store = False
        self.tmp = self.pg_name = None
        if backend == "sqlite":
            self.tmp = tempfile.mkdtemp(prefix="el-model-")
            self.url = f"sqlite:///{self.tmp}/ledger.sqlite"
        else:
            self.url, self.pg_name = helpers.fresh_pg_database()
        self.open()

    def open(self) -> None:
        self.books = Books(self.url)
        self.ledger = self.books.service
        self.projector = self.books.projector

    def close(self) -> None:
        self.books.close()

    def reopen(self) -> None:
        self.close()
        self.open()

    def destroy(self) -> None:
        try:
            self.close()
        finally:
            if self.tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
            if self.pg_name:
                helpers.drop_pg_database(self.pg_name)


def apply_both(ledger: LedgerService, projector: Projector, model: Model, cmd: dict[str, Any],
               fold: bool = False) -> str:
    """Apply one command to the product and the model; they must agree. Returns the outcome."""
    try:
        expected = model.apply(cmd)
    except Refused as e:
        expected, why = "refused", str(e)
    else:
        why = ""
    try:
        # fold: as `apply` does, the projector folds what the service just stored; the
        # catch-up below then finds nothing left to do.
        report = ledger.apply([parse_command(cmd, actor="model-test")],
                              projections=projector if fold else None)
    except (CommandRefused, BadCommand) as e:
        actual, detail = "refused", str(e)
    else:
        actual = "applied" if report.applied == 1 else "skipped" if report.skipped == 1 else "?"
        detail = ""
    assert actual == expected, (
        f"command {cmd}\n  product: {actual} {detail}\n  model:   {expected} {why}"
    )
    projector.catch_up()
    return actual


def apply_batch_both(ledger: LedgerService, projector: Projector, model: Model,
                     cmds: list[dict[str, Any]], fold: bool = False) -> list[str]:
    """Several commands in one `apply` (one transaction, parsed lazily as from a file): the
    product stops at the first refused one and keeps those before it, like the model."""
    expected: list[str] = []
    for cmd in cmds:
        try:
            expected.append(model.apply(cmd))
        except Refused as e:
            expected.append(f"refused ({e})")
            break
    try:
        report = ledger.apply((parse_command(c, line=i + 1, actor="model-test")
                               for i, c in enumerate(cmds)), projections=projector if fold else None)
    except (CommandRefused, BadCommand) as e:
        refused = str(e)
    else:
        refused = None
        assert report.applied + report.skipped == len(cmds)
        assert report.skipped == expected.count("skipped"), (cmds, expected, report)
    assert (refused is None) == (not expected[-1].startswith("refused")), (
        f"batch {cmds}\n  product refused: {refused}\n  model:   {expected}")
    projector.catch_up()
    return expected


# --------------------------------------------------------------------------- the state machine

BASE = date(2024, 1, 1)
HORIZON = 40  # commands are dated on days 0..HORIZON from BASE
HOLDERS = ("h1", "h2", "h3", "h4")
HOME_GROUP = {"h1": "director", "h2": "director", "h3": "executive_officer", "h4": "employee"}


def day(n: int) -> str:
    return (BASE + timedelta(days=n)).isoformat()


def day_no(d: date) -> int:
    return (d - BASE).days


days = st.integers(0, HORIZON)
some_issuance = st.sampled_from(["s1", "s1", "s2", "s3"])  # s3 never has a resolution
probes = st.lists(st.integers(-1, HORIZON + 3), min_size=1, max_size=2)


def mostly(data: Any, likely: st.SearchStrategy, other: st.SearchStrategy, odds: int = 5) -> Any:
    """Draw from `likely` (odds-1 in odds) or from `other` (the rest)."""
    return data.draw(likely if data.draw(st.integers(0, odds - 1)) else other)


@st.composite
def resolution_fields(draw: Any, issuance: str, valid: bool = True) -> dict[str, Any]:
    f = {"type": "pass_resolution", "issuance": issuance,
         "issuer": "Example K.K." if valid else draw(st.sampled_from(["Example K.K.", "Other Inc."])),
         "body": draw(st.sampled_from(["board_of_directors", "shareholders_meeting"])),
         "resolved_on": day(draw(st.integers(0, 3) if valid else st.integers(0, 10))),
         "title": f"series {issuance}"}
    max_rights = draw(st.sampled_from([None, 135, 60] if valid else [None, 20, 100]))
    if max_rights is not None:
        f["max_rights"] = max_rights
    return f


@st.composite
def terms_fields(draw: Any, issuance: str, valid: bool = True) -> dict[str, Any]:
    # s1 in JPY; s2 mostly in USD (rows split per currency), sometimes JPY (summed with s1)
    currency = "JPY" if issuance != "s2" else draw(st.sampled_from(["USD", "USD", "JPY"]))
    decided = draw(st.integers(3, 6) if valid else st.integers(0, 8))
    allotment = decided + draw(st.integers(0, 3))
    ex_from = draw(st.integers(6, 14))
    ex_to = ex_from + draw(st.integers(8, 20) if valid else st.integers(-2, 20))
    f: dict[str, Any] = {
        "type": "set_terms", "issuance": issuance, "decided_on": day(decided),
        "rights": draw(st.sampled_from([30, 60, 10] if valid else [30, 60, 10, 200])),
        "shares_per_right": draw(st.sampled_from([200, 3, 1, 100])),
        "price_per_right": draw(st.sampled_from(
            ["647000", "1000", "1"] if currency == "JPY" else ["12.50", "0.75", "3"])),
        "currency": currency,
        "exercise_price_per_share": draw(st.sampled_from(
            ["1", "3235", "7"] if currency == "JPY" else ["2.50", "1", "0.01", "0.03"])),
        "allotment_date": day(allotment),
        "exercise_from": day(ex_from), "exercise_to": day(ex_to),
    }
    if draw(st.sampled_from([False] * 5 + [True])):
        f["exercisable_only_after_departure"] = True
    window = draw(st.sampled_from([None, 10, 0, 3]))
    if window is not None:
        f["exercise_window_days_after_departure"] = window
    vesting = draw(st.sampled_from([None, None, *VESTINGS]))
    if vesting is not None:
        f["vesting"] = vesting
    return f


# Schedules that vest within the days the machine dates commands on (months from 2024-01-..),
# with events met in full or in part, both allocations and both departure rules.
VESTINGS = [
    {"tranches": [{"portion": "1/2", "after_months": 0}, {"portion": "1/2", "after_months": 1}]},
    {"tranches": [{"portion": "1/3", "after_months": 0, "every_months": 1, "occurrences": 3}],
     "allocation": "cumulative_rounding"},
    {"tranches": [{"portion": "1/4", "after_months": 1}, {"portion": "3/4", "on_event": "goal"}],
     "unvested_lapse_on_departure": False},
    {"tranches": [{"portion": "0.5", "on_event": "goal"}, {"portion": "1/2", "on_event": "ipo"}]},
]
VESTING_EVENTS = ("goal", "ipo", "nope")


class LedgerMachine(RuleBasedStateMachine):
    """Random commands, mostly aimed at what the model says is possible, some not."""

    backend = "sqlite"

    def __init__(self) -> None:
        super().__init__()
        self.store = Store(self.backend)
        self.model = Model()
        self.sent: list[dict[str, Any]] = []
        self.n = 0

    def teardown(self) -> None:
        self.store.destroy()

    # ------------------------------------------------------------------ plumbing
    def with_id(self, cmd: dict[str, Any], cid: str | None = None) -> dict[str, Any]:
        if cid is None:
            self.n += 1
            cid = f"m{self.n}"
        return {"id": cid, **cmd}

    def note(self, cmd: dict[str, Any], outcome: str, last_date: date | None) -> None:
        on = next((v for k, v in cmd.items() if k.endswith("_on")), None)
        late = bool(last_date and isinstance(on, str) and on < last_date.isoformat())
        event(f"{cmd['type']}{' (late)' if late else ''}: {outcome.split(' ')[0]}")
        self.sent.append(cmd)

    def send(self, cmd: dict[str, Any], probe_days: list[int], cid: str | None = None) -> None:
        cmd = self.with_id(cmd, cid)
        dates = self.model.event_dates()
        outcome = apply_both(self.store.ledger, self.store.projector, self.model, cmd,
                             fold=self.store.fold_on_store)
        self.note(cmd, outcome, dates[-1] if dates else None)
        self.check(probe_days)

    def check(self, probe_days: list[int]) -> None:
        dates: list[date | None] = [None, *(BASE + timedelta(days=p) for p in sorted(set(probe_days)))]
        ledger, p = self.store.ledger, self.store.projector
        stored = ledger.uow.log.command_digests([c["id"] for c in self.sent])
        assert set(stored) == set(self.model.applied), "stored command ids differ from the model's"
        incremental = answers(p, self.model, dates)
        check_invariants(p, self.model)
        period = (BASE + timedelta(days=min(probe_days, default=0)),
                  BASE + timedelta(days=max(probe_days, default=HORIZON)))
        reported = check_movements(p, self.model, *period)
        for unknown in ("s2", "s3"):
            if unknown not in self.model.issuances:
                with pytest.raises(UnknownIssuance):
                    product_holdings(p, "person", unknown, None)
                with pytest.raises(UnknownIssuanceQuery):
                    self.model.holdings("person", unknown, None)
        p.rebuild()
        rebuilt = answers(p, self.model, dates)
        assert rebuilt == incremental
        assert check_movements(p, self.model, *period) == reported

    # the model's view, to aim commands at what may be accepted
    def terms(self, issuance: str) -> Any:
        iss = self.model.issuances.get(issuance)
        return iss.terms if iss is not None else None

    def issuance(self, data: Any) -> str:
        with_terms = sorted(i for i, s in self.model.issuances.items() if s.terms is not None)
        return mostly(data, st.sampled_from(with_terms), some_issuance) if with_terms else data.draw(some_issuance)

    def holder(self, data: Any, issuance: str) -> tuple[str, int]:
        """A holder (mostly one with rights outstanding) and their outstanding rights."""
        held = {}
        if issuance in self.model.issuances:
            held = {p["holder"]: p["outstanding"] for p in self.model.positions(None, issuance)
                    if p["outstanding"] > 0}
        h = mostly(data, st.sampled_from(sorted(held)), st.sampled_from(HOLDERS)) if held else (
            data.draw(st.sampled_from(HOLDERS)))
        return h, held.get(h, 0)

    def exercise_day(self, data: Any, issuance: str, holder: str) -> int:
        terms = self.terms(issuance)
        if terms is None:
            return data.draw(days)
        lo, hi = day_no(terms.exercise_from), day_no(terms.exercise_to)
        departed = self.model.departures.get(holder)
        if departed is not None:  # mostly within the window after the departure
            lo = max(lo, day_no(departed))
            if terms.window is not None:
                hi = min(hi, day_no(departed) + terms.window)
        return mostly(data, st.integers(lo, hi), days) if lo <= hi else data.draw(days)

    # ------------------------------------------------------------------ command makers
    def make_allot(self, data: Any) -> dict[str, Any]:
        issuance = self.issuance(data)
        holder = data.draw(st.sampled_from(HOLDERS))
        terms = self.terms(issuance)
        start = day_no(terms.allotment_date) if terms else 0
        on = mostly(data, st.integers(start, min(start + 10, HORIZON)), days)
        group = mostly(data, st.just(HOME_GROUP[holder]),
                       st.sampled_from(["director", "employee", "executive_officer"]), odds=8)
        cmd = {"type": "allot_rights", "issuance": issuance, "holder": holder,
               "name": f"Name {holder}" + data.draw(st.sampled_from(["", " (renamed)"])),
               "group": group, "rights": data.draw(st.integers(1, 5)), "allotted_on": day(on),
               "payment": data.draw(st.sampled_from(["offset", "offset", "cash", "gratis"]))}
        if terms is not None and terms.vesting is not None:
            # a hire date before the allotment; the 31st of January (a month end); too early
            start = data.draw(st.sampled_from([None, None, 0, 30, -5]))
            if start is not None:
                cmd["vesting_start"] = day(start)
        return cmd

    def make_exercise(self, data: Any) -> dict[str, Any]:
        issuance = self.issuance(data)
        holder, out = self.holder(data, issuance)
        rights = mostly(data, st.integers(1, max(out, 1)), st.integers(1, out + 3))
        cmd = {"type": "exercise_rights", "issuance": issuance, "holder": holder,
               "rights": rights, "exercised_on": day(self.exercise_day(data, issuance, holder))}
        delivery = data.draw(st.sampled_from([None, "new_shares", "treasury_shares"]))
        if delivery:
            cmd["delivery"] = delivery
        share_price = data.draw(st.sampled_from([None, "1200", "3540.5", "0.07"]))
        if share_price:
            cmd["share_price"] = share_price
        return cmd

    def make_forfeit(self, data: Any) -> dict[str, Any]:
        issuance = self.issuance(data)
        holder, out = self.holder(data, issuance)
        rights = data.draw(st.one_of(st.integers(1, max(out, 1) + 1), st.just("all")))
        return {"type": "forfeit_rights", "issuance": issuance, "holder": holder,
                "rights": rights, "forfeited_on": day(data.draw(days)), "reason": "waived"}

    def make_depart(self, data: Any) -> dict[str, Any]:
        """Mostly a holder with rights outstanding, after their allotments."""
        issuance = self.issuance(data)
        holder, _ = mostly(data, st.just(self.holder(data, issuance)),
                           st.sampled_from([(h, 0) for h in (*HOLDERS, "h9")]))  # h9: no rights
        allotted = [e.on for i in self.model.issuances.values() for e in i.events
                    if e.holder == holder and e.kind == "allot"]
        after = day_no(max(allotted)) + 1 if allotted else 0
        on = mostly(data, st.integers(min(after, HORIZON), HORIZON), days)
        return {"type": "record_departure", "holder": holder, "departed_on": day(on)}

    def make_vesting_event(self, data: Any) -> dict[str, Any]:
        """Mostly an event of the terms, for every holder or one, met in full or in part."""
        issuance = self.issuance(data)
        cmd: dict[str, Any] = {"type": "record_vesting_event", "issuance": issuance,
                               "event": data.draw(st.sampled_from(VESTING_EVENTS)),
                               "occurred_on": day(data.draw(days))}
        holder = data.draw(st.sampled_from([None, None, *HOLDERS]))
        if holder is not None:
            cmd["holder"] = holder
        met = data.draw(st.sampled_from([None, "1", "1/2", "0.3", "0", "3/2"]))
        if met is not None:
            cmd["portion_met"] = met
        return cmd

    def make_adjust(self, data: Any) -> dict[str, Any]:
        ratio = data.draw(st.sampled_from(["2", "1/2", "3", "1/3", "0.5", "0"]))
        return {"type": "adjust_shares", "issuance": self.issuance(data), "ratio": ratio,
                "effective_on": day(data.draw(days))}

    def make_expire(self, data: Any) -> dict[str, Any]:
        issuance = self.issuance(data)
        terms = self.terms(issuance)
        after = day_no(terms.exercise_to) + 1 if terms else 0
        # mostly too early (refused): an expiry ends most activity of the issuance
        on = mostly(data, st.integers(0, HORIZON), st.integers(after, after + 5), odds=3)
        return {"type": "expire_rights", "issuance": issuance, "expired_on": day(on)}

    def make_admin_or_malformed(self, data: Any) -> dict[str, Any]:
        """A (mostly second, so refused) resolution or terms, or a malformed command."""
        how = data.draw(st.sampled_from([
            "resolution", "terms", "extra_field", "zero_rights", "rights_as_text",
            "money_as_number", "bad_date", "no_reason", "ratio_exponent"]))
        issuance = data.draw(some_issuance)
        on = day(data.draw(days))
        if how == "resolution":
            return data.draw(resolution_fields(issuance, valid=False))
        if how == "terms":
            return data.draw(terms_fields(issuance, valid=False))
        if how == "money_as_number":
            return {**data.draw(terms_fields(issuance)), "price_per_right": 1000}
        if how == "no_reason":
            return {"type": "forfeit_rights", "issuance": issuance, "holder": "h1",
                    "rights": 1, "forfeited_on": on}
        if how == "ratio_exponent":
            return {"type": "adjust_shares", "issuance": issuance, "ratio": "2e0",
                    "effective_on": on}
        cmd = {"type": "allot_rights", "issuance": issuance, "holder": "h1", "name": "N",
               "group": "director", "rights": 1, "allotted_on": on, "payment": "offset"}
        if how == "extra_field":
            cmd["rihgts"] = 2
        elif how == "zero_rights":
            cmd["rights"] = 0
        elif how == "rights_as_text":
            cmd["rights"] = "1"
        elif how == "bad_date":
            cmd["allotted_on"] = "2024-02-30"
        return cmd

    MAKERS = ("allot", "exercise", "forfeit", "depart", "adjust", "expire", "admin_or_malformed",
              "vesting_event")

    # ------------------------------------------------------------------ setup
    @initialize(data=st.data(), s2=st.booleans(), fold_on_store=st.booleans())
    def setup(self, data: Any, s2: bool, fold_on_store: bool) -> None:
        self.store.fold_on_store = fold_on_store
        for issuance in ("s1", "s2") if s2 else ("s1",):
            self.send(data.draw(resolution_fields(issuance)), [])
            self.send(data.draw(terms_fields(issuance)), [])
        for _ in range(data.draw(st.integers(1, 4))):
            self.send(self.make_allot(data), [])

    # ------------------------------------------------------------------ rules
    @rule(data=st.data(), probe=probes)
    def allot(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_allot(data), probe)

    @rule(data=st.data(), probe=probes)
    def exercise(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_exercise(data), probe)

    @rule(data=st.data(), probe=probes)
    def forfeit(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_forfeit(data), probe)

    @rule(data=st.data(), probe=probes)
    def depart(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_depart(data), probe)

    @rule(data=st.data(), probe=probes)
    def adjust(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_adjust(data), probe)

    @rule(data=st.data(), probe=probes)
    def expire(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_expire(data), probe)

    @rule(data=st.data(), probe=probes)
    def vesting_event(self, data: Any, probe: list[int]) -> None:
        # also as at the end of February 2024 (a leap year: instalments from January 31st)
        self.send(self.make_vesting_event(data), [*probe, 58, 59])

    @rule(data=st.data(), probe=probes)
    def admin_or_malformed(self, data: Any, probe: list[int]) -> None:
        self.send(self.make_admin_or_malformed(data), probe)

    @precondition(lambda self: self.sent)
    @rule(data=st.data(), probe=probes, same=st.booleans())
    def reuse_id(self, data: Any, probe: list[int], same: bool) -> None:
        """An id sent before, with the same content (skipped if it was applied, else judged
        anew) or with other content (refused if the id was applied)."""
        cmd = dict(data.draw(st.sampled_from(self.sent)))
        cid = cmd.pop("id")
        if not same:
            cmd["reason"] = "corrected " + cmd.get("reason", "")
        self.send(cmd, probe, cid=cid)

    @rule(data=st.data(), probe=probes,
          kinds=st.lists(st.sampled_from(MAKERS), min_size=2, max_size=5))
    def batch(self, data: Any, probe: list[int], kinds: list[str]) -> None:
        """Several commands in one `apply`: one transaction, stops at the first refusal."""
        cmds = [self.with_id(getattr(self, "make_" + k)(data)) for k in kinds]
        if self.sent and data.draw(st.booleans()):  # an id sent before, in the middle
            old = data.draw(st.sampled_from(self.sent))
            cmds.insert(data.draw(st.integers(0, len(cmds))), dict(old))
        if data.draw(st.booleans()):  # an id twice in one batch, same or other content
            twice = dict(data.draw(st.sampled_from(cmds)))
            if data.draw(st.booleans()):
                twice["reason"] = "again"
            cmds.append(twice)
        dates = self.model.event_dates()
        outcomes = apply_batch_both(self.store.ledger, self.store.projector, self.model, cmds,
                                    fold=self.store.fold_on_store)
        for i, cmd in enumerate(cmds):  # all of them: the stored ids are checked against these
            self.note(cmd, outcomes[i] if i < len(outcomes) else "not-reached",
                      dates[-1] if dates else None)
        self.check(probe)

    @rule(probe=probes)
    def reopen(self, probe: list[int]) -> None:
        """A fresh service and Projector over the same store (aggregates reloaded from it)."""
        self.store.reopen()
        self.check(probe)


@pytest.mark.heavy
@pytest.mark.parametrize("backend", helpers.BACKENDS)
def test_ledger_agrees_with_the_model(backend: str) -> None:
    if backend == "postgresql" and not helpers.PG_URL:
        if helpers.IN_CI:
            pytest.fail("CI must run the PostgreSQL tests: EQUITY_LEDGER_TEST_PG_URL is not set")
        pytest.skip("no PostgreSQL server (set EQUITY_LEDGER_TEST_PG_URL)")
    machine = type(f"LedgerMachine_{backend}", (LedgerMachine,), {"backend": backend})
    run_state_machine_as_test(machine, settings=SETTINGS)


def test_an_expiry_dated_before_a_recorded_vesting_event_is_refused_by_both(store_url: str) -> None:
    """Found by the state machine: a vesting event is an event recorded for the issuance, so
    an expiry dated before it is refused (expiry-before-recorded-events), even one met for 0."""
    model, books = Model(), Books(store_url)
    try:
        cmds = [
            _c(1, type="pass_resolution", issuance="s1", issuer="Example K.K.", body="board_of_directors",
               resolved_on="2024-01-01", title="series s1"),
            _c(2, type="set_terms", issuance="s1", decided_on="2024-01-04", rights=30, shares_per_right=200,
               price_per_right="647000", currency="JPY", exercise_price_per_share="1",
               allotment_date="2024-01-04", exercise_from="2024-01-11", exercise_to="2024-01-20",
               vesting=VESTINGS[3]),
            _c(3, type="allot_rights", issuance="s1", holder="h3", name="N", group="director", rights=2,
               allotted_on="2024-01-12", payment="offset"),
            _c(4, type="record_vesting_event", issuance="s1", event="goal", holder="h3", occurred_on="2024-01-29",
               portion_met="0"),
        ]
        for cmd in cmds:
            assert apply_both(books.service, books.projector, model, cmd) == "applied"
        late = _c(5, type="expire_rights", issuance="s1", expired_on="2024-01-26")
        assert apply_both(books.service, books.projector, model, late) == "refused"
        after = _c(6, type="expire_rights", issuance="s1", expired_on="2024-01-29")
        assert apply_both(books.service, books.projector, model, after) == "applied"
    finally:
        books.close()


# --------------------------------------------------------------------------- (b) every day

def _c(n: int, **f: Any) -> dict[str, Any]:
    return {"id": f"d{n}", **f}


def scenario() -> list[tuple[dict[str, Any], str]]:
    """(command, expected outcome): two issuances (JPY, USD), two splits, a consolidation,
    late entries accepted and refused."""
    A, X, F = "allot_rights", "exercise_rights", "forfeit_rights"

    def allot(n, iss, h, rights, on, group="director", payment="offset", name=None):
        return _c(n, type=A, issuance=iss, holder=h, name=name or f"Name {h}", group=group,
                  rights=rights, allotted_on=on, payment=payment)

    ok, no = "applied", "refused"
    return [
        (_c(1, type="pass_resolution", issuance="s1", issuer="Example K.K.",
            body="board_of_directors", resolved_on="2020-01-10", title="3rd series",
            max_rights=135), ok),
        (_c(2, type="set_terms", issuance="s1", decided_on="2020-01-20", rights=89,
            shares_per_right=200, price_per_right="647000", currency="JPY",
            exercise_price_per_share="1", allotment_date="2020-02-01",
            exercise_from="2020-02-03", exercise_to="2020-03-10"), ok),
        (_c(3, type="pass_resolution", issuance="s2", issuer="Example K.K.",
            body="shareholders_meeting", resolved_on="2020-01-15", title="US plan"), ok),
        (_c(4, type="set_terms", issuance="s2", decided_on="2020-01-25", rights=30,
            shares_per_right=3, price_per_right="12.50", currency="USD",
            exercise_price_per_share="2.50", allotment_date="2020-02-01",
            exercise_from="2020-02-02", exercise_to="2020-03-10"), ok),
        (allot(5, "s1", "h1", 15, "2020-02-01"), ok),
        (allot(6, "s1", "h2", 10, "2020-02-01"), ok),
        (allot(7, "s1", "h3", 4, "2020-02-01", group="executive_officer"), ok),
        (allot(8, "s2", "h1", 5, "2020-02-01", group="employee", name="H. One"), ok),
        (allot(9, "s2", "h5", 7, "2020-02-02", group="employee", payment="cash"), ok),
        (allot(10, "s1", "h3", 2, "2020-02-05", group="executive_officer",
               name="Name h3 (married)", payment="cash"), ok),
        (_c(11, type=X, issuance="s1", holder="h1", rights=3, exercised_on="2020-02-10"), ok),
        (_c(12, type="adjust_shares", issuance="s1", ratio="2", effective_on="2020-02-15"), ok),
        (_c(13, type=X, issuance="s1", holder="h2", rights=1, exercised_on="2020-02-15"), ok),
        (_c(14, type=F, issuance="s1", holder="h3", rights="all", forfeited_on="2020-02-20",
            reason="left the company"), ok),
        (_c(15, type="adjust_shares", issuance="s2", ratio="1/3", effective_on="2020-02-25"), ok),
        (_c(16, type=X, issuance="s2", holder="h5", rights=2, exercised_on="2020-02-26"), ok),
        (_c(17, type="adjust_shares", issuance="s1", ratio="2", effective_on="2020-03-01"), ok),
        (_c(18, type=X, issuance="s1", holder="h1", rights=2, exercised_on="2020-03-05"), ok),
        (_c(19, type="record_departure", holder="h5", departed_on="2020-03-02"), ok),
        # late entries that fit the timeline
        (_c(20, type=F, issuance="s1", holder="h2", rights=2, forfeited_on="2020-02-12",
            reason="noticed late"), ok),
        (allot(21, "s1", "h4", 1, "2020-02-03", group="employee", payment="gratis"), ok),
        (allot(22, "s1", "h1", 1, "2020-02-01", name="Name h1 (paper record)"), ok),
        # late entries that do not: a split dated on a recorded exercise, an allotment
        # before h3's "all" forfeit (it would change the number it stood for), an exercise
        # and an "all" forfeit that would leave h2's later exercise uncovered
        (_c(23, type="adjust_shares", issuance="s1", ratio="2", effective_on="2020-02-10"), no),
        (allot(24, "s1", "h3", 1, "2020-02-10", group="executive_officer"), no),
        (_c(25, type=X, issuance="s1", holder="h2", rights=8, exercised_on="2020-02-14"), no),
        (_c(26, type=F, issuance="s1", holder="h2", rights="all", forfeited_on="2020-02-13",
            reason="late"), no),
        (_c(27, type=F, issuance="s1", holder="h4", rights="all", forfeited_on="2020-02-04",
            reason="declined"), ok),
        (_c(28, type="expire_rights", issuance="s2", expired_on="2020-03-11"), ok),
        (_c(29, type="adjust_shares", issuance="s2", ratio="0.5", effective_on="2020-03-12"), no),  # nothing after expiry
    ]


def test_every_day_as_of_equals_the_model(store_url: str) -> None:
    model = Model()
    books = Books(store_url)
    ledger, projector = books.service, books.projector
    try:
        for cmd, expected in scenario():
            assert apply_both(ledger, projector, model, cmd) == expected, cmd
        dates = model.event_dates()
        first, last = dates[0] - timedelta(days=1), dates[-1] + timedelta(days=1)
        every_day = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        answers(projector, model, [None, *every_day])
        check_invariants(projector, model)
        for start, end in ((first, last), (date(2020, 2, 1), date(2020, 2, 29)), (date(2020, 2, 15), date(2020, 3, 11)),
                           (date(2020, 3, 1), date(2020, 3, 1))):
            check_movements(projector, model, start, end)
    finally:
        books.close()
