"""Holders' personal details: the register's address as at a date, and erasure for good.

An address is kept sealed with a key of its holder's own (outside the hash chain); erasing the
holder's details deletes that key in the same transaction as the chained erasure event. These
tests check what a user and an auditor see (register, holdings, history, `audit verify`) and
what is left in the store's bytes, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text

import factories as f
from attack_tools import append_forged_event, events_table, sql as _sql
from equity_ledger.ledger.commands import digest
from helpers import ask_cli, run_cli, write_jsonl

TOKYO = "東京都千代田区丸の内1-1-1"
OSAKA = "大阪府大阪市北区梅田2-2-2"
KYOTO = "京都府京都市中京区3-3-3 (late entry)"
DATES = ["2020-02-01", "2020-11-30", "2020-12-01", "2021-05-31", "2021-06-01", None]
IN_FORCE = {"2020-02-01": TOKYO, "2020-11-30": TOKYO, "2020-12-01": KYOTO, "2021-05-31": KYOTO,
            "2021-06-01": OSAKA, None: OSAKA}


def _scenario() -> list[dict[str, Any]]:
    return [
        *f.setup(),
        f.allot("h1", 10),
        f.allot("h2", 5, payment="cash"),
        f.allot("h3", 3, payment="gratis", group="employee"),
        {**f.details("h1", TOKYO, on="2020-02-01"), "id": "d1"},
        {**f.details("h1", OSAKA, on="2021-06-01"), "id": "d2"},
        {**f.details("h1", KYOTO, on="2020-12-01"), "id": "d3"},  # recorded last, dated between
        {**f.details("h2", "Bahnhofstrasse 1, Zürich", on="2020-02-01"), "id": "d4"},
        f.exercise("h1", 2, on="2021-01-01"),
    ]


_SCENARIO = _scenario()  # built once: the factories number ids, and re-runs need the same ones


def _commands() -> list[dict[str, Any]]:
    return [dict(c) for c in _SCENARIO]


def _ok(*args: str, db: str) -> Any:
    r = run_cli(*args, db=db)
    assert r.code == 0 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
    return r


def _read(*args: str, db: str) -> Any:
    """A read that observes the store (in-process: the same CLI code without a process start)."""
    r = ask_cli(*args, db=db)
    assert r.code == 0, (args, r.stdout, r.stderr)
    return r


def _register(url: str, day: str | None) -> dict[str, dict[str, Any]]:
    extra = ["--as-of", day] if day else []
    return {r["holder"]: r for r in _read("register", "s1", "--format", "json", *extra, db=url).json()}


def _figures(url: str) -> list[Any]:
    """Every figure a user can read, other than the personal details."""
    out: list[Any] = []
    for day in ("2020-12-01", "2021-06-01", None):
        extra = ["--as-of", day] if day else []
        for by in ("person", "group", "issuance"):
            out.append(_read("holdings", "--by", by, "--format", "json", *extra, db=url).json())
        reg = _register(url, day)
        out.append({h: {k: v for k, v in r.items() if k not in ("address", "erased")} for h, r in reg.items()})
    return out


def _all_text(url: str) -> str:
    """Every row of every table of the store, as text (what a reader of the database sees)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            parts = []
            for table in inspect(conn).get_table_names():
                for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                    parts.append(" ".join(bytes(v).decode("latin-1") if isinstance(v, (bytes, memoryview))
                                          else str(v) for v in row))
            return "\n".join(parts)
    finally:
        engine.dispose()


def _key_of(url: str, holder: str) -> str | None:
    rows = _sql(url, "SELECT key FROM ledger_holder_keys WHERE holder = :h", {"h": holder})
    return rows[0][0] if rows else None


def _build_books(url: str, folder: Path) -> None:
    _ok("apply", str(write_jsonl(folder / "a.jsonl", _commands())), db=url)


@pytest.fixture
def books(built_store) -> str:
    """A copy of the scenario's store (applied once per backend), its holder keys included."""
    return built_store("personal", _build_books)


