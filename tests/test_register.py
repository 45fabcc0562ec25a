"""The register of stock acquisition rights agrees with holdings, at any date, in any currency."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import factories as f
from helpers import run_cli, write_jsonl

DATES = ["2020-01-31", "2020-02-01", "2021-01-01", "2021-06-30", "2022-01-01", "2023-12-31", None]


def _scenario() -> list[dict]:
    return [
        *f.setup("jp", exercise_price_per_share="1"),
        *f.setup("us", currency="USD", price_per_right="12.34", exercise_price_per_share="0.75"),
        f.allot("a", 10, issuance="jp"),
        f.allot("b", 7, issuance="jp", payment="cash"),
        f.allot("c", 3, issuance="jp", payment="gratis", group="employee"),
        f.allot("a", 4, issuance="us"),
        f.allot("d", 9, issuance="us", payment="cash", allotted_on="2021-01-01"),
        f.exercise("a", 2, on="2020-12-01", issuance="jp"),
        f.adjust("3", on="2021-01-01", issuance="us"),
        f.exercise("a", 1, on="2021-06-01", issuance="us"),
        f.forfeit("b", "all", on="2021-06-30", issuance="jp"),
        f.adjust("1/3", on="2022-01-01", issuance="jp"),
        f.allot("c", 2, issuance="jp", allotted_on="2020-06-01", payment="gratis", group="employee"),  # late entry
    ]


def _answers(url: str, day: str | None) -> tuple[dict, dict, dict]:
    """(holdings by issuance, register and holdings by person of each issuance) as at `day`,
    through the queries the CLI runs, in-process (one snapshot)."""
    import json
    from datetime import date

    from equity_ledger.ledger.store import store_config
    from equity_ledger.projections import queries
    from equity_ledger.projections.reader import ReadModels

    as_of = date.fromisoformat(day) if day else None
    models = ReadModels(store_config(url))
    try:
        with models.snapshot() as conn:
            answers = (
                queries.holdings(conn, "issuance", None, as_of),
                {i: queries.register(conn, i, as_of)[1] for i in ("jp", "us")},
                {i: queries.holdings(conn, "person", i, as_of) for i in ("jp", "us")},
            )
    finally:
        models.close()
    return json.loads(json.dumps(answers))  # as the CLI's JSON reads back


def test_register_totals_equal_holdings_by_issuance(sqlite_url: str, tmp_path: Path):
    r = run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", _scenario())), db=sqlite_url)
    assert r.code == 0, r.stderr
    for day in DATES:
        extra = ["--as-of", day] if day else []
        issuances, registers, by_person = _answers(sqlite_url, day)
        if day == "2021-06-30":  # the CLI gives the same answers (every date: in-process)
            assert run_cli("holdings", "--by", "issuance", "--format", "json", *extra, db=sqlite_url).json() == issuances
            for issuance in ("jp", "us"):
                assert run_cli("register", issuance, "--format", "json", *extra, db=sqlite_url).json() == \
                    registers[issuance]
                assert run_cli("holdings", "--by", "person", "--issuance", issuance, "--format", "json", *extra,
                               db=sqlite_url).json() == by_person[issuance]
        by_issuance = {(x["issuance"], x["currency"]): x for x in issuances}
        for issuance in ("jp", "us"):
            reg = registers[issuance]
            rows = [v for k, v in by_issuance.items() if k[0] == issuance]
            if not rows:
                assert reg == []
                continue
            [h] = rows
            assert sum(x["rights_held"] for x in reg) == h["rights_outstanding"]
            assert sum(x["rights_allotted"] for x in reg) == h["rights_allotted"]
            assert len(reg) == h["holders"]
            persons = by_person[issuance]
            assert [x["holder"] for x in reg] == [p["holder"] for p in persons]
            offset = sum(Decimal(p["amount_offset"]) for p in persons)
            assert sum(Decimal(x["amount_paid"]) for x in reg) >= offset


def test_split_rounding_jpy_and_usd(sqlite_url: str, tmp_path: Path):
    assert run_cli("apply", str(write_jsonl(tmp_path / "a.jsonl", _scenario())), db=sqlite_url).code == 0
    us = run_cli("register", "us", "--as-of", "2021-06-30", "--format", "json", db=sqlite_url).json()
    assert {x["exercise_price_per_share"] for x in us} == {"0.25"}  # 0.75 / 3
    assert {x["shares_per_right"] for x in us} == {300}
    jp = run_cli("register", "jp", "--format", "json", db=sqlite_url).json()
    assert {x["exercise_price_per_share"] for x in jp} == {"3"}  # 1 / (1/3), JPY has no minor unit
    assert {x["shares_per_right"] for x in jp} == {"100/3"}
    c = next(x for x in jp if x["holder"] == "c")
    assert c["acquired_on"] == ["2020-02-01", "2020-06-01"] and c["payment"] == ["gratis"] and c["amount_paid"] == "0"
    b = next(x for x in jp if x["holder"] == "b")
    assert b["payment"] == ["cash"] and b["amount_paid"] == "7000" and b["rights_held"] == 0
    hist = run_cli("history", "--holder", "a", "--issuance", "us", "--format", "json", db=sqlite_url).json()
    ex = next(h for h in hist if h["type"] == "rights_exercised")
    assert ex["shares_delivered"] == 300 and ex["exercise_price_per_share"] == "0.25" and ex["exercise_price_paid"] == "75.00"
    people = run_cli("holdings", "--by", "person", "--format", "json", db=sqlite_url).json()
    a_rows = [p for p in people if p["holder"] == "a"]
    assert sorted(p["currency"] for p in a_rows) == ["JPY", "USD"]  # never summed across currencies
    # c holds 5 rights at 100/3 shares each: floor(166.67) = 166
    c_now = next(p for p in people if p["holder"] == "c")
    assert c_now["shares_underlying"] == 166
