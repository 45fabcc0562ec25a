"""The history index: `history --holder X` and `history --issuance X` read only their events
(through proj_history_*), answer exactly as the full scan of the log does (also when the
projections lag it), are emptied and refilled by a rebuild, and are checked by `audit verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

import factories as f
from helpers import run_cli, write_jsonl

from equity_ledger.bootstrap import Books
from equity_ledger.ledger.commands import parse_command
from equity_ledger.ledger.log import LogReader
from equity_ledger.projections.history import history_rows, indexed_position
from equity_ledger.projections.verify import verify_projections

HOLDERS = ("h1", "h2", "h3", "h4", "h5", "nobody")
ISSUANCES = ("s1", "s2", "none")

# Projected: two issuances; h3 departs, then a late allotment makes h3 join s1 (its departure,
# stored before, is in s1's history); details recorded and erased; s2 expires (the expiry is in
# the history of every holder whose rights it made lapse).
INDEXED = f.setup() + f.setup("s2", exercise_to="2030-02-01") + [
    f.allot("h1", 10), f.allot("h2", 5, payment="cash"), f.allot("h3", 4, issuance="s2"),
    f.allot("h5", 2, issuance="s2"), f.depart("h5", on="2020-06-01"),
    f.depart("h3", on="2021-01-01"), f.allot("h3", 1, allotted_on="2020-03-01"),
    f.exercise("h1", 2, on="2021-01-01"), f.adjust("2", on="2022-01-01"),
    f.forfeit("h2", "all", on="2022-06-01"), f.details("h1"), f.erase("h1"),
    f.expire(on="2030-02-02", issuance="s2"),
]
# Stored after the projections' position (not folded): h4 joins s1; h2 (who joined s1 in the
# indexed events) departs; h5, who departed in the indexed events, joins s1 by a late allotment.
TAIL = [
    f.allot("h4", 3, allotted_on="2022-07-01"), f.depart("h2", on="2022-08-01"),
    f.allot("h5", 1, allotted_on="2020-05-01"), f.exercise("h4", 1, on="2022-09-01"),
]


def _filters() -> list[dict[str, str]]:
    return ([{"holder": h} for h in HOLDERS] + [{"issuance": i} for i in ISSUANCES]
            + [{"holder": h, "issuance": i} for h in HOLDERS for i in ISSUANCES])


def _scan(engine: Any, kind: str, **filters: str) -> list[dict[str, Any]]:
    """The answer of the full scan: a reader with no connection of its own has no index."""
    log = LogReader(engine, kind)
    assert indexed_position(log) == 0
    return list(history_rows(log, **filters))


def _apply(books: Books, cmds: list[dict[str, Any]], project: bool = True) -> None:
    parsed = [parse_command(c, line=i) for i, c in enumerate(cmds, 1)]
    if project:
        report = books.apply(parsed)
    else:  # stored, not folded: the projections lag the log
        report = books.service.apply(parsed, projections=None)
    assert report.applied == len(cmds)


def _indexed(books: Books, **filters: str) -> tuple[list[dict[str, Any]], int, int]:
    """(the answer through the index, events decoded, the index's position)."""
    with books.reading() as view:
        decoded = [0]
        decode = view.log.decode

        def counting(row: Any) -> Any:
            decoded[0] += 1
            return decode(row)

        view.log.decode = counting  # type: ignore[method-assign]
        rows = list(history_rows(view.log, **filters))
        return rows, decoded[0], indexed_position(view.log)


def test_filtered_history_reads_only_its_events_and_equals_the_scan(store_url: str) -> None:
    books, engine = Books(store_url), create_engine(store_url)
    try:
        _apply(books, INDEXED)
        with books.reading() as view:
            head = view.status.head
        for filters in _filters():
            rows, decoded, upto = _indexed(books, **filters)
            assert upto == head
            assert rows == _scan(engine, books.config.kind, **filters), filters
            # Only the events it shows are read (and the index is used at all).
            assert decoded == len(rows), (filters, decoded, len(rows))
        s1 = [(r["type"], r.get("holder")) for r in _indexed(books, issuance="s1")[0]]
        assert ("holder_departed", "h3") in s1 and ("holder_departed", "h5") not in s1
        h3 = [r["type"] for r in _indexed(books, holder="h3")[0]]
        assert "rights_expired" in h3 and h3.count("holder_departed") == 1
    finally:
        engine.dispose()
        books.close()


def test_history_stays_exact_while_the_projections_lag(store_url: str) -> None:
    books, engine = Books(store_url), create_engine(store_url)
    try:
        _apply(books, INDEXED)
        _apply(books, TAIL, project=False)
        with books.reading() as view:
            status = view.status
        assert status.lag > 0
        for filters in _filters():
            rows, _decoded, upto = _indexed(books, **filters)
            assert upto == status.position
            assert rows == _scan(engine, books.config.kind, **filters), filters
        s1 = [(r["type"], r.get("holder")) for r in _indexed(books, issuance="s1")[0]]
        # h2 joined in the index and departs after it; h5 departed in it and joins after it.
        assert ("holder_departed", "h2") in s1 and ("holder_departed", "h5") in s1
        # Caught up, the same answers come from the index alone.
        books.projector.catch_up()
        for filters in _filters():
            rows, decoded, upto = _indexed(books, **filters)
            assert upto == status.head and decoded == len(rows)
            assert rows == _scan(engine, books.config.kind, **filters), filters
    finally:
        engine.dispose()
        books.close()


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


def _table(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text(sql)).all()]
    engine.dispose()
    return rows


