"""Attacks on the ledger, each with the verdict the product owes (issue 11, "Trust").

A black-box specification: every attack goes through what an attacker or a careless user
has (the CLI, SQL on the store's tables, the public chain-link function), and every verdict is
what a user sees: the exit code, one line on stderr with no traceback, and the words that
name what went wrong (the position, the rule, the snapshot, the key, the command id, the
tracking position). Where the attack applies to both stores it runs on SQLite and PostgreSQL.

Classes:
  1. an edited snapshot                 6. bad lines of every shape, a 200 MB line on stdin
  2. an event appended by hand          7. markup and control text from the data
  3. an aggregate's id changed by hand  8. verify while another process applies
  4. command ids and tracking edited    9. files and databases that are not a store; read-only
  5. poison: numbers too large             stores and roles
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

import factories as f
from attack_tools import (
    apply,
    edit_json,
    events_table,
    fingerprint,
    forged_allotment,
    inspect_tables,
    is_sqlite,
    issuance_events,
    one_line_error,
    rights_by_holder,
    run_cli_as,
    snapshots_table,
    sql,
    unprivileged_prefix,
    verify_fails,
    verify_passes,
)
from helpers import BACKENDS, PG_URL, drop_pg_database, fresh_pg_database, run_cli, write_jsonl


def _digest(url: str, env: dict[str, str] | None = None) -> str:
    r = run_cli("audit", "digest", db=url, env=env)
    assert r.code == 0, r.stderr
    return r.stdout.strip()


# =================================================================================================
# 1. An edited snapshot: the issuance's allotted total set to 0, or its terms' rights raised, in
#    the JSON of the snapshot eventsourcing keeps every 2,000 events. `apply` must not build an
#    over-allotment on it, and `audit verify` must name the snapshot.
# =================================================================================================

SNAPSHOT_TERMS = 5000
SNAPSHOT_ALLOTMENTS = 2100


def _lower_allotted_totals(key: str, value: object) -> object:
    # The issuance's running total (and the holder's own), wherever the encoding keeps them.
    if "allot" in key.lower() and value == SNAPSHOT_ALLOTMENTS:
        return 0
    return None


def _raise_terms_rights(key: str, value: object) -> object:
    if key == "rights" and value == SNAPSHOT_TERMS:
        return 1_000_000
    return None


@pytest.mark.parametrize("edit", [_lower_allotted_totals, _raise_terms_rights],
                         ids=["allotted-total-zeroed", "terms-rights-raised"])
def test_edited_snapshot_cannot_admit_an_over_allotment(store_url, tmp_path, edit):
    apply(store_url, f.setup(rights=SNAPSHOT_TERMS) + [f.allot("h1", 1) for _ in range(SNAPSHOT_ALLOTMENTS)],
          tmp_path)
    table = snapshots_table(store_url)
    rows = sql(store_url, f"SELECT originator_id, originator_version, state FROM {table}")
    assert rows, "2,100 events on one issuance must leave a snapshot (one every 2,000 events)"
    edited = 0
    for oid, version, state in rows:
        doc, n = edit_json(json.loads(bytes(state)), edit)
        if n:
            edited += n
            sql(store_url, f"UPDATE {table} SET state = :s WHERE originator_id = :o AND originator_version = :v",
                {"s": json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode(), "o": oid, "v": version})
    assert edited, "the snapshot no longer holds the figure this attack edits"

    # 2,900 rights are left under the real terms: 3,000 more is an over-allotment.
    r = run_cli("apply", "-", db=store_url, input=json.dumps(f.allot("h2", 3000)) + "\n")
    err = one_line_error(r)
    assert "allotment-over-terms" in err or "snapshot" in err.lower(), err
    assert sum(rights_by_holder(store_url).values()) == SNAPSHOT_ALLOTMENTS

    verify_fails(store_url, "snapshot")


# =================================================================================================
# 2. An event appended by hand, its chain link recomputed with the public `link_hash` and a
#    command row to go with it: over the terms, verify names the position and the rule (with or
#    without a digest kept before); with a ledger key, even a rule-abiding forgery is named.
# =================================================================================================


def test_appended_event_over_the_terms_is_named(store_url, tmp_path):
    apply(store_url, f.setup(rights=89) + [f.allot("h1", 50)], tmp_path)
    kept = _digest(store_url)
    position = forged_allotment(store_url, 1000, "forged-1")
    run_cli("projections", "catch-up", db=store_url)  # the intruder tidies up the read models

    verify_fails(store_url, f"position {position}", "allotment-over-terms")
    verify_fails(store_url, f"position {position}", "allotment-over-terms", digest=kept)
    # Replay and verify agree that something is wrong: replay may equal the (caught-up)
    # projections, but it never crashes, and verify above named the forged event.
    replay = run_cli("audit", "replay", db=store_url)
    assert replay.code in (0, 1) and "Traceback" not in replay.stderr, replay.stderr


@pytest.fixture
def key_env(tmp_path):
    key = tmp_path / "ledger.key"
    key.write_bytes(secrets.token_bytes(32))
    key.chmod(0o600)
    return {"EQUITY_LEDGER_KEY_FILE": str(key)}


def test_rule_abiding_forgery_is_named_when_a_key_is_configured(store_url, tmp_path, key_env):
    apply(store_url, f.setup(rights=89) + [f.allot("h1", 50)], tmp_path, env=key_env)
    verify_passes(store_url, env=key_env)
    position = forged_allotment(store_url, 10, "forged-within-terms")  # 60 of 89: no rule broken
    run_cli("projections", "catch-up", db=store_url, env=key_env)

    verify_fails(store_url, f"position {position}", "key", env=key_env)


# =================================================================================================
# 3. An aggregate's id changed by hand. SQLite keeps the UUID as text: upper-casing it hides the
#    issuance's events from a lookup by id while every chain link (over the UUID) still matches.
#    PostgreSQL keeps a uuid: one event is moved to another aggregate. Verify fails before and
#    after a second resolution, new terms and 900 rights are applied on top.
# =================================================================================================


def test_changed_originator_id_cannot_hide_an_issuance(store_url, tmp_path):
    apply(store_url, f.setup(rights=89) + [f.allot("h1", 50), f.allot("h2", 30)], tmp_path)
    table, pos = events_table(store_url)
    resolution = issuance_events(store_url, "ResolutionPassed")[0]
    if is_sqlite(store_url):
        sql(store_url, f"UPDATE {table} SET originator_id = upper(originator_id) WHERE originator_id = :o",
            {"o": resolution[1]})
    else:
        sql(store_url, f"UPDATE {table} SET originator_id = :n WHERE {pos} = :p",
            {"n": uuid.uuid4(), "p": resolution[0]})

    verify_fails(store_url)

    again = [f.resolution("s1"), f.terms("s1", rights=1000), f.allot("h7", 900)]
    r = run_cli("apply", str(write_jsonl(tmp_path / "again.jsonl", again)), db=store_url)
    assert r.code in (0, 1) and "Traceback" not in r.stderr, r.stderr
    if r.code == 1:
        one_line_error(r)
    verify_fails(store_url)


# =================================================================================================
# 4. What the store keeps to go faster, edited: a command's content digest (decides whether a
#    re-run is skipped or refused) and the projections' tracking position.
# =================================================================================================


def test_edited_command_digest_is_named(store_url, tmp_path):
    target = f.allot("h2", 5)
    apply(store_url, f.setup() + [f.allot("h1", 10), target], tmp_path)
    sql(store_url, "UPDATE ledger_commands SET digest = :d WHERE command_id = :c",
        {"d": hashlib.sha256(b"something else").hexdigest(), "c": target["id"]})
    verify_fails(store_url, target["id"], "command")


def test_tracking_position_past_the_head_is_named_and_never_stops_projecting(store_url, tmp_path):
    apply(store_url, f.setup() + [f.allot("h1", 10)], tmp_path)
    sql(store_url, "UPDATE proj_tracking SET position = position + 1000")
    verify_fails(store_url, "tracking")

    r = run_cli("apply", "-", db=store_url, input=json.dumps(f.allot("h9", 7)) + "\n")
    assert "Traceback" not in r.stderr, r.stderr
    if r.code == 1:
        err = one_line_error(r)
        assert "projections rebuild" in err, err
    else:
        assert r.code == 0, r.stderr
        assert rights_by_holder(store_url).get("h9") == 7


# =================================================================================================
# 5. Poison: numbers too large for the store's 64-bit integers or for an exact Decimal. Refused up
#    front (one line naming the field or the rule), nothing stored, later commands still apply.
# =================================================================================================

POISON = [
    ("max-rights-1e30", {**f.resolution("s3"), "id": "poison", "max_rights": 10**30}, ("max_rights",)),
    ("shares-per-right-1e20", {**f.terms("s2"), "id": "poison", "shares_per_right": 10**20}, ("shares_per_right",)),
    ("rights-times-shares-over-int64", {**f.terms("s2"), "id": "poison", "rights": 1_000_000,
                                        "shares_per_right": 10**13}, ("rights", "shares_per_right")),
    # In the terms, where no rule caps it (an allotment this large is already over its terms).
    ("rights-2-pow-63", {**f.terms("s2"), "id": "poison", "rights": 2**63, "shares_per_right": 1}, ("rights",)),
    ("money-29-digits", {**f.terms("s2"), "id": "poison", "price_per_right": "12345678901234567890123456789"},
     ("price_per_right",)),
    ("money-29-digits-fraction", {**f.terms("s2"), "id": "poison",
                                  "exercise_price_per_share": "1.0000000000000000000000000001"},
     ("exercise_price_per_share",)),
]


def _poison_start(url, folder):
    apply(url, f.setup("s1") + [f.allot("h1", 10), f.resolution("s2")], folder)


@pytest.mark.parametrize("line, fields", [p[1:] for p in POISON], ids=[p[0] for p in POISON])
def test_poison_number_is_refused_up_front(built_store, tmp_path, line, fields):
    store_url = built_store("poison", _poison_start)
    before = fingerprint(store_url)
    r = run_cli("apply", "-", db=store_url, input=json.dumps(line) + "\n")
    err = one_line_error(r)
    assert "line 1" in err and "poison" in err, err
    assert any(name in err for name in fields) or re.search(r"\[[a-z0-9-]+\]", err), err
    assert fingerprint(store_url) == before

    later = [f.terms("s2"), f.allot("h2", 3, issuance="s2")]
    apply(store_url, later, tmp_path, name="later.jsonl")
    assert rights_by_holder(store_url, "s2") == {"h2": 3}


# =================================================================================================
# 6. Bad lines of every shape after valid lines of the same file: one line on stderr naming the
#    line, exit 1, and the valid commands before it stay applied. A 200 MB line on stdin is
#    refused with bounded memory.
# =================================================================================================

_ALLOT_FIELDS = {k: v for k, v in f.allot("h3", 1).items() if k != "id"}


def _line(**fields) -> str:
    return json.dumps({"id": "bad", **_ALLOT_FIELDS, **fields})


BAD_LINES = [
    ("nested-5000", "[" * 5000 + "]" * 5000),
    ("nested-5000-in-object", '{"id": "bad", "type": "allot_rights", "name": ' + "[" * 5000 + "]" * 5000 + "}"),
    ("integer-5000-digits", _line(rights=0).replace('"rights": 0', '"rights": ' + "7" * 5000)),
    ("lone-surrogate", _line(name="SURROGATE").replace("SURROGATE", "\\ud800")),
    ("line-2-mib", _line(name="x" * (2 * 1024 * 1024))),
]


def _valid_start() -> list[dict]:
    return f.setup(exercisable_only_after_departure=True, exercise_window_days_after_departure=10) + [
        f.allot("h1", 10), f.allot("h2", 5)]


@pytest.mark.parametrize("bad", [b[1] for b in BAD_LINES], ids=[b[0] for b in BAD_LINES])
def test_bad_line_after_valid_lines(store_url, tmp_path, bad):
    valid = _valid_start()
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in valid) + bad + "\n", encoding="utf-8")
    r = run_cli("apply", str(path), db=store_url)
    err = one_line_error(r)
    assert f"line {len(valid) + 1}" in err, err
    assert rights_by_holder(store_url) == {"h1": 10, "h2": 5}
    verify_passes(store_url)


def test_departure_at_the_end_of_the_calendar(store_url, tmp_path):
    # departed_on + a 10-day window is past 9999-12-31: refused with one line, or accepted and
    # every query still answers; never a traceback.
    valid = _valid_start()
    path = write_jsonl(tmp_path / "late.jsonl", valid + [f.depart("h1", on="9999-12-25")])
    r = run_cli("apply", str(path), db=store_url)
    assert "Traceback" not in r.stderr, r.stderr
    if r.code == 1:
        assert f"line {len(valid) + 1}" in one_line_error(r)
    else:
        assert r.code == 0, r.stderr
    assert rights_by_holder(store_url) == {"h1": 10, "h2": 5}
    for args in (["holdings", "--as-of", "9999-12-31"], ["holdings", "--issuance", "s1", "--format", "json"],
                 ["register", "s1"], ["history"], ["audit", "verify"], ["audit", "replay"]):
        q = run_cli(*args, db=store_url)
        assert q.code == 0 and "Traceback" not in q.stderr, (args, q.stderr)


# Forks and execs the command of argv[2:] with this interpreter, waits, and writes the command's
# peak RSS (KiB) and exit code to the file argv[1]; exits with the command's code.
_LAUNCH = (
    "import os, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.execv(sys.executable, [sys.executable, *sys.argv[2:]])\n"
    "_, status, usage = os.wait4(pid, 0)\n"
    "code = os.waitstatus_to_exitcode(status)\n"
    "open(sys.argv[1], 'w').write(f'{usage.ru_maxrss} {code}')\n"
    "sys.exit(code)\n"
)


def test_line_of_200_mb_on_stdin_is_refused_in_bounded_memory(sqlite_url, tmp_path):
    assert run_cli("init", db=sqlite_url).code == 0
    env = dict(os.environ)
    env.pop("EQUITY_LEDGER_DB", None)
    # The CLI starts from a small launcher, not from this process: a child forked from a large
    # pytest process reports the parent's pages in its peak RSS (Linux keeps the high-water mark
    # across exec), so the figure would measure the test runner, not the CLI.
    report = tmp_path / "rusage"
    child = subprocess.Popen([sys.executable, "-c", _LAUNCH, str(report),
                              "-m", "equity_ledger.cli", "--db", sqlite_url, "apply", "-"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    chunk = b"x" * (1024 * 1024)

    def feed() -> None:
        try:
            child.stdin.write(b'{"id": "big", "type": "allot_rights", "name": "')
            for _ in range(200):
                child.stdin.write(chunk)
            child.stdin.write(b'"}\n')
            child.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # the CLI stopped reading: that is the point

    started = time.monotonic()
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda n=n, s=s: out.__setitem__(n, s.read()), daemon=True)
               for n, s in (("stdout", child.stdout), ("stderr", child.stderr))]
    for t in readers:
        t.start()
    child.wait()
    maxrss_kib, returncode = (int(x) for x in report.read_text().split())
    child.returncode = returncode
    writer.join(10)
    for t in readers:
        t.join(10)
    elapsed = time.monotonic() - started
    stderr = out.get("stderr", b"").decode("utf-8", "replace")
    assert child.returncode == 1, (child.returncode, stderr[-2000:])
    assert "Traceback" not in stderr and stderr.count("\n") == 1 and "line 1" in stderr, stderr[-2000:]
    peak_mib = maxrss_kib / 1024  # KiB on Linux
    assert peak_mib < 150, f"peak RSS {peak_mib:.0f} MiB for a refused line"
    assert elapsed < 30, elapsed


# =================================================================================================
# 7. Markup and control text from the data never reaches the terminal: rich markup in titles,
#    an OSC title sequence in the issuer, CSI and a C1 control in a name, ESC in a refused id.
# =================================================================================================

BLINK_TITLE = "[blink][link=https://evil.example]x[/link][/blink]"
CLOSE_TITLE = "[/bold]"
ISSUER = "Evil\x1b]0;pwned\x07 K.K."
NAME = "Red\x1b[31m Alert\x9b2J"
# C0 controls but tab, newline and carriage return (CSV ends lines with CRLF); DEL; C1 controls.
FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\x80-\x9f]")


def _raw_cli(*args: str, db: str, input: bytes | None = None) -> tuple[int, bytes, bytes]:
    env = dict(os.environ, COLUMNS="400")
    env.pop("EQUITY_LEDGER_DB", None)
    p = subprocess.run([sys.executable, "-m", "equity_ledger.cli", "--db", db, *args], input=input,
                       capture_output=True, env=env, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _assert_inert(label: str, data: bytes) -> str:
    text = data.decode("utf-8")  # a stray byte 0x9b would be a C1 control to many terminals
    bad = FORBIDDEN.search(text)
    assert bad is None, f"{label}: raw control {bad.group()!r} at {bad.start()}: {text[max(0, bad.start() - 60):bad.start() + 20]!r}"
    assert "\x1b]8;" not in text and "\x1b" not in text, label
    return text


@pytest.fixture(scope="module", params=BACKENDS)
def hostile_store(request, tmp_path_factory):
    """One store of hostile text per backend, shared by the read-only queries below."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    if request.param == "sqlite":
        store_url, name = f"sqlite:///{tmp_path}/ledger.sqlite", None
    else:
        store_url, name = fresh_pg_database()
        request.addfinalizer(lambda: drop_pg_database(name))
    apply(store_url, [
        f.resolution("s1", issuer=ISSUER, title=BLINK_TITLE), f.terms("s1"),
        f.resolution("s2", issuer=ISSUER, title=CLOSE_TITLE), f.terms("s2"),
        f.allot("h1", 10, name=NAME, reason="[bold red]loud[/]"),
        f.allot("h2", 5, issuance="s2", name=CLOSE_TITLE),
    ], tmp_path)
    return store_url


