"""The audit trail: every stored event, in store order, as plain JSON-ready objects."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Iterator

from .fold import event_type

# Event class -> (history type, the field that is its effective date).
EVENT_TYPES = {
    "Issuer.Registered": ("issuer_registered", "registered_on"),
    "Issuance.ResolutionPassed": ("resolution_passed", "resolved_on"),
    "Issuance.TermsSet": ("terms_set", "decided_on"),
    "Issuance.RightsAllotted": ("rights_allotted", "allotted_on"),
    "Issuance.RightsExercised": ("rights_exercised", "exercised_on"),
    "Issuance.RightsForfeited": ("rights_forfeited", "forfeited_on"),
    "Issuance.SharesAdjusted": ("shares_adjusted", "effective_on"),
    "Issuance.RightsExpired": ("rights_expired", "expired_on"),
    "Holder.Registered": ("holder_registered", "joined_on"),
    "Holder.JoinedIssuance": ("holder_joined_issuance", "joined_on"),
    "Holder.Departed": ("holder_departed", "departed_on"),
    "Holder.DetailsRecorded": ("holder_details_recorded", "effective_on"),
    "Holder.DetailsErased": ("holder_details_erased", None),
    "Issuance.UnvestedLapsed": ("unvested_lapsed", "lapsed_on"),
    "Issuance.VestingEventRecorded": ("vesting_event_recorded", "occurred_on"),
}
_INTERNAL = {"originator_id", "originator_version", "timestamp", "originator_topic"}
_META = ("command_id", "actor", "reason", "command_digest")


def _json_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.isoformat()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")
    if isinstance(v, dict):
        return {k: _json_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    return v


def history_row(position: int, event: Any) -> dict[str, Any]:
    """One event as the contract's history object (common fields first, then its own)."""
    qual = type(event).__qualname__
    kind, date_field = EVENT_TYPES.get(qual, (event_type(event), None))
    own = {k: v for k, v in event.__dict__.items() if k not in _INTERNAL and k not in _META}
    row: dict[str, Any] = {
        "position": position,
        "type": kind,
        "effective_on": _json_value(own.get(date_field)) if date_field else None,
        "recorded_at": _json_value(event.timestamp),
        "command_id": event.command_id,
        "actor": event.actor,
        "reason": event.reason,
        "aggregate": str(event.originator_id),
        "version": event.originator_version,
    }
    if "issuance" in own:
        row["issuance"] = own["issuance"]
    if "holder" in own:
        row["holder"] = own["holder"]
    for k, v in own.items():
        row.setdefault(k, _json_value(v))
    return row


def history_rows(ledger: Any, issuance: str | None = None, holder: str | None = None) -> Iterator[dict[str, Any]]:
    """Stream the stored events (store order), optionally of one issuance and/or holder.

    An issuance's events include the departures of its holders (a departure opens their
    exercise windows); a holder's include an expiry that made their rights lapse.

    With a filter, the events up to the projections' tracking position are found through the
    history index (:mod:`.history_index`) and read by position, so the answer costs its own
    events, not the log's; the events after it (projections lagging the log) are scanned and
    filtered here, as every event is when the index cannot be read. `ledger` is a
    :class:`~equity_ledger.ledger.log.LogReader`; its connection (when it reads through one)
    is the read transaction the index is read in, so both describe one state of the store.
    """
    upto = indexed_position(ledger) if issuance is not None or holder is not None else 0
    holders: set[str] = set()
    if issuance is not None:
        # A first pass over what the index does not cover: a departure may be stored before a
        # late allotment, dated earlier, that makes its holder join the issuance.
        holders = _holders_of(ledger, issuance, start=upto + 1)
    if upto:
        from . import history_index as ix

        conn = ledger.source
        if issuance is not None:
            positions = ix.issuance_positions(conn, issuance, also_joined=holders)
            holders |= ix.joined_holders(conn, issuance) if ledger.head_position() > upto else set()
            if holder is not None:
                mine = set(ix.holder_positions(conn, holder))
                positions = [p for p in positions if p in mine]
        else:
            positions = ix.holder_positions(conn, holder)
        for row in ledger.rows_at(positions):
            yield history_row(row.position, ledger.decode(row))
    for position, event in ledger.iter_events(start=upto + 1):
        if _shown(event, issuance, holder, holders):
            yield history_row(position, event)


def _shown(event: Any, issuance: str | None, holder: str | None, holders: set[str]) -> bool:
    """Whether the history filtered by `issuance` and/or `holder` shows the event (`holders`:
    every holder who ever joined `issuance`)."""
    d = event.__dict__
    if issuance is not None and d.get("issuance") != issuance and not (
        type(event).__qualname__ == "Holder.Departed" and d.get("holder") in holders
    ):
        return False
    if holder is not None and d.get("holder") != holder and holder not in d.get("expired", {}):
        return False
    return True


def _holders_of(ledger: Any, issuance: str, start: int = 1) -> set[str]:
    """Every holder who joined `issuance` in the events from `start` on (a first pass: a
    departure may be stored before a late allotment dated earlier)."""
    return {
        event.__dict__["holder"]
        for _position, event in ledger.iter_events(start=start)
        if type(event).__qualname__ in ("Holder.Registered", "Holder.JoinedIssuance")
        and event.__dict__.get("issuance") == issuance
    }


def indexed_position(ledger: Any) -> int:
    """The log position up to which the history index describes the events of `ledger`'s
    store, read in `ledger`'s own transaction; 0 when it has no usable index (no projections,
    projections of another layout, or a reader not bound to one connection)."""
    from sqlalchemy.engine import Connection

    from . import schema, tracking

    conn = getattr(ledger, "source", None)
    if not isinstance(conn, Connection) or not hasattr(ledger, "rows_at"):
        return 0
    state = tracking.read(conn)
    if state is None or state.schema_version != schema.SCHEMA_VERSION:
        return 0
    return state.position


def check_known(ledger: Any, issuance: str | None = None, holder: str | None = None) -> None:
    """UnknownIssuance / UnknownHolder when a filter names something never recorded (a typo
    must not look like an empty history)."""
    from ..ledger import ids
    from ..ledger.errors import UnknownHolder, UnknownIssuance

    if issuance is not None and ledger.position_of(ids.issuance_id(issuance), 1) is None:
        raise UnknownIssuance(f"issuance {issuance} is not recorded")
    if holder is not None and ledger.position_of(ids.holder_id(holder), 1) is None:
        raise UnknownHolder(f"holder {holder} is not recorded")


_SKIP_IN_FIGURES = {
    "position", "type", "effective_on", "recorded_at", "command_id", "actor", "reason",
    "aggregate", "version", "issuance", "holder",
}


def figures_text(row: dict[str, Any]) -> str:
    """The event's own fields as `key=value` pairs, for the history table."""
    parts = []
    for k, v in row.items():
        if k in _SKIP_IN_FIGURES or v is None:
            continue
        if isinstance(v, dict):
            v = ",".join(f"{a}:{b}" for a, b in v.items()) or "-"
        parts.append(f"{k}={v}")
    return " ".join(parts)