EDITS = [
    ("DELETE FROM proj_history_holders WHERE holder = 'h2' AND position = "
     "(SELECT MAX(position) FROM proj_history_holders WHERE holder = 'h2')", "proj_history_holders"),
    ("UPDATE proj_history_holders SET holder = 'h1' WHERE holder = 'h2' AND position = "
     "(SELECT MIN(position) FROM proj_history_holders WHERE holder = 'h2')", "proj_history_holders"),
    ("UPDATE proj_history_issuances SET joined = NULL WHERE joined = 'h3' AND issuance = 's1'",
     "proj_history_issuances"),
    ("INSERT INTO proj_history_issuances (issuance, position, joined) VALUES ('s2', 1, NULL)",
     "proj_history_issuances"),
    ("DELETE FROM proj_history_departures WHERE holder = 'h3'", "proj_history_departures"),
]


def _verify(books: Books) -> Any:
    """verify's check of the read models (the CLI's `audit verify` runs it after the chain)."""
    with books.reading() as view:
        return verify_projections(view.log, view.conn, view.status.position)


def test_an_edited_history_index_is_named_by_verify_and_a_rebuild_restores_it(
    store_url: str, tmp_path: Path
) -> None:
    books = Books(store_url)
    try:
        _apply(books, INDEXED)
        tables = ("proj_history_holders", "proj_history_issuances", "proj_history_departures")
        before = {t: _table(store_url, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables}
        assert all(before.values())
        assert _verify(books) is None
        for edit, table in EDITS:
            _sql(store_url, edit)
            finding = _verify(books)
            assert finding is not None and finding.table == table, (edit, finding)
            books.projector.rebuild()
            assert {t: _table(store_url, f"SELECT * FROM {t} ORDER BY 1, 2") for t in tables} == before
            assert _verify(books) is None
        # As a user sees it: exit 1, one line naming the table.
        _sql(store_url, EDITS[0][0])
    finally:
        books.close()
    r = run_cli("audit", "verify", db=store_url)
    assert r.code == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "proj_history_holders" in r.stderr, r.stderr


def test_the_cli_history_filters_equal_the_contracts_definition(store_url: str, tmp_path: Path) -> None:
    """The CLI's filtered history equals the unfiltered history filtered by hand (the
    contract's definition), for a holder and an issuance."""
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", INDEXED)), db=store_url).code == 0
    everything = run_cli("history", "--format", "json", db=store_url).json()
    h3 = run_cli("history", "--holder", "h3", "--format", "json", db=store_url).json()
    assert h3 == [r for r in everything if r.get("holder") == "h3" or "h3" in r.get("expired", {})]
    joined = {r["holder"] for r in everything
              if r["type"] in ("holder_registered", "holder_joined_issuance") and r.get("issuance") == "s1"}
    s1 = run_cli("history", "--issuance", "s1", "--format", "json", db=store_url).json()
    assert s1 == [r for r in everything if r.get("issuance") == "s1"
                  or (r["type"] == "holder_departed" and r["holder"] in joined)]