QUERIES = (
    [["holdings", "--by", by, "--format", fmt] for by in ("person", "group", "issuance") for fmt in ("table", "json", "csv")]
    + [["holdings", "--issuance", "s1", "--format", fmt] for fmt in ("table", "json", "csv")]
    + [["register", iss, "--format", fmt] for iss in ("s1", "s2") for fmt in ("table", "json", "csv")]
    + [["history", "--format", fmt] for fmt in ("table", "json")]
    + [["audit", "replay"], ["audit", "verify"]]
)


@pytest.mark.parametrize("args", QUERIES, ids=["-".join(q) for q in QUERIES])
def test_no_control_text_or_markup_reaches_the_terminal(hostile_store, args):
    code, out, err = _raw_cli(*args, db=hostile_store)
    text = _assert_inert("stdout", out)
    _assert_inert("stderr", err)
    assert code == 0 and b"Traceback" not in err, err.decode("utf-8", "replace")[-2000:]
    if args[0] == "register" and args[-1] == "table":
        title = BLINK_TITLE if args[1] == "s1" else CLOSE_TITLE
        assert title in text, text[:500]  # the literal text is visible, as text
    if args[0] == "history" and args[-1] == "json":
        passed = [e for e in json.loads(text) if e["type"] == "resolution_passed"]
        assert {e.get("title") for e in passed} == {BLINK_TITLE, CLOSE_TITLE}
        assert {e.get("issuer") for e in passed} == {ISSUER}
    if args[:2] == ["holdings", "--by"] and args[2] == "person" and args[-1] == "json":
        assert {r["name"] for r in json.loads(text)} == {NAME, CLOSE_TITLE}


