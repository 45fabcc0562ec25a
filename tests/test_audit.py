"""Tamper evidence: raw SQL edits, deletions, insertions and reorderings are caught by `audit verify`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import factories as f
from helpers import run_cli, write_jsonl


def _events_table(url: str) -> tuple[str, str]:
    """(events table, its position column) for the backend."""
    return ("stored_events", "rowid") if url.startswith("sqlite") else ("equityledger_events", "notification_id")


def _build_ledger(url: str, folder: Path) -> None:
    cmds = f.setup() + [f.allot(f"h{i}", 2) for i in range(5)] + [
        f.exercise("h1", 1, on="2021-01-01"), f.adjust("2", on="2022-01-01"), f.forfeit("h2", "all", on="2022-06-01"),
    ]
    r = run_cli("apply", str(write_jsonl(folder / "a.jsonl", cmds)), db=url)
    assert r.code == 0, r.stderr
    assert run_cli("audit", "verify", db=url).code == 0


@pytest.fixture
def ledger_url(built_store) -> str:
    """A copy of one verified store per backend: each test tampers with its own."""
    return built_store("audit", _build_ledger)


def _sql(url: str, *statements: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        for s in statements:
            conn.execute(text(s))
    engine.dispose()


def _fails(url: str, *words: str, digest: str | None = None) -> str:
    args = ["audit", "verify"] + (["--digest", digest] if digest else [])
    r = run_cli(*args, db=url)
    assert r.code == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, r.stderr
    return r.stderr


def test_edited_event_is_named(ledger_url):
    table, pos = _events_table(ledger_url)
    # Give holder h3 one more right, by hand, in the stored JSON of its allotment event.
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        rows = conn.execute(text(f"SELECT {pos}, state FROM {table} ORDER BY {pos}")).all()
        target = next(r for r in rows if b'"holder":"h3"' in bytes(r[1]) and b'"rights":2' in bytes(r[1]))
        new = bytes(target[1]).replace(b'"rights":2', b'"rights":3', 1)
        conn.execute(text(f"UPDATE {table} SET state = :s WHERE {pos} = :p"), {"s": new, "p": target[0]})
    engine.dispose()
    err = _fails(ledger_url, f"position {target[0]}", "edited", "aggregate", "version", "command")


def test_deleted_event_is_named(ledger_url):
    table, pos = _events_table(ledger_url)
    _sql(ledger_url, f"DELETE FROM {table} WHERE {pos} = 6")
    _fails(ledger_url, "position 6", "deleted")


def test_inserted_event_is_named(ledger_url):
    table, pos = _events_table(ledger_url)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        row = conn.execute(text(f"SELECT originator_id, originator_version, topic, state FROM {table} "
                                f"ORDER BY {pos} DESC LIMIT 1")).one()
        conn.execute(
            text(f"INSERT INTO {table} (originator_id, originator_version, topic, state) VALUES (:o, :v, :t, :s)"),
            {"o": row[0], "v": row[1] + 1, "t": row[2], "s": row[3]},
        )
    engine.dispose()
    _fails(ledger_url, "no chain link")


def test_reordered_events_are_named(ledger_url):
    table, pos = _events_table(ledger_url)
    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        a = conn.execute(text(f"SELECT state FROM {table} WHERE {pos} = 4")).scalar_one()
        b = conn.execute(text(f"SELECT state FROM {table} WHERE {pos} = 6")).scalar_one()
        conn.execute(text(f"UPDATE {table} SET state = :s WHERE {pos} = 4"), {"s": b})
        conn.execute(text(f"UPDATE {table} SET state = :s WHERE {pos} = 6"), {"s": a})
    engine.dispose()
    _fails(ledger_url, "position 4")


def test_changed_projection_row_is_named(ledger_url):
    _sql(ledger_url, "UPDATE proj_holdings SET allotted = allotted + 1 WHERE holder = 'h4'")
    _fails(ledger_url, "proj_holdings", "h4")
    assert run_cli("audit", "replay", db=ledger_url).code == 1


def test_changed_historical_projection_row_is_caught(ledger_url):
    # h1's first row (the allotment date) is not its latest: the fingerprint still catches it.
    _sql(ledger_url, "UPDATE proj_holdings SET shares_delivered = 7 WHERE holder = 'h1' "
                     "AND effective_on = (SELECT MIN(effective_on) FROM proj_holdings WHERE holder = 'h1')")
    _fails(ledger_url, "proj_holdings", "h1")


def test_deleted_or_invented_holding_key_is_caught(ledger_url):
    # The as-of query of one issuance walks proj_holding_keys: a missing key hides a holder.
    _sql(ledger_url, "DELETE FROM proj_holding_keys WHERE holder = 'h3'")
    _fails(ledger_url, "proj_holding_keys")
    _sql(ledger_url, "INSERT INTO proj_holding_keys (issuance, holder) VALUES ('s1', 'h3'), ('s1', 'ghost')")
    _fails(ledger_url, "proj_holding_keys", "ghost")


def test_emptied_read_models_are_named_by_verify_and_restored_by_rebuild(ledger_url):
    # Queries only read (they never repair a store); verify names what was emptied, and a
    # rebuild, a writer, refolds it. (A store from before a table existed is an older layout:
    # tests/test_projections.py.)
    asked = ("holdings", "--issuance", "s1", "--as-of", "2021-06-30", "--format", "json")
    before = run_cli(*asked, db=ledger_url).json()
    assert len(before) == 5
    _sql(ledger_url, "DELETE FROM proj_holding_keys")
    _fails(ledger_url, "proj_holding_keys")
    assert run_cli("projections", "rebuild", db=ledger_url).code == 0
    assert run_cli(*asked, db=ledger_url).json() == before
    assert run_cli("audit", "verify", db=ledger_url).code == 0


def test_digest_detects_a_rewritten_past(ledger_url, tmp_path: Path):
    digest = run_cli("audit", "digest", db=ledger_url)
    assert digest.code == 0
    kept = tmp_path / "digest.json"
    kept.write_text(digest.stdout)
    more = write_jsonl(tmp_path / "b.jsonl", [f.allot("h9", 1)])
    assert run_cli("apply", str(more), db=ledger_url).code == 0
    ok = run_cli("audit", "verify", "--digest", str(kept), db=ledger_url)
    assert ok.code == 0 and "extends the kept digest" in ok.stdout
    # Someone rewrites history *and* recomputes the whole chain: only the digest tells.
    table, pos = _events_table(ledger_url)
    _rewrite_and_rechain(ledger_url, table, pos)
    assert run_cli("audit", "verify", db=ledger_url).code == 0  # self-consistent again
    _fails(ledger_url, "digest", digest=str(kept))
    _fails(ledger_url, "digest", digest=json.dumps(json.loads(digest.stdout)))


def _rewrite_and_rechain(url: str, table: str, pos: str) -> None:
    from equity_ledger.ledger.store import GENESIS, link_hash

    engine = create_engine(url)
    with engine.begin() as conn:
        rows = conn.execute(text(f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} "
                                 f"ORDER BY {pos}")).all()
        prev = GENESIS
        for p, oid, version, topic, state in rows:
            state = bytes(state)
            if b'"reason":""' in state:
                state = state.replace(b'"reason":""', b'"reason":"rewritten"', 1)
                conn.execute(text(f"UPDATE {table} SET state = :s WHERE {pos} = :p"), {"s": state, "p": p})
            prev = link_hash(prev, p, oid, version, topic, state)
            conn.execute(text("UPDATE ledger_chain SET hash = :h WHERE position = :p"), {"h": prev, "p": p})
    engine.dispose()


def test_truncated_history_fails_the_digest(ledger_url, tmp_path: Path):
    kept = run_cli("audit", "digest", db=ledger_url).stdout
    table, pos = _events_table(ledger_url)
    last = json.loads(kept)["position"]
    _sql(ledger_url, f"DELETE FROM {table} WHERE {pos} = {last}", f"DELETE FROM ledger_chain WHERE position = {last}",
         f"DELETE FROM ledger_commands WHERE position = {last}")
    _fails(ledger_url, "digest", digest=kept)


def test_an_event_edited_into_another_shape_is_named_not_a_crash(sqlite_url, tmp_path: Path):
    # SQLite's replace() turns the stored BLOB into TEXT: still the ledger's bytes, edited.
    cmds = f.setup() + [f.allot("h1", 2), f.allot("h2", 3)]
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=sqlite_url).code == 0
    _sql(sqlite_url, "UPDATE stored_events SET state = replace(state, '\"rights\"' || char(58) || '3', "
                     "'\"rights\"' || char(58) || '4') WHERE topic LIKE '%RightsAllotted'")
    _fails(sqlite_url, "position", "chain link")
    r = run_cli("holdings", db=sqlite_url)
    assert "Traceback" not in r.stderr
