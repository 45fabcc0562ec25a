"""The issuance: one series of stock acquisition rights, from resolution to expiry.

Public methods are the use cases: each runs its ``check_...`` guards first and only then
triggers an ``@event`` method, so a refused command never changes the aggregate. The ``@event``
methods only apply figures that the guards already resolved, which keeps replays cheap and
deterministic.

Late entries: every holder keeps a compact timeline ``[date ordinal, record seq, kind, rights,
flag]``. A command dated on or after everything recorded for its holder is checked against the
running counters (the common case, O(1)); an earlier one is checked by re-walking that holder's
timeline in effective-date order with the command in its place.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from math import floor
from typing import Any
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
    TermsAlreadySet,
    TermsNotSet,
    UnknownHolder,
    WindowClosed,
)
from .money import fraction_str
from .terms import in_force_on, terms_in_force

# Timeline entry kinds.
ALLOT, EXERCISE, FORFEIT = "A", "X", "F"


def _iso(d: date) -> str:
    return d.isoformat()


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
    ) -> None:
        self.issuance = issuance
        self.issuer = issuer
        self.body = body
        self.resolved_on = resolved_on
        self.title = title
        self.max_rights = max_rights
        self.terms: dict[str, Any] | None = None
        self.adjustments: list[list[Any]] = []  # [[ordinal, "ratio"], ...] in effective order
        self.allotted_total = 0
        self.expired_on: date | None = None
        self.last_exercise_ord = 0
        self.last_entry_ord = 0
        self.positions: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ queries used by guards
    def position(self, holder: str) -> dict[str, Any]:
        try:
            return self.positions[holder]
        except KeyError:
            raise UnknownHolder(f"holder {holder} has no rights in issuance {self.issuance}") from None

    @staticmethod
    def outstanding(pos: dict[str, Any]) -> int:
        return pos["allotted"] - pos["exercised"] - pos["forfeited"] - pos["expired"]

    def terms_on(self, day: date) -> tuple[Fraction, Decimal]:
        """Shares per right and exercise price per share in force at the end of `day`."""
        terms = self.require_terms()
        steps = terms_in_force(
            terms["shares_per_right"],
            terms["exercise_price_per_share"],
            terms["currency"],
            self.adjustments,
        )
        base = (Fraction(terms["shares_per_right"]), terms["exercise_price_per_share"])
        return in_force_on(base, steps, day.toordinal())

    # ------------------------------------------------------------------ guards
    def require_terms(self) -> dict[str, Any]:
        if self.terms is None:
            raise TermsNotSet(f"issuance {self.issuance} has no terms yet (set_terms comes first)")
        return self.terms

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

    def check_timeline(self, holder: str, new: list[Any]) -> None:
        """Re-walk `holder`'s timeline with `new` in its place (late entries only).

        Refuses when a withdrawal (exercise, forfeit) would exceed what was outstanding at its
        date, or when the number an "all" forfeit stood for would change.
        """
        pos = self.positions.get(holder)
        entries = sorted((pos["entries"] if pos else []) + [new], key=lambda e: (e[0], e[1]))
        outstanding = 0
        for ordinal, seq, kind, rights, flag in entries:
            on = date.fromordinal(ordinal).isoformat()
            if kind == ALLOT:
                outstanding += rights
                continue
            is_new = seq == new[1]
            if kind == FORFEIT and flag and not is_new and rights != outstanding:
                raise ChangesRecordedFigure(
                    f"the forfeit of all rights of {holder} on {on} recorded {rights} rights; "
                    f"with this command it would stand for {outstanding}"
                )
            if rights > outstanding:
                what = "exercise" if kind == EXERCISE else "forfeit"
                if is_new:
                    raise OverOutstanding(
                        f"{holder} had {outstanding} rights of {self.issuance} outstanding on "
                        f"{on}; cannot {what} {rights}"
                    )
                raise OverOutstanding(
                    f"with this command the recorded {what} of {rights} rights by {holder} on "
                    f"{on} would exceed the {outstanding} then outstanding"
                )
            outstanding -= rights

    def _is_late(self, holder: str, day: date) -> bool:
        pos = self.positions.get(holder)
        return pos is not None and day.toordinal() < pos["last_ord"]

    def check_departure(self, holder: str, departed_on: date) -> None:
        """Guard for Holder.depart: a departure must fit what this issuance recorded."""
        pos = self.positions.get(holder)
        if pos is None:
            return
        terms = self.terms or {}
        window = terms.get("exercise_window_days_after_departure")
        d = departed_on.toordinal()
        for ordinal, _seq, kind, _rights, _flag in pos["entries"]:
            on = date.fromordinal(ordinal).isoformat()
            if kind == ALLOT and ordinal >= d:
                raise DepartureConflicts(
                    f"{holder} was allotted rights of {self.issuance} on {on}, on or after "
                    f"this departure on {_iso(departed_on)}"
                )
            if kind == EXERCISE and ordinal >= d and window is not None and ordinal > d + window:
                raise DepartureConflicts(
                    f"{holder} exercised rights of {self.issuance} on {on}, more than {window} "
                    f"days after this departure on {_iso(departed_on)}"
                )
            if kind == EXERCISE and ordinal < d and terms.get("exercisable_only_after_departure"):
                raise DepartureConflicts(
                    f"{holder} exercised rights of {self.issuance} on {on}, before this "
                    f"departure on {_iso(departed_on)}, but its terms allow exercise only after"
                )

    # ------------------------------------------------------------------ terms
    def set_terms(self, terms: dict[str, Any], command_id: str, actor: str, reason: str) -> None:
        """Fix the remaining terms (once, after the resolution, within max_rights)."""
        if self.terms is not None:
            raise TermsAlreadySet(
                f"the terms of {self.issuance} were set on {_iso(self.terms['decided_on'])}"
            )
        self.check_not_before_resolution(terms["decided_on"], "terms decided on")
        self.check_not_before_resolution(terms["allotment_date"], "allotment date")
        self.check_not_before_resolution(terms["exercise_from"], "exercise period starting")
        if terms["exercise_from"] > terms["exercise_to"]:
            raise ExercisePeriodInverted(
                f"exercise_from {_iso(terms['exercise_from'])} is after exercise_to "
                f"{_iso(terms['exercise_to'])}"
            )
        if self.max_rights is not None and terms["rights"] > self.max_rights:
            raise OverMaxRights(
                f"{terms['rights']} rights exceed the {self.max_rights} the resolution allows"
            )
        self._terms_set(issuance=self.issuance, **terms, command_id=command_id, actor=actor, reason=reason)

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
        command_id: str,
        actor: str,
        reason: str,
    ) -> None:
        self.terms = {
            "decided_on": decided_on,
            "rights": rights,
            "shares_per_right": shares_per_right,
            "share_class": share_class,
            "price_per_right": price_per_right,
            "currency": currency,
            "exercise_price_per_share": exercise_price_per_share,
            "allotment_date": allotment_date,
            "exercise_from": exercise_from,
            "exercise_to": exercise_to,
            "exercisable_only_after_departure": exercisable_only_after_departure,
            "exercise_window_days_after_departure": exercise_window_days_after_departure,
        }

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
    ) -> None:
        """Allot rights to a holder; the amount payable is rights x price per right."""
        terms = self.require_terms()
        self.check_not_expired("allotment")
        self.check_not_before_resolution(allotted_on, "allotment on")
        if allotted_on < terms["allotment_date"] or allotted_on < terms["decided_on"]:
            raise BeforeAllotmentDate(
                f"allotment on {_iso(allotted_on)} is before the allotment date "
                f"{_iso(terms['allotment_date'])} of the terms"
            )
        if self.allotted_total + rights > terms["rights"]:
            raise OverTerms(
                f"allotting {rights} rights would bring {self.issuance} to "
                f"{self.allotted_total + rights}, over the {terms['rights']} of its terms"
            )
        pos = self.positions.get(holder)
        if pos is not None and pos["group"] != group:
            raise GroupChanged(
                f"{holder} holds rights of {self.issuance} as {pos['group']!r}, not {group!r}"
            )
        if departed_on is not None and allotted_on >= departed_on:
            raise AfterDeparture(
                f"{holder} left office on {_iso(departed_on)}; no allotment on or after it"
            )
        if self._is_late(holder, allotted_on):
            self.check_timeline(holder, [allotted_on.toordinal(), self.version + 1, ALLOT, rights, 0])
        amount = rights * terms["price_per_right"] if payment != "gratis" else Decimal(0)
        self._allotted(
            issuance=self.issuance,
            holder=holder,
            name=name,
            group=group,
            rights=rights,
            allotted_on=allotted_on,
            payment=payment,
            amount=amount,
            currency=terms["currency"],
            command_id=command_id,
            actor=actor,
            reason=reason,
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
    ) -> None:
        pos = self.positions.get(holder)
        if pos is None:
            pos = self.positions[holder] = {
                "group": group,
                "name": name,
                "allotted": 0,
                "exercised": 0,
                "forfeited": 0,
                "expired": 0,
                "last_ord": 0,
                "entries": [],
            }
        pos["name"] = name
        pos["allotted"] += rights
        self.allotted_total += rights
        self._add_entry(pos, allotted_on, ALLOT, rights, 0)

    def _add_entry(self, pos: dict[str, Any], day: date, kind: str, rights: int, flag: int) -> None:
        ordinal = day.toordinal()
        pos["entries"].append([ordinal, self.version + 1, kind, rights, flag])
        pos["last_ord"] = max(pos["last_ord"], ordinal)
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
    ) -> None:
        """Turn rights into shares: floor(rights x shares per right), paying the exercise price."""
        terms = self.require_terms()
        pos = self.position(holder)
        self.check_not_expired("exercise")
        if not terms["exercise_from"] <= exercised_on <= terms["exercise_to"]:
            raise OutsideExercisePeriod(
                f"exercise on {_iso(exercised_on)} is outside the exercise period "
                f"{_iso(terms['exercise_from'])}..{_iso(terms['exercise_to'])}"
            )
        if departed_on is not None and exercised_on >= departed_on:
            window = terms["exercise_window_days_after_departure"]
            if window is not None and exercised_on > departed_on + timedelta(days=window):
                raise WindowClosed(
                    f"{holder} left office on {_iso(departed_on)}; the {window}-day window "
                    f"closed on {_iso(departed_on + timedelta(days=window))}"
                )
        elif terms["exercisable_only_after_departure"]:
            when = f"only left office on {_iso(departed_on)}" if departed_on else "has not left office"
            raise BeforeDeparture(
                f"{holder} {when}; rights of {self.issuance} are exercisable only after departure"
            )
        if self._is_late(holder, exercised_on):
            self.check_timeline(holder, [exercised_on.toordinal(), self.version + 1, EXERCISE, rights, 0])
        elif rights > self.outstanding(pos):
            raise OverOutstanding(
                f"{holder} has {self.outstanding(pos)} rights of {self.issuance} outstanding; "
                f"cannot exercise {rights}"
            )
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
            exercise_price_paid=shares * price,
            currency=terms["currency"],
            command_id=command_id,
            actor=actor,
            reason=reason,
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
    ) -> None:
        pos = self.positions[holder]
        pos["exercised"] += rights
        self._add_entry(pos, exercised_on, EXERCISE, rights, 0)
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
    ) -> None:
        """Rights lapse unexercised; "all" stands for what is outstanding on that date."""
        self.require_terms()
        pos = self.position(holder)
        self.check_not_expired("forfeiture")
        self.check_not_before_resolution(forfeited_on, "forfeiture on")
        late = self._is_late(holder, forfeited_on)
        if rights == "all":
            n = self.outstanding_on(holder, forfeited_on) if late else self.outstanding(pos)
            if n == 0:
                raise NothingOutstanding(
                    f"{holder} has no rights of {self.issuance} outstanding on "
                    f"{_iso(forfeited_on)} to forfeit"
                )
            every = 1
        else:
            n, every = int(rights), 0
        if late:
            self.check_timeline(holder, [forfeited_on.toordinal(), self.version + 1, FORFEIT, n, every])
        elif n > self.outstanding(pos):
            raise OverOutstanding(
                f"{holder} has {self.outstanding(pos)} rights of {self.issuance} outstanding; "
                f"cannot forfeit {n}"
            )
        self._forfeited(
            issuance=self.issuance,
            holder=holder,
            rights=n,
            all_outstanding=bool(every),
            forfeited_on=forfeited_on,
            command_id=command_id,
            actor=actor,
            reason=reason,
        )

    def outstanding_on(self, holder: str, day: date) -> int:
        """Rights of `holder` outstanding at the end of `day`, from the timeline."""
        pos = self.positions.get(holder)
        if pos is None:
            return 0
        d = day.toordinal()
        n = 0
        for ordinal, _seq, kind, rights, _flag in pos["entries"]:
            if ordinal <= d:
                n += rights if kind == ALLOT else -rights
        return n

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
    ) -> None:
        pos = self.positions[holder]
        pos["forfeited"] += rights
        self._add_entry(pos, forfeited_on, FORFEIT, rights, 1 if all_outstanding else 0)

    # ------------------------------------------------------------------ adjustment
    def adjust(
        self, ratio: Fraction, effective_on: date, command_id: str, actor: str, reason: str
    ) -> None:
        """Split or consolidation: shares per right x ratio, exercise price / ratio (rounded up)."""
        terms = self.require_terms()
        self.check_not_expired("adjustment")
        self.check_not_before_resolution(effective_on, "adjustment effective on")
        if effective_on <= terms["decided_on"]:
            # On its date an adjustment applies before anything else, the terms included: it
            # would adjust terms that did not exist yet.
            raise TermsNotSet(
                f"an adjustment effective {_iso(effective_on)} would apply before the terms of "
                f"{self.issuance} decided on {_iso(terms['decided_on'])}"
            )
        if ratio <= 0:
            raise NonPositiveRatio(f"an adjustment ratio must be positive, not {ratio}")
        self.check_not_before_resolution(effective_on, "adjustment effective on")
        if self.last_exercise_ord >= effective_on.toordinal():
            raise ChangesRecordedFigure(
                f"an exercise of {self.issuance} is recorded on or after "
                f"{_iso(effective_on)}; an adjustment effective then would change the shares "
                "it delivered"
            )
        self._adjusted(
            issuance=self.issuance,
            ratio=fraction_str(ratio),
            effective_on=effective_on,
            command_id=command_id,
            actor=actor,
            reason=reason,
        )

    @event("SharesAdjusted")
    def _adjusted(
        self, issuance: str, ratio: str, effective_on: date, command_id: str, actor: str, reason: str
    ) -> None:
        self.adjustments.append([effective_on.toordinal(), ratio])
        self.adjustments.sort(key=lambda a: a[0])  # stable: same date keeps record order

    # ------------------------------------------------------------------ expiry
    def expire(self, expired_on: date, command_id: str, actor: str, reason: str) -> None:
        """All rights still outstanding lapse (only once the exercise period has passed)."""
        terms = self.require_terms()
        self.check_not_expired("second expiry")
        if expired_on <= terms["exercise_to"]:
            raise ExpiryTooEarly(
                f"expiry on {_iso(expired_on)} is not after the end of the exercise period "
                f"{_iso(terms['exercise_to'])}"
            )
        if self.last_entry_ord > expired_on.toordinal():
            raise ExpiryBeforeRecorded(
                f"events of {self.issuance} are recorded after {_iso(expired_on)} "
                f"(latest {date.fromordinal(self.last_entry_ord).isoformat()})"
            )
        expired = {
            holder: self.outstanding(pos)
            for holder, pos in sorted(self.positions.items())
            if self.outstanding(pos) > 0
        }
        self._expired(
            issuance=self.issuance,
            expired_on=expired_on, expired=expired, command_id=command_id, actor=actor, reason=reason
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
    ) -> None:
        self.expired_on = expired_on
        for holder, rights in expired.items():
            self.positions[holder]["expired"] += rights

