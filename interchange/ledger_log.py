"""The ledger's facts as the export needs them, read from the log (pure: events in, facts out).

The log is the one source: every stored event, in record order, grouped into the command that
recorded it. Personal details (addresses) are never read. Figures come from the events (shares
delivered, the number an "all" stood for, what lapsed at expiry), never recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable

# Fields of every stored event that are bookkeeping, not facts of the command.
_META = {"originator_id", "originator_version", "originator_topic", "timestamp", "command_id", "actor", "reason",
         "command_digest"}

# Effective date of each event kind: the field that holds it.
_EFFECTIVE = ("resolved_on", "decided_on", "allotted_on", "exercised_on", "forfeited_on",
              "effective_on", "expired_on", "departed_on", "occurred_on")

# The reason the contract gives a lapse of unvested rights at a departure.
LAPSE_REASON = "unvested at departure"


@dataclass
class Fact:
    """One stored event, flattened: its kind (`Issuance.RightsAllotted`), its own fields, the
    command that recorded it and that command's record order (`seq`)."""

    kind: str
    fields: dict[str, Any]
    command_id: str
    actor: str
    reason: str
    seq: int
    position: int

    @property
    def name(self) -> str:
        return self.kind.rsplit(".", 1)[-1]

    @property
    def effective_on(self) -> date | None:
        for key in _EFFECTIVE:
            value = self.fields.get(key)
            if isinstance(value, date):
                return value
        return None


@dataclass
class LedgerFacts:
    """Everything the export writes: the issuer and the facts in record order."""

    issuer: str | None = None
    facts: list[Fact] = field(default_factory=list)

    @property
    def latest(self) -> date | None:
        days = [f.effective_on for f in self.facts if f.effective_on is not None]
        return max(days) if days else None


def read_facts(events: Iterable[tuple[int, Any]], as_of: date | None = None) -> LedgerFacts:
    """The facts of `(position, domain event)` pairs in log order, up to `as_of` (inclusive).

    A command's events share its id; `seq` numbers the commands in record order, which is the
    order a re-import applies them in (it reproduces late entries and same-day order exactly).
    """
    out = LedgerFacts()
    seq = 0
    last_command: str | None = None
    for position, event in events:
        own = {k: v for k, v in vars(event).items() if k not in _META}
        command_id = getattr(event, "command_id", "")
        if command_id != last_command:
            seq += 1
            last_command = command_id
        fact = Fact(type(event).__qualname__, own, command_id, getattr(event, "actor", ""),
                    getattr(event, "reason", ""), seq, position)
        if fact.kind == "Issuer.Registered":
            out.issuer = own.get("issuer")
            continue
        if as_of is not None and fact.effective_on is not None and fact.effective_on > as_of:
            continue
        out.facts.append(fact)
    return out
