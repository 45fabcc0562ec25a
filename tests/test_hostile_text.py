"""Hostile text is data: stored verbatim, printed safely, never SQL."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

import factories as f
from helpers import run_cli, write_jsonl

HOSTILE = {
    "sql": "Robert'); DROP TABLE stored_events;--",
    "quotes": 'O"Brien \\ \' `x`',
    "control": "line1\nline2\r\tend\x1b[31mred\x07",
    "rtl": "\u202egnp.exe \u200f\u200e",
    "emoji": "株式 🚀👩‍👩‍👧 ẞ",
    "formula": "=HYPERLINK(\"http://evil\",\"x\")",
    "plus": "+cmd|' /C calc'!A0",
    "minus": "-2+3",
    "at": "@SUM(A1)",
    "long": "長" * 5000,
}


@pytest.fixture
def hostile_store(store_url: str, tmp_path: Path) -> str:
    cmds = f.setup()
    for i, (key, text) in enumerate(HOSTILE.items()):
        cmds.append(f.allot(f"h{i}-{key}", 1, name=text, reason=text, actor=text))
    r = run_cli("apply", str(write_jsonl(tmp_path / "h.jsonl", cmds)), db=store_url)
    assert r.code == 0, r.stderr
    return store_url


def test_stored_verbatim(hostile_store: str):
    rows = run_cli("holdings", "--format", "json", db=hostile_store).json()
    names = {r["holder"].split("-", 1)[1]: r["name"] for r in rows}
    assert names == HOSTILE
    hist = run_cli("history", "--format", "json", db=hostile_store).json()
    allots = [h for h in hist if h["type"] == "rights_allotted"]
    assert {h["reason"] for h in allots} == set(HOSTILE.values())
    assert {h["actor"] for h in allots} == set(HOSTILE.values())
    assert run_cli("audit", "verify", db=hostile_store).code == 0


def test_csv_neutralises_formulas(hostile_store: str):
    out = run_cli("holdings", "--format", "csv", db=hostile_store).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    for r in rows:
        assert not r["name"].startswith(("=", "+", "-", "@")), r["name"]
    by_key = {r["holder"].split("-", 1)[1]: r["name"] for r in rows}
    assert by_key["formula"] == "'" + HOSTILE["formula"]
    assert by_key["sql"] == HOSTILE["sql"]


def test_tables_print_controls_as_escapes(hostile_store: str):
    out = run_cli("holdings", db=hostile_store)
    assert out.code == 0
    assert "\x1b" not in out.stdout and "\u202e" not in out.stdout and "\x07" not in out.stdout
    assert "DROP TABLE" in out.stdout and "🚀" in out.stdout
    hist = run_cli("history", db=hostile_store)
    assert hist.code == 0 and "\x1b" not in hist.stdout
