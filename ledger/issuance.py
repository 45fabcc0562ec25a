"""The issuance: one series of stock acquisition rights, from resolution to expiry.

Public methods are the use cases: each runs its ``check_...`` guards first and only then
triggers an ``@event`` method, so a refused command never changes the aggregate. The ``@event``
methods only apply figures that the guards already resolved, which keeps replays cheap and
deterministic.

A holder's stake in the issuance is a :class:`HolderAccount` (its "holding"; "position" means
only a log sequence number). Late entries: every account keeps a compact timeline of
:class:`TimelineEntry` values. A command dated on or after everything recorded for its holder is
checked against the running counters (the common case, O(1)); an earlier one is checked by
re-walking that holder's timeline in effective-date order with the command in its place.

Limits: every figure the terms imply (shares, amounts, the exercise price of all the shares, at
every adjustment) is checked to fit a signed 64-bit integer before it is recorded, so that every
later figure, and every per-issuance sum of them, fits too (see :meth:`Issuance.check_terms_fit`
and :meth:`Issuance.check_adjustment_fits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from fractions import Fraction
from math import floor
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from . import ids
from .errors import (
    AfterDeparture,
    BeforeAllotmentDate,
    BeforeDeparture,
    BeforeResolution,
    ChangesRecordedFigure,
    DepartureConflicts,
    ExercisePeriodInverted,
    ExpiryBeforeRecorded,
    ExpiryTooEarly,
    GroupChanged,
    IssuanceExpired,
    NonPositiveRatio,
    NothingOutstanding,
    OutsideExercisePeriod,
    OverMaxRights,
    OverOutstanding,
    OverTerms,
    QuantityOutOfRange,
    TermsAlreadySet,
    TermsNotSet,
    UnknownHolder,
    UnknownVestingEvent,
    VestingEventRecorded,
    ExerciseOfUnvested,
    WindowClosed,
)
from .money import INT64_MAX, fits, fraction_str, fraction_fits, times
from .terms import Terms, in_force_on, terms_in_force
from . import vesting as v

_MAX_ORDINAL = date.max.toordinal()


class EntryKind(Enum):
    """What a timeline entry records (the value is its compact stored form)."""

    ALLOT = "A"
    EXERCISE = "X"
    FORFEIT = "F"
    LAPSE = "L"  # unvested rights lapsing at a departure: counted as forfeited


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One allotment, exercise or forfeit of a holder, as the late-entry checks need it."""

    ordinal: int  # effective date, as date.toordinal()
    seq: int  # the aggregate version that recorded it: record order on the same date
    kind: EntryKind
    rights: int
    all_outstanding: bool = False  # a forfeit of "all": the number it stood for must not change
    start: int = 0  # an allotment's vesting start (ordinal; 0: its own date)

    @property
    def on(self) -> str:
        return date.fromordinal(self.ordinal).isoformat()


@dataclass(slots=True)
class HolderAccount:
    """A holder's holding in one issuance: counters, the latest name and group, the timeline."""

    group: str
    name: str
    allotted: int = 0
    exercised: int = 0
    forfeited: int = 0
    expired: int = 0
    last_ordinal: int = 0  # the latest effective date in the timeline (0: none)
    timeline: list[TimelineEntry] = field(default_factory=list)

    @property
    def outstanding(self) -> int:
        return self.allotted - self.exercised - self.forfeited - self.expired

    def outstanding_on(self, ordinal: int) -> int:
        """Rights outstanding at the end of the day `ordinal`, from the timeline."""
        n = 0
        for e in self.timeline:
            if e.ordinal <= ordinal:
                n += e.rights if e.kind is EntryKind.ALLOT else -e.rights
        return n


def _iso(d: date) -> str:
    return d.isoformat()


def _out_of_range(what: str) -> QuantityOutOfRange:
    return QuantityOutOfRange(f"{what} would not fit a 64-bit integer (at most {INT64_MAX})")


