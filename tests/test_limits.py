"""Limits and robustness of the domain layer: 64-bit figures, the command reader, snapshots.

* Every quantity and money figure fits the store's signed 64-bit integers, or its line is
  refused with the rule ``quantity-out-of-range`` (the domain's own limits are in the rule table
  of test_domain_rules.py).
* Date arithmetic never overflows (a departure window ending beyond date.max).
* ``read_commands`` reads a line with bounded memory and names every bad line in one
  BadCommand.
* A snapshot of an aggregate, stored and loaded, gives the same aggregate (typed state
  included), and every event carries the command's digest.
"""

from __future__ import annotations

import inspect
import io
import json
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import factories as f
from equity_ledger.ledger import errors as E
from equity_ledger.bootstrap import Books
from equity_ledger.ledger.service import LedgerService as Ledger
from equity_ledger.ledger.commands import MAX_LINE_BYTES, parse_command, parse_line, read_commands
from equity_ledger.ledger.issuance import EntryKind, HolderAccount, Issuance, TimelineEntry
from equity_ledger.ledger.terms import TERMS_FIELDS, Terms

MAX = 2**63 - 1


def _with_raw(d: dict[str, Any], field: str, raw: str) -> str:
    """The line of `d` with `field`'s value written as raw JSON text."""
    return json.dumps({**d, field: "__RAW__"}, ensure_ascii=False).replace('"__RAW__"', raw)


# ---------------------------------------------------------------------------------------------
# Parse: quantities, money and ratios that fit are accepted, one more is refused


ACCEPTED = [
    ("rights-max", f.allot("h1", MAX)),
    ("max-rights-max", f.resolution("s1", max_rights=MAX)),
    ("window-max", f.terms(exercise_window_days_after_departure=MAX)),
    ("money-19-digits", f.terms(price_per_right=str(MAX))),
    ("money-18-decimals", f.terms(price_per_right="0.922337203685477580")),
    ("money-leading-zeros", f.terms(price_per_right="000000000000000000000000001")),
    ("ratio-max", f.adjust(str(MAX))),
    ("ratio-max-fraction", f.adjust(f"{MAX}/{MAX - 1}")),
    ("ratio-long-but-small", f.adjust("1000000000000000000/1000000000000000000")),
]

REFUSED = [
    ("rights-max+1", f.allot("h1", MAX + 1)),
    ("max-rights-max+1", f.resolution("s1", max_rights=MAX + 1)),
    ("window-max+1", f.terms(exercise_window_days_after_departure=MAX + 1)),
    ("shares-per-right-10**20", f.terms(shares_per_right=10**20)),
    ("money-max+1", f.terms(price_per_right=str(MAX + 1))),
    ("money-19-decimals", f.terms(price_per_right="0.0000000000000000001")),
    ("money-28-digits", f.terms(price_per_right="1234567890.123456789012345678")),
    ("ratio-max+1", f.adjust(str(MAX + 1))),
    ("ratio-denominator-max+1", f.adjust(f"1/{MAX + 1}")),
    ("ratio-exact-fraction-over", f.adjust(f"{MAX}/0.5")),
    ("ratio-1-and-thousands-of-zeros", f.adjust("1" + "0" * 5000)),
    ("ratio-tiny", f.adjust("0." + "0" * 3000 + "1")),
]


@pytest.mark.parametrize("case, d", ACCEPTED, ids=[c for c, _ in ACCEPTED])
def test_the_largest_values_that_fit_are_accepted(case: str, d: dict[str, Any]) -> None:
    assert parse_line(json.dumps(d), 1).type == d["type"]


