"""The apply path's shortcuts give exactly what the general code gives.

The unit of work encodes events value by value (``transcodings.fast_encoder``) instead of
through the mapper, the SQLite recorder inserts a batch with one ``executemany`` and derives the
positions, and the parser builds commands without the frozen dataclass's ``__init__``. The
chain hashes the stored bytes, so the encoding must be the transcoder's byte for byte; the
positions must be the rows' own.
"""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

from equity_ledger.bootstrap import open_books
from equity_ledger.ledger.commands import Command, parse_line
from equity_ledger.ledger.log import make_mapper
from equity_ledger.ledger.transcodings import fast_encoder

import factories as f

def _every_kind_of_event() -> list[dict]:
    """Commands that make every event type, with vesting terms, late entries, an "all"
    forfeit, a split, details and an erasure, and text that JSON must escape."""
    vesting = f.schedule({"portion": "1/2", "after_months": 12}, {"portion": "1/2", "on_event": "ipo"})
    return [
        *f.setup("v1", vesting=vesting, fair_value_per_right="12.5"),
        f.allot("h1", 10, "v1", name='山田 "太郎"\\\n\t\u2028', vesting_start="2020-02-01"),
        f.allot("h2", 5, "v1", payment="cash"),
        f.allot("h3", 3, "v1", payment="gratis", allotted_on="2020-03-01"),
        f.allot("h3", 2, "v1", allotted_on="2020-02-15"),  # a late entry for h3
        f.vest("ipo", "2021-03-01", "v1", holder="h2", portion_met="1/2"),
        f.exercise("h1", 2, "2021-03-02", "v1", share_price="1234.5678"),
        f.forfeit("h3", "all", "2021-04-01", "v1"),
        f.adjust("3/2", "2021-05-01", "v1"),
        f.details("h1", "1-1 Chiyoda\u3000東京"),
        f.erase("h1"),
        f.depart("h2", "2021-06-01"),
        f.expire("2040-02-02", "v1"),
    ]


def _apply(url: str, tmp_path: Path, commands: list[dict]) -> None:
    path = tmp_path / "cmds.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        for c in commands:
            out.write(json.dumps(c, ensure_ascii=False) + "\n")
    from equity_ledger.ledger.commands import read_commands

    with open_books(url) as books, open(path, "rb") as src:
        books.apply(read_commands(src))


def test_fast_encoder_writes_the_transcoders_bytes(store_url: str, tmp_path: Path) -> None:
    _apply(store_url, tmp_path, _every_kind_of_event())
    mapper = make_mapper()
    encode = fast_encoder(mapper)
    kinds = set()
    with open_books(store_url) as books, books.reading() as view:
        rows = list(view.log.iter_rows())
        for row in rows:
            event = view.log.decode(row)
            kinds.add(type(event).__qualname__)
            general, fast = mapper.to_stored_event(event), encode(event)
            assert fast.state == general.state == row.state, row.position
            assert (fast.topic, fast.originator_id, fast.originator_version) == (
                general.topic, general.originator_id, general.originator_version)
        positions = [r.position for r in rows]
        assert positions == sorted(positions) and len(set(positions)) == len(positions)
        # the chain and every rule still check on what the fast paths stored
        from equity_ledger.ledger.audit import verify_log

        assert verify_log(view.log).finding is None
    assert {"Issuance.RightsAllotted", "Issuance.TermsSet", "Holder.DetailsRecorded",
            "Holder.DetailsErased", "Issuance.SharesAdjusted", "Issuance.RightsExpired"} <= kinds


def test_fast_encoder_on_values_it_passes_through() -> None:
    """Values the event fields could hold beyond the usual ones go through the transcoder."""
    from eventsourcing.domain import DomainEvent

    mapper = make_mapper()
    encode = fast_encoder(mapper)

    class Odd(DomainEvent):
        pass

    event = Odd(originator_id=uuid4(), originator_version=3, timestamp=datetime.now(timezone.utc))
    extra = {"flag": True, "none": None, "big": 2**70, "neg": -5, "list": [date(2020, 1, 2), Decimal("1.50")],
             "nested": {"b": "x", "a": [1, {"k": uuid4()}]}, "text": "\x7f\u0085 é \ud7ff", "empty": ""}
    object.__setattr__(event, "__dict__", {**event.__dict__, **extra})
    assert encode(event).state == mapper.to_stored_event(event).state


def test_parsed_command_equals_the_dataclass_built_one() -> None:
    cmd = parse_line(json.dumps(f.allot("h9", 3), ensure_ascii=False), 7, actor="me")
    built = Command(**{fl.name: getattr(cmd, fl.name) for fl in fields(Command)})
    assert cmd == built and type(cmd) is Command
    assert cmd.where == built.where and cmd.raw == built.raw
    try:
        cmd.id = "other"  # still frozen
    except AttributeError:
        pass
    else:  # pragma: no cover
        raise AssertionError("a parsed command must be immutable")
