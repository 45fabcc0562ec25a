"""An independent, plain-Python model of the ledger, written from docs/commands.md only.

It imports nothing of the product: it takes command dicts (exactly as in a command file) in
order, accepts or refuses each by the contract's rules, and answers ``holdings`` in the
contract's JSON shape. It is deliberately naive: every command re-walks the whole timeline of
its issuance in effective-date order (same date: adjustments first, then record order) with
the command in its place, so late entries need no special case, and every query folds the
events again. Small and slow on purpose: the tests compare the product with it.

Decisions where the contract is silent (docs/commands.md states them too):

* Adjustments and expiry need the terms (there is no shares-per-right to adjust before them).
* A second expiry of an issuance is refused (its rights already lapsed).
* No allotment once an issuance has expired (in timeline order or in record order).
* A person's name and group, in a row split per currency, come from the latest allotment among
  the allotments summed into that row.
* "Nothing dated before the resolution" covers the terms' decided_on, allotment_date and
  exercise_from; an adjustment must be dated after the terms' date (adjustments come first on
  their date, so one on that date would precede the terms) and is refused once expired.
* Issuer names are compared without surrounding blanks ("X K.K. " is the issuer "X K.K.").
"""

from __future__ import annotations

import calendar
import json
import re
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any

from babel.numbers import get_currency_precision, list_currencies

ZERO = Decimal(0)


class Refused(Exception):
    """The model refuses a command; the message names the rule (free text)."""


class UnknownIssuanceQuery(Exception):
    """`holdings --issuance X` for an issuance never recorded (exit 1 in the CLI)."""


# --------------------------------------------------------------------------- parsing (contract)

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PLAIN = re.compile(r"\d+(\.\d+)?")
_RATIO = re.compile(r"(\d+(?:\.\d+)?)(?:/(\d+(?:\.\d+)?))?")
_CURRENCIES = frozenset(list_currencies())


def _p_date(v: Any) -> date:
    if not isinstance(v, str) or not _DATE.fullmatch(v):
        raise Refused(f"not a YYYY-MM-DD date: {v!r}")
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise Refused(f"not a calendar date: {v!r}") from None


