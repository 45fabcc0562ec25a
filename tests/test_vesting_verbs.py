"""The per-type verbs carry the vesting fields and record vesting events, as a command file does."""

from __future__ import annotations

import json

from helpers import run_cli


def _ok(*args: str, db: str) -> str:
    r = run_cli(*args, db=db)
    assert r.code == 0, r.stderr
    return r.stdout


def test_vesting_through_the_verbs(sqlite_url):
    _ok("resolution", "pass", "s1", "--issuer", "X K.K.", "--body", "board_of_directors",
        "--resolved-on", "2020-01-01", "--title", "plan", db=sqlite_url)
    schedule = {"tranches": [{"portion": "1/2", "after_months": 12}, {"portion": "1/2", "on_event": "ipo"}]}
    _ok("terms", "set", "s1", "--decided-on", "2020-01-02", "--rights", "100", "--shares-per-right", "10",
        "--price-per-right", "0", "--currency", "JPY", "--exercise-price-per-share", "1",
        "--allotment-date", "2020-01-03", "--exercise-from", "2020-01-03", "--exercise-to", "2030-01-01",
        "--exercisable-before-departure", "--fair-value-per-right", "500", "--vesting", json.dumps(schedule),
        db=sqlite_url)
    _ok("rights", "allot", "s1", "--holder", "h1", "--name", "A", "--group", "employee", "--rights", "40",
        "--allotted-on", "2020-02-01", "--payment", "gratis", "--vesting-start", "2020-01-03", db=sqlite_url)
    r = run_cli("rights", "exercise", "s1", "--holder", "h1", "--rights", "1", "--exercised-on", "2020-06-01",
                db=sqlite_url)
    assert r.code == 1 and "[exercise-of-unvested]" in r.stderr, r.stderr
    _ok("rights", "vest", "s1", "--event", "ipo", "--occurred-on", "2020-03-01", "--portion-met", "1/2",
        db=sqlite_url)
    # 1/2 x 1/2 of 40 rights vested by the event; the exercise of 10 takes them, with a share price.
    _ok("rights", "exercise", "s1", "--holder", "h1", "--rights", "10", "--exercised-on", "2020-06-01",
        "--share-price", "1234", db=sqlite_url)
    r = run_cli("rights", "exercise", "s1", "--holder", "h1", "--rights", "1", "--exercised-on", "2020-06-02",
                db=sqlite_url)
    assert r.code == 1 and "[exercise-of-unvested]" in r.stderr, r.stderr
    events = {e["type"]: e for e in json.loads(_ok("history", "--format", "json", db=sqlite_url))}
    assert events["vesting_event_recorded"]["portion_met"] == "1/2"
    assert events["rights_exercised"]["share_price"] == "1234"
    assert events["rights_allotted"]["vesting_start"] == "2020-01-03"
    assert events["terms_set"]["fair_value_per_right"] == "500"
    r = run_cli("terms", "set", "s2", "--decided-on", "2020-01-02", "--rights", "1", "--shares-per-right", "1",
                "--price-per-right", "0", "--currency", "JPY", "--exercise-price-per-share", "1",
                "--allotment-date", "2020-01-03", "--exercise-from", "2020-01-03", "--exercise-to", "2030-01-01",
                "--vesting", "{not json", db=sqlite_url)
    assert r.code == 2 and "--vesting" in r.stderr
    assert _ok("audit", "verify", db=sqlite_url).startswith("audit: OK")