def test_the_register_shows_the_address_in_force_at_each_date(books: str) -> None:
    for day in DATES:
        reg = _register(books, day)
        assert reg["h1"]["address"] == IN_FORCE[day] and reg["h1"]["erased"] is False, day
        assert reg["h2"]["address"] == "Bahnhofstrasse 1, Zürich"
        assert reg["h3"]["address"] is None and reg["h3"]["erased"] is False  # none recorded
    assert _register(books, "2020-01-31") == {}  # before the issuance's terms: no rows
    csv = _ok("register", "s1", "--format", "csv", db=books).stdout
    assert OSAKA in csv and csv.splitlines()[0].endswith(",address,erased")
    table = _ok("register", "s1", db=books).stdout
    assert "address" in table
    # The address is never kept in clear: not in any table, not in a command digest.
    everything = _all_text(books)
    for address in (TOKYO, OSAKA, KYOTO):
        assert address not in everything
    stored_digests = {d for (d,) in _sql(books, "SELECT digest FROM ledger_commands")}
    plain = digest({**f.details("h1", TOKYO, on="2020-02-01"), "id": "d1"})
    assert plain not in stored_digests and plain not in everything
    _ok("audit", "verify", db=books)


def test_a_same_date_record_replaces_the_earlier_one(books: str, tmp_path: Path) -> None:
    _ok("apply", str(write_jsonl(tmp_path / "b.jsonl", [f.details("h1", "corrected", on="2021-06-01")])), db=books)
    assert _register(books, None)["h1"]["address"] == "corrected"
    assert _register(books, "2021-05-31")["h1"]["address"] == KYOTO


def test_erasure_makes_the_address_unreadable_and_changes_no_figure(books: str, tmp_path: Path) -> None:
    before = _figures(books)
    digest_before = _read("audit", "digest", db=books).json()
    key = _key_of(books, "h1")
    assert key is not None and key in _all_text(books)
    history_before = _read("history", "--holder", "h1", "--format", "json", db=books).json()
    sealed = [h["address_ciphertext"] for h in history_before if h["type"] == "holder_details_recorded"]
    assert len(sealed) == 3

    r = run_cli("holder", "erase", "h1", "--reason", "erasure request of 2024-04-01", db=books)
    assert r.code == 0, r.stderr

    for day in DATES:
        reg = _register(books, day)
        assert reg["h1"]["address"] is None and reg["h1"]["erased"] is True, day
        assert reg["h2"]["address"] == "Bahnhofstrasse 1, Zürich" and reg["h2"]["erased"] is False
    assert _figures(books) == before
    # The history is intact: the chain passes through the digest kept before, the sealed
    # addresses are still in their events, the erasure is an event of its own with its reason.
    _ok("audit", "verify", "--digest", json.dumps(digest_before), db=books)
    history = _ok("history", "--holder", "h1", "--format", "json", db=books).json()
    assert [h["address_ciphertext"] for h in history if h["type"] == "holder_details_recorded"] == sealed
    erased = [h for h in history if h["type"] == "holder_details_erased"]
    assert len(erased) == 1 and erased[0]["reason"] == "erasure request of 2024-04-01"
    # ... but the key is gone from every table of the store.
    assert _key_of(books, "h1") is None and _key_of(books, "h2") is not None
    assert key not in _all_text(books)
    # A rebuild of the read models gives the same answers.
    _ok("projections", "rebuild", db=books)
    assert _register(books, None)["h1"]["erased"] is True
    assert _figures(books) == before
    _ok("audit", "verify", db=books)


def test_erased_key_bytes_are_gone_from_the_sqlite_file(sqlite_url: str, tmp_path: Path) -> None:
    """What is on disk: the address never (sealed before it is stored); the key until the
    erasure, then neither in the database file nor in its WAL after a checkpoint."""
    _ok("apply", str(write_jsonl(tmp_path / "a.jsonl", _commands())), db=sqlite_url)
    path = Path(sqlite_url.removeprefix("sqlite:///"))
    key = _key_of(sqlite_url, "h1")
    assert key is not None

    def on_disk() -> bytes:
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")]
        return b"".join(p.read_bytes() for p in files if p.exists())

    data = on_disk()
    assert key.encode("ascii") in data
    for address in (TOKYO, OSAKA, KYOTO):
        assert address.encode("utf-8") not in data
    _ok("holder", "erase", "h1", "--reason", "request", db=sqlite_url)
    data = on_disk()
    assert key.encode("ascii") not in data
    import base64
    assert base64.b64decode(key) not in data
    for address in (TOKYO, OSAKA, KYOTO):
        assert address.encode("utf-8") not in data
    _ok("audit", "verify", db=sqlite_url)


