"""The row writes a batch of events makes in the read models, planned without any SQL.

:func:`plan` takes the events' effects (:func:`effects_of_batch`) and the latest row of every
holding they touch, and returns a :class:`Plan`: holding rows to insert or update, late entries
whose holding rows must be rewritten from their date on, issuance rows, departures, holding
keys, allotment and adjustment rows, and the issuances whose terms in force must be
recomputed. :mod:`.writer` executes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any, Iterable, Union

from .errors import ProjectionFailed
from .fold import (
    Adjustment,
    Allotment,
    Departure,
    DetailsErasure,
    Exercise,
    HolderDetails,
    HoldingDelta,
    IssuanceInfo,
    add_delta,
    effects_of,
    new_row,
)

Row = dict[str, Any]
Key = tuple[str, str]  # (issuance, holder): one holding


@dataclass(frozen=True)
class InsertHoldings:
    rows: list[Row]


@dataclass(frozen=True)
class UpdateHoldings:
    rows: list[Row]  # by (issuance, holder, effective_on)


@dataclass(frozen=True)
class Backdate:
    """A late entry: add `delta` to its holding's row of its date (made from the row before if
    missing) and to every later row, so the rows stay cumulative."""

    delta: HoldingDelta


@dataclass(frozen=True)
class UpsertIssuance:
    issuance: str
    columns: dict[str, Any]


@dataclass(frozen=True)
class InsertDeparture:
    holder: str
    departed_on: date


@dataclass(frozen=True)
class InsertDetails:
    details: HolderDetails


@dataclass(frozen=True)
class EraseDetails:
    erasure: DetailsErasure


Step = Union[InsertHoldings, UpdateHoldings, Backdate, UpsertIssuance, InsertDeparture, InsertDetails,
             EraseDetails]


@dataclass
class Plan:
    """Writes in order: `steps` first (in event order), then the keys of new holdings, the
    allotment and adjustment rows, then the terms in force of `share_terms` issuances, then
    the exercise rows."""

    steps: list[Step] = field(default_factory=list)
    new_keys: list[Key] = field(default_factory=list)
    allotments: list[Allotment] = field(default_factory=list)
    adjustments: list[Adjustment] = field(default_factory=list)
    share_terms: list[str] = field(default_factory=list)
    exercises: list[Exercise] = field(default_factory=list)


Folded = list[tuple[int, str, list[Any]]]  # (log position, event type, its effects)


def effects_of_batch(batch: Iterable[tuple[int, str, Any]]) -> Folded:
    """The effects of each (position, event type, fields); an event whose effects cannot be
    made is a :class:`ProjectionFailed` naming it."""
    out: Folded = []
    for position, kind, fields in batch:
        try:
            out.append((position, kind, effects_of(position, kind, fields)))
        except Exception as e:
            raise ProjectionFailed(position, kind, e) from None
    return out


def wanted_holdings(folded: Folded, known: Iterable[Key] | dict[Key, Any]) -> dict[str, set[str]]:
    """{issuance: holders} of the holdings these effects touch whose latest row is not known."""
    wanted: dict[str, set[str]] = {}
    for _position, _kind, effs in folded:
        for eff in effs:
            if isinstance(eff, HoldingDelta) and (eff.issuance, eff.holder) not in known:
                wanted.setdefault(eff.issuance, set()).add(eff.holder)
    return wanted


def plan(folded: Folded, latest: dict[Key, Row]) -> Plan:
    """The writes that fold these effects into the read models.

    `latest` holds the latest stored row of every touched holding that has one (a touched key
    missing from it is a new holding); it is updated in place to the rows after the plan, so a
    caller may keep it as its cache for the next batch.
    """
    out = Plan()
    inserts: dict[tuple[str, str, date], Row] = {}
    updates: dict[tuple[str, str, date], Row] = {}
    retime: set[str] = set()

    def flush(copy: bool) -> None:
        # Rows planned before a late entry are copied: the late entry changes the same dicts
        # in `latest`, and the writer must see them as they were at this point.
        if inserts:
            out.steps.append(InsertHoldings([dict(r) for r in inserts.values()] if copy else list(inserts.values())))
            inserts.clear()
        if updates:
            out.steps.append(UpdateHoldings([dict(r) for r in updates.values()] if copy else list(updates.values())))
            updates.clear()

    for position, kind, effs in folded:
        try:
            for eff in effs:
                if isinstance(eff, HoldingDelta):
                    key = (eff.issuance, eff.holder)
                    row = latest.get(key)
                    if row is None:
                        out.new_keys.append(key)
                    if row is None or eff.effective_on > row["effective_on"]:
                        row = dict(row) if row else new_row(eff)
                        row["effective_on"] = eff.effective_on
                        add_delta(row, eff)
                        latest.pop(key, None)  # to the end: the cache drops from the front
                        latest[key] = row
                        inserts[(*key, eff.effective_on)] = row
                    elif eff.effective_on == row["effective_on"]:
                        add_delta(row, eff)
                        pk = (*key, eff.effective_on)
                        if pk not in inserts:
                            updates[pk] = row
                    else:
                        # A late entry: the latest row is one of the rows it rewrites.
                        flush(copy=True)
                        out.steps.append(Backdate(eff))
                        add_delta(row, eff)
                elif isinstance(eff, Allotment):
                    out.allotments.append(eff)
                elif isinstance(eff, IssuanceInfo):
                    out.steps.append(UpsertIssuance(eff.issuance, dict(eff.columns)))
                    if "shares_per_right" in eff.columns:
                        retime.add(eff.issuance)
                elif isinstance(eff, Adjustment):
                    out.adjustments.append(eff)
                    retime.add(eff.issuance)
                elif isinstance(eff, Departure):
                    out.steps.append(InsertDeparture(eff.holder, eff.departed_on))
                elif isinstance(eff, HolderDetails):
                    out.steps.append(InsertDetails(eff))
                elif isinstance(eff, DetailsErasure):
                    out.steps.append(EraseDetails(eff))
                elif isinstance(eff, Exercise):
                    out.exercises.append(eff)
        except Exception as e:
            raise ProjectionFailed(position, kind, e) from None
    flush(copy=False)
    out.share_terms = sorted(retime)
    return out
