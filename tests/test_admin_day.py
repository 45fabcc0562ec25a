"""The administrator's day, end to end: tables that fit the terminal, `apply --dry-run`, Excel
and CSV files for the auditors, the store URL forms and the small conveniences."""

from __future__ import annotations

import io
import json
import os
import sqlite3
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.cells import cell_len

import factories as f
from helpers import run_cli, write_jsonl

ISSUANCE = "iij-2013-sar"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory) -> str:
    """The demo's store (SQLite), shared by the read-only tests of this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('demo')}/demo.sqlite"
    r = run_cli("demo", db=url)
    assert r.code == 0, r.stderr
    return url


def _cols(width: int) -> dict[str, str]:
    return {"COLUMNS": str(width)}


def _rows_of(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith("│")]


# ------------------------------------------------------------------------------ tables
@pytest.mark.parametrize("width", [80, 100, 160])
@pytest.mark.parametrize("args", [
    ("holdings", "--by", "person"),
    ("holdings", "--by", "person", "--issuance", ISSUANCE, "--as-of", "2013-07-31"),
    ("holdings", "--by", "group"),
    ("holdings", "--by", "issuance"),
    ("register", ISSUANCE),
    ("history",),
    ("demo",),
])
def test_every_table_fits_the_width(demo_store, width, args):
    r = run_cli(*args, db=demo_store, env=_cols(width))
    assert r.code == 0, r.stderr
    wide = [ln for ln in r.stdout.splitlines() if cell_len(ln) > width and ("│" in ln or "┃" in ln or "━" in ln)]
    assert not wide, wide[:3]
    assert "…" not in r.stdout  # nothing cut to an ellipsis


@pytest.mark.parametrize("width", [80, 100, 160])
def test_holdings_by_person_keeps_its_key_columns_and_whole_numbers(demo_store, width):
    rows = run_cli("holdings", "--by", "person", "--format", "json", db=demo_store).json()
    r = run_cli("holdings", "--by", "person", db=demo_store, env=_cols(width))
    assert r.code == 0, r.stderr
    for ln in r.stdout.splitlines():
        assert cell_len(ln) <= width, ln
    header = " ".join(ln for ln in r.stdout.splitlines() if ln.startswith("┃"))
    for word in ("holder", "name", "group", "outstanding", "shares", "underlying"):
        assert word in header, (width, header)
    lines = _rows_of(r.stdout)
    for row in rows:
        line = next(ln for ln in lines if ln.startswith(f"│ {row['holder']} "))
        cells = [c.strip() for c in line.strip("│").split("│")]
        assert f"{row['rights_outstanding']:,}" in cells and f"{row['shares_underlying']:,}" in cells, line
        if width >= 100:
            assert row["name"] in line  # Japanese names whole, and aligned:
    assert len({cell_len(ln) for ln in lines}) == 1


def test_wide_shows_every_column_and_off_a_terminal_the_table_is_whole(demo_store):
    narrow = run_cli("holdings", "--by", "person", db=demo_store, env=_cols(80))
    assert "not shown:" in narrow.stdout and "--wide" in narrow.stdout
    wide = run_cli("holdings", "--by", "person", "--wide", db=demo_store, env=_cols(80))
    text = " ".join(ln for ln in wide.stdout.splitlines() if ln.startswith("┃"))
    for word in ("allotted", "exercised", "forfeited", "expired", "delivered", "offset", "paid", "ccy"):
        assert word in text
    assert "57,583,000" in wide.stdout and "not shown" not in wide.stdout
    for args in (("register", ISSUANCE, "--wide"), ("history", "--wide")):
        r = run_cli(*args, db=demo_store, env=_cols(80))
        assert r.code == 0 and "not shown" not in r.stdout, r.stderr
    piped = run_cli("holdings", "--by", "person", db=demo_store, env={"COLUMNS": ""})
    lines = [ln for ln in piped.stdout.splitlines() if "│" in ln]
    assert len({cell_len(ln) for ln in lines}) == 1 and cell_len(lines[0]) > 120
    assert "not shown" not in piped.stdout


def test_a_huge_figure_is_never_cut_at_80_columns():
    from equity_ledger.cli import render

    cols = [("holder", "holder", False), ("name", "name", False), ("group", "group", False),
            ("rights_outstanding", "outstanding", True), ("shares_underlying", "shares underlying", True),
            ("amount_offset", "amount offset", True), ("note", "note", False)]
    row = {"holder": "h" * 30, "name": "長い名前の人" * 4, "group": "executive_officer",
           "rights_outstanding": 2**63 - 1, "shares_underlying": 2**63 - 1,
           "amount_offset": "123456789012345678.25", "note": "x " * 60}
    buf = io.StringIO()
    import sys

    old, sys.stdout = sys.stdout, buf
    try:
        render.table("T", cols, [row], keep=("holder", "name", "group", "rights_outstanding",
                                             "shares_underlying"), width=80)
    finally:
        sys.stdout = old
    out = buf.getvalue()
    assert all(cell_len(ln) <= 80 for ln in out.splitlines()), out
    assert "…" not in out
    body = [ln.strip("│").split("│") for ln in out.splitlines() if ln.startswith("│")]
    for col in (3, 4):  # a figure too wide for the screen folds: every digit, in order
        assert "".join(cells[col].strip() for cells in body) == f"{2**63 - 1:,}", out


# ------------------------------------------------------------------------------ dry run
def _store_rows(url: str) -> dict[str, int]:
    tables = ("stored_events", "ledger_commands", "ledger_chain", "proj_holdings")
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t.replace('stored_events', 'equityledger_events')}").fetchone()[0]
                for t in tables}


def test_dry_run_checks_every_line_and_stores_nothing(store_url, tmp_path: Path):
    base = f.setup(rights=12) + [f.allot("h1", 10)]
    assert run_cli("apply", str(write_jsonl(tmp_path / "base.jsonl", base)), db=store_url).code == 0
    before_rows = _store_rows(store_url)
    before_digest = run_cli("audit", "digest", db=store_url).json()
    before_bytes = Path(store_url.split("///", 1)[1]).read_bytes() if store_url.startswith("sqlite") else None

    over = f.allot("h2", 5)  # 10 + 5 > 12: refused
    later = f.allot("h3", 2)  # fits once the refused line is left out
    needs_refused = f.exercise("h2", 1)  # h2 never got rights: refused too
    needs_earlier = f.exercise("h3", 1)  # h3's rights come from a line of this same file
    lines = base + [over, later, needs_refused, needs_earlier]
    r = run_cli("apply", "--dry-run", str(write_jsonl(tmp_path / "next.jsonl", lines)), db=store_url)
    assert r.code == 1, (r.stdout, r.stderr)
    out = r.stdout.splitlines()
    assert out[0].startswith("line 1 (id ") and "would skip pass_resolution" in out[0]
    assert "would skip allot_rights" in out[2]
    assert f"line 4 (id {over['id']}): would refuse allot_rights [allotment-over-terms]" in out[3]
    assert f"line 5 (id {later['id']}): would apply allot_rights (2 events)" == out[4]
    assert "line 6" in out[5] and "would refuse exercise_rights [unknown-holder]" in out[5]
    assert "line 7" in out[6] and "would apply exercise_rights" in out[6]
    assert out[-1] == ("dry run: 2 commands would be applied (3 events), 3 skipped as already applied, "
                       "2 refused; nothing stored")

    assert _store_rows(store_url) == before_rows
    assert run_cli("audit", "digest", db=store_url).json() == before_digest
    if before_bytes is not None:
        assert Path(store_url.split("///", 1)[1]).read_bytes() == before_bytes
    assert run_cli("audit", "verify", db=store_url).code == 0

    ok = run_cli("apply", "--dry-run", "-", db=store_url,
                 input="".join(json.dumps(c) + "\n" for c in base + [later, needs_earlier]))
    assert ok.code == 0 and "0 refused" in ok.stdout, ok.stdout
    same_id_other_content = dict(base[2], rights=1)
    r = run_cli("apply", "--dry-run", "-", db=store_url, input=json.dumps(same_id_other_content) + "\n")
    assert r.code == 1 and "[id-reused-with-other-content]" in r.stdout


def test_dry_run_on_a_store_that_does_not_exist_creates_nothing(tmp_path: Path):
    path = tmp_path / "new.sqlite"
    cmds = f.setup() + [f.allot("h1", 5), '{"id": "bad", "type": "nope"}', f.allot("h2", 5)]
    file = tmp_path / "a.jsonl"
    file.write_text("".join((c if isinstance(c, str) else json.dumps(c)) + "\n" for c in cmds))
    r = run_cli("apply", "--dry-run", str(file), "--db", str(path))
    assert r.code == 1 and not path.exists()
    assert "would apply allot_rights" in r.stdout
    assert "line 4 (id bad)" in r.stdout and "[bad-input]" in r.stdout and "not checked" in r.stdout


def test_dry_run_of_a_keyed_store_goes_through_the_writer_checks(sqlite_url, tmp_path: Path):
    key = tmp_path / "ledger.key"
    key.write_bytes(os.urandom(32).hex().encode())
    env = {"EQUITY_LEDGER_KEY_FILE": str(key)}
    file = write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("h1", 5)])
    assert run_cli("apply", str(file), db=sqlite_url, env=env).code == 0
    more = write_jsonl(tmp_path / "b.jsonl", [f.allot("h2", 5)])
    r = run_cli("apply", "--dry-run", str(more), db=sqlite_url, env=env)
    assert r.code == 0 and "would apply allot_rights" in r.stdout, r.stderr
    r = run_cli("apply", "--dry-run", str(more), db=sqlite_url, env={"EQUITY_LEDGER_KEY_FILE": ""})
    assert r.code == 1 and "ledger key" in r.stderr
    assert run_cli("holdings", db=sqlite_url, env={"EQUITY_LEDGER_KEY_FILE": ""}).code == 0  # reads need no key


# ------------------------------------------------------------------------------ files
def _sheet(path: Path) -> list[tuple]:
    from openpyxl import load_workbook

    wb = load_workbook(path)
    assert len(wb.worksheets) == 1
    return [tuple(r) for r in wb.active.iter_rows(values_only=True)]


PRICE = "123456789012.345678"


def test_money_is_a_number_only_where_excel_shows_it_exactly():
    from equity_ledger.cli.xlsx import excel_number

    assert excel_number("1234567890123.45") == 1234567890123.45  # 15 significant digits
    assert excel_number("9705000") == 9705000 and isinstance(excel_number("9705000"), int)
    assert excel_number("0.1") == 0.1 and excel_number(Decimal("647000.00")) == 647000
    for text in (PRICE, "1234567890123456", 10**15, "200/3", "NaN", "x"):
        assert excel_number(text) is None, text


def test_xlsx_holdings_register_history_are_typed_and_exact(store_url, tmp_path: Path):
    cmds = [
        f.resolution(), f.terms(price_per_right=PRICE, exercise_price_per_share="0.1", rights=10),
        f.allot("d01", 7, name="山田 太郎"), f.allot("x1", 1, name="=HYPERLINK(\"http://evil\")"),
        f.depart("d01", on="2021-06-30"),
    ]
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=store_url).code == 0
    out = tmp_path / "h.xlsx"
    r = run_cli("holdings", "--format", "xlsx", "--output", str(out), db=store_url)
    assert r.code == 0, r.stderr
    sheet = _sheet(out)
    header = sheet[0]
    assert header[:3] == ("holder", "name", "group")
    rows = {r[0]: dict(zip(header, r)) for r in sheet[1:]}
    assert rows["d01"]["name"] == "山田 太郎"
    assert rows["d01"]["rights_allotted"] == 7 and isinstance(rows["d01"]["shares_underlying"], int)
    # more than 15 significant digits: text, exactly the ledger's amount
    assert isinstance(rows["d01"]["amount_offset"], str)
    assert Decimal(rows["d01"]["amount_offset"]) == 7 * Decimal(PRICE)
    assert rows["x1"]["name"] == '=HYPERLINK("http://evil")'  # text, not a formula
    from openpyxl import load_workbook

    ws = load_workbook(out).active
    assert all(c.data_type != "f" for row in ws.iter_rows() for c in row)

    reg = tmp_path / "r.xlsx"
    assert run_cli("register", "s1", "--format", "xlsx", "-o", str(reg), db=store_url).code == 0
    sheet = _sheet(reg)
    row = dict(zip(sheet[0], sheet[1]))
    assert row["exercise_from"] == datetime(2020, 2, 2) and row["acquired_on"] == datetime(2020, 2, 1)
    assert row["exercise_price_per_share"] == 0.1 and row["rights_held"] == 7

    hist = tmp_path / "hist.xlsx"
    assert run_cli("history", "--holder", "d01", "--format", "xlsx", "-o", str(hist), db=store_url).code == 0
    sheet = _sheet(hist)
    rows = [dict(zip(sheet[0], r)) for r in sheet[1:]]
    assert [r["type"] for r in rows] == ["rights_allotted", "holder_registered", "holder_departed"]
    assert rows[-1]["effective_on"] == datetime(2021, 6, 30) and isinstance(rows[0]["recorded_at"], datetime)
    assert isinstance(rows[0]["position"], int)


def test_xlsx_needs_output_and_csv_files_get_a_bom(sqlite_url, tmp_path: Path):
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("d01", 3, name="山田 太郎")])),
                   db=sqlite_url).code == 0
    for args in (("holdings",), ("register", "s1"), ("history",)):
        r = run_cli(*args, "--format", "xlsx", db=sqlite_url)
        assert r.code == 2 and "--output" in r.stderr
    r = run_cli("holdings", "--format", "xlsx", "-o", str(tmp_path / "nowhere" / "h.xlsx"), db=sqlite_url)
    assert r.code == 1 and "cannot write" in r.stderr and "store" not in r.stderr
    assert not any(p.name.startswith(".equity-ledger-") for p in tmp_path.iterdir())

    file = tmp_path / "h.csv"
    assert run_cli("holdings", "--format", "csv", "--output", str(file), db=sqlite_url).code == 0
    data = file.read_bytes()
    assert data.startswith(b"\xef\xbb\xbfholder,name,") and "山田 太郎".encode() in data
    stdout = run_cli("holdings", "--format", "csv", db=sqlite_url).stdout
    assert stdout.startswith("holder,name,")  # a pipe gets plain UTF-8
    empty = run_cli("holdings", "--format", "csv", "--as-of", "2000-01-01", db=sqlite_url)
    assert empty.code == 0 and empty.stdout.startswith("holder,name,group,rights_allotted,")
    empty = run_cli("holdings", "--issuance", "s1", "--format", "csv", "--as-of", "2000-01-01", db=sqlite_url)
    assert empty.stdout.startswith("holder,name,group,issuance,rights_allotted,")
    hist = run_cli("history", "--format", "csv", db=sqlite_url)
    assert hist.code == 0 and hist.stdout.startswith("position,effective_on,type,issuance,holder,figures,")


# ------------------------------------------------------------------------------ history
def test_history_of_an_issuance_includes_its_holders_departures(store_url, tmp_path: Path):
    cmds = f.setup() + f.setup("s2") + [f.allot("h1", 3), f.allot("h2", 3, issuance="s2"),
                                         f.depart("h1", on="2021-01-01"), f.depart("h2", on="2021-02-01")]
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=store_url).code == 0
    s1 = run_cli("history", "--issuance", "s1", "--format", "json", db=store_url).json()
    departures = [(h["holder"], h["effective_on"]) for h in s1 if h["type"] == "holder_departed"]
    assert departures == [("h1", "2021-01-01")]
    h1 = run_cli("history", "--holder", "h1", "--format", "json", db=store_url).json()
    assert "holder_departed" in {h["type"] for h in h1}
    for args in (("--holder", "nope"), ("--issuance", "nope")):
        r = run_cli("history", *args, db=store_url)
        assert r.code == 1 and "nope" in r.stderr and r.stderr.count("\n") == 1


# ------------------------------------------------------------------------------ conveniences
def test_version_short_help_and_db_after_the_verb(sqlite_url, tmp_path: Path):
    r = run_cli("--version")
    assert r.code == 0 and r.stdout.startswith("equity-ledger ")
    for args in (("-h",), ("holdings", "-h"), ("rights", "allot", "-h"), ("audit", "verify", "-h")):
        r = run_cli(*args)
        assert r.code == 0 and "Usage:" in r.stdout and "--db" in r.stdout, args
    file = write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("h1", 3)])
    assert run_cli("apply", str(file), "--db", sqlite_url).code == 0
    rows = run_cli("holdings", "--format", "json", "--db", sqlite_url).json()
    assert [r["holder"] for r in rows] == ["h1"]
    assert run_cli("audit", "verify", "--db", sqlite_url).code == 0
    # after the verb wins over before it
    r = run_cli("--db", str(tmp_path / "other.sqlite"), "holdings", "--format", "json", "--db", sqlite_url)
    assert r.code == 0 and r.json() == rows


def test_plain_paths_are_sqlite_files(tmp_path: Path):
    file = write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("h1", 3)])
    r = run_cli("--db", "./books.sqlite", "apply", str(file), cwd=tmp_path)
    assert r.code == 0, r.stderr
    assert (tmp_path / "books.sqlite").exists()
    for db in ("books.sqlite", str(tmp_path / "books.sqlite"), f"sqlite:///{tmp_path}/books.sqlite"):
        r = run_cli("holdings", "--format", "json", "--db", db, cwd=tmp_path)
        assert r.code == 0 and r.json()[0]["holder"] == "h1", (db, r.stderr)


def test_postgresql_url_forms(tmp_path: Path):
    from helpers import drop_pg_database, fresh_pg_database

    url, name = fresh_pg_database()  # skips without a server
    try:
        file = write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("h1", 3)])
        assert run_cli("apply", str(file), db=url).code == 0
        rest = url.split("://", 1)[1]
        for scheme in ("postgresql", "postgres", "postgresql+psycopg"):
            r = run_cli("holdings", "--format", "json", db=f"{scheme}://{rest}")
            assert r.code == 0 and r.json()[0]["holder"] == "h1", (scheme, r.stderr)
    finally:
        drop_pg_database(name)


def test_postgresql_roles_of_the_readme(tmp_path: Path):
    """The README's GRANT statements: the writer writes, the auditor reads and checks only."""
    import uuid

    import psycopg

    from helpers import PG_ADMIN_URL, PG_URL, _require_pg

    _require_pg()
    base = PG_URL.rsplit("/", 1)[0]
    admin = (PG_ADMIN_URL or base + "/postgres").replace("postgresql+psycopg://", "postgresql://", 1)
    tag = uuid.uuid4().hex[:8]
    db, writer, auditor = f"el_roles_{tag}", f"ledger_writer_{tag}", f"ledger_auditor_{tag}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {writer} LOGIN PASSWORD 'writer-secret'")
        conn.execute(f"CREATE ROLE {auditor} LOGIN PASSWORD 'auditor-secret'")
        conn.execute(f"CREATE DATABASE {db} OWNER {writer}")
    host = base.split("@", 1)[1]
    try:
        with psycopg.connect(admin.rsplit("/", 1)[0] + "/" + db, autocommit=True) as conn:
            for sql in (
                f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
                f"GRANT CONNECT ON DATABASE {db} TO {writer}, {auditor}",
                f"GRANT USAGE ON SCHEMA public TO {auditor}",
                f"ALTER DEFAULT PRIVILEGES FOR ROLE {writer} IN SCHEMA public GRANT SELECT ON TABLES TO {auditor}",
            ):
                conn.execute(sql)
        w = f"postgresql://{writer}:writer-secret@{host}/{db}"
        a = f"postgresql://{auditor}:auditor-secret@{host}/{db}"
        file = write_jsonl(tmp_path / "a.jsonl", f.setup() + [f.allot("h1", 3)])
        assert run_cli("apply", str(file), db=w).code == 0
        for args in (("holdings", "--format", "json"), ("audit", "verify"), ("audit", "digest"),
                     ("history", "--format", "csv"), ("apply", "--dry-run", str(file))):
            r = run_cli(*args, db=a)
            assert r.code == 0, (args, r.stderr)
        more = write_jsonl(tmp_path / "b.jsonl", [f.allot("h2", 3)])
        r = run_cli("apply", str(more), db=a)
        assert r.code == 1 and "permission denied" in r.stderr and "auditor-secret" not in r.stderr
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            conn.execute(f"DROP ROLE IF EXISTS {auditor}")
            conn.execute(f"DROP ROLE IF EXISTS {writer}")


