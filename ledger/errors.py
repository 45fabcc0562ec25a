"""Typed errors of the ledger.

Every error a user can provoke is a :class:`LedgerError`: the CLI prints it as one line and
exits 1, with no traceback. Domain refusals are :class:`Refused` subclasses, one per rule of
the contract, each with a short ``rule`` slug that appears in the message.
"""

from __future__ import annotations


class LedgerError(Exception):
    """An expected error: shown to the user as one line, exit code 1."""

    rule = "error"


class BadCommand(LedgerError):
    """A command line that is not a well-formed command (JSON, fields, types, values)."""

    rule = "bad-input"


class StoreUnavailable(LedgerError):
    """The store cannot be opened or written (message names the path or URL, no password)."""

    rule = "store"


class Refused(LedgerError):
    """A well-formed command that a rule of the domain refuses."""

    rule = "refused"


# --- unknown things (bad input in the contract's words, but found by the domain) ---------------


class UnknownIssuance(Refused):
    rule = "unknown-issuance"


class UnknownHolder(Refused):
    rule = "unknown-holder"


class IdReused(Refused):
    """The same command id was applied before with different content."""

    rule = "id-reused-with-other-content"


# --- resolution and issuer ----------------------------------------------------------------------


class ResolutionExists(Refused):
    rule = "one-resolution-per-issuance"


class OtherIssuer(Refused):
    rule = "one-issuer-per-store"


class BeforeResolution(Refused):
    rule = "nothing-before-resolution"


# --- terms --------------------------------------------------------------------------------------


class TermsAlreadySet(Refused):
    rule = "terms-only-once"


class TermsNotSet(Refused):
    rule = "terms-required"


class ExercisePeriodInverted(Refused):
    rule = "exercise-from-after-exercise-to"


class OverMaxRights(Refused):
    rule = "terms-over-max-rights"


# --- allotment ----------------------------------------------------------------------------------


class BeforeAllotmentDate(Refused):
    rule = "allotment-before-allotment-date"


class OverTerms(Refused):
    rule = "allotment-over-terms"


class GroupChanged(Refused):
    rule = "one-group-per-holder"


class AfterDeparture(Refused):
    rule = "allotment-after-departure"


# --- exercise, forfeiture, expiry ---------------------------------------------------------------


class OverOutstanding(Refused):
    rule = "over-outstanding"


class NothingOutstanding(Refused):
    rule = "nothing-outstanding"


class OutsideExercisePeriod(Refused):
    rule = "outside-exercise-period"


class BeforeDeparture(Refused):
    rule = "exercisable-only-after-departure"


class WindowClosed(Refused):
    rule = "departure-window-closed"


class IssuanceExpired(Refused):
    rule = "issuance-expired"


class ExpiryTooEarly(Refused):
    rule = "expiry-before-end-of-exercise-period"


class ExpiryBeforeRecorded(Refused):
    rule = "expiry-before-recorded-events"


# --- holders, adjustments, late entries ---------------------------------------------------------


class AlreadyDeparted(Refused):
    rule = "one-departure-per-holder"


class DepartureConflicts(Refused):
    rule = "departure-conflicts-with-recorded-events"


class NonPositiveRatio(Refused):
    rule = "ratio-must-be-positive"


class ChangesRecordedFigure(Refused):
    rule = "would-change-recorded-figure"


# --- limits -------------------------------------------------------------------------------------


class QuantityOutOfRange(BadCommand, Refused):
    """A quantity or a figure derived from it would not fit the store's 64-bit integers.

    Both bad input (a field of a line out of range, refused while parsing) and a refusal (a
    figure the domain derives from valid fields, such as rights x shares per right, would not
    fit): one class, one rule slug, wherever the limit is met.
    """

    rule = "quantity-out-of-range"


# --- personal data ------------------------------------------------------------------------------


class DetailsErased(Refused):
    """A holder's personal details were erased: nothing more is recorded for them."""

    rule = "details-erased"


class AlreadyErased(Refused):
    rule = "erase-once"


class AddressTooLong(Refused):
    """An address over the limit, found on the sealed address (so the audit's replay, which
    never sees the plaintext, checks it too)."""

    rule = "address-too-long"


# --- vesting ------------------------------------------------------------------------------------


class ExerciseOfUnvested(Refused):
    """An exercise of more rights than the holder had vested (and outstanding) at its date."""

    rule = "exercise-of-unvested"


class UnknownVestingEvent(Refused):
    """A vesting event that no on_event tranche of the issuance's terms names."""

    rule = "unknown-vesting-event"


class VestingEventRecorded(Refused):
    """A second record of a vesting event for the same issuance and holder (or all holders)."""

    rule = "one-vesting-event-record"