def test_personal_data_rules_are_refused_with_their_slugs(books: str, tmp_path: Path) -> None:
    def refused(cmd: dict[str, Any], words: str) -> None:
        head = _read("audit", "digest", db=books).stdout
        r = run_cli("apply", str(write_jsonl(tmp_path / "r.jsonl", [cmd])), db=books)
        assert r.code == 1 and words in r.stderr and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1
        assert _read("audit", "digest", db=books).stdout == head  # nothing stored

    refused(f.details("nobody"), "[unknown-holder]")
    refused(f.erase("nobody"), "[unknown-holder]")
    refused(f.details("h3", "x" * 1025), "[address-too-long]")
    refused(f.details("h3", "1-1\u0000Chiyoda"), "field 'address' must not contain a NUL character")
    refused({k: v for k, v in f.erase("h1").items() if k != "reason"}, "needs field 'reason'")
    assert _key_of(books, "nobody") is None and _key_of(books, "h3") is None  # no key left behind
    _ok("apply", str(write_jsonl(tmp_path / "e.jsonl", [f.erase("h1")])), db=books)
    refused(f.erase("h1"), "[erase-once]")
    refused(f.details("h1", "new", on="2030-01-01"), "[details-erased]")
    _ok("audit", "verify", db=books)


def test_re_runs_are_idempotent_also_after_erasure(books: str, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", _commands())
    r = _ok("apply", str(path), db=books)
    assert f"skipped {len(_SCENARIO)}" in r.stdout
    other = {**f.details("h1", "somewhere else", on="2020-02-01"), "id": "d1"}
    r = run_cli("apply", str(write_jsonl(tmp_path / "o.jsonl", [other])), db=books)
    assert r.code == 1 and "[id-reused-with-other-content]" in r.stderr
    erase = f.erase("h1")
    _ok("apply", str(write_jsonl(tmp_path / "e.jsonl", [erase])), db=books)
    head = _ok("audit", "digest", db=books).stdout
    # The original file and the erasure again: skipped, although the sealed addresses can no
    # longer be compared with the file's (their key is gone).
    r = _ok("apply", str(write_jsonl(tmp_path / "all.jsonl", [*_commands(), erase])), db=books)
    assert f"skipped {len(_SCENARIO) + 1}" in r.stdout
    assert _read("audit", "digest", db=books).stdout == head
    verb = ["holder", "details", "h2", "--address", "Zürich 2", "--effective-on", "2022-01-01"]
    assert "applied record_holder_details" in _ok(*verb, db=books).stdout
    assert "already applied" in _ok(*verb, db=books).stdout


def _holder_events(url: str, holder_kind: str) -> list[tuple[int, Any, int, str, bytes]]:
    table, pos = events_table(url)
    rows = _sql(url, f"SELECT {pos}, originator_id, originator_version, topic, state FROM {table} "
                     f"WHERE topic LIKE :t ORDER BY {pos}", {"t": f"%Holder.{holder_kind}"})
    return [(int(p), o, int(v), t, bytes(s)) for p, o, v, t, s in rows]


def _forge_details(url: str, change: dict[str, Any], command_id: str) -> int:
    """Append a copy of h1's last details event at its aggregate's next version."""
    *_, (_p, oid, _v, topic, state) = [
        e for e in _holder_events(url, "DetailsRecorded") if json.loads(e[4])["holder"] == "h1"]
    versions = [v for _p, o, v, _t, _s in _holder_events(url, "%") if o == oid]
    data = json.loads(state)
    data.update(change, command_id=command_id)
    forged = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return append_forged_event(url, oid, max(versions) + 1, topic, forged, command_id)


def test_verify_names_a_forged_details_event_after_erasure(books: str, tmp_path: Path) -> None:
    _ok("apply", str(write_jsonl(tmp_path / "e.jsonl", [f.erase("h1")])), db=books)
    position = _forge_details(books, {}, "forged-details")
    r = run_cli("audit", "verify", db=books)
    assert r.code == 1 and f"position {position}" in r.stderr and "[details-erased]" in r.stderr, r.stderr


def test_verify_names_a_forged_oversized_address(books: str) -> None:
    import base64

    big = base64.b64encode(b"\0" * (1025 + 16)).decode("ascii")
    position = _forge_details(books, {"address_ciphertext": big}, "forged-big")
    r = run_cli("audit", "verify", db=books)
    assert r.code == 1 and f"position {position}" in r.stderr and "[address-too-long]" in r.stderr, r.stderr


def test_verify_names_an_edited_ciphertext(books: str) -> None:
    """The sealed address is chained like every field: editing it breaks the chain."""
    table, pos = events_table(books)
    p, _o, _v, _t, state = _holder_events(books, "DetailsRecorded")[0]
    data = json.loads(state)
    data["address_nonce"] = base64_flip(data["address_nonce"])
    _sql(books, f"UPDATE {table} SET state = :s WHERE {pos} = :p",
         {"s": json.dumps(data, separators=(",", ":")).encode(), "p": p})
    r = run_cli("audit", "verify", db=books)
    assert r.code == 1 and f"position {p}" in r.stderr, r.stderr


def base64_flip(text: str) -> str:
    return ("B" if text[0] == "A" else "A") + text[1:]


def test_holdings_show_what_was_paid_by_each_method(books: str) -> None:
    rows = {r["holder"]: r for r in _ok("holdings", "--format", "json", db=books).json()}
    assert (rows["h1"]["amount_offset"], rows["h1"]["amount_paid"]) == ("10000", "10000")
    assert (rows["h2"]["amount_offset"], rows["h2"]["amount_paid"]) == ("0", "5000")
    assert (rows["h3"]["amount_offset"], rows["h3"]["amount_paid"]) == ("0", "0")
    assert list(rows["h1"]).index("amount_paid") == list(rows["h1"]).index("amount_offset") + 1
    [total] = _ok("holdings", "--by", "issuance", "--format", "json", db=books).json()
    assert total["amount_paid"] == "15000"
    groups = {g["group"]: g for g in _ok("holdings", "--by", "group", "--format", "json", db=books).json()}
    assert groups["director"]["amount_paid"] == "15000" and groups["employee"]["amount_paid"] == "0"
    assert "amount paid" in _ok("holdings", db=books).stdout
    assert "amount_paid" in _ok("holdings", "--format", "csv", db=books).stdout.splitlines()[0]
    replay = {r["holder"]: r for r in _ok("audit", "replay", "--format", "json", db=books).json()}
    assert [replay[h]["amount_paid"] for h in ("h1", "h2", "h3")] == ["10000", "5000", "0"]


def test_a_select_only_postgres_role_reads_the_addresses(select_only_role, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url, role, password = select_only_role
    _ok("apply", str(write_jsonl(tmp_path / "a.jsonl", _commands())), db=url)
    dbname = make_url(url).database
    for statement in (f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'",
                      f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"',
                      f'GRANT USAGE ON SCHEMA public TO "{role}"',
                      f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"'):
        _sql(url, statement)
    reader = make_url(url).set(username=role, password=password).render_as_string(hide_password=False)
    assert _register(reader, None)["h1"]["address"] == OSAKA
    _ok("audit", "verify", db=reader)


from test_attacks import select_only_role  # noqa: E402,F401  (the fixture, shared)


def test_the_digest_of_a_details_command_depends_on_the_holder_key() -> None:
    from equity_ledger.ledger.personal import keyed_digest, new_key

    raw = f.details("h1", TOKYO)
    k1, k2 = new_key(), new_key()
    assert keyed_digest(raw, k1) == keyed_digest(dict(reversed(list(raw.items()))), k1)
    assert keyed_digest(raw, k1) != keyed_digest(raw, k2)
    assert keyed_digest(raw, k1) != keyed_digest({**raw, "address": OSAKA}, k1)
    assert keyed_digest(raw, k1) != hashlib.sha256(json.dumps(raw).encode()).hexdigest()


def test_a_hostile_address_is_shown_as_text(sqlite_url: str, tmp_path: Path) -> None:
    hostile = "=1+2 \x1b[31mred\x1b[0m [bold]x[/bold] \u202eevil\n2nd line"
    cmds = [*_commands(), f.details("h3", hostile, on="2020-02-01")]
    _ok("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=sqlite_url)
    assert _register(sqlite_url, None)["h3"]["address"] == hostile  # verbatim in JSON
    table = _ok("register", "s1", db=sqlite_url).stdout
    assert "\x1b" not in table and "\u202e" not in table and "[bold]x[/bold]" in table.replace("\n", "")
    csv = _ok("register", "s1", "--format", "csv", db=sqlite_url).stdout
    assert "\x1b" not in csv and "'=1+2" in csv