class Issuance(Aggregate):
    """One series of rights: resolution, terms, allotments, exercises, forfeits, adjustments."""

    @staticmethod
    def create_id(issuance: str, **_: object) -> UUID:
        return ids.issuance_id(issuance)

    # ------------------------------------------------------------------ resolution
    @event("ResolutionPassed")
    def __init__(
        self,
        issuance: str,
        issuer: str,
        body: str,
        resolved_on: date,
        title: str,
        max_rights: int | None,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        self.issuance = issuance
        self.issuer = issuer
        self.body = body
        self.resolved_on = resolved_on
        self.title = title
        self.max_rights = max_rights
        self.terms: Terms | None = None
        self.adjustments: list[list[int | str]] = []  # [[ordinal, "ratio"], ...] in effective order
        self.allotted_total = 0
        self.expired_on: date | None = None
        self.last_exercise_ord = 0
        self.last_entry_ord = 0
        self.holdings: dict[str, HolderAccount] = {}

    # ------------------------------------------------------------------ queries used by guards
    def account(self, holder: str) -> HolderAccount:
        """The holder's account in this issuance; UnknownHolder when they hold none."""
        try:
            return self.holdings[holder]
        except KeyError:
            raise UnknownHolder(f"holder {holder} has no rights in issuance {self.issuance}") from None

    def outstanding_on(self, holder: str, day: date) -> int:
        """Rights of `holder` outstanding at the end of `day`, from the timeline."""
        account = self.holdings.get(holder)
        return account.outstanding_on(day.toordinal()) if account is not None else 0

    def terms_on(self, day: date) -> tuple[Fraction, Decimal]:
        """Shares per right and exercise price per share in force at the end of `day`."""
        terms = self.require_terms()
        steps = terms_in_force(
            terms.shares_per_right, terms.exercise_price_per_share, terms.currency, self.adjustments
        )
        base = (Fraction(terms.shares_per_right), terms.exercise_price_per_share)
        return in_force_on(base, steps, day.toordinal())

    def _is_late(self, holder: str, day: date) -> bool:
        account = self.holdings.get(holder)
        return account is not None and day.toordinal() < account.last_ordinal

    # ------------------------------------------------------------------ guards
    def require_terms(self) -> Terms:
        if self.terms is None:
            raise TermsNotSet(f"issuance {self.issuance} has no terms yet (set_terms comes first)")
        return self.terms

    def check_terms_not_set(self) -> None:
        if self.terms is not None:
            raise TermsAlreadySet(
                f"the terms of {self.issuance} were set on {_iso(self.terms.decided_on)}"
            )

    def check_not_before_resolution(self, day: date, what: str) -> None:
        if day < self.resolved_on:
            raise BeforeResolution(
                f"{what} {_iso(day)} is before the resolution of {self.issuance} "
                f"on {_iso(self.resolved_on)}"
            )

    def check_not_expired(self, what: str) -> None:
        if self.expired_on is not None:
            raise IssuanceExpired(
                f"the rights of {self.issuance} expired on {_iso(self.expired_on)}; "
                f"no {what} can be recorded for it any more"
            )

    def check_exercise_period_in_order(self, terms: Terms) -> None:
        if terms.exercise_from > terms.exercise_to:
            raise ExercisePeriodInverted(
                f"exercise_from {_iso(terms.exercise_from)} is after exercise_to "
                f"{_iso(terms.exercise_to)}"
            )

    def check_within_max_rights(self, terms: Terms) -> None:
        if self.max_rights is not None and terms.rights > self.max_rights:
            raise OverMaxRights(
                f"{terms.rights} rights exceed the {self.max_rights} the resolution allows"
            )

    def check_terms_fit(self, terms: Terms) -> None:
        """The figures the terms imply fit a signed 64-bit integer.

        Guarantees, for every later figure of the issuance: shares (rights x shares per right,
        for any number of its rights) <= 2**63-1; amounts payable (rights x price per right,
        summed over any of its allotments) and exercise prices paid at the terms' price
        (shares x price) fit 2**63-1 units of 10**-scale (:attr:`Terms.scale`).
        """
        scale = terms.scale
        if terms.shares > INT64_MAX:
            raise _out_of_range(
                f"the shares of the terms ({terms.rights} rights x {terms.shares_per_right} "
                f"shares per right)"
            )
        if not fits(terms.rights * Fraction(terms.price_per_right), scale):
            raise _out_of_range(
                f"the amount payable for all the rights ({terms.rights} x "
                f"{terms.price_per_right} {terms.currency}, in units of 10^-{scale})"
            )
        if not fits(terms.shares * Fraction(terms.exercise_price_per_share), scale):
            raise _out_of_range(
                f"the exercise price of all the shares ({terms.shares} x "
                f"{terms.exercise_price_per_share} {terms.currency}, in units of 10^-{scale})"
            )

    def check_on_or_after_allotment_date(self, allotted_on: date) -> None:
        terms = self.require_terms()
        if allotted_on < terms.allotment_date or allotted_on < terms.decided_on:
            raise BeforeAllotmentDate(
                f"allotment on {_iso(allotted_on)} is before the allotment date "
                f"{_iso(terms.allotment_date)} of the terms"
            )

    def check_within_terms(self, rights: int) -> None:
        terms = self.require_terms()
        if self.allotted_total + rights > terms.rights:
            raise OverTerms(
                f"allotting {rights} rights would bring {self.issuance} to "
                f"{self.allotted_total + rights}, over the {terms.rights} of its terms"
            )

    def check_same_group(self, holder: str, group: str) -> None:
        account = self.holdings.get(holder)
        if account is not None and account.group != group:
            raise GroupChanged(
                f"{holder} holds rights of {self.issuance} as {account.group!r}, not {group!r}"
            )

    @staticmethod
    def check_before_departure(holder: str, allotted_on: date, departed_on: date | None) -> None:
        if departed_on is not None and allotted_on >= departed_on:
            raise AfterDeparture(
                f"{holder} left office on {_iso(departed_on)}; no allotment on or after it"
            )

    def check_in_exercise_period(self, exercised_on: date) -> None:
        terms = self.require_terms()
        if not terms.exercise_from <= exercised_on <= terms.exercise_to:
            raise OutsideExercisePeriod(
                f"exercise on {_iso(exercised_on)} is outside the exercise period "
                f"{_iso(terms.exercise_from)}..{_iso(terms.exercise_to)}"
            )

    def check_departure_allows_exercise(
        self, holder: str, exercised_on: date, departed_on: date | None
    ) -> None:
        """After departure only within the window; before it only where the terms allow.

        The window is counted on date ordinals: a window ending beyond date.max leaves the
        exercise open until date.max, without date arithmetic that could overflow.
        """
        terms = self.require_terms()
        if departed_on is not None and exercised_on >= departed_on:
            window = terms.exercise_window_days_after_departure
            closes = departed_on.toordinal() + window if window is not None else _MAX_ORDINAL
            if exercised_on.toordinal() > closes:
                raise WindowClosed(
                    f"{holder} left office on {_iso(departed_on)}; the {window}-day window "
                    f"closed on {date.fromordinal(closes).isoformat()}"
                )
        elif terms.exercisable_only_after_departure:
            when = f"only left office on {_iso(departed_on)}" if departed_on else "has not left office"
            raise BeforeDeparture(
                f"{holder} {when}; rights of {self.issuance} are exercisable only after departure"
            )

    def check_outstanding(self, holder: str, rights: int, what: str) -> None:
        """An exercise or forfeit dated after everything recorded: the running counters."""
        account = self.account(holder)
        if rights > account.outstanding:
            raise OverOutstanding(
                f"{holder} has {account.outstanding} rights of {self.issuance} outstanding; "
                f"cannot {what} {rights}"
            )

    def check_timeline(self, holder: str, new: TimelineEntry) -> None:
        """Re-walk `holder`'s timeline with `new` in its place (late entries only).

        Refuses when a withdrawal (exercise, forfeit) would exceed what was outstanding at its
        date, or when the number an "all" forfeit stood for would change.
        """
        account = self.holdings.get(holder)
        recorded = account.timeline if account is not None else []
        outstanding = 0
        for e in sorted([*recorded, new], key=lambda e: (e.ordinal, e.seq)):
            if e.kind is EntryKind.ALLOT:
                outstanding += e.rights
                continue
            is_new = e is new
            if e.kind is EntryKind.FORFEIT and e.all_outstanding and not is_new and e.rights != outstanding:
                raise ChangesRecordedFigure(
                    f"the forfeit of all rights of {holder} on {e.on} recorded {e.rights} rights; "
                    f"with this command it would stand for {outstanding}"
                )
            if e.rights > outstanding:
                what = "exercise" if e.kind is EntryKind.EXERCISE else "forfeit"
                if is_new:
                    raise OverOutstanding(
                        f"{holder} had {outstanding} rights of {self.issuance} outstanding on "
                        f"{e.on}; cannot {what} {e.rights}"
                    )
                raise OverOutstanding(
                    f"with this command the recorded {what} of {e.rights} rights by {holder} on "
                    f"{e.on} would exceed the {outstanding} then outstanding"
                )
            outstanding -= e.rights

    def check_withdrawal(self, holder: str, new: TimelineEntry, what: str) -> None:
        """An exercise or a forfeit fits what the holder had outstanding at its date."""
        if self._is_late(holder, date.fromordinal(new.ordinal)):
            self.check_timeline(holder, new)
        else:
            self.check_outstanding(holder, new.rights, what)

    def check_departure(self, holder: str, departed_on: date) -> None:
        """Guard for Holder.depart: a departure must fit what this issuance recorded."""
        account = self.holdings.get(holder)
        if account is None:
            return
        window = self.terms.exercise_window_days_after_departure if self.terms else None
        only_after = self.terms.exercisable_only_after_departure if self.terms else False
        d = departed_on.toordinal()
        for e in account.timeline:
            if e.kind is EntryKind.ALLOT and e.ordinal >= d:
                raise DepartureConflicts(
                    f"{holder} was allotted rights of {self.issuance} on {e.on}, on or after "
                    f"this departure on {_iso(departed_on)}"
                )
            if e.kind is EntryKind.EXERCISE and e.ordinal >= d and window is not None and e.ordinal > d + window:
                raise DepartureConflicts(
                    f"{holder} exercised rights of {self.issuance} on {e.on}, more than {window} "
                    f"days after this departure on {_iso(departed_on)}"
                )
            if e.kind is EntryKind.EXERCISE and e.ordinal < d and only_after:
                raise DepartureConflicts(
                    f"{holder} exercised rights of {self.issuance} on {e.on}, before this "
                    f"departure on {_iso(departed_on)}, but its terms allow exercise only after"
                )
        self.check_vesting(holder, departed_on, departing=True)
        self.check_lapse_fits(holder, departed_on)

    def check_lapse_fits(self, holder: str, departed_on: date) -> None:
        """The rights a departure lapses must leave the recorded figures as they are: a late
        departure before a recorded expiry lapses none (the expiry recorded them as lapsing
        with the issuance), and later withdrawals still fit what is outstanding ("all"
        forfeits keep the number they stood for)."""
        n = self.lapse_on(holder, departed_on)
        if not n:
            return
        self.check_timeline(holder, TimelineEntry(departed_on.toordinal(), self.version + 1, EntryKind.LAPSE, n))
        if self.expired_on is not None:
            raise ChangesRecordedFigure(
                f"the expiry of {self.issuance} on {_iso(self.expired_on)} recorded the rights of "
                f"{holder} as lapsing with it; this departure on {_iso(departed_on)} would lapse "
                f"{n} of them unvested first"
            )

    def check_adjustment_after_terms(self, effective_on: date) -> None:
        terms = self.require_terms()
        if effective_on <= terms.decided_on:
            # On its date an adjustment applies before anything else, the terms included: it
            # would adjust terms that did not exist yet.
            raise TermsNotSet(
                f"an adjustment effective {_iso(effective_on)} would apply before the terms of "
                f"{self.issuance} decided on {_iso(terms.decided_on)}"
            )

    @staticmethod
    def check_positive_ratio(ratio: Fraction) -> None:
        if ratio <= 0:
            raise NonPositiveRatio(f"an adjustment ratio must be positive, not {ratio}")

    def check_no_exercise_from(self, effective_on: date) -> None:
        if self.last_exercise_ord >= effective_on.toordinal():
            raise ChangesRecordedFigure(
                f"an exercise of {self.issuance} is recorded on or after "
                f"{_iso(effective_on)}; an adjustment effective then would change the shares "
                "it delivered"
            )

    def check_adjustment_fits(self, ratio: Fraction, effective_on: date) -> None:
        """With this adjustment in its place, every step of the terms in force still fits.

        At every step: the shares per right's numerator and denominator, all the terms' rights x
        shares per right, and the exercise price of all those shares (in units of 10**-scale) fit
        a signed 64-bit integer, so exercises at any date deliver and pay figures that fit, and
        so do their per-issuance sums (each right is exercised at most once).
        """
        terms = self.require_terms()
        scale = terms.scale
        adjustments = sorted([*self.adjustments, [effective_on.toordinal(), ratio]], key=lambda a: a[0])
        steps = terms_in_force(
            terms.shares_per_right, terms.exercise_price_per_share, terms.currency, adjustments
        )
        for ordinal, spr, price in steps:
            on = date.fromordinal(ordinal).isoformat()
            if not fraction_fits(spr):
                raise _out_of_range(f"the shares per right from {on} ({spr})")
            shares = terms.rights * spr
            if shares > INT64_MAX:
                raise _out_of_range(f"the shares of the terms from {on} ({terms.rights} rights x {spr})")
            if not fits(price, scale) or not fits(floor(shares) * Fraction(price), scale):
                raise _out_of_range(
                    f"the exercise price of all the shares from {on} ({floor(shares)} x {price} "
                    f"{terms.currency}, in units of 10^-{scale})"
                )

    def check_after_exercise_period(self, expired_on: date) -> None:
        terms = self.require_terms()
        if expired_on <= terms.exercise_to:
            raise ExpiryTooEarly(
                f"expiry on {_iso(expired_on)} is not after the end of the exercise period "
                f"{_iso(terms.exercise_to)}"
            )

    def check_nothing_recorded_after(self, expired_on: date) -> None:
        if self.last_entry_ord > expired_on.toordinal():
            raise ExpiryBeforeRecorded(
                f"events of {self.issuance} are recorded after {_iso(expired_on)} "
                f"(latest {date.fromordinal(self.last_entry_ord).isoformat()})"
            )

    # ------------------------------------------------------------------ terms
    def set_terms(
        self, terms: Terms, command_id: str, actor: str, reason: str, command_digest: str = ""
    ) -> None:
        """Fix the remaining terms (once, after the resolution, within max_rights, fitting)."""
        self.check_terms_not_set()
        self.check_not_before_resolution(terms.decided_on, "terms decided on")
        self.check_not_before_resolution(terms.allotment_date, "allotment date")
        self.check_not_before_resolution(terms.exercise_from, "exercise period starting")
        self.check_exercise_period_in_order(terms)
        self.check_within_max_rights(terms)
        self.check_terms_fit(terms)
        self._terms_set(
            issuance=self.issuance,
            **terms.as_fields(),
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )

    # The stored event stays flat (one field per term, as the projections and the history read
    # it); its parameters are the fields of Terms, in TERMS_FIELDS order (a test checks it).
    @event("TermsSet")
    def _terms_set(
        self,
        issuance: str,
        decided_on: date,
        rights: int,
        shares_per_right: int,
        share_class: str,
        price_per_right: Decimal,
        currency: str,
        exercise_price_per_share: Decimal,
        allotment_date: date,
        exercise_from: date,
        exercise_to: date,
        exercisable_only_after_departure: bool,
        exercise_window_days_after_departure: int | None,
        # Added with vesting (a TermsSet stored before has neither); the metadata after them
        # then needs defaults too: it is always given.
        fair_value_per_right: Decimal | None = None,
        vesting: dict | None = None,
        command_id: str = "",
        actor: str = "",
        reason: str = "",
        command_digest: str = "",
    ) -> None:
        self.terms = Terms(
            decided_on=decided_on,
            rights=rights,
            shares_per_right=shares_per_right,
            share_class=share_class,
            price_per_right=price_per_right,
            currency=currency,
            exercise_price_per_share=exercise_price_per_share,
            allotment_date=allotment_date,
            exercise_from=exercise_from,
            exercise_to=exercise_to,
            exercisable_only_after_departure=exercisable_only_after_departure,
            exercise_window_days_after_departure=exercise_window_days_after_departure,
            fair_value_per_right=fair_value_per_right,
            vesting=v.schedule_of(vesting),
        )

    # ------------------------------------------------------------------ allotment
    def allot(
        self,
        holder: str,
        name: str,
        group: str,
        rights: int,
        allotted_on: date,
        payment: str,
        departed_on: date | None,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
        vesting_start: date | None = None,
    ) -> None:
        """Allot rights to a holder; the amount payable is rights x price per right."""
        terms = self.require_terms()
        self.check_not_expired("allotment")
        self.check_not_before_resolution(allotted_on, "allotment on")
        self.check_on_or_after_allotment_date(allotted_on)
        self.check_within_terms(rights)
        self.check_same_group(holder, group)
        self.check_before_departure(holder, allotted_on, departed_on)
        if vesting_start is not None:
            self.check_not_before_resolution(vesting_start, "vesting start")
        entry = TimelineEntry(
            allotted_on.toordinal(), self.version + 1, EntryKind.ALLOT, rights,
            start=vesting_start.toordinal() if vesting_start is not None else 0,
        )
        if self._is_late(holder, allotted_on):
            self.check_timeline(holder, entry)
        self.check_vesting(holder, departed_on, new=entry)
        amount = times(rights, terms.price_per_right) if payment != "gratis" else Decimal(0)
        self._allotted(
            issuance=self.issuance,
            holder=holder,
            name=name,
            group=group,
            rights=rights,
            allotted_on=allotted_on,
            payment=payment,
            amount=amount,
            currency=terms.currency,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
            vesting_start=vesting_start,
        )

    @event("RightsAllotted")
    def _allotted(
        self,
        issuance: str,
        holder: str,
        name: str,
        group: str,
        rights: int,
        allotted_on: date,
        payment: str,
        amount: Decimal,
        currency: str,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
        vesting_start: date | None = None,  # added with vesting: absent = allotted_on
    ) -> None:
        account = self.holdings.get(holder)
        if account is None:
            account = self.holdings[holder] = HolderAccount(group=group, name=name)
        account.name = name
        account.allotted += rights
        self.allotted_total += rights
        start = vesting_start.toordinal() if vesting_start is not None else 0
        self._record(account, allotted_on, EntryKind.ALLOT, rights, start=start)

    def _record(
        self, account: HolderAccount, day: date, kind: EntryKind, rights: int, every: bool = False,
        start: int = 0,
    ) -> None:
        ordinal = day.toordinal()
        account.timeline.append(TimelineEntry(ordinal, self.version + 1, kind, rights, every, start))
        account.last_ordinal = max(account.last_ordinal, ordinal)
        self.last_entry_ord = max(self.last_entry_ord, ordinal)

    # ------------------------------------------------------------------ exercise
    def exercise(
        self,
        holder: str,
        rights: int,
        exercised_on: date,
        delivery: str,
        departed_on: date | None,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
        share_price: Decimal | None = None,
    ) -> None:
        """Turn rights into shares: floor(rights x shares per right), paying the exercise price."""
        terms = self.require_terms()
        self.account(holder)
        self.check_not_expired("exercise")
        self.check_in_exercise_period(exercised_on)
        self.check_departure_allows_exercise(holder, exercised_on, departed_on)
        entry = TimelineEntry(exercised_on.toordinal(), self.version + 1, EntryKind.EXERCISE, rights)
        self.check_withdrawal(holder, entry, "exercise")
        self.check_vesting(holder, departed_on, new=entry)
        spr, price = self.terms_on(exercised_on)
        shares = floor(rights * spr)
        self._exercised(
            issuance=self.issuance,
            holder=holder,
            rights=rights,
            exercised_on=exercised_on,
            delivery=delivery,
            shares_delivered=shares,
            exercise_price_per_share=price,
            exercise_price_paid=times(shares, price),
            currency=terms.currency,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
            share_price=share_price,
        )

    @event("RightsExercised")
    def _exercised(
        self,
        issuance: str,
        holder: str,
        rights: int,
        exercised_on: date,
        delivery: str,
        shares_delivered: int,
        exercise_price_per_share: Decimal,
        exercise_price_paid: Decimal,
        currency: str,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
        share_price: Decimal | None = None,  # added with vesting's reports: the market price
    ) -> None:
        account = self.holdings[holder]
        account.exercised += rights
        self._record(account, exercised_on, EntryKind.EXERCISE, rights)
        self.last_exercise_ord = max(self.last_exercise_ord, exercised_on.toordinal())

    # ------------------------------------------------------------------ forfeiture
    def forfeit(
        self,
        holder: str,
        rights: int | str,
        forfeited_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
        departed_on: date | None = None,
    ) -> None:
        """Rights lapse unexercised; "all" stands for what is outstanding on that date.
        Unvested rights are taken first, then vested ones."""
        self.require_terms()
        account = self.account(holder)
        self.check_not_expired("forfeiture")
        self.check_not_before_resolution(forfeited_on, "forfeiture on")
        every = rights == "all"
        if every:
            late = self._is_late(holder, forfeited_on)
            n = account.outstanding_on(forfeited_on.toordinal()) if late else account.outstanding
            if n == 0:
                raise NothingOutstanding(
                    f"{holder} has no rights of {self.issuance} outstanding on "
                    f"{_iso(forfeited_on)} to forfeit"
                )
        else:
            n = int(rights)
        entry = TimelineEntry(forfeited_on.toordinal(), self.version + 1, EntryKind.FORFEIT, n, every)
        self.check_withdrawal(holder, entry, "forfeit")
        self.check_vesting(holder, departed_on, new=entry)
        self._forfeited(
            issuance=self.issuance,
            holder=holder,
            rights=n,
            all_outstanding=every,
            forfeited_on=forfeited_on,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )

    @event("RightsForfeited")
    def _forfeited(
        self,
        issuance: str,
        holder: str,
        rights: int,
        all_outstanding: bool,
        forfeited_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        account = self.holdings[holder]
        account.forfeited += rights
        self._record(account, forfeited_on, EntryKind.FORFEIT, rights, all_outstanding)

    # ------------------------------------------------------------------ adjustment
    def adjust(
        self,
        ratio: Fraction,
        effective_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        """Split or consolidation: shares per right x ratio, exercise price / ratio (rounded up)."""
        self.require_terms()
        self.check_not_expired("adjustment")
        self.check_not_before_resolution(effective_on, "adjustment effective on")
        self.check_adjustment_after_terms(effective_on)
        self.check_positive_ratio(ratio)
        self.check_no_exercise_from(effective_on)
        self.check_adjustment_fits(ratio, effective_on)
        self._adjusted(
            issuance=self.issuance,
            ratio=fraction_str(ratio),
            effective_on=effective_on,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )

    @event("SharesAdjusted")
    def _adjusted(
        self,
        issuance: str,
        ratio: str,
        effective_on: date,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        self.adjustments.append([effective_on.toordinal(), ratio])
        self.adjustments.sort(key=lambda a: a[0])  # stable: same date keeps record order

    # ------------------------------------------------------------------ expiry
    def expire(
        self, expired_on: date, command_id: str, actor: str, reason: str, command_digest: str = ""
    ) -> None:
        """All rights still outstanding lapse (only once the exercise period has passed)."""
        self.check_not_before_resolution(expired_on, "expiry on")
        self.require_terms()
        self.check_not_expired("second expiry")
        self.check_after_exercise_period(expired_on)
        self.check_nothing_recorded_after(expired_on)
        expired = {
            holder: account.outstanding
            for holder, account in sorted(self.holdings.items())
            if account.outstanding > 0
        }
        self._expired(
            issuance=self.issuance,
            expired_on=expired_on,
            expired=expired,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )

    @event("RightsExpired")
    def _expired(
        self,
        issuance: str,
        expired_on: date,
        expired: dict[str, int],
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        self.expired_on = expired_on
        for holder, rights in expired.items():
            self.holdings[holder].expired += rights

    # ------------------------------------------------------------------ vesting
    @property
    def schedule(self) -> v.Schedule | None:
        """The vesting schedule of the terms (None: every right vests on its allotment)."""
        return self.terms.vesting if self.terms is not None else None

    @property
    def vesting_records(self) -> list[list]:
        """Recorded vesting events: [ordinal, seq, event, holder or None, portion_met text].

        Kept only once one is recorded, so that an aggregate (or a snapshot) of an issuance
        without vesting events holds exactly what it held before vesting existed."""
        return self.__dict__.get("_vesting_records", [])

    _KINDS = {
        EntryKind.ALLOT: v.ALLOT,
        EntryKind.EXERCISE: v.EXERCISE,
        EntryKind.FORFEIT: v.FORFEIT,
        EntryKind.LAPSE: v.LAPSE,
    }

    def _walk(self, holder: str, entries: list[TimelineEntry], records: list[list]) -> v.Walk:
        moves = [v.Movement(e.ordinal, e.seq, self._KINDS[e.kind], e.rights, e.start) for e in entries]
        return v.walk(self.schedule, moves, v.occurrences_for(records, holder))

    def lapse_on(self, holder: str, departed_on: date) -> int:
        """Rights of `holder` still unvested at a departure recorded now on `departed_on` (what
        lapses there when the terms say so; 0 without vesting)."""
        schedule = self.schedule
        account = self.holdings.get(holder)
        if schedule is None or not schedule.unvested_lapse_on_departure or account is None:
            return 0
        if self.expired_on is not None and departed_on >= self.expired_on:
            return 0  # every right lapsed with the issuance (the walk has no expiry entry)
        probe = TimelineEntry(departed_on.toordinal(), self.version + 1, EntryKind.LAPSE, 0)
        walked = self._walk(holder, [*account.timeline, probe], self.vesting_records)
        return next(p.unvested for p in walked.points if p.movement.seq == probe.seq and p.movement.kind == v.LAPSE)

    def check_vesting(
        self,
        holder: str,
        departed_on: date | None,
        new: TimelineEntry | None = None,
        record: list | None = None,
        departing: bool = False,
    ) -> None:
        """With the new entry (or vesting-event record, or departure) in its place, walk the
        holder's rights in effective-date order: every exercise takes vested rights only
        (`exercise-of-unvested`), and every lapse recorded at the departure still stands for
        what was unvested then (`would-change-recorded-figure`). Nothing to check without
        vesting terms."""
        schedule = self.schedule
        if schedule is None:
            return
        account = self.holdings.get(holder)
        entries = list(account.timeline) if account is not None else []
        if new is not None:
            entries.append(new)
        records = [*self.vesting_records, *([record] if record is not None else [])]
        probe: TimelineEntry | None = None
        if departed_on is not None and schedule.unvested_lapse_on_departure:
            if departing:
                # the lapse this departure records: what is unvested at its place in the walk
                probe = TimelineEntry(departed_on.toordinal(), self.version + 1, EntryKind.LAPSE, 0)
                walked = self._walk(holder, [*entries, probe], records)
                n = next(p.unvested for p in walked.points if p.movement.seq == probe.seq and p.movement.kind == v.LAPSE)
                probe = TimelineEntry(probe.ordinal, probe.seq, EntryKind.LAPSE, n)
                entries.append(probe)
            elif not any(e.kind is EntryKind.LAPSE for e in entries):
                # recorded with nothing unvested (no lapse event): it must stay so
                probe = TimelineEntry(departed_on.toordinal(), 2**62, EntryKind.LAPSE, 0)
                entries.append(probe)
        walked = self._walk(holder, entries, records)
        for point in walked.points:
            m = point.movement
            on = date.fromordinal(m.ordinal).isoformat()
            is_new = new is not None and m.seq == new.seq and m.kind == self._KINDS[new.kind]
            if m.kind == v.EXERCISE and m.rights > point.vested:
                if is_new:
                    raise ExerciseOfUnvested(
                        f"{holder} had {point.vested} vested rights of {self.issuance} outstanding "
                        f"on {on} ({point.unvested} unvested); cannot exercise {m.rights}"
                    )
                raise ExerciseOfUnvested(
                    f"with this command the recorded exercise of {m.rights} rights by {holder} on "
                    f"{on} would exceed the {point.vested} rights then vested"
                )
            if m.kind == v.LAPSE and m.rights != point.unvested:
                raise ChangesRecordedFigure(
                    f"{holder}'s departure on {on} lapsed {m.rights} unvested rights of "
                    f"{self.issuance}; with this command {point.unvested} would be unvested then"
                )

    def lapse_unvested(
        self, holder: str, departed_on: date, command_id: str, actor: str, reason: str,
        command_digest: str = "",
    ) -> bool:
        """At a departure, the holder's unvested rights lapse where the terms say so (recorded
        as :class:`UnvestedLapsed`, counted as forfeited). True when something lapsed. The
        departure's guards (:meth:`check_departure`) ran before."""
        n = self.lapse_on(holder, departed_on)
        if n == 0:
            return False
        self._lapsed(
            issuance=self.issuance,
            holder=holder,
            rights=n,
            lapsed_on=departed_on,
            lapse_reason=LAPSE_REASON,
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )
        return True

    @event("UnvestedLapsed")
    def _lapsed(
        self,
        issuance: str,
        holder: str,
        rights: int,
        lapsed_on: date,
        lapse_reason: str,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        account = self.holdings[holder]
        account.forfeited += rights
        self._record(account, lapsed_on, EntryKind.LAPSE, rights)

    def check_vesting_event_named(self, event_name: str) -> Fraction:
        schedule = self.schedule
        portion = schedule.event_portion(event_name) if schedule is not None else None
        if portion is None:
            raise UnknownVestingEvent(
                f"no on_event tranche of the terms of {self.issuance} names {event_name!r}"
            )
        return portion

    def check_vesting_event_once(self, event_name: str, holder: str | None) -> None:
        for r in self.vesting_records:
            if r[2] == event_name and (r[3] is None or holder is None or r[3] == holder):
                whom = f"holder {r[3]}" if r[3] is not None else "all holders"
                raise VestingEventRecorded(
                    f"vesting event {event_name!r} of {self.issuance} was recorded for {whom} "
                    f"on {date.fromordinal(r[0]).isoformat()}"
                )

    def record_vesting_event(
        self,
        event_name: str,
        occurred_on: date,
        holder: str | None,
        portion_met: Fraction,
        departures: dict[str, date | None],
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        """A vesting event happened (met in full or `portion_met` of it): its tranche vests
        for the allotments made on or before `occurred_on`, of `holder` or of every holder.
        `departures` holds the departure date of every holder it covers."""
        self.require_terms()
        self.check_not_expired("vesting event")
        self.check_not_before_resolution(occurred_on, "vesting event on")
        self.check_vesting_event_named(event_name)
        if holder is not None:
            self.account(holder)
        self.check_vesting_event_once(event_name, holder)
        record = [occurred_on.toordinal(), self.version + 1, event_name, holder, fraction_str(portion_met)]
        for h in [holder] if holder is not None else sorted(self.holdings):
            self.check_vesting(h, departures.get(h), record=record)
        self._vesting_event_recorded(
            issuance=self.issuance,
            event=event_name,
            occurred_on=occurred_on,
            holder=holder,
            portion_met=fraction_str(portion_met),
            command_id=command_id,
            actor=actor,
            reason=reason,
            command_digest=command_digest,
        )

    @event("VestingEventRecorded")
    def _vesting_event_recorded(
        self,
        issuance: str,
        event: str,
        occurred_on: date,
        holder: str | None,
        portion_met: str,
        command_id: str,
        actor: str,
        reason: str,
        command_digest: str = "",
    ) -> None:
        records = self.__dict__.setdefault("_vesting_records", [])
        records.append([occurred_on.toordinal(), self.version + 1, event, holder, portion_met])
        self.last_entry_ord = max(self.last_entry_ord, occurred_on.toordinal())


#: The reason a lapse at departure records (the contract's words).
LAPSE_REASON = "unvested at departure"
