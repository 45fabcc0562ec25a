"""The projections' fast read path decodes the log exactly as eventsourcing's mapper does.

The projector reads (position, type, fields) with its own query and JSON hook instead of
building domain events (see `LogReader.stored_fields`); these tests hold it to the mapper's answer
for every event type, on both stores, so the two ways of reading the log cannot drift apart.
"""

from __future__ import annotations

from typing import Any

import pytest

import factories as f
from equity_ledger.bootstrap import Books, open_books
from equity_ledger.ledger.service import LedgerService
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.decoding import BASIC_DECODERS, fast_loads
from equity_ledger.ledger.log import make_mapper
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


def test_upkeep_reads_the_log_like_the_mapper_without_the_event_store(store_url: str) -> None:
    # `projections rebuild|catch-up` read through a LogReader with no mapper: its own decoders
    # of the basic values must give what the application's transcoder gives.
    ledger = _applied(store_url)
    try:
        by_mapper = [(p, event_type(e), _public(vars(e))) for p, e in ledger.uow.log.iter_events()]
    finally:
        ledger.close()
    with open_books(store_url) as books:
        projector = books.upkeep
        lean = [(p, kind, vars(ns)) for p, kind, ns in projector.log.stored_fields(1, 10_000)]
        assert projector.log._mapper is None  # the event store's mapper was never needed
        assert lean == by_mapper
        assert projector.rebuild() == len(lean)


def test_basic_decoders_are_the_transcoders_own(sqlite_url: str) -> None:
    transcoder = make_mapper().transcoder
    samples = {
        "uuid_hex": ["0123456789abcdef0123456789abcdef", "not-a-uuid", ""],
        "decimal_str": ["647000", "-0.0010", "1E+3", "NaN", "x", ""],
        "datetime_iso": ["2013-07-29T10:00:00+09:00", "2013-07-29", "nope"],
        "date_iso": ["2013-07-29", "2013-02-30", "20130729", ""],
    }
    assert set(BASIC_DECODERS) <= set(transcoder.names)
    for name, values in samples.items():
        for value in values:
            assert _outcome(BASIC_DECODERS[name], value) == _outcome(transcoder.names[name].decode, value), (name, value)
    lean = fast_loads(None, lambda name: None)
    with pytest.raises(TypeError, match="no transcoding named 'terms'"):
        lean(b'{"a":{"_type_":"terms","_data_":{}}}')


def _outcome(decode: Any, value: str) -> tuple[str, Any]:
    try:
        return "ok", repr(decode(value))  # repr: Decimal("NaN") is not equal to itself
    except Exception as e:  # noqa: BLE001  the same kind of refusal is part of being equal
        return "error", type(e).__name__