@pytest.mark.parametrize("case, d", REFUSED, ids=[c for c, _ in REFUSED])
def test_one_more_is_refused_as_out_of_range(case: str, d: dict[str, Any]) -> None:
    for raw in (json.dumps(d), json.dumps(d).encode("utf-8")):
        with pytest.raises(E.QuantityOutOfRange) as info:
            parse_line(raw, 9)
        message = str(info.value)
        assert info.value.rule == "quantity-out-of-range" and isinstance(info.value, E.BadCommand)
        assert message.startswith(f"line 9 (id {d['id']}): refused [quantity-out-of-range]")
        assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize("raw", ["9" * 5000, "-" + "9" * 5000, str(2**63), str(-(2**63) - 1)])
def test_a_huge_json_integer_anywhere_is_out_of_range(raw: str) -> None:
    d = f.allot("h1")
    for field in ("rights", "name", "colour"):
        with pytest.raises(E.QuantityOutOfRange, match=r"^line 3 \(id c\d+\): refused"):
            parse_line(_with_raw(d, field, raw), 3)


def test_the_figures_at_the_limit_are_exact(tmp_path: Path) -> None:
    """Amounts and prices paid are exact products, with the decimals of their price."""
    ledger = Books(f"sqlite:///{tmp_path}/l.sqlite").service
    try:
        cmds = [f.resolution("s1"),
                f.terms(rights=10, shares_per_right=1, price_per_right="0.922337203685477580",
                        exercise_price_per_share="0.922337203685477580"),
                f.allot("h1", 10), f.exercise("h1", 10)]
        ledger.apply(parse_command(c, line=n) for n, c in enumerate(cmds, 1))
        events = {type(e).__name__: e for _, e in ledger.uow.log.iter_events()}
        assert str(events["RightsAllotted"].amount) == "9.223372036854775800"
        assert str(events["RightsExercised"].exercise_price_paid) == "9.223372036854775800"
        over = f.terms("s2", rights=10, shares_per_right=1, price_per_right="0.922337203685477581")
        with pytest.raises(E.LedgerError, match=r"refused \[quantity-out-of-range\]"):
            ledger.apply([parse_command(f.resolution("s2"), line=5), parse_command(over, line=6)])
    finally:
        ledger.close()


# ---------------------------------------------------------------------------------------------
# Dates: a departure window that would end beyond date.max leaves exercise open until then


@pytest.mark.parametrize("window", [10, MAX])
def test_a_window_ending_beyond_date_max_does_not_overflow(tmp_path: Path, window: int) -> None:
    ledger = Books(f"sqlite:///{tmp_path}/l.sqlite").service
    try:
        cmds = [f.resolution("s1"),
                f.terms(exercise_to="9999-12-31", exercise_window_days_after_departure=window,
                        exercisable_only_after_departure=True),
                f.allot("h1", 10), f.exercise("h1", 1, on="9999-12-31", issuance="s1"),
                f.depart("h1", on="9999-12-25"),
                f.exercise("h1", 1, on="9999-12-30"), f.exercise("h1", 1, on="9999-12-31")]
        del cmds[3]  # exercise only after departure: the departure comes first
        report = ledger.apply(parse_command(c, line=n) for n, c in enumerate(cmds, 1))
        assert report.applied == len(cmds)
    finally:
        ledger.close()


# ---------------------------------------------------------------------------------------------
# read_commands: one loader, bounded memory per line


