"""Vesting: schedules of the terms, and how a holding's rights move from unvested to vested.

Pure values and functions (no aggregate, no store), shared by the domain's rules
(:mod:`.issuance`) and the read models (:mod:`..projections`), so both derive the same vested
figures from the same recorded facts. Time-based instalments are never stored: they follow from
the terms and each allotment's vesting start. What happens (a vesting event met, a lapse at a
departure) is recorded, and enters the walk as an :class:`Occurrence` or a :class:`Movement`.

A :class:`Schedule` is parsed from the ``vesting`` object of ``set_terms``::

    {"tranches": [{"portion": "1/4", "after_months": 12},
                  {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36},
                  {"portion": "1/2", "on_event": "roe-target"}],
     "unvested_lapse_on_departure": true, "allocation": "cumulative_round_down"}

Portions are exact fractions; counts are floored (or rounded half-up) on the *cumulative*
portion of each allotment, so the instalments of an allotment always add up to its rights.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from fractions import Fraction
from functools import lru_cache
from math import floor
from typing import Any, Iterable, Mapping

from .money import INT64_MAX, OutOfRange, fraction_str, parse_ratio

ROUND_DOWN = "cumulative_round_down"
ROUNDING = "cumulative_rounding"
ALLOCATIONS = (ROUND_DOWN, ROUNDING)

#: At most this many instalments per schedule (100 years of monthly instalments): a walk of a
#: holding stays small whatever a command file says.
MAX_INSTALMENTS = 1200

_TRANCHE_KEYS = {"portion", "after_months", "every_months", "occurrences", "on_event"}
_SCHEDULE_KEYS = {"tranches", "unvested_lapse_on_departure", "allocation"}


def add_months(start: date, months: int) -> date | None:
    """`start` plus `months` calendar months; a day past the end of the target month falls on
    its last day (2024-01-31 + 1 month = 2024-02-29). None when beyond 9999-12-31."""
    index = start.year * 12 + (start.month - 1) + months
    year, month0 = divmod(index, 12)
    if year > 9999:
        return None
    last = calendar.monthrange(year, month0 + 1)[1]
    return date(year, month0 + 1, min(start.day, last))


def _portion(value: Any, where: str) -> Fraction:
    if type(value) is int:
        p = Fraction(value)
    elif isinstance(value, str):
        try:
            p = parse_ratio(value)
        except OutOfRange:
            raise
        except ValueError:
            raise ValueError(f"{where} must be a decimal or a fraction such as \"1/4\", not {value!r}") from None
    else:
        raise ValueError(f'{where} must be a string such as "1/4" or "0.25"')
    if p <= 0 or p > 1:
        raise ValueError(f"{where} must be > 0 and at most 1")
    return p


def parse_portion_met(value: Any) -> Fraction:
    """`portion_met` of a vesting event: a decimal or `"N/M"` in 0..1 (an integer 0 or 1 too)."""
    if type(value) is int:
        p = Fraction(value)
    elif isinstance(value, str):
        try:
            p = parse_ratio(value)
        except OutOfRange:
            raise
        except ValueError:
            raise ValueError(f'must be a decimal or a fraction in 0..1 such as "1/2", not {value!r}') from None
    else:
        raise ValueError('must be a string such as "1", "0.5" or "1/2"')
    if not 0 <= p <= 1:
        raise ValueError("must be between 0 and 1")
    return p


def _count(value: Any, where: str, least: int) -> int:
    if type(value) is not int:
        raise ValueError(f"{where} must be a JSON integer")
    if value < least:
        raise ValueError(f"{where} must be >= {least}")
    if value > INT64_MAX:
        raise OutOfRange(f"{where} must be at most {INT64_MAX}")
    return value


@dataclass(frozen=True, slots=True)
class Tranche:
    """A part of the rights vesting on a trigger: time (after_months, every_months x
    occurrences) or a named event."""

    portion: Fraction
    after_months: int | None = None
    every_months: int | None = None
    occurrences: int = 1
    on_event: str | None = None

    @property
    def total(self) -> Fraction:
        """The part of the rights this tranche vests over all its instalments."""
        return self.portion * self.occurrences

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"portion": fraction_str(self.portion)}
        if self.on_event is not None:
            out["on_event"] = self.on_event
            return out
        out["after_months"] = self.after_months
        if self.every_months is not None:
            out["every_months"] = self.every_months
            out["occurrences"] = self.occurrences
        return out


@dataclass(frozen=True, slots=True)
class Schedule:
    """The vesting of the terms: tranches, whether unvested rights lapse at a departure, and
    how counts are allocated (cumulative round-down or cumulative rounding)."""

    tranches: tuple[Tranche, ...]
    unvested_lapse_on_departure: bool = True
    allocation: str = ROUND_DOWN

    # ------------------------------------------------------------------ parsing
    @classmethod
    def parse(cls, obj: Any) -> Schedule:
        """The schedule of a ``vesting`` JSON object; ValueError (OutOfRange) says what is wrong."""
        if isinstance(obj, Schedule):
            return obj
        if not isinstance(obj, dict):
            raise ValueError("must be a JSON object with tranches")
        unknown = sorted(set(obj) - _SCHEDULE_KEYS)
        if unknown:
            raise ValueError(f"has an unknown field {unknown[0]!r}")
        raw = obj.get("tranches")
        if not isinstance(raw, list) or not raw:
            raise ValueError("needs a non-empty list 'tranches'")
        lapse = obj.get("unvested_lapse_on_departure", True)
        if lapse is None:
            lapse = True
        if type(lapse) is not bool:
            raise ValueError("'unvested_lapse_on_departure' must be true or false")
        allocation = obj.get("allocation") or ROUND_DOWN
        if allocation not in ALLOCATIONS:
            raise ValueError(f"'allocation' must be one of {', '.join(ALLOCATIONS)}")
        tranches = tuple(_tranche(t, i) for i, t in enumerate(raw, 1))
        events = [t.on_event for t in tranches if t.on_event is not None]
        if len(set(events)) != len(events):
            raise ValueError("names an on_event twice (one tranche per event)")
        if sum(t.occurrences for t in tranches) > MAX_INSTALMENTS:
            raise ValueError(f"has more than {MAX_INSTALMENTS} instalments")
        total = sum((t.total for t in tranches), Fraction(0))
        if total != 1:
            raise ValueError(f"portions over all instalments add up to {fraction_str(total)}, not exactly 1")
        return cls(tranches, lapse, allocation)

    def as_json(self) -> dict[str, Any]:
        """The normalised ``vesting`` object, as the ``TermsSet`` event stores it."""
        return {
            "tranches": [t.as_json() for t in self.tranches],
            "unvested_lapse_on_departure": self.unvested_lapse_on_departure,
            "allocation": self.allocation,
        }

    # ------------------------------------------------------------------ figures
    def instalments(self, start: date) -> list[tuple[int, Fraction]]:
        """[(date ordinal, portion)] of the time-based instalments from `start`, by date.

        Each instalment is counted from the start (not from the previous one), so month-end
        clamping never drifts; an instalment beyond 9999-12-31 never comes.
        """
        out: list[tuple[int, Fraction]] = []
        for t in self.tranches:
            if t.on_event is not None:
                continue
            for k in range(t.occurrences):
                day = add_months(start, t.after_months + k * (t.every_months or 0))
                if day is not None:
                    out.append((day.toordinal(), t.portion))
        out.sort(key=lambda x: x[0])
        return out

    def event_portion(self, event: str) -> Fraction | None:
        """The portion of the tranche vesting on `event`, None when no tranche names it."""
        for t in self.tranches:
            if t.on_event == event:
                return t.portion
        return None

    def count(self, rights: int, cumulative: Fraction) -> int:
        """Rights of an allotment of `rights` vested when `cumulative` of it has vested."""
        return self.count_terms(rights, cumulative.numerator, cumulative.denominator)

    def count_terms(self, rights: int, n: int, d: int) -> int:
        """:meth:`count` with the cumulative portion given as n / d (d > 0): integer
        arithmetic on the terms, exact, without the gcd a Fraction product computes."""
        if n >= d:
            return rights
        if self.allocation == ROUNDING:
            return min(rights, (2 * rights * n + d) // (2 * d))
        return rights * n // d


def _tranche(obj: Any, i: int) -> Tranche:
    where = f"tranche {i}"
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object")
    unknown = sorted(set(obj) - _TRANCHE_KEYS)
    if unknown:
        raise ValueError(f"{where} has an unknown field {unknown[0]!r}")
    if "portion" not in obj:
        raise ValueError(f"{where} needs a 'portion'")
    portion = _portion(obj["portion"], f"{where}'s portion")
    event = obj.get("on_event")
    after = obj.get("after_months")
    if (event is None) == (after is None):
        raise ValueError(f"{where} needs exactly one trigger: 'after_months' or 'on_event'")
    if event is not None:
        if not isinstance(event, str) or not event.strip() or "\x00" in event:
            raise ValueError(f"{where}'s on_event must be a non-empty string")
        if obj.get("every_months") is not None or obj.get("occurrences") is not None:
            raise ValueError(f"{where}: an on_event tranche takes no every_months or occurrences")
        return Tranche(portion, on_event=event)
    after = _count(after, f"{where}'s after_months", 0)
    every = obj.get("every_months")
    occurrences = obj.get("occurrences")
    if occurrences is None:
        if every is not None:
            raise ValueError(f"{where}: every_months needs occurrences")
        return Tranche(portion, after_months=after)
    occurrences = _count(occurrences, f"{where}'s occurrences", 1)
    if occurrences > MAX_INSTALMENTS:
        raise ValueError(f"{where} has more than {MAX_INSTALMENTS} instalments")
    if every is None:
        if occurrences > 1:
            raise ValueError(f"{where}: occurrences > 1 needs every_months")
        return Tranche(portion, after_months=after, occurrences=1)
    every = _count(every, f"{where}'s every_months", 1)
    return Tranche(portion, after_months=after, every_months=every, occurrences=occurrences)


# --------------------------------------------------------------------------- the walk

ALLOT = "allot"
EXERCISE = "exercise"
FORFEIT = "forfeit"
LAPSE = "lapse"
EXPIRE = "expire"


@dataclass(frozen=True, slots=True)
class Movement:
    """One recorded change of a holding: allotment, exercise, forfeit, lapse at departure or
    expiry (``seq``: record order on the same date; ``start``: an allotment's vesting start)."""

    ordinal: int
    seq: int
    kind: str
    rights: int
    start: int = 0  # allotments: the vesting start's ordinal (0: the allotment date)


@dataclass(frozen=True, slots=True)
class Occurrence:
    """A recorded vesting event as it applies to one holding."""

    ordinal: int
    seq: int
    event: str
    portion_met: Fraction


@dataclass(frozen=True, slots=True)
class Point:
    """The holding just before `movement`: rights unvested and vested (both outstanding)."""

    movement: Movement
    unvested: int
    vested: int


@dataclass
class Walk:
    """A holding walked in effective-date order: the state before each movement, and the
    (unvested, vested) at the end of every date where either changed."""

    points: list[Point]
    series: list[tuple[int, int, int]]  # (ordinal, unvested, vested)

    def on(self, ordinal: int) -> tuple[int, int]:
        """(unvested, vested) at the end of the day `ordinal`."""
        state = (0, 0)
        for day, u, v in self.series:
            if day > ordinal:
                break
            state = (u, v)
        return state


def allotment_steps(
    schedule: Schedule, allot: Movement, occurrences: Iterable[Occurrence]
) -> tuple[int, list[tuple[int, int]]]:
    """(rights vested on the allotment date, [(ordinal, rights vesting then)] after it).

    Instalments due on or before the allotment date vest on it; a vesting event covers the
    allotment when it occurred on or after the allotment date.
    """
    a = allot.ordinal
    met: list[tuple[int, Fraction]] = []
    for occ in occurrences:
        if occ.ordinal >= a:
            portion = schedule.event_portion(occ.event)
            if portion is not None and occ.portion_met:
                met.append((occ.ordinal, portion * occ.portion_met))
    at_allotment, later = _steps(schedule, a, allot.start or a, allot.rights, tuple(met))
    return at_allotment, list(later)


# Every command of a holding with vesting walks the holding again (rules and read models
# alike), so the same allotment's steps are asked for over and over: computing them means
# month arithmetic and fractions for every instalment. Bounded, so memory stays flat.
@lru_cache(maxsize=65536)
def _steps(
    schedule: Schedule, a: int, start: int, rights: int, met: tuple[tuple[int, Fraction], ...]
) -> tuple[int, tuple[tuple[int, int], ...]]:
    if not met:
        return _time_steps(schedule, a, start, rights)
    moments = [(max(o, a), p) for o, p in _instalments(schedule, start)]
    moments.extend(met)
    moments.sort(key=lambda m: m[0])
    cumulative = Fraction(0)
    counts = []
    for ordinal, portion in moments:
        cumulative += portion
        counts.append((ordinal, schedule.count(rights, cumulative)))
    return _split(a, counts)


def _time_steps(schedule: Schedule, a: int, start: int, rights: int) -> tuple[int, tuple[tuple[int, int], ...]]:
    """:func:`_steps` without vesting events: the instalments in month order (which is their
    date order) with cumulative portions computed once per schedule."""
    begin = date.fromordinal(start)
    counts = []
    for months, n, d in _cumulative_by_month(schedule):
        day = add_months(begin, months)
        if day is None:  # beyond 9999-12-31, and so is every later one
            break
        counts.append((max(day.toordinal(), a), schedule.count_terms(rights, n, d)))
    return _split(a, counts)


def _split(a: int, counts: Iterable[tuple[int, int]]) -> tuple[int, tuple[tuple[int, int], ...]]:
    """(rights vested on the allotment date `a`, ((ordinal, rights vesting then), ...) after it)
    from the cumulative vested count at each moment, in date order."""
    done = at_allotment = 0
    later: list[tuple[int, int]] = []
    for ordinal, n in counts:
        if n > done:
            if ordinal == a:
                at_allotment += n - done
            else:
                later.append((ordinal, n - done))
            done = n
    return at_allotment, tuple(later)


@lru_cache(maxsize=1024)
def _cumulative_by_month(schedule: Schedule) -> tuple[tuple[int, int, int], ...]:
    """(months after the start, numerator, denominator of the cumulative portion) of each
    time-based instalment, in month order."""
    items = sorted(
        (t.after_months + k * (t.every_months or 0), t.portion)
        for t in schedule.tranches
        if t.on_event is None
        for k in range(t.occurrences)
    )
    cumulative = Fraction(0)
    out = []
    for months, portion in items:
        cumulative += portion
        out.append((months, cumulative.numerator, cumulative.denominator))
    return tuple(out)


@lru_cache(maxsize=4096)
def _instalments(schedule: Schedule, start: int) -> tuple[tuple[int, Fraction], ...]:
    return tuple(schedule.instalments(date.fromordinal(start)))


def walk(
    schedule: Schedule | None, movements: Iterable[Movement], occurrences: Iterable[Occurrence] = ()
) -> Walk:
    """Walk a holding's movements in effective-date order (same date: vesting first, then the
    movements in record order): a vesting date moves rights from unvested to vested, never more
    than remain unvested; a forfeit takes unvested rights first; an exercise takes vested ones;
    a lapse takes unvested ones; an expiry takes all. Without a schedule, rights vest on their
    allotment. The walk does not judge: the caller checks each :class:`Point`."""
    moves = sorted(movements, key=lambda m: (m.ordinal, m.seq))
    occs = list(occurrences)
    due: dict[int, int] = {}
    at_allot: dict[int, int] = {}
    if schedule is not None:
        for i, m in enumerate(moves):
            if m.kind == ALLOT:
                now, later = allotment_steps(schedule, m, occs)
                at_allot[i] = now
                for ordinal, n in later:
                    due[ordinal] = due.get(ordinal, 0) + n
    items: list[tuple[int, int, int]] = [(m.ordinal, 1, i) for i, m in enumerate(moves)]
    items.extend((ordinal, 0, -1) for ordinal in due)
    items.sort()
    unvested = vested = 0
    points: list[Point] = []
    series: list[tuple[int, int, int]] = []
    for ordinal, phase, i in items:
        if phase == 0:
            move = min(due[ordinal], unvested)
            unvested -= move
            vested += move
        else:
            m = moves[i]
            points.append(Point(m, unvested, vested))
            if m.kind == ALLOT:
                now = at_allot.get(i, m.rights) if schedule is not None else m.rights
                unvested += m.rights - now
                vested += now
            elif m.kind == EXERCISE:
                vested -= m.rights
            elif m.kind == FORFEIT:
                take = min(m.rights, unvested)
                unvested -= take
                vested -= m.rights - take
            elif m.kind == LAPSE:
                unvested -= m.rights
            elif m.kind == EXPIRE:
                unvested = vested = 0
        if series and series[-1][0] == ordinal:
            series[-1] = (ordinal, unvested, vested)
        elif not series or series[-1][1:] != (unvested, vested):
            series.append((ordinal, unvested, vested))
    return Walk(points, series)


def occurrences_for(
    records: Iterable[Any], holder: str
) -> list[Occurrence]:
    """The vesting-event records ([ordinal, seq, event, holder or None, portion_met text]) that
    apply to `holder`."""
    return [
        Occurrence(r[0], r[1], r[2], Fraction(r[4]))
        for r in records
        if r[3] is None or r[3] == holder
    ]


def schedule_of(vesting: Mapping[str, Any] | Schedule | None) -> Schedule | None:
    """The schedule of a stored ``vesting`` object (None: rights vest on allotment)."""
    if vesting is None:
        return None
    return Schedule.parse(vesting)
