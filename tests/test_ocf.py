"""OCF interchange: export validates against the OCF 1.2.0 schemas and loads with pyocf, a round
trip gives the same holdings and register at every date, import maps a foreign bundle (the OCF
options tutorial), refuses altered bundles and rule-breaking ones, and lists what it skips."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import factories as F
from helpers import run_cli, write_jsonl

from equity_ledger.bootstrap import open_books
from equity_ledger.interchange.vesting import (
    VestingMappingError, allocation_from_ocf, allocation_to_ocf, ledger_vesting, ocf_vesting_terms,
)
from equity_ledger.ledger.commands import parse_command

FIXTURES = Path(__file__).parent / "fixtures" / "ocf"
SEED = Path(__file__).resolve().parents[1] / "ledger" / "samples" / "iij-2013-sar.jsonl"
FOUR_YEAR_CLIFF = {"tranches": [{"portion": "1/4", "after_months": 12},
                                {"portion": "1/48", "after_months": 13, "every_months": 1, "occurrences": 36}]}


# ------------------------------------------------------------------------------ schema checks
def _validator(file_schema: str) -> Any:
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    resources = []
    for f in (FIXTURES / "schema").rglob("*.schema.json"):
        doc = json.loads(f.read_text())
        resources.append((doc["$id"], Resource.from_contents(doc)))
    registry = Registry().with_resources(resources)
    schema = json.loads((FIXTURES / "schema" / "files" / file_schema).read_text())
    return Draft7Validator(schema, registry=registry)


FILE_SCHEMAS = {
    "OCF_MANIFEST_FILE": "OCFManifestFile.schema.json",
    "OCF_STAKEHOLDERS_FILE": "StakeholdersFile.schema.json",
    "OCF_STOCK_CLASSES_FILE": "StockClassesFile.schema.json",
    "OCF_STOCK_LEGEND_TEMPLATES_FILE": "StockLegendTemplatesFile.schema.json",
    "OCF_STOCK_PLANS_FILE": "StockPlansFile.schema.json",
    "OCF_VESTING_TERMS_FILE": "VestingTermsFile.schema.json",
    "OCF_TRANSACTIONS_FILE": "TransactionsFile.schema.json",
}


def check_bundle_files(folder: Path) -> dict[str, Any]:
    """Every file of an exported folder against its OCF 1.2.0 schema; md5s as the manifest says."""
    manifest = json.loads((folder / "Manifest.ocf.json").read_text())
    seen = {"Manifest.ocf.json"}
    for key, value in manifest.items():
        if key.endswith("_files"):
            for entry in value:
                data = (folder / entry["filepath"]).read_bytes()
                assert hashlib.md5(data).hexdigest() == entry["md5"], entry["filepath"]
                seen.add(entry["filepath"])
    assert seen == {p.name for p in folder.iterdir()}
    for name in seen:
        doc = json.loads((folder / name).read_text())
        errors = sorted(_validator(FILE_SCHEMAS[doc["file_type"]]).iter_errors(doc), key=str)
        assert not errors, f"{name}: {errors[0].message} at {list(errors[0].absolute_path)}"
    return manifest


# ------------------------------------------------------------------------------ store helpers
def apply_all(url: str, commands: list[dict[str, Any]]) -> None:
    with open_books(url) as books:
        books.apply([parse_command(c) for c in commands])


def apply_what_passes(url: str, commands: list[dict[str, Any]]) -> int:
    """Apply commands one by one, keeping those the rules accept (random plans)."""
    from equity_ledger.ledger.errors import LedgerError

    kept = 0
    with open_books(url) as books:
        for c in commands:
            try:
                books.apply([parse_command(c)])
                kept += 1
            except LedgerError:
                pass
    return kept


def figures(url: str) -> dict[str, Any]:
    """Holdings by person, group and issuance, and every register, at every event date, a day
    before and after, and with no date."""
    from equity_ledger.projections import queries

    out: dict[str, Any] = {}
    with open_books(url) as books, books.reading() as view:
        days: set[date] = set()
        issuances: set[str] = set()
        for _pos, e in view.log.iter_events():
            for v in vars(e).values():
                if type(v) is date:
                    days |= {v - timedelta(days=1), v, v + timedelta(days=1)}
            if getattr(e, "issuance", None):
                issuances.add(e.issuance)
        for day in [None, *sorted(days)]:
            for by in ("person", "group", "issuance"):
                out[f"{by}@{day}"] = queries.holdings(view.conn, by, None, day)
            for iss in sorted(issuances):
                out[f"register {iss}@{day}"] = queries.register(view.conn, iss, day)
    return out


def export(url: str, target: Path, *extra: str) -> Path:
    r = run_cli("export", "ocf", str(target), *extra, db=url)
    assert r.code == 0, r.stderr
    return target


def import_(url: str, source: Path, *extra: str) -> Any:
    return run_cli("import", "ocf", str(source), *extra, db=url)


def seed_commands() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SEED.read_text(encoding="utf-8").splitlines() if line.strip()]


# ------------------------------------------------------------------------------ vesting mapping
@pytest.mark.parametrize("vesting", [
    FOUR_YEAR_CLIFF,
    {"tranches": [{"portion": "1/2", "after_months": 0}, {"portion": "1/2", "after_months": 24}]},
    {"tranches": [{"portion": "1/3", "after_months": 12, "every_months": 12, "occurrences": 3}]},
    {"tranches": [{"portion": "1/4", "after_months": 1, "every_months": 3, "occurrences": 4}]},
    {"tranches": [{"portion": "1/2", "after_months": 12}, {"portion": "1/2", "on_event": "roe-target"}],
     "unvested_lapse_on_departure": False, "allocation": "cumulative_rounding"},
])
def test_vesting_round_trips_through_ocf_terms(vesting: dict[str, Any]) -> None:
    terms = ocf_vesting_terms(vesting, "vt", "Schedule")
    errors = list(_validator("VestingTermsFile.schema.json").iter_errors(
        {"file_type": "OCF_VESTING_TERMS_FILE", "items": [terms]}))
    assert not errors, errors[0].message
    back = ledger_vesting(terms)
    assert back.warnings == [] and back.dated_events == []
    assert back.start_condition_id == "vt:start"
    assert _instalments(back.vesting) == _instalments(vesting)
    assert back.vesting.get("unvested_lapse_on_departure", True) == vesting.get("unvested_lapse_on_departure", True)
    assert back.vesting.get("allocation", "cumulative_round_down") == vesting.get("allocation", "cumulative_round_down")


def _instalments(vesting: dict[str, Any]) -> list[tuple[Any, Fraction]]:
    """(months after the start or event name, portion) of every instalment, sorted."""
    out = []
    for t in vesting["tranches"]:
        p = Fraction(t["portion"])
        if "on_event" in t:
            out.append((t["on_event"], p))
            continue
        for k in range(t.get("occurrences", 1)):
            out.append((t["after_months"] + k * t.get("every_months", 0), p))
    return sorted(out, key=str)


def test_allocation_types_map_both_ways_and_others_are_refused() -> None:
    assert allocation_to_ocf(None) == "CUMULATIVE_ROUND_DOWN"
    assert allocation_to_ocf("cumulative_rounding") == "CUMULATIVE_ROUNDING"
    assert allocation_from_ocf("CUMULATIVE_ROUND_DOWN", "t") == "cumulative_round_down"
    assert allocation_from_ocf("CUMULATIVE_ROUNDING", "t") == "cumulative_rounding"
    with pytest.raises(VestingMappingError, match="vesting terms t9: allocation_type FRONT_LOADED"):
        allocation_from_ocf("FRONT_LOADED", "t9")


def test_tutorial_vesting_terms_map_to_a_four_year_one_year_cliff_schedule() -> None:
    terms = json.loads((FIXTURES / "options-tutorial" / "VestingTerms.ocf.json").read_text())["items"][0]
    got = ledger_vesting(terms)
    assert got.vesting == {**FOUR_YEAR_CLIFF, "allocation": "cumulative_rounding"}
    # The sample's monthly condition names "cliff", which is no condition's id: read as the cliff.
    assert len(got.warnings) == 1 and "'cliff'" in got.warnings[0]


def test_vesting_in_days_and_remainders_are_refused_naming_the_terms() -> None:
    terms = ocf_vesting_terms(FOUR_YEAR_CLIFF, "vt7", "x")
    terms["vesting_conditions"][1]["trigger"]["period"] = {"length": 365, "type": "DAYS", "occurrences": 1}
    with pytest.raises(VestingMappingError, match="vesting terms vt7: .* DAYS"):
        ledger_vesting(terms)
    terms = ocf_vesting_terms(FOUR_YEAR_CLIFF, "vt8", "x")
    terms["vesting_conditions"][1]["portion"]["remainder"] = True
    with pytest.raises(VestingMappingError, match="vesting terms vt8"):
        ledger_vesting(terms)


def test_absolute_and_quantity_conditions_become_events_and_portions() -> None:
    terms = {"id": "abs", "object_type": "VESTING_TERMS", "name": "n", "description": "d",
             "allocation_type": "CUMULATIVE_ROUND_DOWN", "vesting_conditions": [
                 {"id": "s", "quantity": "0", "trigger": {"type": "VESTING_START_DATE"}, "next_condition_ids": ["a"]},
                 {"id": "a", "quantity": "250", "trigger": {"type": "VESTING_SCHEDULE_ABSOLUTE", "date": "2025-03-01"},
                  "next_condition_ids": ["b"]},
                 {"id": "b", "portion": {"numerator": "3", "denominator": "4"}, "trigger": {"type": "VESTING_EVENT"},
                  "next_condition_ids": []}]}
    got = ledger_vesting(terms, Fraction(1000))
    assert got.vesting == {"tranches": [{"portion": "1/4", "on_event": "a"}, {"portion": "3/4", "on_event": "b"}]}
    assert got.dated_events == [("a", date(2025, 3, 1))]


# ------------------------------------------------------------------------------ export
def test_export_of_the_seed_validates_loads_with_pyocf_and_says_every_fact(tmp_path: Path, sqlite_url: str) -> None:
    from pyocf.captable import Captable

    apply_all(sqlite_url, seed_commands())
    folder = export(sqlite_url, tmp_path / "bundle")
    manifest = check_bundle_files(folder)
    assert manifest["ocf_version"] == "1.2.0" and manifest["issuer"]["country_of_formation"] == "JP"
    assert manifest["issuer"]["formation_date"] == "2013-06-26"  # the first resolution's date, said so
    assert "first resolution" in manifest["issuer"]["comments"][0]
    assert manifest["as_of"] == max(date.today(), date(2022, 10, 1)).isoformat()
    cap = Captable.load(folder / "Manifest.ocf.json")
    assert len(cap.stakeholders) == 17 and len(cap.stock_plans) == 1
    kinds = sorted(t.object_type for t in cap.transactions)
    assert kinds.count("TX_EQUITY_COMPENSATION_ISSUANCE") == 17
    assert kinds.count("TX_STOCK_CLASS_SPLIT") == 2 and kinds.count("TX_EQUITY_COMPENSATION_EXERCISE") == 1
    assert kinds.count("TX_STOCK_ISSUANCE") == 1  # the shares the exercise delivered
    rel = {s.issuer_assigned_id: s.current_relationship.value for s in cap.stakeholders}
    assert rel["d01"] == "BOARD_MEMBER" and rel["e10"] == "OFFICER"
    txs = {t["id"]: t for t in json.loads((folder / "Transactions.ocf.json").read_text())["items"]}
    d01 = txs["allotment:iij-2013-sar/10-allot-d01"]
    assert d01["quantity"] == "3000"  # 15 rights x 200 shares, at its date
    assert d01["exercise_price"] == {"amount": "1", "currency": "JPY"}
    assert d01["expiration_date"] == "2043-07-29"
    assert {w["period"] for w in d01["termination_exercise_windows"]} == {10}
    assert any('"payment":"offset"' in c and '"amount":"9705000"' in c for c in d01["comments"])
    ex = txs["exercise:iij-2013-sar/21-exercise-e10:1"]
    assert ex["quantity"] == "400" and txs["stock-issuance:iij-2013-sar/21-exercise-e10:1"]["quantity"] == "400"
    text = "".join(p.read_text() for p in folder.iterdir())
    assert "address" not in text.replace("addresses", "")  # personal details are never exported
    # A zip of the same bundle, manifest at its root, loads too.
    zipped = export(sqlite_url, tmp_path / "bundle.zip", "--as-of", "2020-01-01")
    cap = Captable.load(str(zipped))
    assert cap.manifest.as_of.root == date(2020, 1, 1)
    assert not [t for t in cap.transactions if t.object_type == "TX_STOCK_CLASS_SPLIT"]


def test_export_options_are_checked(tmp_path: Path, sqlite_url: str) -> None:
    apply_all(sqlite_url, seed_commands()[:3])
    r = run_cli("export", "ocf", str(tmp_path / "b"), "--country", "jp", db=sqlite_url)
    assert r.code == 2 and "--country" in r.stderr
    r = run_cli("export", "ocf", str(tmp_path / "b"), "--country", "US", "--formation-date", "1992-12-01",
                db=sqlite_url)
    assert r.code == 0, r.stderr
    m = json.loads((tmp_path / "b" / "Manifest.ocf.json").read_text())
    assert m["issuer"]["country_of_formation"] == "US" and m["issuer"]["formation_date"] == "1992-12-01"


# ------------------------------------------------------------------------------ round trips
def _fresh(url: str, tmp_path: Path, name: str) -> str:
    if url.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/{name}.sqlite"
    from helpers import fresh_pg_database

    new, db = fresh_pg_database()
    _DROP.append(db)
    return new


_DROP: list[str] = []


@pytest.fixture
def second_store(store_url: str, tmp_path: Path) -> Any:
    yield lambda: _fresh(store_url, tmp_path, "second")
    from helpers import drop_pg_database

    while _DROP:
        drop_pg_database(_DROP.pop())


def test_seed_round_trips_on_every_backend(store_url: str, second_store: Any, tmp_path: Path) -> None:
    apply_all(store_url, seed_commands())
    bundle = export(store_url, tmp_path / "seed.zip")
    target = second_store()
    r = import_(target, bundle)
    assert r.code == 0, r.stderr
    assert "imported 23 commands" in r.stdout
    assert figures(target) == figures(store_url)
    again = import_(target, bundle)  # ids derived from the OCF ids: a second import skips them
    assert again.code == 0 and "imported 0 commands" in again.stdout and "skipped 23" in again.stdout
    assert run_cli("audit", "verify", db=target).code == 0


def random_plan(rng: random.Random) -> list[dict[str, Any]]:
    """A random plan: two issuances (JPY, USD), allotments to a few holders in several groups,
    late entries, exercises, forfeits ("all" too), departures, splits and consolidations,
    expiry. Many commands break a rule; the test keeps those the ledger accepts."""
    d0 = date(2020, 1, 10)

    def day(n: int) -> str:
        return (d0 + timedelta(days=n)).isoformat()

    cmds: list[dict[str, Any]] = []
    for iss, ccy in (("s1", "JPY"), ("s2", "USD")):
        cmds.append(F.resolution(iss, resolved_on=day(0), body=rng.choice(["board_of_directors", "shareholders_meeting"])))
        cmds.append(F.terms(iss, decided_on=day(5), rights=rng.choice([60, 200]),
                            shares_per_right=rng.choice([1, 100, 200]), currency=ccy,
                            price_per_right=rng.choice(["0", "647000", "12.5"]),
                            exercise_price_per_share=rng.choice(["1", "0.75", "2500"]),
                            allotment_date=day(10), exercise_from=day(rng.choice([10, 30])),
                            exercise_to=day(900), exercisable_only_after_departure=rng.random() < 0.3,
                            exercise_window_days_after_departure=rng.choice([None, 0, 30])))
    holders = ["h1", "h2", "h3", "h4", "田中"]
    groups = ["director", "executive_officer", "employee", "advisor"]
    for _ in range(rng.randint(15, 35)):
        iss = rng.choice(["s1", "s2"])
        h = rng.choice(holders)
        kind = rng.random()
        if kind < 0.35:
            cmds.append(F.allot(h, rng.randint(1, 12), iss, group=groups[holders.index(h) % 4],
                                allotted_on=day(rng.randint(10, 400)), name=f"Name {h} {rng.randint(1, 2)}",
                                payment=rng.choice(["offset", "cash", "gratis"])))
        elif kind < 0.55:
            cmds.append(F.exercise(h, rng.randint(1, 5), day(rng.randint(30, 900)), iss,
                                   delivery=rng.choice(["new_shares", "treasury_shares"])))
        elif kind < 0.7:
            cmds.append(F.forfeit(h, rng.choice([1, 2, "all"]), day(rng.randint(11, 900)), iss))
        elif kind < 0.8:
            cmds.append(F.depart(h, day(rng.randint(50, 800))))
        elif kind < 0.92:
            cmds.append(F.adjust(rng.choice(["2", "1/2", "3", "1/3"]), day(rng.randint(6, 800)), iss))
        else:
            cmds.append(F.expire(day(rng.randint(901, 950)), iss))
    return cmds


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5, 6])
def test_random_plans_round_trip(seed: int, store_url: str, second_store: Any, tmp_path: Path) -> None:
    rng = random.Random(seed)
    kept = apply_what_passes(store_url, random_plan(rng))
    assert kept >= 4
    bundle = export(store_url, tmp_path / "plan")
    check_bundle_files(bundle)
    target = second_store()
    r = import_(target, bundle)
    assert r.code == 0, r.stderr
    assert f"imported {kept} commands" in r.stdout
    assert figures(target) == figures(store_url)


# ------------------------------------------------------------------------------ import checks
def test_an_altered_file_is_refused_naming_it(tmp_path: Path, sqlite_url: str) -> None:
    apply_all(sqlite_url, seed_commands())
    folder = export(sqlite_url, tmp_path / "b")
    p = folder / "Stakeholders.ocf.json"
    p.write_text(p.read_text().replace("山田 太郎", "山田 次郎"))
    r = import_(f"sqlite:///{tmp_path}/new.sqlite", folder)
    assert r.code == 1 and "Stakeholders.ocf.json" in r.stderr and "md5" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "new.sqlite").exists() or run_cli("holdings", "--format", "json",
                                                             db=f"sqlite:///{tmp_path}/new.sqlite").json() == []


def _rehash(folder: Path) -> None:
    m = json.loads((folder / "Manifest.ocf.json").read_text())
    for key, value in m.items():
        if key.endswith("_files"):
            for e in value:
                e["md5"] = hashlib.md5((folder / e["filepath"]).read_bytes()).hexdigest()
    (folder / "Manifest.ocf.json").write_text(json.dumps(m))


def test_a_bundle_that_breaks_a_rule_is_refused_naming_the_ocf_object(tmp_path: Path, sqlite_url: str) -> None:
    apply_all(sqlite_url, seed_commands())
    folder = export(sqlite_url, tmp_path / "b")
    p = folder / "Transactions.ocf.json"
    text = p.read_text()
    assert '\\"rights\\":15,' in text  # the allotment's note (JSON in a JSON string)
    p.write_text(text.replace('\\"rights\\":15,', '\\"rights\\":150,', 1))
    _rehash(folder)
    r = import_(f"sqlite:///{tmp_path}/new.sqlite", folder)
    assert r.code == 1, r.stdout
    assert "OCF TX_EQUITY_COMPENSATION_ISSUANCE allotment:iij-2013-sar/10-allot-d01" in r.stderr
    assert "[allotment-over-terms]" in r.stderr and "Traceback" not in r.stderr


def tutorial(tmp_path: Path) -> Path:
    """The options tutorial's bundle, with a manifest that declares 1.2.0 and the files' md5s
    (as published it declares "~~~ SAMPLE ~~~" and a stale md5: see fixtures/ocf/README.md)."""
    folder = tmp_path / "tutorial"
    shutil.copytree(FIXTURES / "options-tutorial", folder)
    m = json.loads((folder / "Manifest.ocf.json").read_text())
    m["ocf_version"] = "1.2.0"
    (folder / "Manifest.ocf.json").write_text(json.dumps(m))
    _rehash(folder)
    return folder


def test_the_tutorial_as_published_is_refused_for_its_stale_md5(tmp_path: Path) -> None:
    r = import_(f"sqlite:///{tmp_path}/t.sqlite", FIXTURES / "options-tutorial", "--out", str(tmp_path / "c.jsonl"))
    assert r.code == 1 and "StockPlans.ocf.json" in r.stderr and "md5" in r.stderr


def test_the_tutorial_maps_to_one_grant_with_its_vesting_and_exercise(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    r = import_(f"sqlite:///{tmp_path}/t.sqlite", tutorial(tmp_path), "--out", str(out))
    assert r.code == 0, r.stderr
    assert "skipped: 2 TX_STOCK_ISSUANCE" in r.stderr and "skipped: 1 TX_STOCK_PLAN_POOL_ADJUSTMENT" in r.stderr
    assert "'cliff'" in r.stderr  # the dangling condition reference, said
    cmds = [json.loads(line) for line in out.read_text().splitlines()]
    iss = "ocf-c0ebbb49-8499-4863-bf27-279bc842bf20"
    assert [c["type"] for c in cmds] == ["pass_resolution", "set_terms", "allot_rights", "exercise_rights"]
    assert cmds[0]["resolved_on"] == "2022-12-31" and cmds[0]["issuance"] == iss
    terms = cmds[1]
    assert terms["rights"] == 100000 and terms["shares_per_right"] == 1
    assert terms["exercise_price_per_share"] == "0.10" and terms["currency"] == "USD"
    assert terms["exercise_to"] == "2032-12-31" and terms["exercise_window_days_after_departure"] == 1
    assert terms["vesting"] == {**FOUR_YEAR_CLIFF, "allocation": "cumulative_rounding"}
    assert cmds[2]["holder"] == "be7d1e2e-0c9c-485b-a27d-a5c982c4e659" and cmds[2]["name"] == "Jim Jangles"
    assert cmds[3] == {"id": "ocf:8efcfd8f-80fc-4f89-ae4f-1fd2c3c5cc2d", "type": "exercise_rights",
                       "issuance": iss, "holder": cmds[2]["holder"], "rights": 25000, "exercised_on": "2024-01-31"}
    # --strict refuses what the ledger cannot hold (the exercise's own stock would not count).
    s = import_(f"sqlite:///{tmp_path}/t.sqlite", tutorial(tmp_path / "x"), "--strict")
    assert s.code == 1 and "refused (--strict): 3 transactions" in s.stderr
    assert not (tmp_path / "t.sqlite").exists()


def _month_ends(start: date, end: date) -> list[date]:
    out, y, m = [], start.year, start.month
    while True:
        nxt = date(y + (m == 12), m % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        if last > end:
            return out
        out.append(last)
        y, m = nxt.year, nxt.month


def test_the_tutorial_vests_as_its_terms_say_at_every_month_end(tmp_path: Path) -> None:
    from decimal import ROUND_HALF_UP, Decimal

    from equity_ledger.ledger.store import store_config
    from equity_ledger.projections import queries
    from equity_ledger.projections.reader import ReadModels

    url = f"sqlite:///{tmp_path}/t.sqlite"
    r = import_(url, tutorial(tmp_path))
    assert r.code == 0, r.stderr
    days = _month_ends(date(2022, 12, 1), date(2027, 2, 28))
    # Every month end through the query the CLI runs (in-process: one CLI start per date cost
    # most of the suite's minute here), and a few of them, cliff and exercise included, through
    # the CLI itself.
    models = ReadModels(store_config(url))
    try:
        with models.snapshot() as conn:
            answers = {day: queries.holdings(conn, "person", None, day)[0] for day in days}
    finally:
        models.close()
    for day in (date(2023, 11, 30), date(2023, 12, 31), date(2024, 1, 31), days[-1]):
        row = run_cli("holdings", "--as-of", day.isoformat(), "--format", "json", db=url).json()[0]
        assert {k: row[k] for k in ("rights_outstanding", "rights_vested", "rights_unvested")} == {
            k: answers[day][k] for k in ("rights_outstanding", "rights_vested", "rights_unvested")}, day
    for day in days:
        months = (day.year - 2022) * 12 + day.month - 12  # the grant is of 2022-12-31, a month end
        portion = Fraction(0) if months < 12 else min(Fraction(1), Fraction(1, 4) + Fraction(months - 12, 48))
        vested_total = int((Decimal(100000) * Decimal(portion.numerator) / Decimal(portion.denominator))
                           .quantize(Decimal(1), rounding=ROUND_HALF_UP))
        exercised = 25000 if day >= date(2024, 1, 31) else 0
        row = answers[day]
        assert row["rights_outstanding"] == 100000 - exercised, day
        assert row["rights_vested"] == vested_total - exercised, day
        assert row["rights_unvested"] == 100000 - vested_total, day


def test_vesting_round_trips(store_url: str, second_store: Any, tmp_path: Path) -> None:
    cmds = [F.resolution("v1"), F.terms("v1", vesting=FOUR_YEAR_CLIFF),
            # A vesting start before the allotment (a hire date), not before the resolution.
            F.allot("h1", 48, "v1", vesting_start="2020-01-10"), F.allot("h2", 10, "v1", group="employee"),
            F.exercise("h1", 12, "2021-03-01", "v1"), F.depart("h2", "2021-06-30")]
    apply_all(store_url, cmds)
    bundle = export(store_url, tmp_path / "v")
    check_bundle_files(bundle)
    target = second_store()
    assert import_(target, bundle).code == 0
    assert figures(target) == figures(store_url)


def test_out_writes_the_commands_for_review(tmp_path: Path, sqlite_url: str) -> None:
    apply_all(sqlite_url, seed_commands())
    bundle = export(sqlite_url, tmp_path / "b.zip")
    out = tmp_path / "cmds.jsonl"
    r = import_(f"sqlite:///{tmp_path}/none.sqlite", bundle, "--out", str(out))
    assert r.code == 0 and "wrote 23 commands" in r.stdout
    assert not (tmp_path / "none.sqlite").exists()  # nothing applied
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert all(c["id"].startswith("ocf:") for c in lines)
    applied = run_cli("apply", str(write_jsonl(tmp_path / "again.jsonl", lines)),
                      db=f"sqlite:///{tmp_path}/applied.sqlite")
    assert applied.code == 0, applied.stderr
    assert figures(f"sqlite:///{tmp_path}/applied.sqlite") == figures(sqlite_url)