def test_messages_name_exactly_what_is_wrong(tmp_path: Path):
    r = run_cli("apply", str(tmp_path), db=f"sqlite:///{tmp_path}/x.sqlite")
    assert r.code == 2 and "is a directory" in r.stderr
    r = run_cli("holdings", "--db", str(tmp_path))
    assert r.code == 1 and "cannot read store" in r.stderr and "directory" in r.stderr
    url = "postgresql://someone:s3cret@127.0.0.1:1/ledger"
    for args in (("holdings",), ("apply", "-"), ("audit", "verify")):
        r = run_cli(*args, db=url, input="")
        assert r.code == 1 and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "s3cret" not in r.stderr and r.stderr.count("127.0.0.1:1/ledger") == 1, r.stderr
        assert "(psycopg." not in r.stderr and "Traceback" not in r.stderr
    r = run_cli("holdings", db=url)
    assert "cannot read store" in r.stderr


def test_dry_run_of_holder_details_on_a_new_store_and_an_existing_one(store_url, tmp_path: Path):
    """A details command is checked sealed, as apply does, whether the store exists or not;
    the keys a dry run makes for it are never stored."""
    base = f.setup() + [f.allot("h1", 5)]
    details = [f.details("h1"), f.erase("h1")]
    file = write_jsonl(tmp_path / "a.jsonl", base + details)
    r = run_cli("apply", "--dry-run", str(file), db=store_url)
    assert r.code == 0 and r.stderr == "", (r.stdout, r.stderr)
    assert "would apply record_holder_details" in r.stdout and "would apply erase_holder_details" in r.stdout
    if store_url.startswith("sqlite"):
        assert not Path(store_url.split("///", 1)[1]).exists()

    assert run_cli("apply", str(write_jsonl(tmp_path / "base.jsonl", base)), db=store_url).code == 0
    before = _store_rows(store_url)
    r = run_cli("apply", "--dry-run", str(write_jsonl(tmp_path / "d.jsonl", details[:1])), db=store_url)
    assert r.code == 0 and "would apply record_holder_details" in r.stdout, (r.stdout, r.stderr)
    assert _store_rows(store_url) == before
    assert _holder_keys(store_url) == 0


def _holder_keys(url: str) -> int:
    sql = "SELECT count(*) FROM ledger_holder_keys"
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.split("///", 1)[1])
        try:
            return conn.execute(sql).fetchone()[0]
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        return conn.execute(sql).fetchone()[0]
