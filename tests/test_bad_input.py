"""Bad input through the CLI: the contract's exit code, one line on stderr naming the line and
the rule, no traceback, and the store unchanged (events, chain, command ids, projections)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import factories as f
from helpers import run_cli, write_jsonl

BASE = [
    f.resolution("s1", max_rights=150),
    f.terms("s1"),
    f.allot("h1", 10),
    f.allot("h2", 5),
    f.allot("h5", 1),
    f.forfeit("h5", 1, on="2020-06-01"),
    f.exercise("h1", 2, on="2021-06-01"),
    f.resolution("s2", resolved_on="2020-01-10"),
    f.terms("s2", exercisable_only_after_departure=True, exercise_window_days_after_departure=10),
    f.allot("h3", 5, issuance="s2"),
    f.allot("h4", 5, issuance="s2"),
    f.depart("h3", on="2021-01-01"),
    f.resolution("s3", max_rights=150),
]
FIRST = json.dumps(BASE[0])  # an already-applied line: skipped, so the bad one is line 2


def cmd(**kw):
    return json.dumps({"id": "bad", **kw})


ALLOT = dict(type="allot_rights", issuance="s1", holder="h9", name="N", group="director", rights=1,
             allotted_on="2020-03-01", payment="offset")
TERMS = {k: v for k, v in f.terms("s3").items() if k != "id"}

# (case id, the bad line, words the one-line message must contain)
CASES = [
    ("malformed-json", '{"id": "bad", "type": ', "malformed JSON"),
    ("trailing-garbage", cmd(**ALLOT) + " x", "malformed JSON"),
    ("array", "[1, 2, 3]", "JSON object"),
    ("string", '"allot_rights"', "JSON object"),
    ("null", "null", "JSON object"),
    ("nan", '{"id": "bad", "type": "allot_rights", "rights": NaN}', "fraction or exponent"),
    ("unknown-type", cmd(type="grant_everything"), "unknown command type"),
    ("missing-type", json.dumps({"id": "bad", "issuance": "s1"}), "unknown command type"),
    ("missing-id", json.dumps({k: v for k, v in ALLOT.items()}), "'id'"),
    ("empty-id", json.dumps({"id": " ", **ALLOT}), "'id'"),
    ("numeric-id", json.dumps({"id": 7, **ALLOT}), "'id'"),
    ("missing-field", cmd(**{k: v for k, v in ALLOT.items() if k != "rights"}), "needs field 'rights'"),
    ("unknown-field", cmd(**ALLOT, colour="red"), "'colour' is not a field"),
    ("typo-field", cmd(**{**{k: v for k, v in ALLOT.items() if k != "allotted_on"}, "alloted_on": "2020-03-01"}), "not a field"),
    ("rights-float", cmd(**{**ALLOT, "rights": 1.5}), "fraction or exponent"),
    ("rights-exponent", cmd(**ALLOT).replace('"rights": 1', '"rights": 1e2'), "fraction or exponent"),
    ("rights-string", cmd(**{**ALLOT, "rights": "5"}), "'rights'"),
    ("rights-zero", cmd(**{**ALLOT, "rights": 0}), ">= 1"),
    ("rights-negative", cmd(**{**ALLOT, "rights": -3}), ">= 1"),
    ("rights-bool", cmd(**{**ALLOT, "rights": True}), "'rights'"),
    ("money-number", cmd(**{**TERMS, "price_per_right": 647000}), "price_per_right"),
    ("money-float", cmd(**{**TERMS, "price_per_right": 0.5}), "fraction or exponent"),
    ("money-exponent-string", cmd(**{**TERMS, "price_per_right": "6.47e5"}), "price_per_right"),
    ("money-negative", cmd(**{**TERMS, "price_per_right": "-1"}), "price_per_right"),
    ("money-text", cmd(**{**TERMS, "exercise_price_per_share": "one yen"}), "exercise_price_per_share"),
    ("currency-unknown", cmd(**{**TERMS, "currency": "XYZ"}), "ISO 4217"),
    ("currency-lowercase", cmd(**{**TERMS, "currency": "jpy"}), "ISO 4217"),
    ("date-impossible", cmd(**{**ALLOT, "allotted_on": "2021-02-30"}), "calendar date"),
    ("date-format", cmd(**{**ALLOT, "allotted_on": "2021/03/01"}), "YYYY-MM-DD"),
    ("date-number", cmd(**{**ALLOT, "allotted_on": 20210301}), "YYYY-MM-DD"),
    ("date-with-time", cmd(**{**ALLOT, "allotted_on": "2021-03-01T00:00"}), "YYYY-MM-DD"),
    ("body-invalid", cmd(**{**f.resolution("s9"), "id": "bad", "body": "the_ceo"}), "one of"),
    ("payment-invalid", cmd(**{**ALLOT, "payment": "barter"}), "one of"),
    ("delivery-invalid", cmd(type="exercise_rights", issuance="s1", holder="h1", rights=1,
                             exercised_on="2022-01-01", delivery="by_post"), "one of"),
    ("ratio-text", cmd(type="adjust_shares", issuance="s1", ratio="double", effective_on="2030-01-01"), "ratio"),
    ("ratio-number", cmd(type="adjust_shares", issuance="s1", ratio=2, effective_on="2030-01-01"), "ratio"),
    ("bool-as-string", cmd(**{**TERMS, "exercisable_only_after_departure": "yes"}), "true or false"),
    ("duplicate-key", cmd(**ALLOT)[:-1] + ', "holder": "h8"}', "given twice"),
    ("nul-in-name", cmd(**{**ALLOT, "name": "a\u0000b"}), "NUL"),
    ("fullwidth-digits", cmd(**{**TERMS, "price_per_right": "６４７０００"}), "price_per_right"),
    ("forfeit-without-reason", cmd(type="forfeit_rights", issuance="s1", holder="h1", rights=1,
                                   forfeited_on="2022-01-01"), "reason"),
    ("same-id-other-content", json.dumps({**BASE[2], "rights": 11}), "id-reused-with-other-content"),
    # Unknown things.
    ("unknown-issuance", cmd(**{**ALLOT, "issuance": "nowhere"}), "unknown-issuance"),
    ("unknown-holder-exercise", cmd(type="exercise_rights", issuance="s1", holder="ghost", rights=1,
                                    exercised_on="2022-01-01"), "unknown-holder"),
    ("unknown-holder-departure", cmd(type="record_departure", holder="ghost", departed_on="2022-01-01"), "unknown-holder"),
    # Every rule of the domain, broken once.
    ("second-resolution", cmd(**{**f.resolution("s1"), "id": "bad"}), "one-resolution-per-issuance"),
    ("other-issuer", cmd(**{**f.resolution("s9"), "id": "bad", "issuer": "Other Corp."}), "one-issuer-per-store"),
    ("terms-twice", cmd(**{**TERMS, "issuance": "s1"}), "terms-only-once"),
    ("terms-before-resolution", cmd(**{**TERMS, "decided_on": "2019-12-31"}), "nothing-before-resolution"),
    ("terms-period-inverted", cmd(**{**TERMS, "exercise_from": "2041-01-01"}), "exercise-from-after-exercise-to"),
    ("terms-over-max", cmd(**{**TERMS, "rights": 151}), "terms-over-max-rights"),
    ("allot-without-terms", cmd(**{**ALLOT, "issuance": "s3"}), "terms-required"),
    ("allot-before-allotment-date", cmd(**{**ALLOT, "allotted_on": "2020-01-31"}), "allotment-before-allotment-date"),
    ("allot-over-terms", cmd(**{**ALLOT, "rights": 85}), "allotment-over-terms"),
    ("allot-other-group", cmd(**{**ALLOT, "holder": "h1", "group": "employee"}), "one-group-per-holder"),
    ("allot-after-departure", cmd(**{**ALLOT, "issuance": "s2", "holder": "h3", "allotted_on": "2021-01-01"}),
     "allotment-after-departure"),
    ("exercise-over-outstanding", cmd(type="exercise_rights", issuance="s1", holder="h1", rights=9,
                                      exercised_on="2022-01-01"), "over-outstanding"),
    ("exercise-late-over-outstanding", cmd(type="exercise_rights", issuance="s1", holder="h1", rights=9,
                                           exercised_on="2021-01-01"), "over-outstanding"),
    ("exercise-outside-period", cmd(type="exercise_rights", issuance="s1", holder="h1", rights=1,
                                    exercised_on="2040-02-02"), "outside-exercise-period"),
    ("exercise-window-closed", cmd(type="exercise_rights", issuance="s2", holder="h3", rights=1,
                                   exercised_on="2021-01-12"), "departure-window-closed"),
    ("exercise-before-departure", cmd(type="exercise_rights", issuance="s2", holder="h4", rights=1,
                                      exercised_on="2021-01-12"), "exercisable-only-after-departure"),
    ("forfeit-all-of-nothing", cmd(type="forfeit_rights", issuance="s1", holder="h5", rights="all",
                                   forfeited_on="2022-01-01", reason="x"), "nothing-outstanding"),
    ("forfeit-over-outstanding", cmd(type="forfeit_rights", issuance="s1", holder="h2", rights=6,
                                     forfeited_on="2022-01-01", reason="x"), "over-outstanding"),
    ("forfeit-before-resolution", cmd(type="forfeit_rights", issuance="s1", holder="h2", rights=1,
                                      forfeited_on="2019-01-01", reason="x"), "nothing-before-resolution"),
    ("expire-too-early", cmd(type="expire_rights", issuance="s1", expired_on="2040-02-01"),
     "expiry-before-end-of-exercise-period"),
    ("ratio-zero", cmd(type="adjust_shares", issuance="s1", ratio="0", effective_on="2030-01-01"), "ratio-must-be-positive"),
    ("split-before-exercise", cmd(type="adjust_shares", issuance="s1", ratio="2", effective_on="2021-06-01"),
     "would-change-recorded-figure"),
    ("second-departure", cmd(type="record_departure", holder="h3", departed_on="2022-01-01"), "one-departure-per-holder"),
    ("departure-before-allotment", cmd(type="record_departure", holder="h2", departed_on="2020-02-01"),
     "departure-conflicts-with-recorded-events"),
]


@pytest.fixture(scope="module")
def base_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("bad-input")
    path = folder / "ledger.sqlite"
    r = run_cli("apply", str(write_jsonl(folder / "base.jsonl", BASE)), db=f"sqlite:///{path}")
    assert r.code == 0, r.stderr
    return path


def fingerprint(path: Path) -> str:
    """Everything stored: events, chain, command ids and every projection row."""
    engine = create_engine(f"sqlite:///{path}")
    h = hashlib.sha256()
    with engine.connect() as conn:
        tables = [r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name"))]
        for t in tables:
            for row in conn.execute(text(f'SELECT * FROM "{t}" ORDER BY 1, 2')):
                h.update(repr(tuple(row)).encode())
    engine.dispose()
    return h.hexdigest()


@pytest.mark.parametrize("line, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_line_is_refused_and_stores_nothing(base_store: Path, tmp_path: Path, line: str, words: str):
    store = tmp_path / "ledger.sqlite"
    shutil.copy(base_store, store)
    before = fingerprint(store)
    r = run_cli("apply", "-", db=f"sqlite:///{store}", input=FIRST + "\n" + line + "\n")
    assert r.code == 1, (r.stdout, r.stderr)
    assert r.stderr.count("\n") == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "line 2" in r.stderr and words in r.stderr, r.stderr
    if line.startswith("{") and '"id": "bad"' in line and "malformed" not in words:
        assert "id bad" in r.stderr
    assert fingerprint(store) == before


def test_there_are_at_least_forty_bad_inputs():
    assert len(CASES) >= 40
    assert len({c[0] for c in CASES}) == len(CASES)


def test_line_over_one_mebibyte(base_store: Path, tmp_path: Path):
    store = tmp_path / "ledger.sqlite"
    shutil.copy(base_store, store)
    before = fingerprint(store)
    huge = json.dumps({"id": "bad", **ALLOT, "name": "x" * (1024 * 1024)})
    r = run_cli("apply", "-", db=f"sqlite:///{store}", input=huge + "\n")
    assert r.code == 1 and "line 1" in r.stderr and "1 MiB" in r.stderr and r.stderr.count("\n") == 1
    assert fingerprint(store) == before


def test_invalid_utf8(base_store: Path, tmp_path: Path):
    store = tmp_path / "ledger.sqlite"
    shutil.copy(base_store, store)
    before = fingerprint(store)
    bad = b'{"id": "bad", "type": "allot_rights", "name": "\xff\xfe"}\n'
    r = run_cli("apply", "-", db=f"sqlite:///{store}", input=bad)
    assert r.code == 1 and "line 1" in r.stderr and "UTF-8" in r.stderr and r.stderr.count("\n") == 1
    assert fingerprint(store) == before


def test_missing_file_is_a_usage_error(tmp_path: Path):
    r = run_cli("apply", str(tmp_path / "nope.jsonl"), db=f"sqlite:///{tmp_path}/l.sqlite")
    assert r.code == 2 and "nope.jsonl" in r.stderr and "Traceback" not in r.stderr


def test_empty_file_is_fine(base_store: Path, tmp_path: Path):
    store = tmp_path / "ledger.sqlite"
    shutil.copy(base_store, store)
    before = fingerprint(store)
    r = run_cli("apply", "-", db=f"sqlite:///{store}", input="")
    assert r.code == 0 and fingerprint(store) == before


def test_unreachable_database_hides_the_password():
    r = run_cli("apply", "-", db="postgresql+psycopg://admin:hunter2@127.0.0.1:9/ledger", input=FIRST + "\n")
    assert r.code == 1 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "hunter2" not in r.stderr and "127.0.0.1:9" in r.stderr


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_read_only_database_file_is_exit_1_naming_the_path(base_store: Path, tmp_path: Path):
    import subprocess

    store = tmp_path / "ledger.sqlite"
    shutil.copy(base_store, store)
    before = fingerprint(store)
    store.chmod(0o444)
    immutable = False
    if os.getuid() == 0:
        # root writes through file modes: make the file immutable instead.
        if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(store)]).returncode != 0:
            pytest.skip("running as root without chattr: cannot make a file read-only")
        immutable = True
    try:
        r = run_cli("apply", "-", db=f"sqlite:///{store}", input=json.dumps(f.allot("h7", 1)) + "\n")
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(store)])
    assert r.code == 1, (r.stdout, r.stderr)
    assert str(store) in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert fingerprint(store) == before


def test_an_internal_error_is_one_line_naming_it_as_a_bug(sqlite_url: str, tmp_path: Path, monkeypatch) -> None:
    """Not an expected error but a bug of ours (here: the service raising something it never
    should): still one line on stderr and exit 1, no traceback; EQUITY_LEDGER_DEBUG shows it."""
    from helpers import ask_cli

    from equity_ledger.ledger.service import LedgerService

    def broken(*_args, **_kwargs):
        raise RuntimeError("boom\nsecond line \x1b[31m")

    monkeypatch.setattr(LedgerService, "apply", broken)
    file = str(write_jsonl(tmp_path / "a.jsonl", f.setup()))
    r = ask_cli("apply", file, db=sqlite_url)
    assert r.code == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: internal error (RuntimeError: boom); this is a bug")

    monkeypatch.setenv("EQUITY_LEDGER_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        ask_cli("apply", file, db=sqlite_url)