def test_refusal_naming_a_hostile_id_is_inert(hostile_store):
    # Refused: nothing is stored, so the shared store stays as the other tests expect.
    line = json.dumps({**f.allot("h1", 500), "id": "evil\x1b[2J\x1b]8;;https://evil.example\x07id\x9b"})
    code, out, err = _raw_cli("apply", "-", db=hostile_store, input=line.encode() + b"\n")
    _assert_inert("stdout", out)
    text = _assert_inert("stderr", err)
    assert code == 1 and text.count("\n") == 1 and "allotment-over-terms" in text, text
    assert "evil" in text


# =================================================================================================
# 8. `audit verify` while another process applies commands: it reads one consistent state and
#    never reports tampering that is not there.
# =================================================================================================


@pytest.mark.slow
@pytest.mark.heavy
def test_verify_during_apply_never_reports_tampering(store_url, tmp_path):
    apply(store_url, f.setup(rights=100_000) + [f.allot("h0", 1)], tmp_path, name="start.jsonl")
    big = write_jsonl(tmp_path / "big.jsonl", [f.allot(f"h{i % 500}", 1) for i in range(20_000)])
    env = dict(os.environ)
    env.pop("EQUITY_LEDGER_DB", None)
    writer = subprocess.Popen([sys.executable, "-m", "equity_ledger.cli", "--db", store_url, "apply", str(big),
                               "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    verdicts = []
    try:
        time.sleep(0.5)
        while writer.poll() is None and len(verdicts) < 5:
            r = run_cli("audit", "verify", db=store_url)
            verdicts.append(r)
            out = r.stdout + r.stderr
            assert "FAILED" not in out and "Traceback" not in out, out
            assert r.code == 0 or ("catch-up" in out or "behind" in out), out
    finally:
        _, err = writer.communicate(timeout=600)
    assert writer.returncode == 0, err
    assert verdicts, "apply finished before verify could run alongside it"
    verify_passes(store_url)


# =================================================================================================
# 9. Files and databases that are not a store are refused and left untouched; a read-only store
#    (file and folder, or a PostgreSQL role with SELECT only) can be queried and verified.
# =================================================================================================


def _foreign_sqlite(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE recipes (name TEXT PRIMARY KEY, steps TEXT)")
    conn.execute("INSERT INTO recipes VALUES ('bread', 'knead')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize("kind", ["empty-file", "other-programs-sqlite"])
@pytest.mark.parametrize("query", [["holdings"], ["audit", "verify"]], ids=["holdings", "audit-verify"])
def test_not_a_store_file_is_refused_untouched(tmp_path, kind, query):
    folder = tmp_path / "data"
    folder.mkdir()
    path = folder / "books.sqlite"
    if kind == "empty-file":
        path.write_bytes(b"")
    else:
        _foreign_sqlite(path)
    before = path.read_bytes()
    r = run_cli(*query, db=f"sqlite:///{path}")
    err = one_line_error(r)
    assert "books.sqlite" in err, err
    assert path.read_bytes() == before
    assert sorted(p.name for p in folder.iterdir()) == ["books.sqlite"]


@pytest.fixture
def empty_pg_database():
    url, name = fresh_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(name)


@pytest.mark.parametrize("query", [["holdings"], ["audit", "verify"]], ids=["holdings", "audit-verify"])
def test_empty_postgres_database_is_refused_untouched(empty_pg_database, query):
    r = run_cli(*query, db=empty_pg_database)
    one_line_error(r)
    assert inspect_tables(empty_pg_database) == []


def test_read_only_sqlite_store_can_be_queried_and_verified(tmp_path):
    prefix = unprivileged_prefix()
    if prefix is None:
        pytest.skip("cannot run the CLI without the power to ignore file permissions here")
    source = tmp_path / "ledger.sqlite"
    apply(f"sqlite:///{source}", f.setup() + [f.allot("h1", 10), f.allot("h2", 5)], tmp_path)
    # A folder every user can reach (pytest's own temporary folders are private to root).
    base = Path(tempfile.mkdtemp(prefix="el-ro-"))
    try:
        base.chmod(0o755)
        folder = base / "ro"
        folder.mkdir()
        store = folder / "ledger.sqlite"
        shutil.copy(source, store)
        store.chmod(0o444)
        folder.chmod(0o555)
        before = store.read_bytes()
        url = f"sqlite:///{store}"
        for args in (["holdings"], ["holdings", "--format", "json"], ["register", "s1"], ["history"],
                     ["audit", "verify"], ["audit", "digest"]):
            r = run_cli_as(prefix, *args, db=url, cwd=str(base))
            assert r.code == 0 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
        assert store.read_bytes() == before
        assert sorted(p.name for p in folder.iterdir()) == ["ledger.sqlite"]
    finally:
        for p in (base / "ro", base):
            if p.exists():
                p.chmod(stat.S_IRWXU)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def select_only_role(store_url, backend):
    if backend != "postgresql":
        pytest.skip("a role with SELECT only is PostgreSQL's")
    role, password = "el_ro_" + secrets.token_hex(6), secrets.token_hex(12)
    yield store_url, role, password
    # A role cannot be dropped while it holds privileges: revoke them in its database first.
    sql(store_url, f'DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = \'{role}\') '
                   f'THEN EXECUTE \'DROP OWNED BY "{role}"\'; END IF; END $$')
    admin = os.environ.get("EQUITY_LEDGER_TEST_PG_ADMIN_URL") or PG_URL.rsplit("/", 1)[0] + "/postgres"
    sql(admin, f'DROP ROLE IF EXISTS "{role}"')


def test_select_only_postgres_role_can_query_and_verify(select_only_role, tmp_path):
    url, role, password = select_only_role
    apply(url, f.setup() + [f.allot("h1", 10), f.allot("h2", 5)], tmp_path)
    dbname = make_url(url).database
    sql(url, f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{password}'")
    sql(url, f'GRANT CONNECT ON DATABASE "{dbname}" TO "{role}"')
    sql(url, f'GRANT USAGE ON SCHEMA public TO "{role}"')
    sql(url, f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
    reader = make_url(url).set(username=role, password=password).render_as_string(hide_password=False)
    before = fingerprint(url)
    for args in (["holdings"], ["holdings", "--format", "json"], ["register", "s1"], ["history"],
                 ["audit", "verify"], ["audit", "digest"]):
        r = run_cli(*args, db=reader)
        assert r.code == 0 and "Traceback" not in r.stderr, (args, r.stdout, r.stderr)
        assert password not in r.stdout + r.stderr
    assert fingerprint(url) == before