def _p_text(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise Refused(f"not a non-empty string: {v!r}")
    return v


def _p_rights(v: Any) -> int:
    if type(v) is not int or v < 1:
        raise Refused(f"rights must be a JSON integer >= 1: {v!r}")
    return v


def _p_days(v: Any) -> int:
    if type(v) is not int or v < 0:
        raise Refused(f"must be a JSON integer >= 0: {v!r}")
    return v


def _p_money(v: Any) -> Decimal:
    if not isinstance(v, str) or not _PLAIN.fullmatch(v):
        raise Refused(f"money must be a string holding a plain decimal: {v!r}")
    return Decimal(v)


def _p_currency(v: Any) -> str:
    if not isinstance(v, str) or v not in _CURRENCIES or not v.isupper():
        raise Refused(f"not an ISO 4217 code: {v!r}")
    return v


def _p_bool(v: Any) -> bool:
    if type(v) is not bool:
        raise Refused(f"not a boolean: {v!r}")
    return v


def _p_enum(*choices: str):
    def p(v: Any) -> str:
        if v not in choices:
            raise Refused(f"{v!r} is not one of {choices}")
        return v

    return p


def _p_ratio(v: Any) -> Fraction:
    m = _RATIO.fullmatch(v) if isinstance(v, str) else None
    if not m:
        raise Refused(f"not a ratio: {v!r}")
    num = Fraction(Decimal(m.group(1)))
    if m.group(2) is None:
        return num
    den = Fraction(Decimal(m.group(2)))
    if den == 0:
        raise Refused("ratio with a zero denominator")
    return num / den


def _p_share(v: Any) -> Fraction:
    """A portion or portion_met: a decimal or "N/M" string (or the integers 0 and 1)."""
    if type(v) is int and v in (0, 1):
        return Fraction(v)
    if not isinstance(v, str):
        raise Refused(f"not a decimal or N/M: {v!r}")
    return _p_ratio(v)


def _p_count(v: Any, least: int) -> int:
    if type(v) is not int or v < least:
        raise Refused(f"must be a JSON integer >= {least}: {v!r}")
    return v


@dataclass(frozen=True)
class Tranche:
    portion: Fraction
    after: int | None = None
    every: int = 0
    occurrences: int = 1
    event: str | None = None


@dataclass(frozen=True)
class Vesting:
    tranches: tuple[Tranche, ...]
    lapse_on_departure: bool
    rounding: bool  # cumulative_rounding (half-up) rather than cumulative_round_down


def _p_vesting(v: Any) -> Vesting:
    """`set_terms.vesting`, as the contract's section "Vesting" describes it."""
    if not isinstance(v, dict) or set(v) - {"tranches", "unvested_lapse_on_departure", "allocation"}:
        raise Refused("vesting: an object with tranches")
    raw = v.get("tranches")
    if not isinstance(raw, list) or not raw:
        raise Refused("vesting needs tranches")
    lapse = v.get("unvested_lapse_on_departure", True)
    lapse = True if lapse is None else _p_bool(lapse)
    allocation = v.get("allocation") or "cumulative_round_down"
    if allocation not in ("cumulative_round_down", "cumulative_rounding"):
        raise Refused("unknown allocation")
    tranches = []
    for t in raw:
        if not isinstance(t, dict) or set(t) - {"portion", "after_months", "every_months", "occurrences", "on_event"}:
            raise Refused("a tranche is an object with a portion and one trigger")
        portion = _p_share(t.get("portion"))
        if not 0 < portion <= 1:
            raise Refused("portion must be > 0")
        if ("after_months" in t) == ("on_event" in t):
            raise Refused("one trigger per tranche")
        if "on_event" in t:
            if "every_months" in t or "occurrences" in t:
                raise Refused("an event tranche has no instalments")
            tranches.append(Tranche(portion, event=_p_text(t["on_event"])))
            continue
        after = _p_count(t["after_months"], 0)
        occurrences = _p_count(t["occurrences"], 1) if "occurrences" in t else None
        if "every_months" in t and occurrences is None:
            raise Refused("every_months without occurrences")
        if occurrences is not None and occurrences > 1 and "every_months" not in t:
            raise Refused("occurrences > 1 needs every_months")
        every = _p_count(t["every_months"], 1) if "every_months" in t else 0
        tranches.append(Tranche(portion, after, every, occurrences or 1))
    names = [t.event for t in tranches if t.event is not None]
    if len(names) != len(set(names)):
        raise Refused("an event named twice")
    if sum(t.portion * t.occurrences for t in tranches) != 1:
        raise Refused("portions must add up to exactly 1")
    return Vesting(tuple(tranches), lapse, allocation == "cumulative_rounding")


def plus_months(start: date, months: int) -> date | None:
    """Calendar months later; a day past the end of the month falls on its last day (None:
    past the calendar's end, an instalment that never comes)."""
    y, m = divmod(start.year * 12 + start.month - 1 + months, 12)
    if y > 9999:
        return None
    return date(y, m + 1, min(start.day, calendar.monthrange(y, m + 1)[1]))


def _p_rights_or_all(v: Any) -> int | str:
    return "all" if v == "all" else _p_rights(v)


REQ, OPT = True, False
SCHEMA: dict[str, dict[str, tuple[Any, bool]]] = {
    "pass_resolution": {
        "issuance": (_p_text, REQ), "issuer": (_p_text, REQ),
        "body": (_p_enum("board_of_directors", "shareholders_meeting"), REQ),
        "resolved_on": (_p_date, REQ), "title": (_p_text, REQ), "max_rights": (_p_rights, OPT),
    },
    "set_terms": {
        "issuance": (_p_text, REQ), "decided_on": (_p_date, REQ), "rights": (_p_rights, REQ),
        "shares_per_right": (_p_rights, REQ), "share_class": (_p_text, OPT),
        "price_per_right": (_p_money, REQ), "currency": (_p_currency, REQ),
        "exercise_price_per_share": (_p_money, REQ), "allotment_date": (_p_date, REQ),
        "exercise_from": (_p_date, REQ), "exercise_to": (_p_date, REQ),
        "exercisable_only_after_departure": (_p_bool, OPT),
        "exercise_window_days_after_departure": (_p_days, OPT),
        "fair_value_per_right": (_p_money, OPT), "vesting": (_p_vesting, OPT),
    },
    "allot_rights": {
        "issuance": (_p_text, REQ), "holder": (_p_text, REQ), "name": (_p_text, REQ),
        "group": (_p_text, REQ), "rights": (_p_rights, REQ), "allotted_on": (_p_date, REQ),
        "payment": (_p_enum("offset", "cash", "gratis"), REQ), "vesting_start": (_p_date, OPT),
    },
    "exercise_rights": {
        "issuance": (_p_text, REQ), "holder": (_p_text, REQ), "rights": (_p_rights, REQ),
        "exercised_on": (_p_date, REQ),
        "delivery": (_p_enum("new_shares", "treasury_shares"), OPT), "share_price": (_p_money, OPT),
    },
    "forfeit_rights": {
        "issuance": (_p_text, REQ), "holder": (_p_text, REQ),
        "rights": (_p_rights_or_all, REQ), "forfeited_on": (_p_date, REQ),
        "reason": (_p_text, REQ),
    },
    "record_departure": {"holder": (_p_text, REQ), "departed_on": (_p_date, REQ)},
    "adjust_shares": {
        "issuance": (_p_text, REQ), "ratio": (_p_ratio, REQ), "effective_on": (_p_date, REQ),
    },
    "expire_rights": {"issuance": (_p_text, REQ), "expired_on": (_p_date, REQ)},
    "record_vesting_event": {
        "issuance": (_p_text, REQ), "event": (_p_text, REQ), "occurred_on": (_p_date, REQ),
        "holder": (_p_text, OPT), "portion_met": (_p_share, OPT),
    },
}
COMMON = {"id", "type", "actor", "reason"}


def parse(cmd: Any) -> tuple[str, str, dict[str, Any]]:
    """(id, type, parsed fields); Refused for anything the contract does not allow."""
    if not isinstance(cmd, dict):
        raise Refused("a command is a JSON object")
    cid = cmd.get("id")
    if not isinstance(cid, str) or not cid.strip():
        raise Refused("id required")
    ctype = cmd.get("type")
    if ctype not in SCHEMA:
        raise Refused(f"unknown type {ctype!r}")
    schema = SCHEMA[ctype]
    extra = set(cmd) - set(schema) - COMMON
    if extra:
        raise Refused(f"unknown field(s) {sorted(extra)}")
    for meta in ("actor", "reason"):
        if meta in cmd and not isinstance(cmd[meta], str):
            raise Refused(f"{meta} must be a string")
    out: dict[str, Any] = {}
    for name, (p, required) in schema.items():
        if name not in cmd or cmd[name] is None:
            if required:
                raise Refused(f"{ctype} needs {name}")
            out[name] = None
            continue
        out[name] = p(cmd[name])
    return cid, ctype, out


# --------------------------------------------------------------------------- money and terms

def minor_digits(currency: str) -> int:
    return get_currency_precision(currency)


def _half_up(value: Fraction, digits: int) -> Decimal:
    """Round half-up (values >= 0) to `digits` decimals."""
    return Decimal(floor(value * 10**digits + Fraction(1, 2))).scaleb(-digits)


def _dec(value: Decimal) -> str:
    """A decimal printed plainly, without trailing zeros ("3235", "808.75", "0")."""
    return f"{value.normalize():f}"


def ceil_minor(amount: Fraction, currency: str) -> Decimal:
    """Round up to the currency's minor unit."""
    d = minor_digits(currency)
    scaled = amount * 10**d
    units = -((-scaled.numerator) // scaled.denominator)
    return Decimal(units).scaleb(-d)


def money_str(amount: Decimal) -> str:
    return format(amount, "f")


# --------------------------------------------------------------------------- state

@dataclass
class Event:
    kind: str  # allot | exercise | forfeit | adjust | expire
    on: date
    seq: int
    holder: str | None = None
    rights: int = 0
    # allotments
    name: str = ""
    group: str = ""
    payment: str = ""
    # exercises (figures resolved when recorded)
    shares: int = 0
    paid: Decimal = ZERO
    # forfeits
    every: bool = False
    # adjustments
    ratio: Fraction = Fraction(1)
    # expiry: holder -> rights that lapsed
    expired: dict[str, int] = field(default_factory=dict)
    # allotments: the vesting start (None: the allotment date)
    start: date | None = None
    # vesting events ("vest"): the event's name and the part met (holder None: every holder)
    event: str = ""
    met: Fraction = Fraction(1)
    # exercises: the market price of a share on the exercise date (None: not given)
    share_price: Decimal | None = None

    def sort_key(self) -> tuple[date, int, int]:
        return (self.on, 0 if self.kind == "adjust" else 1, self.seq)


@dataclass
class Terms:
    decided_on: date
    rights: int
    shares_per_right: int
    price_per_right: Decimal
    currency: str
    exercise_price: Decimal
    allotment_date: date
    exercise_from: date
    exercise_to: date
    only_after_departure: bool
    window: int | None
    vesting: Vesting | None = None
    fair_value: Decimal | None = None  # per right, for the filing reports (None: price_per_right)


@dataclass
class Issuance:
    issuance: str
    resolved_on: date
    max_rights: int | None
    terms: Terms | None = None
    events: list[Event] = field(default_factory=list)
    expired: bool = False
    title: str = ""

    def timeline(self, extra: Event | None = None) -> list[Event]:
        evs = self.events + ([extra] if extra is not None else [])
        return sorted(evs, key=Event.sort_key)


def canonical(cmd: dict[str, Any]) -> str:
    return json.dumps(cmd, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Model:
    """The ledger as the contract describes it."""

    def __init__(self) -> None:
        self.issuer: str | None = None
        self.issuances: dict[str, Issuance] = {}
        self.departures: dict[str, date] = {}
        self.applied: dict[str, str] = {}  # command id -> canonical content
        self.seq = 0
        self.today = date.today()  # the date of the vested figures without an as-of date

    # ------------------------------------------------------------------ commands
    def apply(self, cmd: dict[str, Any]) -> str:
        """"applied" or "skipped" (same id, same content); raises Refused otherwise."""
        cid, ctype, f = parse(cmd)
        seen = self.applied.get(cid)
        if seen is not None:
            if seen == canonical(cmd):
                return "skipped"
            raise Refused(f"id {cid} was applied before with other content")
        getattr(self, "_" + ctype)(f)
        self.applied[cid] = canonical(cmd)
        self.seq += 1
        return "applied"

    def _iss(self, issuance: str) -> Issuance:
        try:
            return self.issuances[issuance]
        except KeyError:
            raise Refused(f"unknown issuance {issuance}") from None

    def _terms(self, iss: Issuance) -> Terms:
        if iss.terms is None:
            raise Refused(f"{iss.issuance} has no terms")
        return iss.terms

    def _pass_resolution(self, f: dict[str, Any]) -> None:
        if f["issuance"] in self.issuances:
            raise Refused("one resolution per issuance")
        if self.issuer is not None and f["issuer"].strip() != self.issuer.strip():
            raise Refused("one issuer per store")
        self.issuer = self.issuer or f["issuer"]
        self.issuances[f["issuance"]] = Issuance(f["issuance"], f["resolved_on"], f["max_rights"],
                                                 title=f["title"])

    def _set_terms(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        if iss.terms is not None:
            raise Refused("terms only once")
        # "Nothing dated before the resolution": the terms' own date and the allotment date
        # (the exercise period is a condition of the rights, not a dated event).
        for k in ("decided_on", "allotment_date", "exercise_from"):
            if f[k] < iss.resolved_on:
                raise Refused(f"{k} before the resolution")
        if f["exercise_from"] > f["exercise_to"]:
            raise Refused("exercise_from after exercise_to")
        if iss.max_rights is not None and f["rights"] > iss.max_rights:
            raise Refused("rights over max_rights")
        iss.terms = Terms(
            decided_on=f["decided_on"], rights=f["rights"], shares_per_right=f["shares_per_right"],
            price_per_right=f["price_per_right"], currency=f["currency"],
            exercise_price=f["exercise_price_per_share"], allotment_date=f["allotment_date"],
            exercise_from=f["exercise_from"], exercise_to=f["exercise_to"],
            only_after_departure=bool(f["exercisable_only_after_departure"]),
            window=f["exercise_window_days_after_departure"],
            vesting=f["vesting"], fair_value=f["fair_value_per_right"],
        )

    def _add(self, iss: Issuance, ev: Event) -> None:
        iss.events.append(self._walk(iss, ev, self.departures))

    def _allot_rights(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        self._terms(iss)
        if iss.expired:
            raise Refused("issuance expired")
        if f["vesting_start"] is not None and f["vesting_start"] < iss.resolved_on:
            raise Refused("vesting_start before the resolution")
        self._add(iss, Event("allot", f["allotted_on"], self.seq, f["holder"], f["rights"],
                             name=f["name"], group=f["group"], payment=f["payment"],
                             start=f["vesting_start"]))

    def _exercise_rights(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        self._terms(iss)
        self._add(iss, Event("exercise", f["exercised_on"], self.seq, f["holder"], f["rights"],
                             share_price=f["share_price"]))

    def _forfeit_rights(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        self._terms(iss)
        every = f["rights"] == "all"
        self._add(iss, Event("forfeit", f["forfeited_on"], self.seq, f["holder"],
                             0 if every else f["rights"], every=every))

    def _adjust_shares(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        terms = self._terms(iss)
        if iss.expired:
            raise Refused("issuance expired")
        if f["effective_on"] <= terms.decided_on:
            # Adjustments come first on their date: one on the terms' date would precede them.
            raise Refused("an adjustment on or before the terms' date would precede them")
        if f["ratio"] <= 0:
            raise Refused("ratio must be positive")
        on = f["effective_on"]
        if any(e.kind == "exercise" and e.on >= on for e in iss.events):
            raise Refused("an adjustment on or before a recorded exercise changes its figures")
        self._add(iss, Event("adjust", on, self.seq, ratio=f["ratio"]))

    def _expire_rights(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        terms = self._terms(iss)
        if iss.expired:
            raise Refused("already expired")
        if not f["expired_on"] > terms.exercise_to:
            raise Refused("expiry only after exercise_to")
        self._add(iss, Event("expire", f["expired_on"], self.seq))
        iss.expired = True

    def _record_vesting_event(self, f: dict[str, Any]) -> None:
        iss = self._iss(f["issuance"])
        terms = self._terms(iss)
        if iss.expired:
            raise Refused("issuance expired")
        if terms.vesting is None or not any(t.event == f["event"] for t in terms.vesting.tranches):
            raise Refused("unknown-vesting-event")
        h = f["holder"]
        if h is not None and not any(e.holder == h and e.kind == "allot" for e in iss.events):
            raise Refused(f"unknown holder {h}")
        met = f["portion_met"] if f["portion_met"] is not None else Fraction(1)
        if not 0 <= met <= 1:
            raise Refused("portion_met must be in 0..1")
        for e in iss.events:
            if e.kind == "vest" and e.event == f["event"] and (e.holder is None or h is None or e.holder == h):
                raise Refused("one-vesting-event-record")
        self._add(iss, Event("vest", f["occurred_on"], self.seq, h, event=f["event"], met=met))

    def _record_departure(self, f: dict[str, Any]) -> None:
        h = f["holder"]
        if h in self.departures:
            raise Refused("one departure per holder")
        held = [i for i in self.issuances.values() if any(e.holder == h for e in i.events)]
        if not held:
            raise Refused(f"unknown holder {h}")
        departures = dict(self.departures, **{h: f["departed_on"]})
        lapses = []
        for iss in held:
            v = iss.terms.vesting if iss.terms is not None else None
            if v is not None and v.lapse_on_departure:
                # what is unvested at the departure lapses: an event of its own when some is
                lapse = self._walk(iss, Event("lapse", f["departed_on"], self.seq, h), departures)
                self._walk(iss, lapse, departures)
                if lapse.rights:
                    lapses.append((iss, lapse))
            else:
                self._walk(iss, None, departures)
        for iss, lapse in lapses:
            iss.events.append(lapse)
        self.departures = departures

    # ------------------------------------------------------------------ the rules, in time
    @staticmethod
    def _vesting_steps(v: Vesting, a: Event, records: list[Event]) -> list[tuple[date, int]]:
        """[(date, rights vesting then)] of one allotment: time-based instalments counted from
        its vesting start (those already due vest on the allotment date) and the recorded
        vesting events that cover it (on or after its date); cumulative round-down (or
        rounding half-up) of rights x the cumulative portion."""
        moments: list[tuple[date, Fraction]] = []
        start = a.start or a.on
        for t in v.tranches:
            if t.event is not None:
                continue
            for k in range(t.occurrences):
                d = plus_months(start, t.after + k * t.every)
                if d is not None:
                    moments.append((max(d, a.on), t.portion))
        for r in records:
            if r.on >= a.on and (r.holder is None or r.holder == a.holder):
                portion = next(t.portion for t in v.tranches if t.event == r.event)
                moments.append((r.on, portion * r.met))
        moments.sort(key=lambda m: m[0])
        steps: list[tuple[date, int]] = []
        cumulative, done = Fraction(0), 0
        for i, (d, portion) in enumerate(moments):
            cumulative += portion
            if i + 1 < len(moments) and moments[i + 1][0] == d:
                continue
            if cumulative >= 1:
                n = a.rights
            elif v.rounding:
                n = floor(a.rights * cumulative + Fraction(1, 2))
            else:
                n = floor(a.rights * cumulative)
            if n > done:
                steps.append((d, n - done))
                done = n
        return steps

    def _walk(self, iss: Issuance, new: Event | None, departures: dict[str, date],
              until: date | None = None, state: dict[str, list[int]] | None = None,
              trace: list[tuple[date, str, str, int, int]] | None = None) -> Event | None:
        """Check the issuance's timeline with `new` in its place; return `new` with its
        figures resolved. Recorded events must keep the figures they were recorded with.
        `state`, when given, receives {holder: [unvested, vested]} at the end of `until`;
        `trace` every move of rights: (date, holder, what, unvested part, vested part), what
        being allot (granted, vested at once), vest (moved), exercise, forfeit, lapse, expire
        (the parts taken from each block)."""
        note = trace.append if trace is not None else (lambda _t: None)
        terms = iss.terms
        assert terms is not None
        if new is not None:
            new = replace(new, expired=dict(new.expired))
        spr = Fraction(terms.shares_per_right)
        price = terms.exercise_price
        out: dict[str, int] = {}
        unvested: dict[str, int] = {}
        vested: dict[str, int] = {}
        groups: dict[str, str] = {}
        allotted = 0
        expired = False
        timeline = iss.timeline(new)
        v = terms.vesting
        # (date, phase, seq, item): adjustments, then vesting, then the rest in record order
        items: list[tuple[date, int, int, Any]] = [
            (e.on, 0 if e.kind == "adjust" else 2, e.seq, e) for e in timeline]
        at_allotment: dict[int, int] = {}
        if v is not None:
            records = [e for e in timeline if e.kind == "vest"]
            for e in timeline:
                if e.kind == "allot":
                    for d, n in self._vesting_steps(v, e, records):
                        if d == e.on:
                            at_allotment[id(e)] = n
                        else:
                            items.append((d, 1, 0, (e.holder, n)))
            if v.lapse_on_departure:
                # a departure that lapsed nothing in this issuance must stay so (last on its date)
                lapsed = {e.holder for e in timeline if e.kind == "lapse"}
                holding = {e.holder for e in timeline if e.kind == "allot"}
                for h, d in departures.items():
                    if h in holding and h not in lapsed:
                        items.append((d, 2, 1 << 62, Event("lapse", d, 1 << 62, h)))
        items.sort(key=lambda x: x[:3])
        for on, phase, _seq, e in items:
            if until is not None and on > until:
                break
            if phase == 1:
                h, n = e
                move = min(n, unvested.get(h, 0))
                unvested[h] = unvested.get(h, 0) - move
                vested[h] = vested.get(h, 0) + move
                note((on, h, "vest", move, 0))
                continue
            is_new = e is new
            h = e.holder
            if e.on < iss.resolved_on:
                raise Refused("dated before the resolution")
            if e.kind == "adjust":
                spr *= e.ratio
                price = ceil_minor(Fraction(price) / e.ratio, terms.currency)
            elif e.kind == "allot":
                if expired:
                    raise Refused("allotment after expiry")
                if e.on < terms.allotment_date or e.on < terms.decided_on:
                    raise Refused("allotment before the allotment date / the terms")
                allotted += e.rights
                if allotted > terms.rights:
                    raise Refused("allotments beyond the rights of the terms")
                if groups.setdefault(h, e.group) != e.group:
                    raise Refused("one group per holder within an issuance")
                dep = departures.get(h)
                if dep is not None and e.on >= dep:
                    raise Refused("allotment on or after the holder's departure")
                out[h] = out.get(h, 0) + e.rights
                now = at_allotment.get(id(e), 0) if v is not None else e.rights
                vested[h] = vested.get(h, 0) + now
                unvested[h] = unvested.get(h, 0) + e.rights - now
                note((e.on, h, "allot", e.rights, now))
            elif e.kind == "exercise":
                if expired:
                    raise Refused("exercise after expiry")
                if not terms.exercise_from <= e.on <= terms.exercise_to:
                    raise Refused("exercise outside the exercise period")
                dep = departures.get(h)
                if dep is not None and e.on >= dep:
                    if terms.window is not None and e.on > dep + timedelta(days=terms.window):
                        raise Refused("exercise after the departure window")
                elif terms.only_after_departure:
                    raise Refused("exercisable only after departure")
                if e.rights > out.get(h, 0):
                    raise Refused("exercise over outstanding")
                if e.rights > vested.get(h, 0):
                    raise Refused("exercise-of-unvested")
                shares = floor(e.rights * spr)
                paid = shares * price
                if is_new:
                    e.shares, e.paid = shares, paid
                elif (e.shares, e.paid) != (shares, paid):
                    raise Refused("would change the figures of a recorded exercise")
                out[h] -= e.rights
                vested[h] -= e.rights
                note((e.on, h, "exercise", 0, e.rights))
            elif e.kind == "forfeit":
                have = out.get(h, 0)
                if e.every:
                    if is_new:
                        if have == 0:
                            raise Refused('"all" with nothing outstanding')
                        e.rights = have
                    elif e.rights != have:
                        raise Refused('would change the number an "all" forfeit stood for')
                if e.rights > have:
                    raise Refused("forfeit over outstanding")
                out[h] = have - e.rights
                first = min(e.rights, unvested.get(h, 0))  # unvested rights first
                unvested[h] = unvested.get(h, 0) - first
                vested[h] = vested.get(h, 0) - (e.rights - first)
                note((e.on, h, "forfeit", first, e.rights - first))
            elif e.kind == "lapse":
                n = unvested.get(h, 0)
                if is_new:
                    e.rights = n
                elif e.rights != n:
                    raise Refused("would change the rights a recorded departure lapsed")
                out[h] = out.get(h, 0) - n
                unvested[h] = 0
                note((e.on, h, "lapse", n, 0))
            elif e.kind == "vest":  # its vesting moments are in `items`
                if expired:  # docs/commands.md: no expiry dated before an event recorded for the issuance
                    raise Refused("expiry-before-recorded-events (a vesting event)")
            elif e.kind == "expire":
                lapsed = {k: v for k, v in sorted(out.items()) if v > 0}
                if is_new:
                    e.expired = lapsed
                elif e.expired != lapsed:
                    raise Refused("would change the rights a recorded expiry lapsed")
                for k in lapsed:
                    note((e.on, k, "expire", unvested[k], vested[k]))
                    out[k] = unvested[k] = vested[k] = 0
                expired = True
        if state is not None:
            for h in out:
                state[h] = [unvested.get(h, 0), vested.get(h, 0)]
        return new

    # ------------------------------------------------------------------ queries
    def shares_per_right(self, issuance: str, as_of: date | None) -> Fraction:
        iss = self.issuances[issuance]
        assert iss.terms is not None
        spr = Fraction(iss.terms.shares_per_right)
        for e in iss.timeline():
            if e.kind == "adjust" and (as_of is None or e.on <= as_of):
                spr *= e.ratio
        return spr

    def positions(self, as_of: date | None, issuance: str | None = None) -> list[dict[str, Any]]:
        """One row per (issuance, holder) with rights allotted as at `as_of`."""
        rows: list[dict[str, Any]] = []
        for iid, iss in sorted(self.issuances.items()):
            if issuance is not None and iid != issuance:
                continue
            if iss.terms is None:
                continue
            spr = self.shares_per_right(iid, as_of)
            per: dict[str, dict[str, Any]] = {}
            for e in iss.timeline():
                if as_of is not None and e.on > as_of:
                    continue
                if e.kind == "expire":
                    for h, n in e.expired.items():
                        per[h]["expired"] += n
                    continue
                if e.kind in ("adjust", "vest"):
                    continue
                p = per.setdefault(e.holder, {
                    "issuance": iid, "holder": e.holder, "currency": iss.terms.currency,
                    "allotted": 0, "exercised": 0, "forfeited": 0, "expired": 0,
                    "shares_delivered": 0, "amount_offset": ZERO, "amount_paid": ZERO,
                    "exercise_price_paid": ZERO, "latest": None,
                })
                if e.kind == "allot":
                    p["allotted"] += e.rights
                    if e.payment == "offset":
                        p["amount_offset"] += e.rights * iss.terms.price_per_right
                    # amount_paid: what was paid for the rights, by offset or in cash; gratis pays 0
                    if e.payment in ("offset", "cash"):
                        p["amount_paid"] += e.rights * iss.terms.price_per_right
                    stamp = (e.on, e.seq, e.name, e.group)
                    if p["latest"] is None or stamp[:2] > p["latest"][:2]:
                        p["latest"] = stamp
                elif e.kind == "exercise":
                    p["exercised"] += e.rights
                    p["shares_delivered"] += e.shares
                    p["exercise_price_paid"] += e.paid
                elif e.kind in ("forfeit", "lapse"):  # a lapse at departure counts as forfeited
                    p["forfeited"] += e.rights
            for p in per.values():
                out = p["allotted"] - p["exercised"] - p["forfeited"] - p["expired"]
                p["outstanding"] = out
                p["shares_underlying"] = floor(out * spr)
                p["group"] = p["latest"][3]
                p["unvested"], p["vested"] = self._vested(iss, p["holder"], as_of)
                assert p["unvested"] + p["vested"] == out
                p["exercisable"] = p["vested"] if self._can_exercise(iss, p["holder"], as_of or self.today) else 0
                rows.append(p)
        return rows

    def _vested(self, iss: Issuance, holder: str, as_of: date | None) -> tuple[int, int]:
        """(unvested, vested) rights of a holder at the end of `as_of`; without it, at the end
        of today, or of the holder's last recorded movement when later (docs/commands.md)."""
        day = as_of
        if day is None:
            moved = [e.on for e in iss.events if (e.holder == holder and e.kind != "vest" and e.rights)
                     or (e.kind == "expire" and e.expired.get(holder))]
            day = max([self.today, *moved])
        state: dict[str, list[int]] = {}
        self._walk(iss, None, self.departures, until=day, state=state)
        u, v = state.get(holder, [0, 0])
        return u, v

    def _can_exercise(self, iss: Issuance, holder: str, day: date) -> bool:
        """Inside the exercise period, before expiry, and as the departure conditions allow."""
        terms = iss.terms
        assert terms is not None
        if not terms.exercise_from <= day <= terms.exercise_to:
            return False
        if any(e.kind == "expire" and e.on <= day for e in iss.events):
            return False
        dep = self.departures.get(holder)
        if dep is not None and dep <= day:
            return terms.window is None or day <= dep + timedelta(days=terms.window)
        return not terms.only_after_departure

    def holdings(self, by: str = "person", issuance: str | None = None,
                 as_of: date | None = None) -> list[dict[str, Any]]:
        """The contract's `holdings --by BY [--issuance X] [--as-of D] --format json`."""
        if issuance is not None:
            if issuance not in self.issuances:
                raise UnknownIssuanceQuery(issuance)
            if as_of is not None and as_of < self.issuances[issuance].resolved_on:
                return []
        key_field = {"person": "holder", "group": "group", "issuance": "issuance"}[by]
        totals: dict[tuple[str, str], dict[str, Any]] = {}
        for p in self.positions(as_of, issuance):
            key = (p[key_field], p["currency"])
            t = totals.setdefault(key, {
                "rights_allotted": 0, "rights_exercised": 0, "rights_forfeited": 0,
                "rights_expired": 0, "rights_outstanding": 0, "shares_underlying": 0,
                "shares_delivered": 0, "amount_offset": ZERO, "amount_paid": ZERO,
                "exercise_price_paid": ZERO, "rights_vested": 0, "rights_unvested": 0,
                "rights_exercisable": 0, "_holders": set(), "_latest": None,
            })
            t["rights_vested"] += p["vested"]
            t["rights_unvested"] += p["unvested"]
            t["rights_exercisable"] += p["exercisable"]
            t["rights_allotted"] += p["allotted"]
            t["rights_exercised"] += p["exercised"]
            t["rights_forfeited"] += p["forfeited"]
            t["rights_expired"] += p["expired"]
            t["rights_outstanding"] += p["outstanding"]
            t["shares_underlying"] += p["shares_underlying"]
            t["shares_delivered"] += p["shares_delivered"]
            t["amount_offset"] += p["amount_offset"]
            t["amount_paid"] += p["amount_paid"]
            t["exercise_price_paid"] += p["exercise_price_paid"]
            t["_holders"].add(p["holder"])
            if t["_latest"] is None or p["latest"][:2] > t["_latest"][:2]:
                t["_latest"] = p["latest"]
        rows = []
        for key in sorted(totals):
            t = totals[key]
            holders, latest = t.pop("_holders"), t.pop("_latest")
            t["amount_offset"] = money_str(t["amount_offset"])
            t["amount_paid"] = money_str(t["amount_paid"])
            t["exercise_price_paid"] = money_str(t["exercise_price_paid"])
            if by == "person":
                head: dict[str, Any] = {"holder": key[0], "name": latest[2], "group": latest[3]}
                if issuance is not None:
                    head["issuance"] = issuance
            else:
                head = {key_field: key[0], "holders": len(holders)}
            rows.append({**head, **t, "currency": key[1]})
        return rows

    # ------------------------------------------------------------------ report movements
    def terms_at(self, issuance: str, day: date) -> tuple[Fraction, Decimal]:
        """Shares per right and exercise price per share in force at the end of `day`."""
        iss = self.issuances[issuance]
        assert iss.terms is not None
        spr, price = Fraction(iss.terms.shares_per_right), iss.terms.exercise_price
        for e in iss.timeline():
            if e.kind == "adjust" and e.on <= day:
                spr *= e.ratio
                price = ceil_minor(Fraction(price) / e.ratio, iss.terms.currency)
        return spr, price

    def movements(self, start: date, end: date, issuance: str | None = None,
                  unit: str = "shares") -> list[dict[str, Any]]:
        """`report movements --from START --to END [--issuance X] [--unit U] --format json`,
        from the contract's section "Reports for filings" (and docs/commands.md's decisions:
        a weighted average over one price is that price as recorded; decimals are printed
        without trailing zeros)."""
        if issuance is not None and issuance not in self.issuances:
            raise UnknownIssuanceQuery(issuance)
        series = []
        for iid, iss in sorted(self.issuances.items()):
            if (issuance is not None and iid != issuance) or iss.terms is None:
                continue
            terms = iss.terms
            opening: dict[str, list[int]] = {}
            if start > date.min:  # opening: as at the end of the day before --from
                self._walk(iss, None, self.departures, until=start - timedelta(days=1), state=opening)
            closing: dict[str, list[int]] = {}
            trace: list[tuple[date, str, str, int, int]] = []
            self._walk(iss, None, self.departures, until=end, state=closing, trace=trace)
            spr, price = self.terms_at(iid, end)
            lines = ("u_open", "granted", "u_forf", "vested", "u_close", "v_open", "exercised",
                     "v_forf", "expired", "v_close", "exercisable")
            per: dict[str, dict[str, int]] = {h: dict.fromkeys(lines, 0) for h in closing}
            for h, (u, w) in opening.items():
                per[h]["u_open"], per[h]["v_open"] = u, w
            for h, (u, w) in closing.items():
                per[h]["u_close"], per[h]["v_close"] = u, w
                if self._can_exercise(iss, h, end):
                    per[h]["exercisable"] = w
            for on, h, what, from_u, from_v in trace:
                if not start <= on <= end:
                    continue
                p = per[h]
                if what == "allot":  # granted; what vests at once passes on into the vested block
                    p["granted"] += from_u
                    p["vested"] += from_v
                elif what == "vest":
                    p["vested"] += from_u
                elif what == "exercise":
                    p["exercised"] += from_v
                elif what == "expire":  # unvested rights lapse with the issuance: forfeited
                    p["u_forf"] += from_u
                    p["expired"] += from_v
                else:  # forfeit (unvested first), lapse at departure
                    p["u_forf"] += from_u
                    p["v_forf"] += from_v
            in_rights = {k: sum(p[k] for p in per.values()) for k in lines}
            if in_rights["u_open"] + in_rights["v_open"] == 0 and in_rights["granted"] == 0:
                continue
            if unit == "shares":  # restated at --to, floored per holder, then summed
                counts = {k: sum(floor(p[k] * spr) for p in per.values()) for k in lines}
            else:
                counts = in_rights
            exercises = [(e.share_price, e.shares, spr / self.terms_at(iid, e.on)[0])
                         for e in iss.events if e.kind == "exercise" and start <= e.on <= end]
            fair = terms.fair_value if terms.fair_value is not None else terms.price_per_right
            series.append((iid, iss.title, terms.currency, counts, price, fair, spr, terms.exercise_to, exercises))

        def waep(pairs: list[tuple[int, Decimal]], currency: str) -> str | None:
            pairs = [(n, p) for n, p in pairs if n > 0]
            if not pairs:
                return None
            if len({p for _n, p in pairs}) == 1:
                return _dec(pairs[0][1])
            value = sum(Fraction(p) * n for n, p in pairs) / sum(n for n, _p in pairs)
            return _dec(_half_up(value, minor_digits(currency) + 2))

        def row(key: str, group: list[Any], one: Any) -> dict[str, Any]:
            c = {k: sum(s[3][k] for s in group) for k in group[0][3]}
            currency = group[0][2]
            weights = {
                "opening": lambda x: x["u_open"] + x["v_open"], "granted": lambda x: x["granted"],
                "forfeited": lambda x: x["u_forf"] + x["v_forf"], "exercised": lambda x: x["exercised"],
                "expired": lambda x: x["expired"], "closing": lambda x: x["u_close"] + x["v_close"],
                "exercisable_closing": lambda x: x["exercisable"],
            }
            exercises = [e for s in group for e in s[8]]
            asp = None
            if exercises and all(p is not None for p, _n, _r in exercises):
                restated = sum(n * r for _p, n, r in exercises)
                if restated:
                    asp = _dec(_half_up(sum(Fraction(p) * n for p, n, _r in exercises) / restated,
                                        minor_digits(currency) + 2))
            closing = sum(s[3]["u_close"] + s[3]["v_close"] for s in group)
            life = None
            if closing:
                days = sum((s[3]["u_close"] + s[3]["v_close"]) * max(0, (s[7] - end).days) for s in group)
                life = _dec(_half_up(Fraction(days, closing * 365), 2))
            return {
                "issuance": key, "title": one[1] if one else None, "currency": currency, "unit": unit,
                "unvested": {"opening": c["u_open"], "granted": c["granted"], "forfeited": c["u_forf"],
                             "vested": c["vested"], "closing": c["u_close"]},
                "vested": {"opening": c["v_open"], "vested": c["vested"], "exercised": c["exercised"],
                           "forfeited": c["v_forf"], "expired": c["expired"], "closing": c["v_close"]},
                "exercisable_closing": c["exercisable"],
                "exercise_price_per_share": _dec(one[4]) if one else None,
                "weighted_average_exercise_price": {
                    line: waep([(w(s[3]), s[4]) for s in group], currency) for line, w in weights.items()},
                "average_share_price_at_exercise": asp,
                "fair_value_per_share_at_grant": (
                    _dec(_half_up(Fraction(one[5]) / one[6], minor_digits(currency) + 2)) if one else None),
                "remaining_contractual_life_years": life,
            }

        out = [row(s[0], [s], s) for s in series]
        for currency in sorted({s[2] for s in series}):
            out.append(row("all", [s for s in series if s[2] == currency], None))
        return out

    # ------------------------------------------------------------------ helpers for tests
    def event_dates(self) -> list[date]:
        days = {i.resolved_on for i in self.issuances.values()}
        for i in self.issuances.values():
            if i.terms is not None:
                days.add(i.terms.decided_on)
            days.update(e.on for e in i.events)
        days.update(self.departures.values())
        return sorted(days)