class _Counting(io.RawIOBase):
    """A stream of `size` bytes of one endless line, counting what was read from it."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left)
        buffer[:n] = b"x" * n
        self.left -= n
        self.read_bytes += n
        return n


def test_a_400_mb_line_is_refused_after_reading_about_1_mib() -> None:
    raw = _Counting(400 * 1024 * 1024)
    stream = io.BufferedReader(raw, buffer_size=64 * 1024)
    with pytest.raises(E.BadCommand, match=r"^line 1: longer than 1 MiB$"):
        list(read_commands(stream))
    assert raw.read_bytes <= MAX_LINE_BYTES + 128 * 1024


def _line(d: dict[str, Any]) -> bytes:
    return json.dumps(d, ensure_ascii=False).encode("utf-8")


def test_read_commands_strips_bom_and_line_endings_and_skips_blank_lines() -> None:
    a, b, c = f.resolution("s1"), f.terms("s1"), f.allot("h1")
    data = b"\xef\xbb\xbf" + _line(a) + b"\r\n\n   \r\n" + _line(b) + b"\n" + _line(c)
    seen: list[int] = []
    cmds = list(read_commands(io.BytesIO(data), actor="alice", progress=seen.append))
    assert [(x.id, x.line, x.actor) for x in cmds] == [(a["id"], 1, "alice"), (b["id"], 4, "alice"),
                                                       (c["id"], 5, "alice")]
    assert sum(seen) == len(data)


def test_read_commands_accepts_exactly_1_mib_with_crlf_and_refuses_one_byte_more() -> None:
    d = f.allot("h1", reason="")
    pad = MAX_LINE_BYTES - len(_line(d))
    exact = _line({**d, "reason": "x" * pad})
    assert len(exact) == MAX_LINE_BYTES
    for ending in (b"\n", b"\r\n", b""):
        assert [c.id for c in read_commands(io.BytesIO(exact + ending))] == [d["id"]]
    over = _line({**d, "reason": "x" * (pad + 1)})
    for ending in (b"\n", b"\r\n", b""):
        with pytest.raises(E.BadCommand, match=r"^line 2: longer than 1 MiB$"):
            list(read_commands(io.BytesIO(b"\n" + over + ending)))


BAD_LINES = [
    ("nested-arrays", b"[" * 5000 + b"]" * 5000),
    ("nested-objects", b'{"id": "n", "a": ' + b'{"a": ' * 5000 + b"1" + b"}" * 5001),
    ("nested-in-a-field", _line(f.allot("h1"))[:-1] + b', "reason": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
    ("huge-int", b'{"id": "i", "type": "allot_rights", "rights": ' + b"1" * 5000 + b"}"),
    ("surrogate-value", _line(f.allot("h1")).replace(b'"Name h1"', b'"\\ud800"')),
    ("surrogate-key", _line(f.allot("h1"))[:-1] + b', "\\udfff": 1}'),
    ("surrogate-id", _line({**f.allot("h1"), "id": "a\\ud800"}).replace(b"\\\\ud800", b"\\ud800")),
    ("surrogate-in-unknown-nested", _line(f.allot("h1"))[:-1] + b', "x": [["\\ud800"]]}'),
    ("nul", _line(f.allot("h1", name="a\x00b"))),
    ("invalid-utf8", _line(f.allot("h1")).replace(b"Name", b"N\xffme")),
    ("float", _line(f.allot("h1")).replace(b'"rights": 10', b'"rights": 1.5')),
    ("type-is-a-list", _line({**f.allot("h1"), "type": ["allot_rights"]})),
    ("type-is-an-object", _line({**f.allot("h1"), "type": {"a": 1}})),
    ("id-with-newline", _line({**f.allot("h1"), "id": "a\nb", "rights": 0})),
    ("huge-key", _line({**f.allot("h1"), "k" * 100000: 1})),
]


@pytest.mark.parametrize("case, raw", BAD_LINES, ids=[c for c, _ in BAD_LINES])
def test_any_bad_line_is_one_bad_command_naming_it(case: str, raw: bytes) -> None:
    stream = io.BytesIO(_line(f.resolution("s1")) + b"\n" + raw + b"\n" + _line(f.terms()))
    it = read_commands(stream)
    assert next(it).type == "pass_resolution"
    with pytest.raises(E.BadCommand) as info:
        next(it)
    message = str(info.value)
    assert message.startswith("line 2") and "\n" not in message and len(message) < 500
    message.encode("utf-8")  # printable as it is


def test_the_id_is_named_when_it_can_be_read() -> None:
    d = {**f.allot("h1"), "rights": 0}
    with pytest.raises(E.BadCommand, match=rf"^line 4 \(id {d['id']}\): field 'rights'"):
        parse_line(_line(d), 4)
    with pytest.raises(E.BadCommand, match=r"^line 4 \(id 'a\\nb'\): "):
        parse_line(_line({**d, "id": "a\nb"}), 4)
    with pytest.raises(E.BadCommand, match=rf"^line 4 \(id {d['id']}\): field 'rights' is given twice"):
        parse_line(_line(d)[:-1] + b', "rights": 1}', 4)


# ---------------------------------------------------------------------------------------------
# Typed state: the one list of the terms' fields, snapshots, the command digest on events


def test_the_terms_fields_are_one_list() -> None:
    from equity_ledger.ledger.commands import SCHEMAS

    assert list(SCHEMAS["set_terms"]) == ["issuance", *TERMS_FIELDS]
    params = list(inspect.signature(Issuance.TermsSet).parameters)  # the stored event's fields
    assert params[params.index("issuance"):] == [
        "issuance", *TERMS_FIELDS, "command_id", "actor", "reason", "command_digest"]
    terms = Terms.from_fields(parse_command(f.terms()).fields)
    assert tuple(terms.as_fields()) == TERMS_FIELDS and terms.shares == 100 * 100


def _busy_ledger(url: str) -> Ledger:
    ledger = Books(url).service
    cmds = [f.resolution("s1"), f.terms(exercise_window_days_after_departure=10, currency="USD",
                                        exercise_price_per_share="0.75"),
            f.allot("h1", 10), f.allot("h2", 5, group="employee"), f.exercise("h1", 3),
            f.forfeit("h2", "all", on="2020-06-01"), f.adjust("1/3", on="2021-02-01"),
            f.allot("h1", 2, allotted_on="2020-03-01"), f.depart("h1", on="2021-03-01"),
            f.expire()]
    ledger.apply(parse_command(c, line=n) for n, c in enumerate(cmds, 1))
    return ledger


def test_a_snapshot_stored_and_loaded_gives_the_same_aggregate(tmp_path: Path, monkeypatch) -> None:
    from equity_ledger.ledger import unit_of_work

    monkeypatch.setattr(unit_of_work, "SNAPSHOT_EVERY", 1)  # every aggregate gets its snapshot
    url = f"sqlite:///{tmp_path}/l.sqlite"
    ledger = _busy_ledger(url)
    try:
        iss = ledger.issuance("s1")
        assert isinstance(iss.terms, Terms)
        assert isinstance(iss.holdings["h1"], HolderAccount)
        assert iss.holdings["h1"].timeline[0] == TimelineEntry(
            date(2020, 2, 1).toordinal(), 3, EntryKind.ALLOT, 10, False)
        assert iss.holdings["h2"].timeline[-1].all_outstanding is True
        mapper = ledger.uow.app.mapper
        for agg in (iss, ledger.holder("h1")):
            snapshot = type(agg).Snapshot.take(agg)
            loaded = mapper.to_domain_event(mapper.to_stored_event(snapshot)).mutate(None)
            assert type(loaded) is type(agg)
            assert loaded.__dict__ == agg.__dict__
        # Through the store: the sealed snapshot is what a fresh service loads (no warning).
        assert ledger.uow.log.snapshot_row(iss.id).version == iss.version
        warnings: list[str] = []
        fresh = Books(url, warn=warnings.append).service
        try:
            again = fresh.issuance("s1")
            assert again.__dict__ == iss.__dict__ and warnings == []
        finally:
            fresh.close()
    finally:
        ledger.close()


def test_every_event_carries_the_digest_of_its_command(tmp_path: Path) -> None:
    ledger = _busy_ledger(f"sqlite:///{tmp_path}/l.sqlite")
    try:
        events = [e for _, e in ledger.uow.log.iter_events()]
        ids = sorted({e.command_id for e in events})
        digests = ledger.uow.log.command_digests(ids)
        assert len(events) > 10 and len(digests) == len(ids)
        for e in events:
            assert e.command_digest == digests[e.command_id], type(e).__qualname__
    finally:
        ledger.close()
