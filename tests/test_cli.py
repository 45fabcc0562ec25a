"""End-to-end: the CLI as a user runs it (a subprocess), on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import factories as f
from helpers import ask_cli, run_cli, write_jsonl

SEED_AT_ALLOTMENT = [
    {"group": "director", "holders": 7, "rights_allotted": 60, "rights_outstanding": 60,
     "shares_underlying": 12000, "amount_offset": "38820000"},
    {"group": "executive_officer", "holders": 10, "rights_allotted": 29, "rights_outstanding": 29,
     "shares_underlying": 5800, "amount_offset": "18763000"},
]


def _pick(rows, keys):
    return [{k: r[k] for k in keys} for r in rows]


def test_demo_gives_the_seed_numbers_exactly_and_twice_is_harmless(store_url):
    first = run_cli("demo", db=store_url)
    assert first.code == 0, first.stderr
    assert "ILLUSTRATIVE" in first.stdout
    for text in ("38,820,000", "18,763,000", "57,583,000", "12,000", "5,800", "17,800"):
        assert text in first.stdout
    rows = run_cli("holdings", "--by", "group", "--as-of", "2013-07-31", "--format", "json", db=store_url).json()
    assert _pick(rows, SEED_AT_ALLOTMENT[0].keys()) == SEED_AT_ALLOTMENT
    assert all(r["currency"] == "JPY" for r in rows)
    total = run_cli("holdings", "--by", "issuance", "--as-of", "2013-07-31", "--format", "json", db=store_url).json()
    assert _pick(total, ["issuance", "holders", "rights_allotted", "shares_underlying", "amount_offset"]) == [
        {"issuance": "iij-2013-sar", "holders": 17, "rights_allotted": 89, "shares_underlying": 17800,
         "amount_offset": "57583000"}
    ]
    events_before = run_cli("audit", "digest", db=store_url).json()
    second = run_cli("demo", db=store_url)
    assert second.code == 0, second.stderr
    assert run_cli("audit", "digest", db=store_url).json() == events_before


def test_demo_shows_the_splits_as_of_today(store_url):
    assert run_cli("demo", db=store_url).code == 0
    after_2021 = run_cli("holdings", "--by", "person", "--issuance", "iij-2013-sar", "--as-of", "2021-06-30",
                         "--format", "json", db=store_url).json()
    d01 = next(r for r in after_2021 if r["holder"] == "d01")
    assert d01["shares_underlying"] == 15 * 400
    now = run_cli("register", "iij-2013-sar", "--format", "json", db=store_url).json()
    assert {r["shares_per_right"] for r in now} == {800}
    assert sum(r["rights_held"] for r in now) == 87  # e10's 2 rights were exercised (illustrative)


def test_apply_is_idempotent_and_same_id_other_content_is_refused(store_url, tmp_path: Path):
    cmds = f.setup() + [f.allot("h1", 10), f.allot("h2", 5)]
    path = write_jsonl(tmp_path / "a.jsonl", cmds)
    r1 = run_cli("apply", str(path), "--no-progress", db=store_url)
    assert r1.code == 0, r1.stderr
    assert "applied 4 commands" in r1.stdout
    r2 = run_cli("apply", str(path), "--no-progress", db=store_url)
    assert r2.code == 0 and "skipped 4" in r2.stdout
    changed = dict(cmds[2], rights=11)
    r3 = run_cli("apply", "-", db=store_url, input=json.dumps(changed) + "\n")
    assert r3.code == 1
    assert r3.stderr.count("\n") == 1 and "id-reused-with-other-content" in r3.stderr
    assert f"id {changed['id']}" in r3.stderr


def test_refused_command_stores_nothing_and_earlier_ones_stay(store_url, tmp_path: Path):
    cmds = f.setup(rights=12) + [f.allot("h1", 10), f.allot("h2", 5), f.allot("h3", 1)]
    path = write_jsonl(tmp_path / "a.jsonl", cmds)
    r = run_cli("apply", str(path), "--no-progress", db=store_url)
    assert r.code == 1
    assert r.stderr.startswith("error: line 4 (id ") and "allotment-over-terms" in r.stderr
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    rows = run_cli("holdings", "--format", "json", db=store_url).json()
    assert [(x["holder"], x["rights_allotted"]) for x in rows] == [("h1", 10)]
    digest = run_cli("audit", "digest", db=store_url).json()
    # Correct the file (drop the refused line): re-running skips what was applied.
    fixed = write_jsonl(tmp_path / "b.jsonl", cmds[:3] + [cmds[4]])
    r = run_cli("apply", str(fixed), "--no-progress", db=store_url)
    assert r.code == 0 and "applied 1 commands" in r.stdout and "skipped 3" in r.stdout
    assert run_cli("audit", "digest", db=store_url).json()["events"] == digest["events"] + 2  # the allotment and the new holder


@pytest.mark.parametrize(
    "line, words",
    [
        ("{not json", "malformed JSON"),
        ('{"id": "x", "type": "allot_rights"}', "needs field"),
        ('{"id": "x", "type": "nope"}', "unknown command type"),
        ('[1, 2]', "JSON object"),
        ('{"id": "x", "type": "expire_rights", "issuance": "s1", "expired_on": "2021-02-30"}', "calendar date"),
        ('{"id": "x", "type": "expire_rights", "issuance": "s1", "expired_on": "2041-01-01", "colour": 1}', "not a field"),
        ('{"id": "x", "type": "expire_rights", "issuance": "nowhere", "expired_on": "2041-01-01"}', "unknown-issuance"),
        ('{"id": "x", "type": "record_departure", "holder": "ghost", "departed_on": "2041-01-01"}', "unknown-holder"),
    ],
)
def test_bad_lines_exit_1_with_one_line_naming_the_line(sqlite_url, line, words):
    r = run_cli("apply", "-", db=sqlite_url, input=line + "\n")
    assert r.code == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1 and "line 1" in r.stderr and words in r.stderr
    assert "Traceback" not in r.stderr


def test_float_money_is_refused(sqlite_url):
    cmds = f.setup()
    cmds[1]["price_per_right"] = 1000.5
    r = run_cli("apply", "-", db=sqlite_url, input="\n".join(json.dumps(c) for c in cmds) + "\n")
    assert r.code == 1 and "line 2" in r.stderr and "price_per_right" not in r.stdout


def test_usage_errors_exit_2(sqlite_url, tmp_path: Path):
    assert run_cli("apply", str(tmp_path / "missing.jsonl"), db=sqlite_url).code == 2
    assert run_cli("holdings", "--by", "planet", db=sqlite_url).code == 2
    assert run_cli("frobnicate", db=sqlite_url).code == 2
    assert run_cli("rights", "allot", "s1", "--holder", "h1", db=sqlite_url).code == 2


def test_empty_file_applies_nothing(sqlite_url, tmp_path: Path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    r = run_cli("apply", str(empty), db=sqlite_url)
    assert r.code == 0 and "applied 0 commands" in r.stdout


def test_store_that_cannot_be_opened_is_exit_1_naming_it(tmp_path: Path):
    r = run_cli("holdings", db=f"sqlite:///{tmp_path}/nowhere/ledger.sqlite")
    assert r.code == 1 and "nowhere" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("holdings", db="postgresql+psycopg://someone:s3cret@127.0.0.1:1/ledger")
    assert r.code == 1 and "s3cret" not in r.stderr and "127.0.0.1" in r.stderr and "Traceback" not in r.stderr


def test_per_type_verbs_go_through_the_same_path(store_url):
    steps = [
        ["resolution", "pass", "s1", "--issuer", "Example K.K.", "--body", "board_of_directors",
         "--resolved-on", "2020-01-10", "--title", "1st series", "--max-rights", "100"],
        ["terms", "set", "s1", "--decided-on", "2020-01-20", "--rights", "100", "--shares-per-right", "100",
         "--price-per-right", "1000", "--currency", "JPY", "--exercise-price-per-share", "1",
         "--allotment-date", "2020-02-01", "--exercise-from", "2020-02-02", "--exercise-to", "2040-02-01"],
        ["rights", "allot", "s1", "--holder", "d01", "--name", "山田 太郎", "--group", "director",
         "--rights", "10", "--allotted-on", "2020-02-01", "--payment", "offset", "--id", "a1",
         "--actor", "secretary", "--reason", "AGM"],
        ["rights", "exercise", "s1", "--holder", "d01", "--rights", "3", "--exercised-on", "2021-01-05"],
        ["shares", "adjust", "s1", "--ratio", "2", "--effective-on", "2022-01-01"],
        ["rights", "forfeit", "s1", "--holder", "d01", "--rights", "all", "--forfeited-on", "2023-01-01",
         "--reason", "waived"],
        ["holder", "depart", "d01", "--departed-on", "2024-01-01"],
        ["rights", "expire", "s1", "--expired-on", "2040-02-02"],
    ]
    for args in steps:
        r = run_cli(*args, db=store_url)
        assert r.code == 0, (args, r.stderr)
    again = run_cli(*steps[2], db=store_url)
    assert again.code == 0 and "already applied" in again.stdout
    [row] = run_cli("holdings", "--format", "json", db=store_url).json()
    assert row == {
        "holder": "d01", "name": "山田 太郎", "group": "director", "rights_allotted": 10,
        "rights_exercised": 3, "rights_forfeited": 7, "rights_expired": 0, "rights_outstanding": 0,
        "shares_underlying": 0, "shares_delivered": 300, "amount_offset": "10000", "amount_paid": "10000",
        "exercise_price_paid": "300", "rights_vested": 0, "rights_unvested": 0,
        "rights_exercisable": 0, "currency": "JPY",
    }
    hist = run_cli("history", "--holder", "d01", "--format", "json", db=store_url).json()
    allot = next(h for h in hist if h["type"] == "rights_allotted")
    assert allot["actor"] == "secretary" and allot["reason"] == "AGM" and allot["command_id"] == "a1"
    refused = run_cli("rights", "exercise", "s1", "--holder", "d01", "--rights", "1", "--exercised-on",
                      "2023-06-01", db=store_url)
    assert refused.code == 1 and "issuance-expired" in refused.stderr


def test_formats_table_json_csv(sqlite_url):
    assert run_cli("demo", db=sqlite_url).code == 0
    table = run_cli("holdings", "--by", "person", "--as-of", "2013-07-31", db=sqlite_url)
    assert table.code == 0 and "山田 太郎" in table.stdout
    lines = [ln for ln in table.stdout.splitlines() if "│" in ln]
    from rich.cells import cell_len

    assert len({cell_len(ln) for ln in lines}) == 1  # aligned, Japanese names included
    csv_out = run_cli("holdings", "--by", "group", "--format", "csv", db=sqlite_url).stdout.splitlines()
    assert csv_out[0].startswith("group,holders,rights_allotted")
    assert csv_out[1].startswith("director,7,60")


def test_as_of_before_resolution_is_empty_and_unknown_issuance_is_exit_1(sqlite_url):
    assert run_cli("demo", db=sqlite_url).code == 0
    r = run_cli("holdings", "--issuance", "iij-2013-sar", "--as-of", "2013-01-01", "--format", "json", db=sqlite_url)
    assert r.code == 0 and r.json() == []
    r = run_cli("holdings", "--issuance", "never", "--format", "json", db=sqlite_url)
    assert r.code == 1 and "never" in r.stderr


def test_rebuild_equals_incremental_and_catch_up_after_lag(store_url, tmp_path: Path):
    cmds = f.setup() + [f.allot(f"h{i}", 3) for i in range(10)] + [
        f.exercise("h1", 2, on="2021-03-01"), f.adjust("3", on="2022-01-01"), f.forfeit("h2", "all", on="2022-02-01"),
        f.allot("h11", 2, allotted_on="2020-03-01"), f.exercise("h3", 1, on="2020-12-31"),
    ]
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", cmds)), db=store_url).code == 0
    queries = [("holdings", "--by", by, "--format", "json") + extra
               for by in ("person", "group", "issuance") for extra in ((), ("--as-of", "2021-01-01"))]
    # before: in-process; after: in a CLI process (another interpreter, another hash seed, so
    # that an answer whose order followed a set's would differ)
    before = [ask_cli(*q, db=store_url).json() for q in queries]
    assert run_cli("projections", "rebuild", db=store_url).code == 0
    assert [run_cli(*q, db=store_url).json() for q in queries] == before
    status = run_cli("projections", "status", db=store_url)
    assert "up to date" in status.stdout
    assert run_cli("audit", "verify", db=store_url).code == 0
    assert run_cli("audit", "replay", "--as-of", "2021-06-30", db=store_url).code == 0


def test_verbs_without_id_derive_it_from_the_content(sqlite_url):
    resolution = ["resolution", "pass", "s1", "--issuer", "Example K.K.", "--body", "board_of_directors",
                  "--resolved-on", "2020-01-10", "--title", "1st series"]
    first = run_cli(*resolution, db=sqlite_url)
    assert first.code == 0 and "applied pass_resolution" in first.stdout, first.stderr
    again = run_cli(*resolution, db=sqlite_url)
    assert again.code == 0 and "already applied" in again.stdout
    other = run_cli(*resolution[:-1], "2nd series", db=sqlite_url)
    assert other.code == 1 and "one-resolution-per-issuance" in other.stderr
    hist = run_cli("history", "--format", "json", db=sqlite_url).json()
    assert len([h for h in hist if h["type"] == "resolution_passed"]) == 1


def test_demo_alone_keeps_to_its_own_store(tmp_path):
    env = {"EQUITY_LEDGER_DB": ""}
    r = run_cli("demo", cwd=tmp_path, env=env)
    assert r.code == 0, r.stderr
    assert (tmp_path / "equity-ledger-demo.sqlite").exists()
    assert not (tmp_path / "equity-ledger.sqlite").exists()  # the user's own default store


def test_a_refused_line_says_what_was_applied_before_it(sqlite_url, tmp_path):
    import factories as f

    cmds = f.setup() + [f.allot("h1", 5), f.allot("h2", 10**6)]
    r = run_cli("apply", str(write_jsonl(tmp_path / "c.jsonl", cmds)), db=sqlite_url)
    assert r.code == 1 and r.stderr.count("\n") == 1, r.stderr
    assert f"line {len(cmds)}" in r.stderr and f"before it: {len(cmds) - 1} commands applied" in r.stderr
