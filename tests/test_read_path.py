"""The projections' fast read path decodes the log exactly as eventsourcing's mapper does.

The projector reads (position, type, fields) with its own query and JSON hook instead of
building domain events (see `LogReader.stored_fields`); these tests hold it to the mapper's answer
for every event type, on both stores, so the two ways of reading the log cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest

import factories as f
from equity_ledger.bootstrap import Books
from equity_ledger.ledger.service import LedgerService
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.transcodings import fast_loads
from equity_ledger.projections.fold import event_type

# Every event type the domain emits: registrations, resolution, terms, allotments of each
# payment kind, exercise, forfeit, departure, adjustment, expiry.
HISTORY = f.setup() + [
    f.allot("h1", 10),
    f.allot("h2", 5, payment="cash"),
    f.allot("h3", 3, payment="gratis", name="山田 太郎"),
    f.exercise("h1", 2, on="2021-01-01"),
    f.forfeit("h2", "all", on="2021-02-01"),
    f.depart("h3", on="2021-03-01"),
    f.adjust("2", on="2022-01-01"),
    f.expire(),
]


def _applied(url: str) -> LedgerService:
    ledger = Books(url).service
    ledger.apply(parse_command(d, line=i) for i, d in enumerate(HISTORY, 1))
    return ledger


def _public(fields: dict[str, Any]) -> dict[str, Any]:
    # The mapper adds the aggregate's id and version, which a fold never reads.
    return {k: v for k, v in fields.items() if k not in ("originator_id", "originator_version")}


def test_stored_fields_equal_the_mappers_events(store_url: str) -> None:
    ledger = _applied(store_url)
    try:
        by_mapper = [(p, event_type(e), _public(vars(e))) for p, e in ledger.uow.log.iter_events()]
        fast = [(p, kind, vars(ns)) for p, kind, ns in ledger.uow.log.stored_fields(1, 10_000)]
        assert fast == by_mapper
        kinds = {k for _, k, _ in fast}
        assert {"RightsAllotted", "RightsExercised", "RightsForfeited", "Departed",
                "SharesAdjusted", "RightsExpired", "TermsSet", "ResolutionPassed"} <= kinds
        # Paging: from a middle position, a limited page.
        page = [(p, kind, vars(ns)) for p, kind, ns in ledger.uow.log.stored_fields(3, 2)]
        assert page == fast[2:4]
    finally:
        ledger.close()


def test_fast_loads_refuses_an_unknown_transcoding(sqlite_url: str) -> None:
    ledger = Books(sqlite_url).service
    try:
        loads = fast_loads(ledger.uow.app.mapper.transcoder)
        assert loads(b'{"a":{"_type_":"date_iso","_data_":"2013-07-29"}}')["a"].isoformat() == "2013-07-29"
        with pytest.raises(TypeError, match="no transcoding named 'martian'"):
            loads(b'{"a":{"_type_":"martian","_data_":"x"}}')
    finally:
        ledger.close()
